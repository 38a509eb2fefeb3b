"""Training machinery per backend: the parameters an objective touches, their optimiser
step, and their checkpointed state. Chosen by backend name; engines take a loss function
of (parameters, random key), as NumPyro's ``SVI`` does, never a strategy's internals.

    >>> from inference.optim import Adam
    >>> from ppl.backends.torch import StrategyState
    >>> type(make_engine("torch", Adam(), StrategyState())).__name__
    'TorchEngine'
"""

import importlib

_ENGINES = {"torch": ("inference.engines.torch", "TorchEngine"),
            "jax": ("inference.engines.jax", "JaxEngine")}


def make_engine(backend_name, optimizer, state, owners=(), initial=None):
    """The engine for ``backend_name`` over ``state`` (the strategy's parameters and random
    stream), stepping ``optimizer``; ``owners``: modules whose parameters it also trains;
    ``initial``: constrained starting values for ``param`` sites, by name."""
    from ppl.errors import UnsupportedError

    if backend_name not in _ENGINES:
        raise UnsupportedError("training (an optimiser engine)", backend=backend_name)
    module, name = _ENGINES[backend_name]
    return getattr(importlib.import_module(module), name)(optimizer, state, owners, initial)
