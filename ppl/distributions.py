"""Distributions of the active backend: ``ppl.distributions.Normal`` is ``pyro.distributions.Normal``
on torch and ``numpyro.distributions.Normal`` on JAX, looked up when accessed.

    >>> import ppl, ppl.distributions as dist
    >>> type(dist.Normal(0.0, 1.0)).__module__.split(".")[0]
    'pyro'
"""

from .backend import get_backend


def __getattr__(name):
    try:
        return getattr(get_backend().distributions, name)
    except AttributeError:
        raise AttributeError(
            f"backend {get_backend().name!r} has no distribution {name!r}"
        ) from None


def __dir__():
    return dir(get_backend().distributions)
