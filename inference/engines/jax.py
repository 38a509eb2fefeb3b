"""Training on JAX: unconstrained parameters, an optax optimiser, and the strategy's PRNG
stream (``state.next_key()``).

The loss is a pure function of (parameters, key, args, kwargs), differentiated with
``jax.value_and_grad`` and compiled with ``jax.jit`` on first use.
"""

import math

import jax
import numpy as np
from numpyro.distributions.constraints import real
from numpyro.distributions.transforms import biject_to

from ppl.backends.jax_static import merge as _merge
from ppl.backends.jax_static import split as _split
from ppl.errors import CheckpointError
from ppl.validation import check_param_value

from ..checkpoint import difference
from ..optim import make_optax, optimizer_difference, optimizer_name


class JaxEngine:
    def __init__(self, optimizer, state, owners=(), initial=None):
        self.tx = make_optax(optimizer)
        self.optimizer_spec = optimizer
        self.initial = dict(initial or {})
        self.state = state
        self.params = None  # unconstrained
        self.transforms = {}
        self.opt_state = None
        self._compiled = None
        self._pending = None
        self.updates = 0
        self.last_loss = math.nan

    def constrained(self, params=None):
        params = self.params if params is None else params
        if params is None:
            return None
        return {name: self.transforms[name](u) for name, u in params.items()}

    def trained_params(self):
        """Constrained parameter values by name."""
        return dict(self.constrained() or {})

    def loss_inputs(self):
        return self.constrained(), self.state.next_key()

    def discover(self, traces, extra=None, create_optimizer=True):
        """Take the parameters (and their constraints) that a dry run of the programs met."""
        if self.params is not None:
            return
        self.transforms, params = {}, {}
        for trace in traces:
            if trace is None:
                continue
            for name, value in trace.params.items():
                constraint = trace.param_constraints[name]
                given = name in self.initial
                value = self.initial[name] if given else value
                # outside its constraint the unconstrained value would be NaN
                # checked on the host: eager JAX ops compile a kernel per shape (tens of ms each)
                check_param_value(name, np.asarray(value), constraint,
                                  "given value (params=)" if given else "initial value")
                transform = biject_to(constraint)
                self.transforms[name] = transform
                params[name] = transform.inv(value)
        for name, value in (extra or {}).items():  # a strategy's own parameters (baselines)
            self.transforms[name] = biject_to(real)
            params[name] = jax.numpy.asarray(value)
        self.params = params
        self.opt_state = self.tx.init(self.params)
        if self._pending is not None:
            pending, self._pending = self._pending, None
            found = self.check_state_dict(pending)
            if found:
                raise CheckpointError(f"the loaded checkpoint does not fit this program: {found}")
            self.load_state_dict(pending)

    def step(self, loss, aux, args, kwargs):
        """One compiled step of ``loss(params, key, aux, args, kwargs) -> (surrogate, value,
        traces, extra, next aux)``: the loss (negative bound) before the step and the next
        auxiliary state (``aux`` itself when the loss is not finite)."""
        if self._compiled is None:
            def objective(params, key, aux, args, kwargs):
                surrogate, value, _, _, new_aux = loss(self.constrained(params), key, aux, args, kwargs)
                return surrogate, (value, new_aux)

            grad = jax.value_and_grad(objective, has_aux=True)

            def update(params, opt_state, stream, aux, traced, static):
                # the key is split off the strategy's stream inside the compiled step (as
                # state.next_key() would outside it: the same keys, without a dispatch)
                stream, key = jax.random.split(stream)
                args, kwargs = _merge(traced, static)
                (_, (value, new_aux)), grads = grad(params, key, aux, args, kwargs)
                updates, opt_state = self.tx.update(grads, opt_state, params)
                params = jax.tree_util.tree_map(lambda p, u: p + u, params, updates)
                return params, opt_state, stream, value, new_aux

            self._compiled = jax.jit(update, static_argnums=5)
        traced, static = _split(args, kwargs)
        params, opt_state, stream, value, new_aux = self._compiled(
            self.params, self.opt_state, self.state.rng, aux, traced, static)
        self.state.rng = stream  # consumed whether or not the step is kept, as next_key() did
        result = -float(value)
        if not math.isfinite(result):
            return result, aux
        self.params, self.opt_state = params, opt_state
        self.updates += 1
        self.last_loss = result
        return result, new_aux

    # ------------------------------------------------------------- checkpoints
    def state_dict(self):
        leaves = jax.tree_util.tree_leaves(self.opt_state) if self.opt_state is not None else None
        return {"params": dict(self.params or {}), "opt_state": leaves, "rng": self.state.rng,
                "optimizer_class": optimizer_name(self.optimizer_spec)}

    def check_state_dict(self, saved):
        try:
            shapes = {n: tuple(np.shape(v)) for n, v in saved["params"].items()}
            saved["opt_state"], saved["rng"]
        except (KeyError, TypeError, AttributeError) as error:
            return f"its engine state is malformed ({error!r})"
        found = optimizer_difference(saved.get("optimizer_class"), self.optimizer_spec)
        if found:  # Adam's and AdamW's states have the same leaves
            return found
        if self.params is None:
            return None  # checked when the program first runs
        if not shapes and not saved["opt_state"]:
            return None  # saved before the first step: no parameter existed yet
        found = difference(shapes, {n: tuple(np.shape(v)) for n, v in self.params.items()}, "parameter")
        if found:
            return found
        current = jax.tree_util.tree_leaves(self.opt_state)
        saved_leaves = saved["opt_state"] or []
        if len(saved_leaves) != len(current) or any(
                np.shape(a) != np.shape(b) for a, b in zip(saved_leaves, current)):
            return "the optimiser's state has another structure (another optimiser?)"
        return None

    def load_state_dict(self, saved):
        if not saved["params"] and not saved["opt_state"]:
            # saved before the first step: only the random stream, from here on as it was
            self.state.rng = jax.numpy.asarray(saved["rng"])
            return
        if self.params is None:
            self._pending = saved
            return
        self.state.rng = jax.numpy.asarray(saved["rng"])
        self.params = {n: jax.numpy.asarray(v) for n, v in saved["params"].items()}
        treedef = jax.tree_util.tree_structure(self.opt_state)
        self.opt_state = jax.tree_util.tree_unflatten(
            treedef, [jax.numpy.asarray(v) for v in saved["opt_state"]])
