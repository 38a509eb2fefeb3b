"""Exact queries on programs whose discrete latent sites lie inside plates or along
``ppl.markov`` chains, by Pyro's parallel enumeration and tensor variable elimination
(plated sum-product: sums over variables, products over plates).

:func:`~inference.exact.enumerate_program` takes its own elimination when every latent site
is one value outside plates (it plans and caches the order and wins on Bayesian networks:
see ARCHITECTURE.md), and this path otherwise.

    >>> import torch, ppl, ppl.distributions as dist
    >>> def mixture(x):
    ...     with ppl.plate("data", len(x)):
    ...         c = ppl.sample("c", dist.Bernoulli(0.5))
    ...         ppl.sample("x", dist.Normal(4.0 * c, 1.0), obs=x)
    >>> posterior = plated_posterior(mixture, torch.tensor([0.0, 4.0]))
    >>> [round(p, 4) for p in posterior.expectation(lambda tr: tr["c"].value).tolist()]
    [0.0003, 0.9997]
"""

import contextlib
import math

import torch
from pyro import poutine
from pyro.poutine.runtime import am_i_wrapped

from ppl.errors import SiteError

from ..enumeration import NamedFactors
from .elimination import NotEnumerableError


class PlatedPosterior:
    """The enumerated trace of a program with plated or Markov discrete latent sites.

    ``expectation(fn)``: E[fn(trace)], one number per element of the plates fn's value
    spans (a tensor over them, a float outside plates); ``marginal(site)``: the posterior
    probabilities of a latent site's values; ``distribution(fn)`` for targets outside
    plates; ``log_evidence``.
    """

    def __init__(self, trace, enumerated, nesting):
        self.trace = trace
        self.nesting = nesting
        self._factors = NamedFactors(trace, enumerated)
        self._ids = {}  # enumeration dim -> the variable ids allocated to it, in order
        self._own = {}  # site -> (its enumeration dim, its variable id)
        self._site_of = {}  # variable id -> its site
        for name in enumerated:
            infer = trace[name].infer
            dim = infer["_enumerate_dim"]
            key = infer["_dim_to_id"][dim]
            self._own[name] = (dim, key)
            self._ids.setdefault(dim, []).append(key)
            self._site_of[key] = trace[name]
        self._log_evidence = None

    @property
    def log_evidence(self):
        """log p(evidence), summed over every plate element."""
        if self._log_evidence is None:
            value = float(self._factors.contract())
            if value == -math.inf or value != value:
                raise ValueError("exact enumeration: the evidence has probability zero under the program")
            self._log_evidence = value
        return self._log_evidence

    def marginal(self, name):
        """P(site = k), ``[plate elements..., support]`` for a latent site's values."""
        if name not in self._own:
            raise SiteError(f"exact enumeration: {name!r} is not an enumerated latent site "
                            f"(latent sites: {sorted(self._own)})", site=name)
        site = self.trace[name]
        plates = [p.name for p in site.plates if p.size > 1 and p.name in self._factors.plate_symbol]
        table = self._factors.contract(plates, [self._own[name][1]])
        return torch.softmax(table.double(), -1)

    def expectation(self, fn):
        """E[fn(trace)]: a float, or a tensor over the plates fn's value spans (and those of
        the variables it reads)."""
        value = torch.as_tensor(fn(self.trace)).double()
        plates, variables = self._dims_of(value)
        self.log_evidence  # noqa: B018 -- evidence of probability zero is an error first
        if not variables:  # the same in every configuration
            return float(value) if value.numel() == 1 else value.squeeze()
        table = self._factors.contract([name for name, _ in plates], [key for key, _ in variables])
        k = len(plates)
        log_norm = torch.logsumexp(table.double().flatten(k), -1)
        probs = (table.double() - log_norm.reshape(log_norm.shape + (1,) * len(variables))).exp()
        # lay the marginal out on the dims the value uses: plates at their dims, variables at
        # their enumeration dims
        dims = [d for _, d in plates] + [d for _, d in variables]
        ndim = max(value.dim(), -min(dims))
        order = sorted(range(len(dims)), key=lambda i: dims[i])
        shape = [1] * ndim
        for i in order:
            shape[dims[i]] = probs.shape[i]
        probs = probs.permute(*order).reshape(shape)
        result = (probs * value).sum(tuple(d for _, d in variables), keepdim=True).squeeze()
        return float(result) if result.dim() == 0 else result

    def distribution(self, fn):
        """{value: probability} of a discrete target outside plates."""
        value = torch.as_tensor(fn(self.trace))
        plates, variables = self._dims_of(value)
        if plates:
            raise ValueError("exact enumeration: distribution() takes a target outside plates; "
                             "use expectation() for per-element answers")
        out = {}
        for v in torch.unique(value).tolist():
            out[v] = self.expectation(lambda tr, v=v: (torch.as_tensor(fn(tr)) == v).double())
        return out

    def _dims_of(self, value):
        """(plate name, dim) and (variable id, dim) pairs that ``value`` spans, with the
        plates of every variable it reads (a plated variable is one per element)."""
        plate_dims = {p.dim: p.name for site in self.trace for p in site.plates if p.dim is not None}
        plates, variables = {}, []
        for i, size in enumerate(value.shape):
            d = i - value.dim()
            if size == 1:
                continue
            if d in plate_dims:
                plates[plate_dims[d]] = d
            elif d in self._ids:
                if len(self._ids[d]) > 1:
                    raise ValueError(
                        f"exact enumeration: the query's value spans dimension {d}, which "
                        "ppl.markov recycles for several sites of the chain; query a site's "
                        "posterior with marginal(name) instead")
                variables.append((self._ids[d][0], d))
            else:
                raise ValueError(f"exact enumeration: the query's value has a dimension {d} of "
                                 f"size {size} that is neither a plate nor an enumerated site")
        for key, _ in variables:
            for p in self._site_of[key].plates:
                if p.size > 1 and p.name in self._factors.plate_symbol:
                    plates.setdefault(p.name, p.dim)
        return sorted(plates.items(), key=lambda item: item[1]), variables


