"""``ppl``: the language. Primitives, handlers and the common trace view, on PyTorch (Pyro)
or JAX (NumPyro).

    >>> import ppl, ppl.distributions as dist
    >>> def model():
    ...     z = ppl.sample("z", dist.Normal(0.0, 1.0))
    ...     return ppl.sample("x", dist.Normal(z, 1.0), obs=0.5)
    >>> sorted(ppl.trace(model)().latent)
    ['z']
"""

from . import distributions, errors
from .backend import backend, get_backend, set_backend
from .causal import Identification, counterfactual_worlds, graph, identify, world, world_value
from .handlers import block, condition, do, mask, replay, scale, seed, trace
from .primitives import deterministic, factor, markov, module, param, plate, sample
from .trace_view import PlateInfo, Site, Trace
from .renames import COUNTERFACTUAL_WORLDS, old_names

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


__getattr__ = old_names(__name__, {"counterfactual": (COUNTERFACTUAL_WORLDS, counterfactual_worlds)})
