"""The project's errors: one small hierarchy, each class also the built-in exception it
replaces, so that existing ``except ValueError`` (or ``NotImplementedError``) clauses
still catch it.

    PPLError
    ├── SiteError (ValueError)         names the site and what was expected
    │   └── ShapeError                 a value or distribution of the wrong shape
    ├── UnsupportedError (NotImplementedError)   a feature a backend or method lacks
    ├── NonFiniteError (FloatingPointError)      a loss or weight is NaN or infinite
    └── CheckpointError (ValueError)   a checkpoint that cannot be written or does not fit

    >>> from ppl.errors import UnsupportedError
    >>> try:
    ...     raise UnsupportedError("the 'gumbel' estimator", backend="jax")
    ... except NotImplementedError as error:
    ...     print(error)
    the 'gumbel' estimator is not supported on the jax backend
"""


class PPLError(Exception):
    """The base of every error this project raises on purpose."""


class SiteError(PPLError, ValueError):
    """Bad input at a site; the message names the site and what was expected."""

    def __init__(self, message, site=None):
        super().__init__(message)
        self.site = site


class ShapeError(SiteError):
    """A value, parameter or distribution whose shape does not fit its site or plate."""


class UnsupportedError(PPLError, NotImplementedError):
    """A feature that a backend or a method does not provide (yet).

    ``UnsupportedError(feature, backend="jax")`` or ``UnsupportedError(feature,
    method="exact")`` writes the message; a full message can be given instead.
    """

    def __init__(self, feature, backend=None, method=None, hint=None):
        self.feature, self.backend, self.method = feature, backend, method
        message = feature
        if backend is not None:
            message = f"{feature} is not supported on the {backend} backend"
        elif method is not None:
            message = f"{feature} is not supported by method={method!r}"
        if hint:
            message = f"{message}; {hint}"
        super().__init__(message)


class NonFiniteError(PPLError, FloatingPointError):
    """A loss or log-weight is NaN or infinite; the message names the site responsible."""


class ResourceError(PPLError, MemoryError):
    """An allocation the computation asked for failed (memory exhausted); the message names
    the size asked for and the argument that lowers it."""


def is_allocation_failure(error):
    """Whether ``error`` is an array library's out-of-memory failure (torch's allocators on
    CPU and GPU, XLA's ``RESOURCE_EXHAUSTED``, or Python's ``MemoryError``)."""
    if isinstance(error, MemoryError):
        return not isinstance(error, PPLError)
    text = str(error)
    return isinstance(error, RuntimeError) and any(marker in text for marker in (
        "can't allocate memory", "out of memory", "RESOURCE_EXHAUSTED", "Out of memory"))


class CheckpointError(PPLError, ValueError):
    """A checkpoint that cannot be written, read, or loaded into this strategy; the message
    names the first difference. A failed load changes nothing."""


def user_stacklevel():
    """The ``stacklevel`` that makes ``warnings.warn``, called by the function that calls
    this, point at the user's line: the first frame outside this project's packages and the
    libraries beneath them (Pyro's handlers, NumPyro's), however deep the call."""
    import os
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    inside = tuple(os.path.join(root, package) + os.sep for package in ("ppl", "inference", "models"))
    frame, level = sys._getframe(1), 1
    while frame is not None and (frame.f_code.co_filename.startswith(inside)
                                 or "site-packages" in frame.f_code.co_filename):
        frame, level = frame.f_back, level + 1
    return level


__all__ = ["CheckpointError", "NonFiniteError", "PPLError", "ResourceError", "ShapeError",
           "SiteError", "UnsupportedError"]  # user_stacklevel is a helper of the project's own warnings