def plated_posterior(program, *args, max_plate_nesting=8, **kwargs):
    """Run ``program`` with every discrete latent site enumerated in parallel (Pyro's
    ``EnumMessenger``, ``ppl.markov`` recycling dimensions) and return its
    :class:`PlatedPosterior`."""
    from ppl.backend import backend_of

    backend = backend_of(program)

    marked = []

    def mark(site):
        fn = site["fn"]
        if site["is_observed"] or not getattr(fn, "has_enumerate_support", False):
            if not site["is_observed"] and not site["infer"].get("_deterministic"):
                raise NotEnumerableError(
                    f"exact enumeration: latent site {site['name']!r} ({type(fn).__name__}) has "
                    "no finite support; use method='importance'")
            return {}
        marked.append(site["name"])
        return {"enumerate": "parallel"}

    configured = poutine.infer_config(program, config_fn=mark)
    hide = poutine.block() if am_i_wrapped() else contextlib.nullcontext()
    try:
        with torch.no_grad(), hide:
            trace = backend.run(configured, args, kwargs, enumerate_from=-(max_plate_nesting + 1))
    except RuntimeError as error:
        if "dims are supported" not in str(error):
            raise
        raise NotEnumerableError(
            f"exact enumeration: {marked[-1]!r} is latent site number {len(marked)}, more than "
            "torch's 64 tensor dimensions hold (each latent site outside ppl.markov keeps one, "
            f"left of max_plate_nesting={max_plate_nesting}); wrap a chain in ppl.markov, or "
            "use method='importance'") from error
    enumerated = [n for n, s in trace.latent.items() if s.infer.get("enumerate") == "parallel"]
    nesting = max((-p.dim for s in trace for p in s.plates if p.dim is not None), default=0)
    return PlatedPosterior(trace, enumerated, nesting)
