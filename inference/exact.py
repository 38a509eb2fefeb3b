"""Exact inference over a program's discrete latent sites by variable elimination (torch).

The program runs once with every latent site's support laid out on its own batch dimension,
left of the plates (Pyro's parallel enumeration). Each site's density is then a factor over
the dimensions it spans: its own and those of the sites its distribution was computed from.
A query for a function of the trace needs the marginal over the dimensions the function's
value spans; the other dimensions are summed out one at a time (greedy order: the variable
whose factors multiply into the smallest table goes first), so the cost follows the size of
the largest intermediate table rather than the number of joint configurations. Sites that
nothing downstream reads (a latent site whose dimension appears in no other remaining factor
and is not queried) sum to one and are dropped before any of their densities are computed.

Checks: torch validates a Categorical's probabilities on construction, which costs more than
the rest of a small query on a network of Categorical sites; while the program runs that
check is switched off for Categoricals only, and done instead on the tables an answer uses
(negative or NaN probabilities are an error naming the site), with evidence checked against
its support. Every other distribution keeps torch's validation.

    >>> import torch, ppl, ppl.distributions as dist
    >>> def coin():
    ...     bias = ppl.sample("bias", dist.Categorical(torch.tensor([0.5, 0.5])))
    ...     p = torch.tensor([0.2, 0.8])[bias]
    ...     ppl.sample("flip", dist.Bernoulli(p), obs=torch.tensor(1.0))
    >>> posterior = enumerate_program(coin)
    >>> round(posterior.expectation(lambda tr: tr["bias"].value.float()), 3)
    0.8
    >>> {k: round(v, 3) for k, v in posterior.distribution(lambda tr: tr["bias"].value).items()}
    {0: 0.2, 1: 0.8}
"""

import contextlib
import math

import pyro.distributions as pyro_dist
import torch
from pyro import poutine
from pyro.distributions.util import scale_and_mask
from pyro.poutine.runtime import _PYRO_STACK
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

from ppl.backends.torch import BACKEND
from ppl.shapes import broadcast_shape

from .program import plate_nesting

MAX_CELLS = 1 << 22  # the largest table variable elimination may build
MAX_DIMS = 64  # torch's limit on a tensor's dimensions
_PMFS = (Bernoulli, Binomial, Categorical, Geometric, Multinomial, NegativeBinomial,
         OneHotCategorical, Poisson)  # log densities <= 0: exp() needs no rescaling
_CATEGORICALS = {}  # type -> whether it scores and enumerates as torch's Categorical
_PLANS = {}  # structure of a query -> its elimination plan (shapes only, never values)
_MAX_PLANS = 512


