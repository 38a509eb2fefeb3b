"""The array-ops table on torch tensors."""

import numpy as np
import pyro
import pyro.distributions
import torch

from ..checks_off import checks_off
from .recorder import _is_one


class _Ops:
    """Array operations the objectives need, on torch tensors."""

    logsumexp = staticmethod(torch.logsumexp)
    stop_gradient = staticmethod(torch.Tensor.detach)
    exp = staticmethod(torch.exp)
    log = staticmethod(torch.log)
    where = staticmethod(torch.where)
    softmax = staticmethod(lambda x, dim: torch.softmax(x, dim))
    square = staticmethod(torch.square)

    @staticmethod
    def sum(x, dim=None):
        return x.sum() if dim is None else x.sum(dim)

    @staticmethod
    def mean(x, dim=None):
        return x.mean() if dim is None else x.mean(dim)

    stack = staticmethod(torch.stack)
    concatenate = staticmethod(torch.cat)

    @staticmethod
    def broadcast_to(x, shape):
        return torch.as_tensor(x).expand(shape)

    @staticmethod
    def isnan(x):
        return bool(torch.isnan(x).any())

    @staticmethod
    def categorical(probs, num, rng=None):
        return torch.multinomial(probs, num, replacement=True)

    @staticmethod
    def numel(x):
        return x.numel()

    @staticmethod
    def reshape(x, shape):
        return x.reshape(shape)

    @staticmethod
    def ndim(x):
        return x.dim()

    @staticmethod
    def isfinite(x):
        return bool(torch.isfinite(x).all())

    @staticmethod
    def sum_log_prob(site):
        """The site's total log density; scores ``to_event`` sites through their base
        distribution, since everything is summed anyway."""
        fn = site.fn
        if (type(fn) is pyro.distributions.Independent and site.mask is None
                and site._log_prob is None):
            try:
                total = fn.base_dist.log_prob(site.value).sum()
            except (ValueError, RuntimeError):
                return site.log_prob.sum()
            return total if _is_one(site.scale) else total * site.scale
        return site.log_prob.sum()

    @staticmethod
    def item(x):
        return x.detach().item() if isinstance(x, torch.Tensor) else float(x)

    @staticmethod
    def log_prob_shape(site):
        return tuple(site.log_prob.shape)

    @staticmethod
    def is_distribution(x):
        return isinstance(x, torch.distributions.Distribution)

    @staticmethod
    def site_value(value, fn):
        """``value`` as a tensor for the site of ``fn``, on its parameters' device: long for
        an integer interval (Categorical), the default float dtype otherwise (Bernoulli's
        log_prob takes floats)."""
        if torch.is_tensor(value):
            return value
        integer = isinstance(fn.support, torch.distributions.constraints.integer_interval)
        return torch.as_tensor(value, dtype=torch.long if integer else torch.get_default_dtype(),
                               device=device_of(fn))

    @staticmethod
    def asarray(x, like=None):
        if like is not None:
            return torch.as_tensor(x, dtype=like.dtype, device=like.device)
        return torch.as_tensor(x)

    # ------------------------------------------------ what counterfactual worlds need
    @staticmethod
    def is_array(x):
        return torch.is_tensor(x)

    @staticmethod
    def zeros(shape, like):
        return torch.zeros(tuple(shape), dtype=like.dtype, device=like.device)

    @staticmethod
    def ones(shape, like):
        return torch.ones(tuple(shape), dtype=like.dtype, device=like.device)

    @staticmethod
    def arange(n):
        return torch.arange(n)

    @staticmethod
    def astype(x, like):
        """``x`` in ``like``'s dtype (and on its device)."""
        return torch.as_tensor(x).to(like)

    @staticmethod
    def to_index(x):
        return torch.as_tensor(x).long()

    @staticmethod
    def narrow(x, axis, start, length):
        return x.narrow(axis, start, length)

    @staticmethod
    def select(x, axis, index):
        return x.select(axis, index)

    @staticmethod
    def expand_dims(x, axis):
        return x.unsqueeze(axis)

    @staticmethod
    def squeeze(x, axis):
        return x.squeeze(axis)

    @staticmethod
    def moveaxis(x, source, destination):
        return x.movedim(source, destination)

    @staticmethod
    def take_last(x, index):
        """``x``'s entries at ``index`` along the last axis (the leading axes broadcast)."""
        if index.shape[:-1] == x.shape[:-1]:
            return x.gather(-1, index.long())  # no broadcast: one kernel, not take_along_dim's
        return torch.take_along_dim(x, index, -1)

    @staticmethod
    def to_numpy(x):
        """``x`` as a numpy array on the host."""
        return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)

    @staticmethod
    def marked(state, columns):
        """``state [n, width]`` with 1 at column ``columns[i]`` of each row i (a new array)."""
        return state.scatter(-1, columns.long()[:, None], 1.0)

    @staticmethod
    def one_hot(index, size):
        """A boolean mask with a last axis of ``size``: True at ``index``."""
        return torch.nn.functional.one_hot(index.long(), size).bool()

    @staticmethod
    def argmax(x, axis):
        return x.argmax(axis)

    @staticmethod
    def sort(x, axis):
        return x.sort(axis).values

    @staticmethod
    def maximum(x, y):
        return torch.maximum(x, torch.as_tensor(y).to(x))

    logaddexp = staticmethod(torch.logaddexp)

    @staticmethod
    def log_softmax(x, axis):
        return x.log_softmax(axis)

    @staticmethod
    def all(x, axis=None):
        return x.all() if axis is None else x.all(axis)

    @staticmethod
    def tiny(x):
        return torch.finfo(x.dtype).tiny

    @staticmethod
    def uniform(shape, like, key=None):
        """Uniform(0, 1) draws from torch's global generator (``key`` is for JAX)."""
        return torch.rand(tuple(shape), dtype=like.dtype, device=like.device)

    @staticmethod
    def is_broadcast_along(x, axis):
        """Whether ``x`` repeats one slice along ``axis`` (torch: an expanded view, stride 0)."""
        return x.stride(axis) == 0

    # ------------------------------------------------ what GFlowNet-EM needs
    @staticmethod
    def to_float(x):
        """``x`` in the default floating dtype (a policy's features)."""
        return torch.as_tensor(x, dtype=torch.get_default_dtype())

    @staticmethod
    def cumsum(x, axis):
        return x.cumsum(axis)

    @staticmethod
    def take_along(x, index, axis):
        return torch.take_along_dim(x, index, axis)

    @staticmethod
    def searchsorted(sorted_sequence, values):
        """For each value, how many entries of the ascending ``sorted_sequence`` are <= it."""
        return torch.searchsorted(sorted_sequence, values, right=True)

    @staticmethod
    def sample_n(fn, num, key=None):
        """``num`` independent draws of ``fn``, stacked on a new leading axis (torch's
        generator; ``key`` is for JAX)."""
        return fn.sample((num,))

    @staticmethod
    def put_rows(x, index, rows):
        """A copy of ``x`` with rows ``index`` (along axis 0) set to ``rows``."""
        return x.index_copy(0, torch.as_tensor(index, device=x.device).long(), rows.to(x.dtype))

    @staticmethod
    def to_unconstrained(support, value):
        """``value`` mapped from ``support`` to the reals (the bijection samplers move in)."""
        return torch.distributions.biject_to(support).inv(torch.as_tensor(value))

    @staticmethod
    def index_batch(fn, index, axis):
        """``fn`` with its batch taken at ``index`` along batch axis ``axis`` (a distribution
        of the same kind), or None where its layout is not understood; callers verify it
        once per kind (``inference/mcmc/smc_sweep.py``)."""
        return _index_batch(fn, index, axis)

    @staticmethod
    def top_k_indices(x, k):
        """The indices of the ``k`` largest entries along axis 0, largest first."""
        return x.topk(k, dim=0).indices

    @staticmethod
    def draw_index(probs, key=None):
        """One index per row of ``probs [n, K]``, drawn from torch's global generator."""
        return torch.multinomial(probs, 1).squeeze(-1)

    # ------------------------------------------------ what exact elimination needs
    @staticmethod
    def amax(x):
        """The largest entry of ``x`` (a 0-d array)."""
        return x.amax()

    @staticmethod
    def to_wide_float(x):
        """``x`` in the widest float dtype the backend computes in (float64)."""
        return x if x.dtype == torch.float64 else x.double()

    @staticmethod
    def support_probs(fn):
        """The probabilities of ``fn``'s support ``arange(K)`` on a trailing axis, if it
        scores and enumerates as torch's Categorical; else None."""
        return fn.probs if plain_categorical(type(fn)) else None

    normalises_probs = True  # torch's Categorical divides its probabilities by their sum

    @staticmethod
    def unchecked_categoricals():
        """Categoricals built inside skip torch's argument check (see ``checks_off``)."""
        return checks_off(torch.distributions.Categorical)

    @staticmethod
    def gather(table, indices):
        """``table[indices]``: a tuple of integer index arrays, broadcast together."""
        return table[indices]

    @staticmethod
    def factor_distribution(log_factor):
        """A distribution whose log density is ``log_factor`` whatever the value."""
        from .causal import Factor

        return Factor(log_factor)

    @staticmethod
    def gumbel_given_argmax(logits, k):
        """Gumbel(0, 1)^K noise conditioned on argmax(logits + g) = k."""
        from .causal import GumbelGivenArgmax

        return GumbelGivenArgmax(logits, k)


