"""What a strategy owns on torch: its own parameter store and random stream, entered only
while it runs a program.

Pyro keeps parameters in one global store and draws from torch's global generator, so
two strategies in one process would train the same tensors. A :class:`StrategyState`
holds a strategy's own store (the three dictionaries of Pyro's ``ParamStoreDict``) and,
when seeded, its own generator state; :func:`entered` swaps them into Pyro's global
objects for the duration of a call (a pointer swap, no copy) and swaps the caller's back
on exit. Pyro's ``param_store.scope()`` does the same with copies, too slow per step.

:func:`entered` is also the fault barrier: a process-wide re-entrant lock serialises
strategies running in different threads (Pyro's handler stack is one global list), and
an exception leaves Pyro's handler stack and plate-dimension allocator as they were.

    >>> import pyro, torch
    >>> state = StrategyState(rng_seed=0)
    >>> with entered(state):
    ...     _ = pyro.param("loc", torch.tensor(1.0))
    >>> "loc" in pyro.get_param_store(), sorted(state.params)
    (False, ['loc'])
"""

import contextlib
import threading
import weakref

import pyro
import torch
from pyro.params.param_store import ParamStoreDict
from .pyro_internals import HANDLER_STACK, dim_allocator_stack, set_store_dicts, store_dicts
from ...renames import STRATEGY_STATE, old_names

_LOCK = threading.RLock()
_CPU = torch.default_generator  # torch.get_rng_state() and set_rng_state() call into it
_STATES = weakref.WeakSet()  # every strategy's state: whose parameter a global read missed


def _read_param(store, name):
    """Pyro's ``ParamStoreDict.__getitem__``, with a ``KeyError`` that says where a
    strategy's parameter is when code outside the strategy reads it from Pyro's global
    store (``pyro.param("loc")`` after ``vi.run``, as Pyro's tutorials read a fit)."""
    try:
        return _PYRO_GETITEM(store, name)
    except KeyError:
        if any(name in state.params for state in list(_STATES) if not state.active):
            raise KeyError(
                f"{name!r}: this parameter belongs to a strategy, which keeps its own parameters "
                f"(not Pyro's global store): read it as vi.params[{name!r}], or run the code "
                "inside `with vi.param_scope():` (vi being the strategy)") from None
        raise


_PYRO_GETITEM = ParamStoreDict.__getitem__
ParamStoreDict.__getitem__ = _read_param


class StrategyState:
    """A strategy's parameters (unconstrained tensors, their constraints) and random stream.

    ``rng_seed=None`` draws from torch's global generator, as Pyro does; an integer gives
    the state a generator of its own, seeded once, that advances only while it is entered.
    The store starts from copies of the values in Pyro's global store (so that a value a
    user set with ``pyro.param`` before building the strategy is its starting point), except
    modules' weights, which stay in their modules.
    """

    def __init__(self, rng_seed=None):
        self.params = {}  # name -> unconstrained leaf tensor
        self.param_to_name = {}
        self.constraints = {}
        with _LOCK:  # while another strategy runs, the global store is swapped out
            store = pyro.get_param_store()
            dicts = store_dicts(store)
            for name, value in dicts.params.items():
                if "$$$" not in name:
                    copy = value.detach().clone().requires_grad_(value.requires_grad)
                    self.params[name], self.param_to_name[copy] = copy, name
                    self.constraints[name] = dicts.constraints[name]
        self.inherited = frozenset(self.params)
        self.rng_seed = rng_seed
        self.rng = None if rng_seed is None else _seeded_cpu_state(rng_seed)
        self.cuda_rng = None
        self.active = False
        _STATES.add(self)

    def next_key(self):
        """Torch draws from the entered generator; there are no keys to hand out."""
        return None

    def constrained(self):
        """name -> constrained value (detached)."""
        store = pyro.get_param_store()
        with entered(self):
            return {name: store[name].detach() for name in self.params}


def _seeded_cpu_state(seed):
    generator = torch.Generator()
    generator.manual_seed(int(seed))
    return generator.get_state()


class entered:
    """Make ``state`` the param store and random stream that Pyro programs see, for the
    block (a class rather than a generator: it runs on every call of every verb)."""

    __slots__ = ("state", "nested", "outer", "depth", "dims", "outer_rng")

    def __init__(self, state):
        self.state = state

    def __enter__(self):
        _LOCK.acquire()
        state = self.state
        self.nested = state.active  # re-entered (one verb calling another): already in place
        if self.nested:
            return state
        store = pyro.get_param_store()
        self.outer = store_dicts(store)
        self.depth, self.dims = len(HANDLER_STACK), list(dim_allocator_stack())
        set_store_dicts(store, (state.params, state.param_to_name, state.constraints))
        self.outer_rng = _swap_rng_in(state) if state.rng is not None else None
        state.active = True
        return state

    def __exit__(self, exc_type, exc, tb):
        try:
            if self.nested:
                return
            if exc_type is not None:
                # a handler whose __enter__ failed half-way (a plate that allocated its dim,
                # then rejected its size) never exits: drop what the fault left behind
                del HANDLER_STACK[self.depth:]
                dim_allocator_stack()[:] = self.dims
            self.state.active = False
            if self.outer_rng is not None:
                _swap_rng_out(self.state, self.outer_rng)
            set_store_dicts(pyro.get_param_store(), self.outer)
        finally:
            _LOCK.release()


def _swap_rng_in(state):
    outer = (_CPU.get_state(), None)
    _CPU.set_state(state.rng)
    if torch.cuda.is_initialized():
        outer = (outer[0], torch.cuda.get_rng_state_all())
        if state.cuda_rng is None:
            torch.cuda.manual_seed_all(state.rng_seed)
        else:
            torch.cuda.set_rng_state_all(state.cuda_rng)
    return outer


def _swap_rng_out(state, outer):
    state.rng = _CPU.get_state()
    _CPU.set_state(outer[0])
    if outer[1] is not None:
        state.cuda_rng = torch.cuda.get_rng_state_all()
        torch.cuda.set_rng_state_all(outer[1])


@contextlib.contextmanager
def restored_rng():
    """Seeding inside this block does not leak: torch's generators are restored on exit."""
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        yield


__getattr__ = old_names(__name__, {"ProgramState": (STRATEGY_STATE, StrategyState)})
