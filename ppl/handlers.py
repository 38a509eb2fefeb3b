"""Effect handlers of the active backend, each usable as a function transform, a decorator
and a context manager. They are the backend's own Messengers, so they stack with
``pyro.poutine`` (torch) and ``numpyro.handlers`` (JAX).

    >>> import torch, ppl, ppl.distributions as dist
    >>> def model():
    ...     return ppl.sample("z", dist.Normal(0.0, 1.0))
    >>> ppl.condition(model, data={"z": torch.tensor(2.0)})()
    tensor(2.)
    >>> with ppl.trace() as tr:
    ...     with ppl.scale(scale=10.0):
    ...         _ = model()
    >>> float(tr["z"].scale)
    10.0
"""

import functools

from .backend import backend_of, get_backend
from .trace_view import Trace


def _values(data):
    """Site values from a :class:`Trace`, a dict of values, or a dict of trace entries."""
    if isinstance(data, Trace):
        return {name: site.value for name, site in data.sites.items() if not site.observed}
    return dict(data)


class trace:
    """Record a run as a :class:`~ppl.trace_view.Trace`.

    ``ppl.trace(model)(*args)`` returns the trace (the model's return value is
    ``trace.return_value``); ``with ppl.trace() as tr:`` fills ``tr`` when the block ends.
    """

    def __init__(self, fn=None):
        self.fn = fn
        if fn is not None:
            functools.update_wrapper(self, fn, updated=())

    def __call__(self, *args, **kwargs):
        if self.fn is None:
            if len(args) == 1 and callable(args[0]) and not kwargs:
                return trace(args[0])
            raise TypeError("ppl.trace() without a function is a context manager or decorator")
        return backend_of(self.fn).run(self.fn, args, kwargs)

    def __enter__(self):
        backend = get_backend()
        self._recorder = backend.Recorder()
        self._recorder.__enter__()
        self._trace = Trace({}, backend=backend)
        return self._trace

    def __exit__(self, *exc):
        self._recorder.__exit__(*exc)
        view = self._trace.backend.to_trace(self._recorder)
        self._trace.__dict__.update(view.__dict__)
        return False


def _dispatch(handler_name, fn, **kwargs):
    backend = backend_of(fn) if fn is not None else get_backend()
    return getattr(backend.handlers, handler_name)(fn, **kwargs)


def replay(fn=None, trace=None):
    """Run ``fn`` with its latent sites taking the values recorded in ``trace`` (a Trace or dict)."""
    if trace is None:
        raise ValueError("replay needs trace=: a ppl Trace or a dict of site values")
    return _dispatch("replay", fn, values=_values(trace))


def condition(fn=None, data=None):
    """Observe sites at the given values (``data``: a dict or a Trace)."""
    if data is None:
        raise ValueError("condition needs data=: a dict of site values")
    return _dispatch("condition", fn, data=_values(data))


def do(fn=None, interventions=None):
    """Intervene on sites (hard values, distributions or shifts; see :mod:`ppl.causal.interventions`)."""
    if interventions is None:
        raise ValueError("do needs interventions: a dict of site name -> value")
    return _dispatch("do", fn, interventions=interventions)


def block(fn=None, hide=None, expose=None, hide_fn=None):
    """Hide sites from handlers outside this one (all of them by default)."""
    return _dispatch("block", fn, hide=hide, expose=expose, hide_fn=hide_fn)


def seed(fn=None, rng_seed=0):
    """Fix the randomness of ``fn``: seeds torch on entry, or threads a PRNG key on JAX."""
    return _dispatch("seed", fn, rng_seed=rng_seed)


def scale(fn=None, scale=1.0):
    """Multiply the log density of every site inside by ``scale``."""
    return _dispatch("scale", fn, scale=scale)


def mask(fn=None, mask=True):
    """Mask out the log density of sites (elements) where ``mask`` is False."""
    return _dispatch("mask", fn, mask=mask)
