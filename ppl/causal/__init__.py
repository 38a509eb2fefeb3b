"""Causal reasoning on programs: interventions (``do``), checked ``condition``,
counterfactual worlds with shared noise, the program's causal graph, and identification
of effects from that graph.

    >>> import ppl, ppl.distributions as dist
    >>> def model():
    ...     z = ppl.sample("z", dist.Bernoulli(0.5))
    ...     x = ppl.sample("x", dist.Bernoulli(0.2 + 0.6 * z))
    ...     return ppl.sample("y", dist.Bernoulli(0.1 + 0.3 * x + 0.5 * z))
    >>> sorted(ppl.graph(model).edges)
    [('x', 'y'), ('z', 'x'), ('z', 'y')]
    >>> ppl.identify(ppl.graph(model), "x", "y").adjustment_sets
    [frozenset({'z'})]
"""

from .world_handler import counterfactual_worlds
from .worlds import world, world_value
from .graph import graph
from .identify import Identification, identify
from .noise import NoiseModel, register_noise
from ..renames import COUNTERFACTUAL_WORLDS, old_names

__all__ = ["Identification", "NoiseModel", "counterfactual_worlds", "graph", "identify", "register_noise",
           "world", "world_value"]


__getattr__ = old_names(__name__, {"counterfactual": (COUNTERFACTUAL_WORLDS, counterfactual_worlds)})
