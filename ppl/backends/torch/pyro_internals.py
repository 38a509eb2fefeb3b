"""Every private name of Pyro that the torch backend reads, in one module.

Pyro has no public API for what the backend needs here: its global handler stack (to
restore it after a fault, and to see whether a handler is active), the plate-dimension
allocator's stack, the class of a plate's own subsample site, and the three dictionaries of
the parameter store (a strategy's own store is swapped in by pointer), and the ``Message``
name through which its modules build each message (``compile=True``: see
:func:`messages_as_dicts`). Each name is listed
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


_MESSAGE_MODULES = ("pyro.primitives", "pyro.poutine.runtime", "pyro.poutine.subsample_messenger")


def messages_as_dicts():
    """Pyro's modules build each message by calling ``Message``, a ``TypedDict`` with
    optional keys, which at run time returns a plain dict; ``torch.compile`` (Dynamo)
    cannot trace that call and breaks the graph at every sample site (measured on the VAE
    step: compiled forward 2.04 ms against 1.44 ms eager). Those modules' ``Message`` name
    becomes ``dict``, which returns the same dict (done once, on the first compiled step)."""
    import importlib

    for name in _MESSAGE_MODULES:
        module = importlib.import_module(name)
        if module.Message is not dict:
            module.Message = dict

