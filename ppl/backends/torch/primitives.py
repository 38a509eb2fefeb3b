"""The primitives on torch: Pyro's, with ``param`` accepting plain numbers and a cached
``module`` registration."""

import types


import pyro
import pyro.distributions
import torch
from pyro.poutine.messenger import Messenger

from ...errors import NonFiniteError, PPLError, SiteError
from ...validation import check_param_value, markov_window_problem
from .plate import Plate
from .pyro_internals import HANDLER_STACK, store_dicts
from .recorder import Recorder


_registered_modules = {}  # name -> (module, a param-store key, its (name, parameter) pairs)


def _module(name, nn_module, update_module_params=True):
    """``pyro.module``, skipped once registered when only ``Recorder``s and plates listen.

    Registering a module emits one ``param`` message per parameter on every call; inside
    a strategy's own run nothing but its ``Recorder`` reads them, so the recorder is
    handed the cached parameters directly.
    """
    cached = _registered_modules.get(name)
    if cached is not None and cached[0] is nn_module and _only_recorders_listen():
        if cached[1] in store_dicts(pyro.get_param_store()).params:
            for frame in HANDLER_STACK:
                if type(frame) is Recorder:
                    frame.params.update(cached[2])
            return nn_module
    # update_module_params: a module whose parameters were loaded into the param store
    # (a checkpoint) takes them, so that a resumed run continues exactly; parameters are
    # global by name, as in Pyro, so a clash of shapes is an error rather than an adoption
    _check_module_shapes(name, nn_module)
    out = pyro.module(name, nn_module, update_module_params=update_module_params)
    pairs = [(f"{name}$$${n}", p) for n, p in nn_module.named_parameters() if p.requires_grad]
    if pairs:
        _registered_modules[name] = (nn_module, pairs[0][0], pairs)
    return out


def _check_module_shapes(name, nn_module):
    store = store_dicts(pyro.get_param_store()).params
    for param_name, p in nn_module.named_parameters():
        stored = store.get(f"{name}$$${param_name}")
        if stored is not None and stored.shape != p.shape:
            raise ValueError(
                f"ppl.module({name!r}): the param store holds {name}$$${param_name} with shape "
                f"{tuple(stored.shape)}, but this module's parameter has shape {tuple(p.shape)}; "
                "register it under another name or call pyro.clear_param_store()")


def _param(name, init_value=None, *args, **kwargs):
    if init_value is not None and not callable(init_value):
        new = name not in store_dicts(pyro.get_param_store()).params
        if not isinstance(init_value, torch.Tensor):
            init_value = torch.as_tensor(init_value, dtype=torch.get_default_dtype())
        elif new:
            # Pyro would make the given tensor itself the parameter (a real constraint's
            # transform is the identity) and train it in place, under its owner's feet
            init_value = init_value.detach().clone()
        if new:  # outside its constraint, the stored unconstrained value would be NaN
            check_param_value(name, init_value, kwargs.get("constraint", args[0] if args else None))
    return pyro.param(name, init_value, *args, **kwargs)


def _factor(name, log_factor, *args, **kwargs):
    """``pyro.factor``, whose refusal of a NaN log factor (with validation on) names the site."""
    try:
        return pyro.factor(name, log_factor, *args, **kwargs)
    except ValueError as error:
        if not isinstance(error, PPLError) and bool(torch.isnan(torch.as_tensor(log_factor)).any()):
            raise NonFiniteError(f"site {name!r} (a factor) has a NaN log density") from error
        raise


def _markov(iterable=None, history=1, keep=False, dim=None, name=None):
    """``pyro.markov``; over a sized chain, a ``history`` longer than the chain (a window
    that no step can fill; most often the chain's length passed as its order) is refused
    at the chain's first sample site, which the error names."""
    length = len(iterable) if hasattr(iterable, "__len__") else None
    if length is None or history <= length:
        return pyro.markov(iterable, history=history, keep=keep, dim=dim, name=name)
    return _refused_chain(iterable, history, length)


def _refused_chain(iterable, history, length):
    with _WindowLongerThanChain(history, length):
        yield from pyro.markov(iterable, history=history)


class _WindowLongerThanChain(Messenger):
    def __init__(self, history, length):
        super().__init__()
        self.history, self.length = history, length

    def _pyro_sample(self, msg):
        raise SiteError(markov_window_problem(msg["name"], self.history, self.length), site=msg["name"])


def _only_recorders_listen():
    return bool(HANDLER_STACK) and all(type(f) in _PARAM_BLIND for f in HANDLER_STACK)


_PARAM_BLIND = (Recorder, Plate, pyro.plate)

primitives = types.SimpleNamespace(
    sample=pyro.sample,
    param=_param,
    plate=Plate,
    deterministic=pyro.deterministic,
    factor=_factor,
    module=_module,
    markov=_markov,
)
distributions = pyro.distributions
