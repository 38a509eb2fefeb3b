"""Training state on torch: the parameters an objective touches, their optimiser, and an
exact checkpoint (parameters, optimiser state, random state)."""

import math

import pyro
import torch

from .optim import make_torch_optimizer


class TorchEngine:
    """Finds trainable leaves as programs reveal them and steps one optimiser over them.

    Leaves come from ``param`` sites (Pyro's param store, which also holds the
    parameters of modules registered with ``ppl.module``) and from any
    ``torch.nn.Module`` passed as model or guide.
    """

    def __init__(self, optimizer, owners=()):
        self.optimizer_spec = optimizer
        self.owners = [m for m in owners if isinstance(m, torch.nn.Module)]
        self.leaves = {}  # name -> leaf tensor, in discovery order
        self._seen_ids = set()
        self.optimizer = None
        self._pending_state = None

    def _add(self, name, leaf, new):
        if leaf.requires_grad and id(leaf) not in self._seen_ids:
            self._seen_ids.add(id(leaf))
            self.leaves[name] = leaf
            new[name] = leaf

    def discover(self, traces, extra=None):
        """Register leaves first seen in these traces (cheap when nothing is new)."""
        store = pyro.get_param_store()._params
        new = {}
        for trace in traces:
            for name in trace.params:
                if name not in self.leaves and name in store:
                    self._add(name, store[name], new)
        if self.optimizer is None:
            for owner in self.owners:
                for name, p in owner.named_parameters():
                    self._add(f"{type(owner).__name__}.{name}", p, new)
        for name, leaf in (extra or {}).items():
            if name not in self.leaves:
                self._add(name, leaf, new)
        if not new:
            return
        if self.optimizer is None:
            self._create_optimizer()
        else:
            self.optimizer.add_param_group({"params": list(new.values())})
            self._group_names.append(list(new))

    def _create_optimizer(self):
        if self._pending_state is None:
            self._group_names = [list(self.leaves)]
        else:
            self._group_names = self._pending_state["group_names"]
            missing = [n for group in self._group_names for n in group if n not in self.leaves]
            if missing:
                raise ValueError(f"checkpoint has parameters this program did not create: {missing}")
            extra = [n for n in self.leaves if all(n not in g for g in self._group_names)]
            if extra:
                self._group_names = self._group_names + [extra]
        groups = [[self.leaves[n] for n in names] for names in self._group_names]
        self.optimizer = make_torch_optimizer(self.optimizer_spec, groups[0])
        for group in groups[1:]:
            self.optimizer.add_param_group({"params": group})
        if self._pending_state is not None:
            self.optimizer.load_state_dict(self._pending_state["optimizer"])
            self._pending_state = None

    def trained_params(self):
        """Constrained parameter values by name."""
        store = pyro.get_param_store()
        return {name: (store[name] if name in store._params else leaf).detach()
                for name, leaf in self.leaves.items()}

    def loss_inputs(self):
        """(params, rng) for a loss evaluation: torch keeps both as global state."""
        return None, None

    def step(self, strategy, args, kwargs):
        """One gradient step on ``strategy._surrogate``; returns the loss (negative bound)."""
        surrogate, value, guide_tr, model_tr = strategy._surrogate(args, kwargs)
        self.discover((guide_tr, model_tr), strategy.baseline_parameters())
        loss = -value.item()
        if not math.isfinite(loss):
            return loss
        # the surrogate differs from -value only through score-function or proposal terms
        if strategy.surrogate_has_extra_terms and not bool(torch.isfinite(surrogate)):
            return math.nan
        self.optimizer.zero_grad(set_to_none=True)
        surrogate.backward()
        self.optimizer.step()
        return loss

    def state_dict(self):
        return {
            "params": {n: p.detach().clone() for n, p in self.leaves.items()},
            "param_store": pyro.get_param_store().get_state(),
            "optimizer": self.optimizer.state_dict() if self.optimizer is not None else None,
            "group_names": getattr(self, "_group_names", None),
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None,
        }

    def load_state_dict(self, state):
        """Restore parameter values in place, then the optimiser state once leaves are known."""
        store = pyro.get_param_store()
        saved_store = state["param_store"]
        for name, value in saved_store["params"].items():
            if name in store._params:
                with torch.no_grad():
                    store._params[name].copy_(value)
            else:
                store._params[name] = value.detach().clone().requires_grad_(value.requires_grad)
                store._param_to_name[store._params[name]] = name
            if name in saved_store.get("constraints", {}):
                store._constraints[name] = saved_store["constraints"][name]
        for owner in self.owners:
            for name, p in owner.named_parameters():
                key = f"{type(owner).__name__}.{name}"
                if key in state["params"]:
                    with torch.no_grad():
                        p.copy_(state["params"][key])
        if state["optimizer"] is not None:
            if self.optimizer is not None:
                self.optimizer.load_state_dict(state["optimizer"])
            else:
                self._pending_state = {"optimizer": state["optimizer"],
                                       "group_names": state["group_names"]}
        torch.set_rng_state(state["rng"])
        if state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state_all(state["cuda_rng"])
