"""The PyTorch backend: Pyro's primitives and handlers, plus the protocol strategies are
written against (``ppl/backends/base.py``).

One Messenger, :class:`Recorder`, records a run, replays values into it and lets a
strategy choose how each latent site is drawn; because it is a Pyro Messenger it stacks
with every ``pyro.poutine`` handler.

    >>> BACKEND.name
    'torch'
"""

from .backend import BACKEND, TorchBackend
from .handlers import handlers
from .plate import PARTICLE_PLATE, Plate
from .primitives import distributions, primitives
from .recorder import Recorder, to_trace
from .state import StrategyState, entered, restored_rng
from ...renames import STRATEGY_STATE, old_names

__all__ = ["BACKEND", "PARTICLE_PLATE", "Plate", "StrategyState", "Recorder", "TorchBackend",
           "distributions", "entered", "handlers", "primitives", "restored_rng", "to_trace"]


__getattr__ = old_names(__name__, {"ProgramState": (STRATEGY_STATE, StrategyState)})
