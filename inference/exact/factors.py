"""The factor of one site of an enumerated trace (see :mod:`inference.exact`): the
enumeration dims its density spans, read off shapes, and its density as a float64 table of
the backend's ``ops.tables`` (torch tensors on torch; numpy on the host for JAX), with fast
paths for plain Categorical sites and the checks that stand in for torch's.

Both backends check a Categorical's probabilities on construction, which costs more than
the rest of a small query on a network of Categorical sites: while the program runs, that
check is off for Categoricals (and NumPyro's Bernoulli; the backend's
``ops.unchecked_categoricals``), and done instead on the tables an answer uses
(:func:`check_probabilities`), with evidence checked against its support
(:func:`check_evidence`).

    >>> import torch
    >>> from torch.distributions import Categorical
    >>> import ppl
    >>> probs = torch.tensor([[0.1, 0.9], [0.6, 0.4]])  # p(b | a), a on dim -2
    >>> support_on_dim(Categorical(probs), -1, ppl.get_backend("torch").ops)  # b on dim -1
    (2, tensor([0, 1]))
"""

import math

import torch
from torch.distributions import (
    Bernoulli,
    Binomial,
    Categorical,
    Geometric,
    Multinomial,
    NegativeBinomial,
    OneHotCategorical,
    Poisson,
    constraints,
)

_PMFS = (Bernoulli, Binomial, Categorical, Geometric, Multinomial, NegativeBinomial,
         OneHotCategorical, Poisson)  # log densities <= 0: exp() needs no rescaling
_ARANGES = {}  # (support size, enumeration dim) -> a JAX support laid out on that dim


def site_scope(site, first, own_dim):
    """The enumeration dims (``first`` and left of it) a site's log density spans, read off
    shapes (before any density is computed): its distribution's batch shape, its value's
    (``own_dim``, the own dim of a latent site, or None), and those of a tensor scale or
    mask."""
    fn = site.fn
    if at_own_atom(site):  # an observed point mass: its log density is log_density
        batch = fn.log_density.shape
        extras = [x for x in (site.scale, site.mask) if is_array(x)]
        return tuple(sorted({d for x in [batch] + [x.shape for x in extras]
                             for d in range(-len(x), first + 1) if x[d] > 1}))
    batch = fn.batch_shape
    dims = {d for d in range(-len(batch), first + 1) if batch[d] > 1}
    if not site.observed and own_dim is not None:
        dims.add(own_dim)
    extras = [site.value] if site.observed else []
    extras += [x for x in (site.scale, site.mask) if is_array(x)]
    for extra in extras:
        shape = extra.shape if is_array(extra) else ()
        if extra is site.value:
            shape = shape[:len(shape) - len(site.fn.event_shape)]
        dims.update(d for d in range(-len(shape), first + 1) if shape[d] > 1)
    return tuple(sorted(dims))


def site_factor(site, own_dim, first, rescale, ops):
    """(exp(log density) of ``site`` summed over plates, a float64 table of ``ops.tables``;
    the log of a scale divided out of it, or None). ``own_dim``: a latent site's
    enumeration dim; ``ops``: the backend's ops table."""
    tables = ops.tables
    if site.observed:
        lp = observed_log_prob(site, ops)
    else:  # the enumerated support
        table = categorical_table(site, own_dim, ops)
        if table is not None:
            return table, None
        check_probabilities(site, ops)
        lp = scaled_and_masked(tables.to_wide_float(unchecked_log_prob(site.fn, site.value)),
                               site.scale, site.mask, tables)
    lp = sum_plates(tables.to_wide_float(lp), first)
    if rescale or not isinstance(site.fn, _PMFS) or any(p.size > 1 for p in site.plates):
        top = tables.amax(lp)
        top = tables.where(top > -math.inf, top, 0.0)  # a factor of zeros stays zero
        return tables.exp(lp - top), top
    return tables.exp(lp), None


def observed_log_prob(site, ops):
    """An observed site's scaled and masked log density, its evidence and probabilities
    checked."""
    if at_own_atom(site):
        tables = ops.tables
        return scaled_and_masked(tables.to_wide_float(site.fn.log_density), site.scale,
                                 site.mask, tables)
    check_evidence(site)
    check_probabilities(site, ops)
    return site.log_prob


def scaled_and_masked(log_prob, scale, mask, tables):
    """``log_prob`` (a table of ``tables``) times ``scale`` and zero where ``mask`` is false
    (either may be None)."""
    if mask is not None:
        if mask is False:
            return tables.zeros(log_prob.shape, like=log_prob)
        if mask is not True:
            log_prob = tables.where(tables.asarray(mask), log_prob, 0.0)
    if not is_one(scale):
        log_prob = log_prob * (tables.to_wide_float(scale) if is_array(scale) else scale)
    return log_prob


def is_array(x):
    """An array of either backend (a scale or mask may also be a Python number)."""
    return hasattr(x, "shape") and not isinstance(x, (int, float, bool))


def at_own_atom(site):
    """An observed point mass (an intervention) whose value is its atom: its log density
    is its ``log_density``, whatever the shapes."""
    fn = site.fn
    return site.observed and getattr(fn, "v", None) is site.value and hasattr(fn, "log_density")


