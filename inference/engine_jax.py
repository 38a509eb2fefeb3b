"""Training state on JAX: unconstrained parameters, an optax optimiser and a PRNG stream.

The loss is a pure function of (parameters, key), differentiated with ``jax.value_and_grad``
and compiled with ``jax.jit`` on first use.
"""

import math

import jax
from numpyro.distributions.transforms import biject_to

from .optim import make_optax


class JaxEngine:
    def __init__(self, optimizer, rng_seed=0):
        self.tx = make_optax(optimizer)
        self.rng = jax.random.PRNGKey(rng_seed)
        self.params = None  # unconstrained
        self.transforms = {}
        self.opt_state = None
        self._compiled = None

    def _next_key(self):
        self.rng, key = jax.random.split(self.rng)
        return key

    def constrained(self, params=None):
        params = self.params if params is None else params
        if params is None:
            return None
        return {name: self.transforms[name](u) for name, u in params.items()}

    def trained_params(self):
        """Constrained parameter values by name."""
        return dict(self.constrained() or {})

    def loss_inputs(self):
        return self.constrained(), self._next_key()

    def _initialise(self, strategy, args, kwargs):
        traces = [strategy.backend.run(fn, args, kwargs, draw=strategy._draw_plain,
                                       rng=self._next_key())
                  for fn in (strategy.guide, strategy.model)]
        self.transforms, self.params = {}, {}
        for trace in traces:
            for name, value in trace.params.items():
                transform = biject_to(trace.param_constraints[name])
                self.transforms[name] = transform
                self.params[name] = transform.inv(value)
        self.opt_state = self.tx.init(self.params)

    def step(self, strategy, args, kwargs):
        if self.params is None:
            self._initialise(strategy, args, kwargs)
        if self._compiled is None:
            def loss(params, key, args, kwargs):
                surrogate, value, _, _ = strategy._surrogate(args, kwargs, self.constrained(params), key)
                return surrogate, value

            grad = jax.value_and_grad(loss, has_aux=True)

            def update(params, opt_state, key, args, kwargs):
                (_, value), grads = grad(params, key, args, kwargs)
                updates, opt_state = self.tx.update(grads, opt_state, params)
                params = jax.tree_util.tree_map(lambda p, u: p + u, params, updates)
                return params, opt_state, value

            self._compiled = jax.jit(update)
        params, opt_state, value = self._compiled(self.params, self.opt_state, self._next_key(),
                                                  args, kwargs)
        loss = -float(value)
        if math.isfinite(loss):
            self.params, self.opt_state = params, opt_state
        return loss

    def state_dict(self):
        return {"params": self.params, "opt_state": self.opt_state, "rng": self.rng,
                "transforms": None}

    def load_state_dict(self, state):
        self.params = state["params"]
        self.opt_state = state["opt_state"]
        self.rng = state["rng"]