class EnumeratedPosterior:
    """The enumerated trace of a program and exact queries on it.

    ``expectation(fn)`` and ``distribution(fn)`` take a function of the trace returning one
    number per configuration of the latent sites (a site's value, or any tensor arithmetic
    on values); only the marginal over the latent sites that value depends on is computed.
    The evidence's log probability is ``log_evidence``.
    """

    def __init__(self, trace, enum_sizes, own_dims, nesting, max_plate_nesting, max_cells):
        self.trace = trace
        self.nesting = nesting
        self._sizes = enum_sizes  # enumeration dim -> support size
        self._own = own_dims  # latent site name -> its enumeration dim
        self._first = -(max_plate_nesting + 1)  # the rightmost enumeration dim
        self._max_cells = max_cells
        self._sites = list(trace)
        self._scopes = None
        self._marginals = {}  # query dims -> (table, its sum, log scales, float sum)
        self._constant = None
        self._last = None

    # ------------------------------------------------------------------ queries
    def expectation(self, fn):
        """E[fn(trace)] for a function returning one number per configuration."""
        values, weights = self._weighted(fn)
        if isinstance(values, list):
            return math.fsum(v * w for v, w in zip(values, weights))
        return float((values.to(weights.dtype) * weights).sum())

    def distribution(self, fn):
        """{value: probability} of a discrete function of the trace."""
        values, weights = self._weighted(fn)
        if isinstance(values, list):
            out = {}
            for v, w in zip(values, weights):
                out[v] = out.get(v, 0.0) + w
            return dict(sorted(out.items()))
        unique, inverse = torch.unique(values, return_inverse=True)
        sums = torch.zeros(len(unique), dtype=weights.dtype).index_add_(0, inverse, weights)
        return dict(zip(unique.tolist(), sums.tolist()))

    def largest_table(self, fn):
        """The number of cells of the largest table that a query for ``fn`` multiplies out
        (its cost; the joint over every latent site would have the product of their
        support sizes)."""
        _, query = self._on_grid(fn(self.trace), "the function's value")
        self._prepare()
        return self._plan(query)[3]

    def _weighted(self, fn):
        """fn's value in each cell of its marginal and the cells' probabilities: Python
        lists for a small marginal, flat tensors otherwise (the last answer is kept, for
        an expectation and a distribution of the same function)."""
        if self._last is not None and self._last[0] is fn:
            return self._last[1]
        values, query = self._on_grid(fn(self.trace), "the function's value")
        table, total = self._marginal(query)
        if not query:  # the same value in every configuration
            values, weights = [values.reshape(()).item()], [1.0]
        else:
            shape = broadcast_shape(values.shape, table.shape)
            values = values.expand(shape).reshape(-1)
            weights = table.expand(shape).reshape(-1)
            if values.numel() <= 512:  # a few cells: plain Python beats tensor calls
                z = self._marginals[query][3]
                values, weights = values.tolist(), [w / z for w in weights.tolist()]
            else:
                weights = weights / total
        self._last = (fn, (values, weights))
        return values, weights

    @property
    def log_evidence(self):
        """log p(evidence): the log of the sum over every configuration of the joint."""
        table, total = self._marginal(frozenset())
        scales = self._marginals[frozenset()][2]
        return float(total.log()) + sum(float(s) for s in scales) + self._log_constant()

    @property
    def log_weights(self):
        """The normalised log joint over every enumeration dimension (materialised: small
        programs only)."""
        table, total = self._marginal(frozenset(d for d, k in self._sizes.items() if k > 1))
        return (table / total).log()

    # ------------------------------------------------------------------ internals
    def _on_grid(self, values, what):
        """``values`` as a tensor and the enumeration dims it spans, or a clear error."""
        values = torch.as_tensor(values)
        shape = values.shape
        first, ndim = self._first, values.dim()
        query, fits = [], True
        for d in range(-ndim, 0):
            size = shape[d]
            if size == 1:
                continue
            if d > first or self._sizes.get(d) != size:
                fits = False
                break
            query.append(d)
        if not fits:
            grid = tuple(self._sizes.get(d, 1) for d in range(first - len(self._sizes) + 1,
                                                              first + 1))
            raise ValueError(
                f"exact enumeration: {what} has shape {tuple(shape)}, which does not line up "
                f"with the grid of configurations {grid} (left of {-first - 1} plate "
                "dimensions); exact queries take one number per configuration (a target "
                "outside plates)")
        return values, frozenset(query)

    def _marginal(self, query):
        """(unnormalised table over the ``query`` dims, its sum), cached per query."""
        cached = self._marginals.get(query)
        if cached is not None:
            return cached[0], cached[1]
        self._prepare()
        if not self._sizes:  # nothing enumerated (every latent site fixed): a point mass
            if self._log_constant() == -math.inf:
                raise ValueError("exact enumeration: the evidence has probability zero under "
                                 "the program")
            one = torch.ones((), dtype=torch.float64)
            self._marginals[query] = (one, one, [], 1.0)
            return one, one
        plan = self._plan(query)
        table, scales = self._contract(plan, rescale=False)
        total = table.sum()
        z = float(total)
        if not 0 < z < math.inf:  # underflow or overflow: rescale every step
            table, scales = self._contract(plan, rescale=True)
            total = table.sum()
            z = float(total)
        if not 0 < z < math.inf or self._log_constant() == -math.inf:
            raise ValueError("exact enumeration: the evidence has probability zero under "
                             "the program")
        self._marginals[query] = (table, total, scales, z)
        return table, total

    def _prepare(self):
        if self._scopes is None:
            if not self._sizes:  # nothing enumerated: every density is a constant
                self._scopes = ((),) * len(self._sites)
                self._normalised = (None,) * len(self._sites)
                return
            self._scopes = tuple(self._scope(site) for site in self._sites)
            own = self._own
            self._normalised = tuple(own.get(site.name) if _is_normalised(site) else None
                                     for site in self._sites)

    def _scope(self, site):
        """The enumeration dims a site's log density spans, read off shapes (before any
        density is computed): its distribution's batch shape, its value's (the own dim of
        a latent site), and those of a tensor scale or mask."""
        first = self._first
        fn = site.fn
        if _at_own_atom(site):  # an observed point mass: its log density is log_density
            batch = fn.log_density.shape
            extras = [x for x in (site.scale, site.mask) if torch.is_tensor(x)]
            return tuple(sorted({d for x in [batch] + [x.shape for x in extras]
                                 for d in range(-len(x), first + 1) if x[d] > 1}))
        batch = fn.batch_shape
        dims = {d for d in range(-len(batch), first + 1) if batch[d] > 1}
        if not site.observed:
            own = self._own.get(site.name)
            if own is not None and self._sizes[own] > 1:
                dims.add(own)
        extras = [site.value] if site.observed else []
        extras += [x for x in (site.scale, site.mask) if torch.is_tensor(x)]
        for extra in extras:
            shape = extra.shape if torch.is_tensor(extra) else ()
            if extra is site.value:
                shape = shape[:len(shape) - len(site.fn.event_shape)]
            dims.update(d for d in range(-len(shape), first + 1) if shape[d] > 1)
        return tuple(sorted(dims))

    def _plan(self, query):
        """Which factors to compute and in which order to sum the other dims out."""
        key = (self._scopes, self._normalised, tuple(self._sizes.items()), query,
               self._max_cells)
        plan = _PLANS.get(key)
        if plan is None:
            plan = _make_plan(self._scopes, self._normalised, self._sizes, query,
                              self._max_cells)
            if len(_PLANS) >= _MAX_PLANS:
                _PLANS.clear()
            _PLANS[key] = plan
        return plan

    def _factor(self, index, rescale):
        """(exp(log density) of site ``index`` summed over plates, as float64; the log of
        a scale divided out of it, or None)."""
        site = self._sites[index]
        if _at_own_atom(site):
            lp = scale_and_mask(site.fn.log_density, site.scale, site.mask)
        elif site.observed:
            _check_evidence(site)
            lp = site.log_prob
        else:  # the enumerated support
            table = _categorical_table(site, self._own[site.name])
            if table is not None:
                return table, None
            lp = scale_and_mask(_unchecked_log_prob(site.fn, site.value), site.scale,
                                site.mask)
        lp = _sum_plates(lp, self._first)
        if lp.dtype != torch.float64:
            lp = lp.double()
        if rescale or not isinstance(site.fn, _PMFS) or any(p.size > 1 for p in site.plates):
            top = lp.amax().clamp(min=-1e300)
            return (lp - top).exp(), top
        return lp.exp(), None

    def _contract(self, plan, rescale):
        """The product of the plan's factors with the non-query dims summed out, and the
        logs of the scales divided out on the way."""
        needed, steps, final, _ = plan
        tables, log_scale = {}, []
        for i in needed:
            table, top = self._factor(i, rescale)
            tables[i] = table
            if not float(table.min()) >= 0:  # negative or NaN (NaN fails every comparison)
                self._invalid(i)
            if top is not None:
                log_scale.append(top)
        for group, dim, out in steps:
            table = tables.pop(group[0])
            for g in group[1:]:
                table = table * tables.pop(g)
            table = table.sum(dim, keepdim=True)
            if rescale:
                top = table.amax().clamp(min=1e-300)
                table = table / top
                log_scale.append(top.log())
            tables[out] = table
        result = None
        for i in final:
            result = tables[i] if result is None else result * tables[i]
        if result is None:
            result = torch.ones((), dtype=torch.float64)
        return result, log_scale

    def _invalid(self, i):
        site = self._sites[i]
        raise ValueError(
            f"exact enumeration: site {site.name!r} ({type(site.fn).__name__}) gives negative "
            "or NaN probabilities; check its distribution's parameters")

    def _log_constant(self):
        """The log densities of the observed sites that span no enumeration dim (evidence
        with observed parents, interventions): for ``log_evidence`` and to detect evidence
        of probability zero."""
        if self._constant is None:
            total = 0.0
            for site, scope in zip(self._sites, self._scopes):
                if scope or not site.observed:
                    continue
                fn = site.fn
                if _at_own_atom(site):
                    lp = scale_and_mask(fn.log_density, site.scale, site.mask)
                else:
                    _check_evidence(site)
                    lp = site.log_prob
                if torch.is_tensor(lp):
                    lp = lp.item() if lp.numel() == 1 else float(lp.sum())
                if lp != lp:
                    raise ValueError(
                        f"exact enumeration: observed site {site.name!r} "
                        f"({type(fn).__name__}) has a NaN log density; check its "
                        "distribution's parameters")
                total += lp
            self._constant = total
        return self._constant


