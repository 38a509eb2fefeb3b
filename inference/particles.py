"""How a strategy runs its K particles (``vectorize_particles``), in one place for VI and
Importance.

- ``"auto"`` (the default): the plate, and where the first run with it fails (a program
  that does not broadcast over an extra batch dimension: ``x @ w`` with ``w`` a sample,
  NumPyro's ``AutoContinuous`` guides), ``"vmap"`` on JAX or one by one on torch, with one
  warning that says what the fallback costs;
- ``True``: at once, on a particle plate left of the program's plates (an error where the
  program does not broadcast);
- ``False``: one run per particle, as Pyro does by default;
- ``"vmap"`` (JAX): the one-particle program mapped over K keys with ``jax.vmap``, laid
  out as the plate would lay it out, at vectorised speed.

    >>> particles_arg(True, 8, 1), particles_arg("vmap", 8, 1), particles_arg(False, 8, 1)
    ((8, -2), (8, -2, 'vmap'), None)
"""

import warnings

from ppl.errors import PPLError, ShapeError, is_allocation_failure, user_stacklevel

MODES = (True, False, "auto", "vmap")


def check_mode(owner, mode):
    if mode not in MODES:
        raise ValueError(f"{owner}: vectorize_particles must be True, False, 'auto' or 'vmap', got {mode!r}")
    return mode


def particles_arg(mode, num, plate_dims):
    """``backend.run``'s ``particles`` for ``num`` particles left of ``plate_dims`` plates."""
    if not mode:
        return None
    return (num, -(plate_dims + 1)) + (("vmap",) if mode == "vmap" else ())


def fallback_mode(backend):
    """Where the particle plate fails: ``jax.vmap`` where the backend maps, else one by one."""
    return "vmap" if backend.name == "jax" else False


def is_program_failure(error):
    """An error a program raises when it does not broadcast (not one of ours, which name
    their own cause, nor an allocation failure, which a plate of fewer particles avoids)."""
    return (isinstance(error, (RuntimeError, ValueError, TypeError)) and not isinstance(error, PPLError)
            and not is_allocation_failure(error))


def _where(error):
    """Where a program failed: after the last site its run recorded (set by the backends)."""
    site = getattr(error, "ppl_last_site", None)
    return f"after site {site!r}, " if site else ""


def vectorisation_error(owner, num, plate_dims, error):
    """The error for programs that failed with their particles on a plate."""
    return ShapeError(
        f"the programs failed with their {num} particles vectorised on a plate at dim "
        f"{-(plate_dims + 1)} (they ran with one particle): {_where(error)}{error}. A program that does not "
        "broadcast over an extra batch dimension (for example x @ w with w a sample) runs with "
        f"{owner}(..., vectorize_particles=False) (one by one), 'vmap' (JAX) or 'auto'")


def fell_back(owner, strategy, failure, num):
    """``vectorize_particles="auto"``: after the first vectorised run of ``strategy`` (a VI
    or an Importance) failed as a program that does not broadcast (a :func:`vectorisation_error`
    whose cause is a program's failure, not one of our named checks), switch it to
    ``jax.vmap`` or one by one with one warning; whether it did."""
    cause = failure.__cause__
    if (strategy.vectorize_particles != "auto" or strategy._vectorised_ok
            or not isinstance(failure, ShapeError) or cause is None or not is_program_failure(cause)):
        return False
    strategy.vectorize_particles = fallback_mode(strategy.backend)
    warn_fallback(owner, cause, strategy.vectorize_particles, num, strategy._plates)
    return True


def warn_fallback(owner, error, mode, num, plate_dims):
    """The one warning of ``vectorize_particles="auto"`` falling back, with its cost;
    ``error``: what the programs raised with their particles on the plate."""
    how = ("mapped with jax.vmap from now on (about the plate's speed, after a compilation; "
           "vectorize_particles='vmap' chooses this and silences the warning)" if mode == "vmap" else
           f"one by one from now on: {num} runs of the programs per step where the plate took "
           "one (vectorize_particles=False chooses this and silences the warning)")
    warnings.warn(f"{owner}: the programs do not broadcast over {num} particles on a plate at dim "
                  f"{-(plate_dims + 1)} (they ran with one particle; {_where(error)}{error}); running the "
                  f"particles {how}", UserWarning, stacklevel=user_stacklevel())
