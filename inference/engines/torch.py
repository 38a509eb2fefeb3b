"""Training on torch: the leaves a loss touches, one optimiser over them, and their state.

Leaves come from ``param`` sites (the strategy's own parameter store, which also holds
the parameters of modules registered with ``ppl.module``) and from any
``torch.nn.Module`` passed as model or guide. The engine is used inside the strategy's
``StrategyState`` (``backend.entered``), so ``pyro.get_param_store()`` is the strategy's.
"""

import math

import pyro
import torch
from torch.distributions import transform_to

from ppl.errors import CheckpointError
from ppl.validation import check_param_value

from ..checkpoint import difference
from ..optim import make_torch_optimizer, optimizer_difference, optimizer_name


class TorchEngine:
    """Finds trainable leaves as programs reveal them and steps one optimiser over them.

    ``updates`` counts optimiser steps taken (an interrupted one included: it may have
    moved the parameters), so that a strategy can keep its step count in line.
    """

    def __init__(self, optimizer, state, owners=(), initial=None):
        self.optimizer_spec = optimizer
        self.initial = {n: v for n, v in (initial or {}).items() if "$$$" not in n}
        self.state = state
        self.owners = [m for m in owners if isinstance(m, torch.nn.Module)]
        self.leaves = {}  # name -> leaf tensor, in discovery order
        self._seen_ids = set()
        self.optimizer = None
        self._group_names = []
        self._pending = None  # a loaded checkpoint waiting for the program's parameters
        self.updates = 0
        self.last_loss = math.nan

    def _add(self, name, leaf, new):
        if leaf.requires_grad and id(leaf) not in self._seen_ids:
            self._seen_ids.add(id(leaf))
            self.leaves[name] = leaf
            new[name] = leaf

    def _owner_leaves(self):
        for owner in self.owners:
            for name, p in owner.named_parameters():
                yield f"{type(owner).__name__}.{name}", p

    def discover(self, traces, extra=None, create_optimizer=True):
        """Register leaves first seen in these traces (cheap when nothing is new); the
        optimiser is made on the first call with ``create_optimizer``."""
        store = dict(pyro.get_param_store().named_parameters())  # name -> unconstrained leaf
        new = {}
        for trace in traces:
            for name in trace.params:
                if name not in self.leaves and name in store:
                    self._add(name, store[name], new)
                    if name in self.initial:
                        self._start_from(name, self.initial.pop(name))
        if self.optimizer is None:
            for name, p in self._owner_leaves():
                self._add(name, p, new)
        for name, leaf in (extra or {}).items():
            if name not in self.leaves:
                self._add(name, leaf.requires_grad_(), new)  # a strategy's own leaf (a baseline)
        if self._pending is not None:  # its random stream even when there are no parameters
            self._resume_pending()
        if self.optimizer is None:
            if create_optimizer and self.leaves:
                self._create_optimizer()
        elif new:
            self.optimizer.add_param_group({"params": list(new.values())})
            self._group_names.append(list(new))

    def _start_from(self, name, value):
        """Set a new parameter to a given constrained value (``VI(params=...)``), in place."""
        store = pyro.get_param_store()
        leaf, constraint = dict(store.named_parameters())[name], store.get_state()["constraints"][name]
        value = torch.as_tensor(value, dtype=leaf.dtype, device=leaf.device)
        if value.shape != leaf.shape:
            raise ValueError(f"params: {name!r} has shape {tuple(value.shape)}, but the program's "
                             f"parameter has shape {tuple(leaf.shape)}")
        check_param_value(name, value, constraint, "given value (params=)")
        with torch.no_grad():
            leaf.copy_(transform_to(constraint).inv(value))

    def _create_optimizer(self):
        pending = self._pending
        self._group_names = [list(self.leaves)]
        if pending is not None:
            saved = pending["group_names"]
            missing = [n for group in saved for n in group if n not in self.leaves]
            if missing:
                raise CheckpointError(f"the checkpoint's optimiser has parameters {missing} that "
                                      "this program did not create")
            extra = [n for n in self.leaves if all(n not in g for g in saved)]
            self._group_names = [list(g) for g in saved] + ([extra] if extra else [])
        groups = [[self.leaves[n] for n in names] for names in self._group_names]
        self.optimizer = make_torch_optimizer(self.optimizer_spec, groups[0])
        for group in groups[1:]:
            self.optimizer.add_param_group({"params": group})
        if pending is not None and pending["optimizer"] is not None:
            self.optimizer.load_state_dict(pending["optimizer"])
        self._pending = None

    def trained_params(self):
        """Constrained parameter values by name: copies, so that later training (of this
        strategy or of one started from them) does not change them."""
        store = pyro.get_param_store()
        return {name: (store[name] if name in store else leaf).detach().clone()
                for name, leaf in self.leaves.items()}

    def constrained(self):
        """None: torch's losses read the parameters from their leaves (JAX's take values)."""
        return None

    def loss_inputs(self):
        """(params, rng) for a loss evaluation: torch keeps both in the entered state."""
        return None, None

    def step(self, loss, aux, args, kwargs):
        """One gradient step on ``loss(params, key, aux, args, kwargs) -> (surrogate, value,
        traces, extra leaves, next aux)``; returns the loss (negative bound) before the step
        and the next auxiliary state (``aux`` itself when the loss is not finite)."""
        surrogate, value, traces, extra, new_aux = loss(None, None, aux, args, kwargs)
        self.discover(traces, extra)
        result = -value.item()
        if not math.isfinite(result):
            return result, aux
        if not bool(torch.isfinite(surrogate)):
            return math.nan, aux
        if self.optimizer is None:  # nothing to train (as Pyro's SVI: the loss, no update)
            return result, new_aux
        self.optimizer.zero_grad(set_to_none=True)
        surrogate.backward()
        self.last_loss = result
        try:
            self.optimizer.step()
        finally:
            self.updates += 1
        return result, new_aux

    # ------------------------------------------------------------- checkpoints
    def state_dict(self):
        """Unconstrained leaves, the optimiser and the random stream (read inside the
        strategy's state, so torch's generator is the strategy's)."""
        return {
            "params": {n: p.detach().clone() for n, p in self.leaves.items()},
            "optimizer": self.optimizer.state_dict() if self.optimizer is not None else None,
            "optimizer_class": (optimizer_name(self.optimizer_spec, self.optimizer)
                                if self.optimizer is not None else None),
            "group_names": [list(g) for g in self._group_names],
            "rng": torch.get_rng_state(),
            "cuda_rng": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_initialized() else None,
        }

    def check_state_dict(self, saved):
        """The first way ``saved`` does not fit this engine, as a sentence, or None."""
        try:
            shapes = {n: tuple(v.shape) for n, v in saved["params"].items()}
            saved["optimizer"], saved["group_names"], saved["rng"]
        except (KeyError, TypeError, AttributeError) as error:
            return f"its engine state is malformed ({error!r})"
        if saved["optimizer"] is not None:  # another optimiser's state would load silently
            found = optimizer_difference(saved.get("optimizer_class"), self.optimizer_spec, self.optimizer)
            if found:
                return found
        if not self.leaves:
            return None  # nothing built yet: checked when the program first runs
        if not shapes and saved["optimizer"] is None:
            return None  # saved before the first step: no parameter existed yet
        current = {n: tuple(p.shape) for n, p in self.leaves.items()}
        current.update({n: tuple(p.shape) for n, p in self._owner_leaves()})
        learned_later = {n for n in shapes if n.startswith("_baseline.")}
        found = difference({n: s for n, s in shapes.items() if n not in learned_later},
                           {n: s for n, s in current.items() if n not in learned_later}, "parameter")
        if found:
            return found
        if self.optimizer is not None and saved["optimizer"] is not None:
            if [list(g) for g in saved["group_names"]] != self._group_names:
                return (f"the optimiser's parameter groups differ: {saved['group_names']} in the "
                        f"checkpoint, {self._group_names} here")
        return None

    def load_state_dict(self, saved):
        """Restore a checked :meth:`state_dict`: now, or (into an engine that has not seen
        its program yet) when the strategy's first dry run reveals the parameters."""
        self._pending = {"params": dict(saved["params"]), "optimizer": saved["optimizer"],
                         "optimizer_class": saved.get("optimizer_class"),
                         "group_names": saved["group_names"], "rng": saved["rng"],
                         "cuda_rng": saved.get("cuda_rng"), "checked": bool(self.leaves)}
        if self.leaves:
            self._resume_pending()
            if self.optimizer is not None:
                if saved["optimizer"] is not None:
                    self.optimizer.load_state_dict(saved["optimizer"])
                self._pending = None

    def _resume_pending(self):
        pending = self._pending
        if not pending["checked"]:
            found = self.check_state_dict(pending)
            if found:
                self._pending = None
                raise CheckpointError(f"the loaded checkpoint does not fit this program: {found}")
            pending["checked"] = True
        if pending["rng"] is not None:
            torch.set_rng_state(pending["rng"])
            if pending["cuda_rng"] is not None and torch.cuda.is_initialized():
                torch.cuda.set_rng_state_all(pending["cuda_rng"])
            pending["rng"] = None
        if pending["params"]:
            self._apply_params(pending)

    def _apply_params(self, pending):
        """Copy saved values into the leaves known so far (exact: unconstrained values);
        names not yet created stay pending."""
        values = pending["params"]
        leaves = dict(self.leaves)
        leaves.update(self._owner_leaves())
        with torch.no_grad():
            for name in [n for n in values if n in leaves]:
                leaf, value = leaves[name], values.pop(name)
                if tuple(leaf.shape) != tuple(value.shape):
                    raise CheckpointError(f"parameter {name!r} has shape {tuple(value.shape)} in the "
                                          f"checkpoint and {tuple(leaf.shape)} here")
                leaf.copy_(value)