def _at_own_atom(site):
    """An observed point mass (an intervention) whose value is its atom: its log density
    is its ``log_density``, whatever the shapes."""
    fn = site.fn
    return site.observed and getattr(fn, "v", None) is site.value and hasattr(fn, "log_density")


def _check_evidence(site):
    """Where torch's checks were off (a Categorical): the evidence must lie in the support
    and the probabilities must be non-negative (torch's log_prob would clamp them)."""
    fn, value = site.fn, site.value
    if isinstance(fn, Categorical) and "probs" in vars(fn) and not bool(fn.probs.amin() >= 0):
        raise ValueError(
            f"exact enumeration: site {site.name!r} ({type(fn).__name__}) gives negative or NaN "
            "probabilities; check its distribution's parameters")
    if getattr(fn, "_validate_args", False):
        return  # torch checks the value in log_prob
    support = fn.support
    if support is constraints.real or constraints.is_dependent(support):
        return
    if not bool(support.check(value).all()):
        raise ValueError(
            f"exact enumeration: the value of observed site {site.name!r} lies outside the "
            f"support of its {type(fn).__name__} distribution ({support})")


def _is_normalised(site):
    """A latent site's density, summed over its own support, is 1 for any parent values."""
    return not site.observed and site.mask is None and _is_one(site.scale)


