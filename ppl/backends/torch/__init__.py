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

__all__ = ["BACKEND", "PARTICLE_PLATE", "Plate", "StrategyState", "Recorder", "TorchBackend",
           "distributions", "entered", "handlers", "primitives", "restored_rng", "to_trace"]


def __getattr__(name):
    """``ProgramState``, the name before 2026-12, kept for one release."""
    if name == "ProgramState":
        import warnings

        warnings.warn("ProgramState is now StrategyState (a strategy's state: its parameter store "
                      "and random stream); the old name goes in the next release",
                      DeprecationWarning, stacklevel=2)
        return StrategyState
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
