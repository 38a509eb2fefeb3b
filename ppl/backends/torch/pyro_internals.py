"""Every private name of Pyro that the torch backend reads, in one module.

Pyro has no public API for what the backend needs here: its global handler stack (to
restore it after a fault, and to see whether a handler is active), the plate-dimension
allocator's stack, the class of a plate's own subsample site, and the three dictionaries of
the parameter store (a strategy's own store is swapped in by pointer). Each name is listed
in ``tests/ppl/test_private_api.py``, which fails on a Pyro release that removes or changes
one; ``pyproject.toml`` bounds ``pyro-ppl`` below its next minor version.

    >>> import pyro
    >>> sorted(store_dicts(pyro.get_param_store())._fields)
    ['constraints', 'param_to_name', 'params']
"""

from collections import namedtuple

from pyro.poutine.runtime import _DIM_ALLOCATOR, _PYRO_STACK
from pyro.poutine.subsample_messenger import _Subsample

HANDLER_STACK = _PYRO_STACK  # Pyro's global effect-handler stack (a list, mutated in place)
SUBSAMPLE = _Subsample  # the distribution of a plate's own subsample site

StoreDicts = namedtuple("StoreDicts", "params param_to_name constraints")


def dim_allocator_stack():
    """The plate-dimension allocator's stack (a list, restored in place after a fault)."""
    return _DIM_ALLOCATOR._stack


def store_dicts(store):
    """A ``ParamStoreDict``'s three dictionaries: name -> unconstrained leaf, leaf -> name,
    name -> constraint."""
    return StoreDicts(store._params, store._param_to_name, store._constraints)


def set_store_dicts(store, dicts):
    """Make ``dicts`` (a :class:`StoreDicts`, or a triple in its order) the store's own."""
    store._params, store._param_to_name, store._constraints = dicts