def _sum_plates(lp, first):
    """Sum the plate dims (right of the enumeration dims), keeping them as size 1."""
    ndim = lp.dim()
    if ndim == 0:
        return lp
    plate_dims = tuple(d for d in range(max(-ndim, first + 1), 0) if lp.shape[d] > 1)
    return lp.sum(plate_dims, keepdim=True) if plate_dims else lp


def _categorical_table(site, dim):
    """A latent Categorical site's probabilities with its support on its own ``dim``: the
    factor its log density would give, without the log and exp round trip (and without
    ``log_prob``'s clamping of zero probabilities to float epsilon). None when the site is
    not a plain, unscaled Categorical."""
    fn = site.fn
    if not _plain_categorical(type(fn)) or site.mask is not None or not _is_one(site.scale):
        return None
    probs = fn.probs
    batch = probs.shape[:-1]
    pad = -dim - 1 - len(batch)
    if pad < 0:  # parameters span dims left of the site's own (unusual): the general path
        return None
    strides = probs.stride()  # a view: the last dim moved first, size-1 dims in between
    table = probs.as_strided((probs.shape[-1],) + (1,) * pad + tuple(batch),
                             (strides[-1],) + (0,) * pad + strides[:-1], probs.storage_offset())
    return table if table.dtype == torch.float64 else table.double()


def _plain_categorical(cls):
    known = _CATEGORICALS.get(cls)
    if known is None:
        known = (issubclass(cls, Categorical)
                 and cls.log_prob in (Categorical.log_prob, pyro_dist.Categorical.log_prob)
                 and cls.enumerate_support in (Categorical.enumerate_support,
                                               pyro_dist.Categorical.enumerate_support))
        _CATEGORICALS[cls] = known
    return known


def _is_one(scale):
    return scale is None or isinstance(scale, (int, float)) and scale == 1


@contextlib.contextmanager
def _categoricals_unvalidated():
    """Categoricals built inside skip torch's argument check (see the module docstring)."""
    own = "_validate_args" in vars(Categorical)
    saved = Categorical._validate_args
    Categorical._validate_args = False
    try:
        yield
    finally:
        if own:
            Categorical._validate_args = saved
        else:
            del Categorical._validate_args


def _unchecked_log_prob(fn, value):
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


