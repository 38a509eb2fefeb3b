"""The language primitives; each resolves to the active backend's own primitive.

Models written with these run on both backends::

    >>> import ppl, ppl.distributions as dist
    >>> def model(data):
    ...     mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
    ...     with ppl.plate("data", len(data)):
    ...         ppl.sample("x", dist.Normal(mu, 1.0), obs=data)
    >>> tr = ppl.trace(model)([0.1, -0.3])
    >>> sorted(tr.sites)
    ['mu', 'x']
"""

from .backend import get_backend


def sample(name, fn, obs=None, infer=None, **kwargs):
    """Draw (or observe, when ``obs`` is given) the random variable ``name`` from ``fn``."""
    return get_backend().primitives.sample(name, fn, obs=obs, infer=infer, **kwargs)


def param(name, init_value=None, **kwargs):
    """A learnable parameter; ``constraint=`` keeps it in a support (e.g. ``constraints.positive``)."""
    return get_backend().primitives.param(name, init_value, **kwargs)


def plate(name, size, subsample_size=None, dim=None, **kwargs):
    """Conditional independence over ``size`` elements, optionally subsampled."""
    return get_backend().primitives.plate(name, size, subsample_size=subsample_size, dim=dim, **kwargs)


def deterministic(name, value, event_dim=None):
    """Record a deterministic function of other sites under ``name``."""
    return get_backend().primitives.deterministic(name, value, event_dim=event_dim)


def factor(name, log_factor):
    """Add ``log_factor`` to the program's log density."""
    return get_backend().primitives.factor(name, log_factor)


def module(name, nn_module, **kwargs):
    """Register a neural network's parameters (``torch.nn.Module``; on JAX a flax/haiku module)."""
    return get_backend().primitives.module(name, nn_module, **kwargs)


def markov(iterable=None, history=1):
    """A Markov chain's steps: ``for t in ppl.markov(range(T)):`` lets enumerated sites of
    step t see only the last ``history`` steps, so that their enumeration dimensions are
    recycled (Pyro's ``pyro.markov``) and chains of any length fit.

        >>> [t for t in markov(range(3))]
        [0, 1, 2]
    """
    return get_backend().primitives.markov(iterable, history=history)
