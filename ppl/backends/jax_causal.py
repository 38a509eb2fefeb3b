"""The distributions of counterfactual worlds on JAX, thin over the algorithms written once
in :mod:`ppl.causal.noise` (the torch twins are in ``ppl/backends/torch/causal.py``)."""

import jax.numpy as jnp
import numpyro.distributions as dist
from numpyro.distributions import constraints

from ..causal.noise import gumbel_given_argmax_log_prob, gumbel_given_argmax_sample
from .jax import _Ops


class Factor(dist.Distribution):
    """A log-density term: log_prob(anything) is the given array."""

    arg_constraints = {}
    support = constraints.real

    def __init__(self, log_factor):
        self.log_factor = jnp.asarray(log_factor)
        super().__init__(jnp.shape(self.log_factor), (), validate_args=False)

    def sample(self, key, sample_shape=()):
        return jnp.zeros(())

    def log_prob(self, value):
        return self.log_factor


class GumbelGivenArgmax(dist.Distribution):
    """Gumbel(0, 1)^K noise conditioned on argmax(logits + g) = k; its uniform draws come
    from the site's key (see :func:`ppl.causal.noise.gumbel_given_argmax_sample`)."""

    arg_constraints = {}
    support = constraints.real_vector

    def __init__(self, logits, k):
        logits = jax_log_softmax(jnp.asarray(logits))
        k = jnp.asarray(k).astype(jnp.result_type(int))
        shape = jnp.broadcast_shapes(jnp.shape(logits)[:-1], jnp.shape(k))
        self.logits = jnp.broadcast_to(logits, shape + jnp.shape(logits)[-1:])
        self.k = jnp.broadcast_to(k, shape)
        super().__init__(shape, jnp.shape(logits)[-1:], validate_args=False)

    def sample(self, key, sample_shape=()):
        uniform = _Ops.uniform(tuple(sample_shape) + jnp.shape(self.logits), self.logits, key)
        return gumbel_given_argmax_sample(_Ops, self.logits, self.k, uniform)

    def log_prob(self, value):
        return gumbel_given_argmax_log_prob(_Ops, self.logits, self.k, value)


def jax_log_softmax(logits):
    return _Ops.log_softmax(logits, -1)