def check_evidence(site):
    """Where torch's checks were off (a Categorical), and on JAX: the evidence must lie in
    the support."""
    fn, value = site.fn, site.value
    if not isinstance(fn, torch.distributions.Distribution):
        # NumPyro's checks warn rather than raise, and its Categorical clips an index
        # outside the support: a discrete support is checked here
        support = fn.support
        if getattr(support, "is_discrete", False) and not bool(support.check(value).all()):
            _outside_support(site)
        return
    if getattr(fn, "_validate_args", False):
        return  # torch checks the value in log_prob
    support = fn.support
    if support is constraints.real or constraints.is_dependent(support):
        return
    if not bool(support.check(value).all()):
        _outside_support(site)


def check_probabilities(site, ops, table=None, axis=-1):
    """A Categorical's (or, on JAX, a Bernoulli's) probabilities, built unchecked: they must
    be non-negative (torch's would clamp negative ones in ``log_prob``) and, where the
    backend's Categorical takes them as given (NumPyro's), sum to 1 to NumPyro's tolerance
    (1e-6), along the support's ``axis`` of ``table`` (read from the site when None)."""
    if table is None:
        table = ops.support_probs(site.fn)
        if table is None:
            return
        table = ops.tables.to_wide_float(table)
    if not bool((table >= 0).all()):  # NaN fails every comparison
        problem = "negative or NaN probabilities"
    elif not ops.normalises_probs and not bool((abs(table.sum(axis) - 1) < 1e-6).all()):
        problem = ("probabilities that do not sum to 1 (NumPyro's Categorical does not "
                   "normalise them)")
    else:
        return
    raise ValueError(f"exact enumeration: site {site.name!r} ({type(site.fn).__name__}) gives "
                     f"{problem}; check its distribution's parameters")


def _outside_support(site):
    raise ValueError(
        f"exact enumeration: the value of observed site {site.name!r} lies outside the "
        f"support of its {type(site.fn).__name__} distribution ({site.fn.support})")


def is_normalised(site):
    """A latent site's density, summed over its own support, is 1 for any parent values."""
    return not site.observed and site.mask is None and is_one(site.scale)


def sum_plates(lp, first):
    """Sum the plate dims (right of the enumeration dims), keeping them as size 1.

    >>> sum_plates(torch.ones(2, 1, 3), -2).shape  # dim -2 and left: enumeration dims
    torch.Size([2, 1, 1])
    """
    ndim = lp.ndim
    if ndim == 0:
        return lp
    plate_dims = tuple(d for d in range(max(-ndim, first + 1), 0) if lp.shape[d] > 1)
    return lp.sum(plate_dims, keepdims=True) if plate_dims else lp


def categorical_table(site, dim, ops):
    """A latent Categorical site's probabilities with its support on its own ``dim``: the
    factor its log density would give, without the log and exp round trip (and without
    torch's ``log_prob`` clamping zero probabilities to float epsilon). None when the site
    is not a plain, unscaled Categorical (or Bernoulli, on JAX)."""
    fn = site.fn
    if site.mask is not None or not is_one(site.scale):
        return None
    probs = ops.support_probs(fn)
    if probs is None:
        return None
    batch, k = tuple(probs.shape[:-1]), probs.shape[-1]
    pad = -dim - 1 - len(batch)
    if pad < 0:  # parameters span dims left of the site's own (unusual): the general path
        return None
    tables = ops.tables
    if torch.is_tensor(probs):  # a view: the last dim moved first, size-1 dims in between
        strides = probs.stride()
        probs = probs.as_strided((k,) + (1,) * pad + batch, (strides[-1],) + (0,) * pad
                                 + strides[:-1], probs.storage_offset())
        return tables.to_wide_float(probs)
    table = tables.moveaxis(tables.to_wide_float(probs), -1, 0)
    if not ops.normalises_probs:  # (torch's table is checked as a factor: non-negative)
        check_probabilities(site, ops, table, axis=0)
    return tables.reshape(table, (k,) + (1,) * pad + batch)


def support_on_dim(fn, dim, ops):
    """(support size, the support of a distribution with finite support laid out on
    enumeration dim ``dim``, its event dims on the right)."""
    probs = ops.support_probs(fn)
    if probs is not None:  # its support is arange(K)
        k = probs.shape[-1]
        return k, _arange_on_dim(ops, k, dim, probs)
    support = fn.enumerate_support(expand=False)
    k = support.shape[0]
    return k, support.reshape((k,) + (1,) * (-dim - 1) + tuple(fn.event_shape))


def _arange_on_dim(ops, k, dim, like):
    """``arange(k)`` on enumeration dim ``dim``, built once per (k, dim, device): JAX arrays
    are immutable; a torch tensor is reused only while its version counter says that nothing
    (a program changing its site's value in place) wrote into it."""
    if not torch.is_tensor(like):
        found = _ARANGES.get((k, dim))
        if found is None:
            found = _ARANGES[(k, dim)] = ops.reshape(ops.arange(k), (k,) + (1,) * (-dim - 1))
        return found
    key = (k, dim, like.device)
    found = _ARANGES.get(key)
    if found is None or found[0]._version != found[1]:
        support = torch.arange(k, device=like.device).view((k,) + (1,) * (-dim - 1))
        found = _ARANGES[key] = (support, support._version)
    return found[0]


def is_one(scale):
    return scale is None or isinstance(scale, (int, float)) and scale == 1


def unchecked_log_prob(fn, value):
    """``fn.log_prob(value)`` without torch's check of ``value`` (an enumerated support)."""
    flipped, d = [], fn
    while d is not None:
        if getattr(d, "_validate_args", False):
            d._validate_args = False
            flipped.append(d)
        d = getattr(d, "base_dist", None)
    try:
        return fn.log_prob(value)
    finally:
        for d in flipped:
            d._validate_args = True
