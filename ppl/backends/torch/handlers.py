"""The handlers table on torch: Pyro's poutine plus our replay, seed, condition, do, and
the provenance tracker behind ``ppl.graph``."""

import contextlib
import random
import types

import numpy

import pyro
import pyro.distributions
import torch
from pyro import poutine
from pyro.ops.provenance import ProvenanceTensor, detach_provenance, get_provenance
from pyro.poutine.messenger import Messenger
from torch.overrides import TorchFunctionMode

from ...site_handler import RunsRule
from .pyro_internals import SUBSAMPLE
from .state import restored_rng


class _ProvenanceTracker(Messenger):
    """Tags every sample site's value with its name and reads each site's parents off the
    provenance of its log density. A ``deterministic`` site (a mechanism of explicit
    noise) is a node too: its parents are the provenance of its value, which it then
    carries under its own name. Through its :class:`_EscapeWatch`, a site also has as parents
    every site whose value reached Python control flow before it was drawn: a branch on
    ``x.item()`` leaves no provenance, but what follows it may depend on ``x``."""

    def __init__(self, watch):
        super().__init__()
        self.parents = {}
        self.watch = watch

    def _pyro_post_sample(self, msg):
        if type(msg["fn"]) is SUBSAMPLE:
            return
        name = msg["name"]
        control = set(self.watch.escaped)  # sites read by control flow so far
        if msg["infer"].get("_deterministic"):
            self.parents[name] = (set(get_provenance(msg["value"])) | control) - {name}
            value = detach_provenance(msg["value"])
            msg["value"] = ProvenanceTensor(torch.as_tensor(value), frozenset({name}))
            return
        value = detach_provenance(msg["value"])
        if not torch.is_tensor(value):
            value = torch.as_tensor(value)
        tagged = ProvenanceTensor(value, frozenset({name}))
        with self.watch.paused():
            log_density = msg["fn"].log_prob(tagged)  # the library's own checks are not the program's
        self.parents[name] = (set(get_provenance(log_density)) | control) - {name}
        msg["value"] = tagged


_ESCAPES = {torch.Tensor.item, torch.Tensor.__bool__, torch.Tensor.__float__, torch.Tensor.__int__,
            torch.Tensor.__index__, torch.Tensor.tolist}


class _EscapeWatch(TorchFunctionMode):
    """Records the provenance of tensors turned into Python values while a program runs
    (control flow the provenance tracker cannot follow)."""

    def __init__(self):
        super().__init__()
        self.escaped = set()
        self._paused = 0

    @contextlib.contextmanager
    def paused(self):
        self._paused += 1
        try:
            yield
        finally:
            self._paused -= 1

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in _ESCAPES and not self._paused:
            self.escaped |= set(get_provenance([args, kwargs or {}]))
        return func(*args, **(kwargs or {}))


class _ReplayValues(Messenger):
    def __init__(self, values):
        super().__init__()
        self.values = values

    def _pyro_sample(self, msg):
        if not msg["is_observed"] and msg["name"] in self.values:
            msg["value"] = self.values[msg["name"]]


class _Seed(Messenger):
    """Seeds torch's (and Python's and NumPy's) random number generators on entry and
    restores them on exit, so that code after the block draws as if it had not run."""

    def __init__(self, rng_seed):
        super().__init__()
        self.rng_seed = rng_seed
        self._outer = []

    def __enter__(self):
        fork = restored_rng()
        fork.__enter__()
        self._outer.append((fork, random.getstate(), numpy.random.get_state()))
        pyro.set_rng_seed(self.rng_seed)
        return super().__enter__()

    def __exit__(self, *exc):
        try:
            return super().__exit__(*exc)
        finally:
            fork, python_state, numpy_state = self._outer.pop()
            random.setstate(python_state)
            numpy.random.set_state(numpy_state)
            fork.__exit__(None, None, None)


class RuleMessenger(RunsRule, Messenger):
    """Runs a backend-neutral :class:`ppl.site_handler.SiteHandler` as a Pyro Messenger."""

    # Pyro's plate draws its indices at a sample site of its own (NumPyro's is a plate
    # message): a neutral handler sees the program's sample sites only
    def _pyro_sample(self, msg):
        if type(msg["fn"]) is not SUBSAMPLE:
            self.rule.process_sample(msg)

    def _pyro_post_sample(self, msg):
        if type(msg["fn"]) is not SUBSAMPLE:
            self.rule.postprocess_sample(msg)


def _condition(fn=None, data=None):
    from ...causal.interventions import condition

    return condition(fn, data=data)


def _do(fn=None, interventions=None):
    from ...causal.interventions import do

    return do(fn, interventions=interventions)


handlers = types.SimpleNamespace(
    replay=lambda fn=None, values=None: _ReplayValues(values)(fn) if fn else _ReplayValues(values),
    condition=_condition,
    block=poutine.block,
    scale=poutine.scale,
    mask=poutine.mask,
    seed=lambda fn=None, rng_seed=0: _Seed(rng_seed)(fn) if fn else _Seed(rng_seed),
    do=_do,
    uncondition=poutine.uncondition,
)


class _FixedParams(Messenger):
    """``param`` sites take the given values instead of the store's. A module's weights
    (``name$$$weight``) stay in the module: Pyro would otherwise swap the module's own
    parameters for these."""

    def __init__(self, values):
        super().__init__()
        self.values = {name: value for name, value in values.items() if "$$$" not in name}

    def _pyro_param(self, msg):
        if msg["name"] in self.values:
            msg["value"] = self.values[msg["name"]]
            msg["done"] = True
