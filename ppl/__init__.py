"""``ppl``: the language. Primitives, handlers and the common trace view, on PyTorch (Pyro)
or JAX (NumPyro).

    >>> import ppl, ppl.distributions as dist
    >>> def model():
    ...     z = ppl.sample("z", dist.Normal(0.0, 1.0))
    ...     return ppl.sample("x", dist.Normal(z, 1.0), obs=0.5)
    >>> sorted(ppl.trace(model)().latent)
    ['z']
"""

from . import causal, distributions, errors
from .backend import backend, get_backend, set_backend
from .causal import Identification, counterfactual_worlds, graph, identify, world, world_value
from .handlers import block, condition, do, mask, replay, scale, seed, trace
from .primitives import deterministic, factor, markov, module, param, plate, sample
from .trace_view import PlateInfo, Site, Trace

__all__ = [
    "Identification",
    "PlateInfo",
    "Site",
    "Trace",
    "backend",
    "block",
    "condition",
    "counterfactual_worlds",
    "deterministic",
    "distributions",
    "errors",
    "do",
    "factor",
    "get_backend",
    "graph",
    "identify",
    "markov",
    "mask",
    "module",
    "param",
    "plate",
    "replay",
    "sample",
    "scale",
    "seed",
    "set_backend",
    "trace",
    "world",
    "world_value",
]


def __getattr__(name):
    """Names kept for one release after a rename (``counterfactual``)."""
    if name == "counterfactual":
        return causal.__getattr__(name)  # warns, and gives counterfactual_worlds
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
