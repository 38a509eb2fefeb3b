"""Exact inference over a program's discrete latent sites by variable elimination, on
either backend (the tables are the backend's arrays, handled through its ops table).

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
its support (on JAX too, where NumPyro would clip an index outside a Categorical's support).
Every other distribution keeps its library's validation.

Latent sites inside plates, batches of them and programs with more latent sites than an
array has dimensions take the plated path instead (:mod:`inference.exact.plated` on torch,
:mod:`inference.exact.funsor_posterior` on JAX).

The planning and contraction are :mod:`inference.exact.elimination`; each site's factor and the
checks, :mod:`inference.exact.factors`.

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

import numpy as np
import torch
from pyro.poutine.runtime import am_i_wrapped

from ppl.backend import backend_of
from ppl.shapes import broadcast_shape

from . import elimination
from .elimination import NotEnumerableError
from .funsor_posterior import funsor_posterior
from .plated import plated_posterior
from .factors import (
    is_normalised,
    observed_log_prob,
    site_factor,
    site_scope,
    support_on_dim,
)
from ..program import plate_nesting

MAX_CELLS = 1 << 22  # the largest table variable elimination may build
MAX_DIMS = 64  # torch's limit on a tensor's dimensions (and numpy's)


class _Plated(NotEnumerableError):
    """A latent site this path cannot lay out (inside a plate, a batch of them, too many
    dims); :mod:`inference.exact.plated` takes the program instead."""


class EnumeratedPosterior:
    """The enumerated trace of a program and exact queries on it.

    ``expectation(fn)`` and ``distribution(fn)`` take a function of the trace returning one
    number per configuration of the latent sites (a site's value, or any tensor arithmetic
    on values); only the marginal over the latent sites that value depends on is computed.
    The evidence's log probability is ``log_evidence``.
    """

    def __init__(self, trace, enum_sizes, own_dims, nesting, max_plate_nesting, max_cells, ops):
        self.trace = trace
        self._ops = ops
        self._tables = ops.tables  # the backend's table ops (numpy on the host for JAX)
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
        return float((self._tables.astype(values, weights) * weights).sum())

    def distribution(self, fn):
        """{value: probability} of a discrete function of the trace."""
        values, weights = self._weighted(fn)
        if isinstance(values, list):
            out = {}
            for v, w in zip(values, weights):
                out[v] = out.get(v, 0.0) + w
            return dict(sorted(out.items()))
        if torch.is_tensor(values):
            unique, inverse = torch.unique(values, return_inverse=True)
            sums = torch.zeros(len(unique), dtype=weights.dtype,
                               device=weights.device).index_add_(0, inverse, weights)
        else:
            unique, inverse = np.unique(np.asarray(values), return_inverse=True)
            sums = np.bincount(inverse.reshape(-1), weights=np.asarray(weights, np.float64))
        return dict(zip(unique.tolist(), sums.tolist()))

    def marginal(self, name):
        """P(site = k) for a latent site's values, ``[support]``."""
        if name not in self._own:
            raise ValueError(f"exact enumeration: {name!r} is not an enumerated latent site "
                             f"(latent sites: {sorted(self._own)})")
        dim = self._own[name]
        table, total = self._marginal(frozenset({dim}) if self._sizes[dim] > 1 else frozenset())
        return self._tables.to_wide_float((table / total).reshape(-1))

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
            values = self._tables.broadcast_to(values, shape).reshape(-1)
            weights = self._tables.broadcast_to(table, shape).reshape(-1)
            if self._tables.numel(values) <= 512:  # a few cells: plain Python beats tensor calls
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
        return math.log(float(total)) + sum(float(s) for s in scales) + self._log_constant()

    @property
    def log_weights(self):
        """The normalised log joint over every enumeration dimension (materialised: small
        programs only)."""
        table, total = self._marginal(frozenset(d for d, k in self._sizes.items() if k > 1))
        return self._tables.log(table / total)

    # ------------------------------------------------------------------ internals
    def _on_grid(self, values, what):
        """``values`` as a tensor and the enumeration dims it spans, or a clear error."""
        values = self._tables.asarray(values)
        shape = values.shape
        first, ndim = self._first, values.ndim
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
            one = self._tables.to_wide_float(self._tables.asarray(1.0))
            self._marginals[query] = (one, one, [], 1.0)
            return one, one
        table, total, scales, z = elimination.marginal(self._plan(query), self._factor, self._tables)
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
            sizes, own, first = self._sizes, self._own, self._first
            live = {name: d for name, d in own.items() if sizes[d] > 1}
            self._scopes = tuple(site_scope(site, first, live.get(site.name))
                                 for site in self._sites)
            self._normalised = tuple(own.get(site.name) if is_normalised(site) else None
                                     for site in self._sites)

    def _plan(self, query):
        """Which factors to compute and in which order to sum the other dims out."""
        return elimination.plan(self._scopes, self._normalised, self._sizes, query,
                                self._max_cells)

    def _factor(self, index, rescale):
        """Site ``index``'s table for :func:`inference.exact.elimination.contract`, checked: its
        probabilities must be non-negative and not NaN."""
        site = self._sites[index]
        table, top = site_factor(site, self._own.get(site.name), self._first, rescale, self._ops)
        if not float(table.min()) >= 0:  # negative or NaN (NaN fails every comparison)
            self._invalid(index)
        return table, top

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
                lp = observed_log_prob(site, self._ops)
                if hasattr(lp, "shape"):
                    lp = float(self._tables.to_wide_float(lp).sum())
                if lp != lp:
                    raise ValueError(
                        f"exact enumeration: observed site {site.name!r} "
                        f"({type(site.fn).__name__}) has a NaN log density; check its "
                        "distribution's parameters")
                total += lp
            self._constant = total
        return self._constant