_Ops.tables = _Ops  # exact elimination's tables stay torch tensors, on their device

_CATEGORICALS = {}  # type -> whether it scores and enumerates as torch's Categorical


def plain_categorical(cls):
    """Whether ``cls`` scores and enumerates as torch's Categorical (cached per type).

    >>> plain_categorical(torch.distributions.Categorical), plain_categorical(torch.distributions.Normal)
    (True, False)
    """
    known = _CATEGORICALS.get(cls)
    if known is None:
        Categorical = torch.distributions.Categorical
        known = (issubclass(cls, Categorical)
                 and cls.log_prob in (Categorical.log_prob, pyro.distributions.Categorical.log_prob)
                 and cls.enumerate_support in (Categorical.enumerate_support,
                                               pyro.distributions.Categorical.enumerate_support))
        _CATEGORICALS[cls] = known
    return known


def device_of(fn):
    """The device of a distribution's parameters (None if it has no tensor parameter).

    Reads the instance's attributes rather than ``getattr``, which would compute lazy
    parameters (the ``logits`` of a Categorical built from ``probs``) just to find a device.
    """
    for value in vars(fn).values():
        if torch.is_tensor(value):
            return value.device
        if isinstance(value, torch.distributions.Distribution):
            return device_of(value)
    return None


def _index_batch(fn, index, axis):
    batch = tuple(fn.batch_shape)
    state = {}
    for key, value in vars(fn).items():
        if isinstance(value, torch.distributions.Distribution):
            inner = tuple(value.batch_shape)
            if inner[:len(batch)] == batch:  # left-aligned (Independent's base)
                value = _index_batch(value, index, axis)
            elif axis - (len(batch) - len(inner)) >= 0 and inner[axis - (len(batch) - len(inner))] != 1:
                return None  # a right-aligned base that varies over the axis: not handled
            if value is None:
                return None
        elif torch.is_tensor(value) and value.dim():
            if tuple(value.shape[:len(batch)]) == batch:  # a parameter: batch, then its own dims
                value = value.index_select(axis, index)
            elif value.dim() >= len(batch) - axis and value.shape[axis - len(batch)] != 1:
                return None  # broadcast from the right and varying over the axis
        state[key] = value
    new = object.__new__(type(fn))
    new.__dict__.update(state)
    return new