def _make_plan(scopes, normalised, sizes, query, max_cells):
    """(factors to compute, elimination steps ``(factor ids, dim, new id)``, final ids,
    cells of the largest table).

    Drops barren latent sites first (their own dim in no other factor and not queried),
    then sums out the remaining non-query dims greedily: each time the dim whose factors
    multiply into the smallest table.
    """
    active = {i: frozenset(s) for i, s in enumerate(scopes) if s}
    count = {}
    for scope in active.values():
        for d in scope:
            count[d] = count.get(d, 0) + 1
    changed = True
    while changed:
        changed = False
        for i in list(active):
            d = normalised[i]
            if d is not None and d not in query and count.get(d) == 1 and d in active[i]:
                for e in active.pop(i):
                    count[e] -= 1
                changed = True
    needed = sorted(active)
    eliminate = {d for d, c in count.items() if c > 0} - query
    steps, next_id, largest = [], len(scopes), 1
    while eliminate:
        best = None
        for d in eliminate:
            union = frozenset().union(*(s for s in active.values() if d in s))
            cells = math.prod(sizes[e] for e in union)
            key = (cells, len(union), -d)
            if best is None or key < best[0]:
                best = (key, d, union)
        (cells, _, _), d, union = best
        if cells > max_cells:
            raise ValueError(
                f"exact enumeration: summing out the latent sites needs a table of {cells} "
                f"cells (more than max_cells={max_cells}); use method='importance'")
        largest = max(largest, cells)
        group = [i for i, s in active.items() if d in s]
        for i in group:
            del active[i]
        active[next_id] = union - {d}
        steps.append((tuple(group), d, next_id))
        next_id += 1
        eliminate.discard(d)
    final = tuple(active)
    cells = math.prod(sizes[e] for e in query) if query else 1
    if cells > max_cells:
        raise ValueError(f"exact enumeration: the queried marginal has {cells} cells (more "
                         f"than max_cells={max_cells})")
    return tuple(needed), tuple(steps), final, max(largest, cells)


def enumerate_program(program, *args, max_cells=MAX_CELLS, max_plate_nesting=8, **kwargs):
    """Run ``program`` once with every latent site enumerated; returns an
    :class:`EnumeratedPosterior` to query.

    Enumerated dimensions start left of ``max_plate_nesting`` plate dimensions, so no dry
    run is needed to find the program's nesting. ``max_cells`` bounds the largest table
    built while summing latent sites out.
    """
    sizes, own = {}, {}
    limit = -(max_plate_nesting + 1)

    def draw(msg):
        name, fn = msg["name"], msg["fn"]
        if not getattr(fn, "has_enumerate_support", False):
            raise ValueError(
                f"exact enumeration: latent site {name!r} ({type(fn).__name__}) has no finite "
                "support; exact queries need every latent site discrete (or fixed by evidence); "
                "use method='importance'")
        for frame in msg["cond_indep_stack"]:
            if frame.dim is not None and frame.size > 1:
                raise ValueError(
                    f"exact enumeration: latent site {name!r} lies in plate {frame.name!r} of "
                    f"size {frame.size}; enumerating it jointly over the plate is not supported; "
                    "use method='importance'")
        batch = fn.batch_shape
        if max(batch[max(len(batch) + limit + 1, 0):], default=1) > 1:
            raise ValueError(
                f"exact enumeration: latent site {name!r} has batch shape {tuple(batch)}: more "
                "than one value right of the enumeration dims (a batch of latent variables "
                "outside a plate, or inside one); exact queries need one value per latent "
                "site; use method='importance'")
        dim = limit - len(sizes)
        if -dim > MAX_DIMS:
            raise ValueError(
                f"exact enumeration: latent site {name!r} would need tensor dimension {dim}; "
                f"torch allows {MAX_DIMS}, so at most {MAX_DIMS + limit + 1} latent sites "
                f"with max_plate_nesting={max_plate_nesting}; use method='importance'")
        if _plain_categorical(type(fn)):  # its support is arange(K)
            k = fn._num_events
            support = torch.arange(k, device=fn._param.device).view((k,) + (1,) * (-dim - 1))
        else:
            support = fn.enumerate_support(expand=False)
            k = support.shape[0]
            support = support.reshape((k,) + (1,) * (-dim - 1) + tuple(fn.event_shape))
        sizes[dim] = k
        own[name] = dim
        msg["value"] = support

    # blocked inside other handlers, which must not see the enumerated run
    hide = poutine.block() if _PYRO_STACK else contextlib.nullcontext()
    with torch.no_grad(), hide, _categoricals_unvalidated():
        trace = BACKEND.run(program, args, kwargs, draw=draw)
    nesting = plate_nesting([trace])
    if nesting > max_plate_nesting:
        raise ValueError(f"exact enumeration: the program nests {nesting} plates; pass "
                         f"max_plate_nesting={nesting}")
    return EnumeratedPosterior(trace, sizes, own, nesting, max_plate_nesting, max_cells)
