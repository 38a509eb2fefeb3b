"""The array-ops table on JAX arrays (the JAX backend's ``ops``)."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions
from jax.scipy.special import logsumexp

from .checks_off import checks_off
from .host_tables import HostTables

# composite operations compiled once: eagerly each is a chain of primitives dispatched one
# by one (about 1 ms for a logsumexp); under an outer jit they are inlined
_logsumexp = jax.jit(logsumexp, static_argnames="axis")
_softmax = jax.jit(jax.nn.softmax, static_argnames="axis")
_log_softmax = jax.jit(jax.nn.log_softmax, static_argnames="axis")
_gather = jax.jit(lambda table, indices: table[indices])


class _Ops:
    """Array operations the objectives need, on JAX arrays."""

    stop_gradient = staticmethod(jax.lax.stop_gradient)
    exp = staticmethod(jnp.exp)
    log = staticmethod(jnp.log)
    where = staticmethod(jnp.where)
    square = staticmethod(jnp.square)
    stack = staticmethod(jnp.stack)
    reshape = staticmethod(jnp.reshape)
    concatenate = staticmethod(jnp.concatenate)

    @staticmethod
    def logsumexp(x, dim):
        return _logsumexp(x, axis=dim)

    @staticmethod
    def softmax(x, dim):
        return _softmax(x, axis=dim)

    @staticmethod
    def sum(x, dim=None):
        return jnp.sum(x, axis=dim)

    @staticmethod
    def mean(x, dim=None):
        return jnp.mean(x, axis=dim)

    @staticmethod
    def ndim(x):
        return jnp.ndim(x)

    @staticmethod
    def numel(x):
        return jnp.size(x)

    @staticmethod
    def broadcast_to(x, shape):
        return jnp.broadcast_to(x, shape)

    @staticmethod
    def isfinite(x):
        return bool(jnp.all(jnp.isfinite(x)))

    @staticmethod
    def sum_log_prob(site):
        return jnp.sum(site.log_prob)

    @staticmethod
    def isnan(x):
        return bool(jnp.any(jnp.isnan(x)))

    @staticmethod
    def item(x):
        return float(x)

    @staticmethod
    def asarray(x, like=None):
        return jnp.asarray(x) if like is None else jnp.asarray(x, dtype=like.dtype)

    @staticmethod
    def categorical(probs, num, rng):
        return jax.random.choice(rng, probs.shape[0], (num,), p=probs)

    @staticmethod
    def is_distribution(x):
        return isinstance(x, numpyro.distributions.Distribution)

    @staticmethod
    def log_prob_shape(site):
        """The shape of a site's log density, found by abstract evaluation: computing it
        eagerly would compile a kernel per operation (tens of ms each) at set-up."""
        if site._log_prob is not None:
            return tuple(site._log_prob.shape)
        return tuple(jax.eval_shape(lambda: site._log_prob_fn(site)).shape)

    @staticmethod
    def site_value(value, fn):
        """``value`` as an array for the site of ``fn``: integers for a discrete support."""
        if isinstance(value, jax.Array):
            return value
        discrete = getattr(fn.support, "is_discrete", False)
        return jnp.asarray(value, dtype=jnp.result_type(int) if discrete else jnp.result_type(float))

    # ------------------------------------------------ what counterfactual worlds need
    @staticmethod
    def is_array(x):
        return isinstance(x, jax.Array)

    @staticmethod
    def zeros(shape, like):
        return jnp.zeros(tuple(shape), dtype=jnp.result_type(like))

    @staticmethod
    def ones(shape, like):
        return jnp.ones(tuple(shape), dtype=jnp.result_type(like))

    arange = staticmethod(jnp.arange)

    @staticmethod
    def astype(x, like):
        return jnp.asarray(x).astype(jnp.result_type(like))

    @staticmethod
    def to_index(x):
        if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jnp.integer):
            return x  # already indices: an eager cast is a dispatched operation
        return jnp.asarray(x).astype(jnp.result_type(int))

    @staticmethod
    def narrow(x, axis, start, length):
        return jax.lax.slice_in_dim(x, start, start + length, axis=axis)

    @staticmethod
    def select(x, axis, index):
        return jnp.take(x, index, axis=axis)

    @staticmethod
    def expand_dims(x, axis):
        return jnp.expand_dims(x, axis)

    @staticmethod
    def squeeze(x, axis):
        return jnp.squeeze(x, axis) if jnp.shape(x)[axis] == 1 else x  # as torch's

    moveaxis = staticmethod(jnp.moveaxis)

    @staticmethod
    def take_last(x, index):
        """``x``'s entries at ``index`` along the last axis (the leading axes broadcast)."""
        batch = jnp.broadcast_shapes(jnp.shape(x)[:-1], jnp.shape(index)[:-1])
        return jnp.take_along_axis(jnp.broadcast_to(x, batch + jnp.shape(x)[-1:]),
                                   jnp.broadcast_to(index, batch + jnp.shape(index)[-1:]), -1)

    @staticmethod
    def one_hot(index, size):
        return jnp.asarray(index)[..., None] == jnp.arange(size)

    @staticmethod
    def to_numpy(x):
        """``x`` as a numpy array on the host."""
        return np.asarray(x)

    @staticmethod
    def marked(state, columns):
        """``state [n, width]`` with 1 at column ``columns[i]`` of each row i (a new array)."""
        return state.at[jnp.arange(state.shape[0]), columns].set(1.0)

    @staticmethod
    def argmax(x, axis):
        return jnp.argmax(x, axis=axis)

    @staticmethod
    def sort(x, axis):
        return jnp.sort(x, axis=axis)

    maximum = staticmethod(jnp.maximum)
    logaddexp = staticmethod(jnp.logaddexp)

    @staticmethod
    def log_softmax(x, axis):
        return _log_softmax(x, axis=axis)

    @staticmethod
    def all(x, axis=None):
        return jnp.all(x, axis=axis)

    @staticmethod
    def tiny(x):
        return jnp.finfo(jnp.result_type(x)).tiny

    @staticmethod
    def uniform(shape, like, key=None):
        """Uniform(0, 1) draws with ``key`` (a sample site's: the seed handler's stream)."""
        return jax.random.uniform(key, tuple(shape), dtype=jnp.result_type(like))

    @staticmethod
    def is_broadcast_along(x, axis):
        """Whether ``x`` repeats one slice along ``axis`` (JAX arrays have no strides: the
        slices are compared; counterfactual programs are not jitted)."""
        return bool(jnp.all(x == jax.lax.slice_in_dim(x, 0, 1, axis=axis)))

    # ------------------------------------------------ what GFlowNet-EM needs
    @staticmethod
    def to_float(x):
        return jnp.asarray(x, dtype=jnp.result_type(float))

    cumsum = staticmethod(lambda x, axis: jnp.cumsum(x, axis=axis))

    @staticmethod
    def take_along(x, index, axis):
        return jnp.take_along_axis(x, index, axis=axis)

    @staticmethod
    def amax(x):
        return jnp.max(x)

    @staticmethod
    def put_rows(x, index, rows):
        return x.at[index].set(rows.astype(x.dtype))

    @staticmethod
    def to_unconstrained(support, value):
        return numpyro.distributions.transforms.biject_to(support).inv(jnp.asarray(value))

    @staticmethod
    def index_batch(fn, index, axis):
        """None: SMC draws the copies of an ancestor from the whole batch instead."""
        return None

    @staticmethod
    def searchsorted(sorted_sequence, values):
        return jnp.searchsorted(sorted_sequence, values, side="right")

    @staticmethod
    def sample_n(fn, num, key=None):
        return fn.sample(key, (num,))

    @staticmethod
    def top_k_indices(x, k):
        """The indices of the ``k`` largest entries along axis 0, largest first."""
        return jnp.moveaxis(jax.lax.top_k(jnp.moveaxis(x, 0, -1), k)[1], -1, 0)

    @staticmethod
    def draw_index(probs, key=None):
        """One index per row of ``probs [n, K]``, drawn with ``key``."""
        return jax.random.categorical(key, jnp.log(probs), axis=-1)

    # ------------------------------------------------ what exact elimination needs
    tables = HostTables  # exact elimination's tables: numpy on the host (see host_tables)

    @staticmethod
    def support_probs(fn):
        """The probabilities of ``fn``'s support ``arange(K)`` on a trailing axis, for
        NumPyro's Categorical and Bernoulli built from probabilities; else None."""
        kind = type(fn)
        if kind is numpyro.distributions.CategoricalProbs:
            return fn.probs
        if kind is numpyro.distributions.BernoulliProbs:
            p = np.asarray(fn.probs, dtype=np.float64)
            return np.stack([1.0 - p, p], axis=-1)
        return None

    normalises_probs = False  # NumPyro's Categorical takes its probabilities as they are

    @staticmethod
    def unchecked_categoricals():
        """NumPyro's Categorical and Bernoulli (from probabilities) built inside skip their
        argument check (see ``checks_off``)."""
        return checks_off(numpyro.distributions.CategoricalProbs,
                          numpyro.distributions.BernoulliProbs)

    @staticmethod
    def gather(table, indices):
        """``table[indices]``: a tuple of integer index arrays, broadcast together (compiled
        once per shape: eagerly, JAX's indexing costs about 0.5 ms a call)."""
        return _gather(table, tuple(indices))

    @staticmethod
    def factor_distribution(log_factor):
        from .jax_causal import Factor

        return Factor(log_factor)

    @staticmethod
    def gumbel_given_argmax(logits, k):
        from .jax_causal import GumbelGivenArgmax

        return GumbelGivenArgmax(logits, k)
