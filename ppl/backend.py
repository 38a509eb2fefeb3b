"""Which backend (PyTorch through Pyro, or JAX through NumPyro) the primitives resolve to.

Example::

    >>> import ppl
    >>> ppl.get_backend().name
    'torch'
    >>> with ppl.backend("jax"):
    ...     ppl.get_backend().name
    'jax'
"""

import contextlib
import importlib

_BACKEND_MODULES = {"torch": "ppl.backends.torch", "jax": "ppl.backends.jax"}
_loaded = {}
_active = ["torch"]


def _load(name):
    if name not in _BACKEND_MODULES:
        raise ValueError(f"unknown backend {name!r}; expected one of {sorted(_BACKEND_MODULES)}")
    if name not in _loaded:
        try:
            module = importlib.import_module(_BACKEND_MODULES[name])
        except ImportError as error:  # the JAX extra is optional
            raise ImportError(
                f"backend {name!r} needs its extra: pip install 'ppl-extension[{name}]' ({error})"
            ) from error
        _loaded[name] = module.BACKEND
    return _loaded[name]


def get_backend(name=None):
    """The active backend object, or the one called ``name``."""
    return _load(name or _active[-1])


def ops_of(array):
    """The array-ops table of the loaded backend whose array ``array`` is (torch's when no
    loaded backend claims it), for code handed arrays rather than a program.

        >>> import torch
        >>> ops_of(torch.zeros(2)) is get_backend("torch").ops
        True
    """
    for loaded in _loaded.values():
        if loaded.ops.is_array(array):
            return loaded.ops
    return get_backend("torch").ops


def set_backend(name):
    """Make ``name`` ("torch" or "jax") the backend that ``ppl`` primitives resolve to."""
    _load(name)
    _active[-1] = name


@contextlib.contextmanager
def backend(name):
    """Context manager that switches the active backend for its body."""
    _load(name)
    _active.append(name)
    try:
        yield get_backend(name)
    finally:
        _active.pop()


class activated:
    """Make a loaded backend active while a strategy runs a program with it (cheaper than
    :func:`backend`, which validates the name)."""

    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        _active.append(self.name)

    def __exit__(self, *exc):
        _active.pop()


def backend_of(fn):
    """The backend a program is written for: ``fn._ppl_backend`` if set, else the active one."""
    return get_backend(getattr(fn, "_ppl_backend", None))
