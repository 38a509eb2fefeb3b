"""How a strategy runs its K particles (``vectorize_particles``), in one place for VI and
Importance.

- ``True``: at once, on a particle plate left of the program's plates (the default);
- ``False``: one run per particle, as Pyro does by default;
- ``"vmap"`` (JAX): the one-particle program mapped over K keys with ``jax.vmap``, laid
  out as the plate would lay it out, for programs that do not broadcast over an extra
  batch dimension (``x @ w``, NumPyro's ``AutoContinuous`` guides) at vectorised speed;
- ``"auto"``: the plate, and where the first run with it fails, ``"vmap"`` on JAX or
  one by one on torch, with a warning.

    >>> particles_arg(True, 8, 1), particles_arg("vmap", 8, 1), particles_arg(False, 8, 1)
    ((8, -2), (8, -2, 'vmap'), None)
"""

import warnings

from ppl.errors import PPLError, ShapeError, user_stacklevel

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
    their own cause)."""
    return isinstance(error, (RuntimeError, ValueError, TypeError)) and not isinstance(error, PPLError)


def vectorisation_error(owner, num, plate_dims, error):
    """The error for programs that failed with their particles on a plate."""
    return ShapeError(
        f"the programs failed with their {num} particles vectorised on a plate at dim "
        f"{-(plate_dims + 1)} (they ran with one particle): {error}. A program that does not "
        "broadcast over an extra batch dimension (for example x @ w with w a sample) runs with "
        f"{owner}(..., vectorize_particles=False) (one by one), 'vmap' (JAX) or 'auto'")


def warn_fallback(owner, error, mode):
    how = "mapped with jax.vmap" if mode == "vmap" else "one by one"
    warnings.warn(f"{owner}: {error}; running the particles {how} from now on", UserWarning,
                  stacklevel=user_stacklevel())