def enumerate_program(program, *args, max_cells=MAX_CELLS, max_plate_nesting=8, **kwargs):
    """Run ``program`` once with every latent site enumerated; returns an
    :class:`EnumeratedPosterior` to query.

    Enumerated dimensions start left of ``max_plate_nesting`` plate dimensions, so no dry
    run is needed to find the program's nesting. ``max_cells`` bounds the largest table
    built while summing latent sites out.
    """
    backend = backend_of(program)
    sizes, own = {}, {}
    limit = -(max_plate_nesting + 1)

    def draw(msg):
        name, fn = msg["name"], msg["fn"]
        if not getattr(fn, "has_enumerate_support", False):
            raise NotEnumerableError(
                f"exact enumeration: latent site {name!r} ({type(fn).__name__}) has no finite "
                "support; exact queries need every latent site discrete (or fixed by evidence); "
                "use method='importance'")
        for frame in msg["cond_indep_stack"]:
            if frame.dim is not None and frame.size > 1:
                raise _Plated(
                    f"exact enumeration: latent site {name!r} lies in plate {frame.name!r} of "
                    f"size {frame.size}; enumerating it jointly over the plate is not supported; "
                    "use method='importance'")
        batch = fn.batch_shape
        if max(batch[max(len(batch) + limit + 1, 0):], default=1) > 1:
            raise NotEnumerableError(
                f"exact enumeration: latent site {name!r} has batch shape {tuple(batch)}: more "
                "than one value right of the enumeration dims (a batch of latent variables "
                "outside a plate, or inside one); exact queries need one value per latent "
                "site; use method='importance'")
        dim = limit - len(sizes)
        if -dim > MAX_DIMS - 3:  # room for the next site's parameter and event dims
            raise _Plated(
                f"exact enumeration: latent site {name!r} would need array dimension {dim}; "
                f"arrays have at most {MAX_DIMS}, so at most {MAX_DIMS + limit + 1} latent sites "
                f"with max_plate_nesting={max_plate_nesting}; use method='importance'")
        sizes[dim], msg["value"] = support_on_dim(fn, dim, backend.ops)
        own[name] = dim

    try:
        with backend.no_grad(), _hidden(backend), backend.ops.unchecked_categoricals():
            trace = backend.run(program, args, kwargs, draw=draw, rng=False)
    except _Plated:  # latent sites inside plates or along a chain: the plated path
        if backend.name == "jax":
            return funsor_posterior(backend, program, args, kwargs, max_plate_nesting)
        return plated_posterior(program, *args, max_plate_nesting=max_plate_nesting, **kwargs)
    nesting = plate_nesting([trace])
    if nesting > max_plate_nesting:
        raise ValueError(f"exact enumeration: the program nests {nesting} plates; pass "
                         f"max_plate_nesting={nesting}")
    return EnumeratedPosterior(trace, sizes, own, nesting, max_plate_nesting, max_cells, backend.ops)


def _hidden(backend):
    """Block the enumerated run from the handlers around the query, which must not see it
    (on torch, only where a handler is active: the block costs a few percent of a query)."""
    if backend.name == "torch" and not am_i_wrapped():
        return contextlib.nullcontext()
    return backend.handlers.block()
