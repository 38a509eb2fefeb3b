"""Exact queries on JAX programs whose latent sites lie inside plates (the plated path; the
project's own elimination, :mod:`inference.exact.queries`, takes every other program on both
backends): every latent site enumerated by NumPyro's funsor handlers (on a dimension of its
own, plates named), and sums taken by funsor's plated sum-product, the machinery of
NumPyro's ``TraceEnum_ELBO`` (``ARCHITECTURE.md`` says why the two paths differ).

    >>> import ppl, ppl.distributions as dist
    >>> from inference.exact import enumerate_program
    >>> def coins():
    ...     with ppl.plate("coins", 2):
    ...         bias = ppl.sample("bias", dist.Bernoulli(0.5))
    ...         ppl.sample("flip", dist.Bernoulli(0.2 + 0.6 * bias), obs=1.0)
    >>> with ppl.backend("jax"):
    ...     posterior = enumerate_program(coins)
    ...     print(posterior.expectation(lambda tr: tr["bias"].value).round(3).tolist(),
    ...           round(float(posterior.log_evidence), 4))
    [0.8, 0.8] -1.3863
"""

import math

import numpy as np


from .elimination import NotEnumerableError


class FunsorPosterior:
    """The enumerated trace of a program on JAX and exact queries on it (the same queries as
    the torch :class:`~inference.exact.queries.EnumeratedPosterior`)."""

    def __init__(self, trace, own_dims):
        self.trace = trace
        self._own = own_dims  # latent site -> its enumeration dim
        self._sites = list(trace.sites.values())
        self._plates = frozenset(p.name for s in self._sites for p in s.plates if p.dim is not None)

    def _sum(self, keep, plates=()):
        """log of the joint summed over every latent site but those in ``keep`` (a funsor
        over their names), the plates product-reduced but those in ``plates`` (kept as
        batch dimensions: one answer per element)."""
        import funsor

        factors = [_to_funsor(s) for s in self._sites]
        eliminate = (frozenset(self._own) - frozenset(keep)) | (self._plates - frozenset(plates))
        with funsor.interpretations.lazy:
            lazy = funsor.sum_product.sum_product(funsor.ops.logaddexp, funsor.ops.add, factors,
                                                  eliminate=eliminate, plates=self._plates)
        return funsor.optimizer.apply_optimizer(lazy)

    @property
    def log_evidence(self):
        """log p(evidence), the latent sites summed out."""
        return float(self._sum(()).data)

    def _weighted(self, fn):
        """(values, probabilities, the enumerated axes) on the grid of the latent sites
        ``fn`` reads: normalised over those sites, per element of each plate that one of
        them lies in or that the value spans (a latent site in a plate has a value per
        element, so that plate is kept, not summed out)."""
        import funsor
        import jax.numpy as jnp
        from jax.scipy.special import logsumexp

        values = jnp.asarray(fn(self.trace))
        spans = [name for name, dim in self._own.items()
                 if values.ndim >= -dim and values.shape[dim] > 1]
        kept = {p.name: p.dim for name in spans for p in self.trace[name].plates
                if p.dim is not None and p.size > 1}
        kept.update({p.name: p.dim for s in self._sites for p in s.plates
                     if p.dim is not None and values.ndim >= -p.dim and values.shape[p.dim] > 1})
        table = self._sum(spans, kept)
        dims = {name: self._own.get(name, kept.get(name)) for name in table.inputs}
        log_p = funsor.to_data(table, name_to_dim=dims)
        axes = tuple(self._own[name] for name in spans)
        shape = jnp.broadcast_shapes(jnp.shape(log_p), values.shape)
        log_p = jnp.broadcast_to(log_p, shape)
        probs = jnp.exp(log_p - logsumexp(log_p, axis=axes, keepdims=True)) if axes else jnp.ones(shape)
        return jnp.broadcast_to(values, shape), probs, axes, bool(kept)

    def expectation(self, fn):
        """E[fn(trace)] under the posterior: a float, or an array over the plates that fn's
        value (or a latent site it reads) spans."""
        values, probs, axes, per_element = self._weighted(fn)
        weighted = np.asarray(probs, np.float64) * np.asarray(values, np.float64)
        if not per_element:
            return float(np.sum(weighted))
        return np.squeeze(np.sum(weighted, axis=axes) if axes else weighted)

    def distribution(self, fn):
        """{value: probability} of ``fn(trace)`` under the posterior (per element, an array,
        where the value spans plates)."""
        values, probs, _, per_element = self._weighted(fn)
        if per_element:
            unique = np.unique(np.asarray(values))
            return {v.item(): self.expectation(lambda trace, v=v: jnp_equal(fn(trace), v)) for v in unique}
        table = {}
        probs = np.asarray(probs, np.float64).reshape(-1)
        for value, p in zip(np.asarray(values).reshape(-1).tolist(), probs):
            table[value] = table.get(value, 0.0) + float(p)
        return dict(sorted(table.items()))

    def marginal(self, name):
        """P(site = k) for a latent site's values: ``[support]``, or ``[plate elements...,
        support]`` for a site inside plates (as on torch)."""
        import jax.numpy as jnp

        if name not in self._own:
            raise ValueError(f"exact enumeration: {name!r} is not an enumerated latent site "
                             f"(latent sites: {sorted(self._own)})")
        values, probs, _, _ = self._weighted(lambda trace: trace[name].value)
        table = jnp.moveaxis(probs, self._own[name], -1)
        leading = tuple(size for size in table.shape[:-1] if size > 1)
        return jnp.reshape(table, leading + table.shape[-1:])


def jnp_equal(value, v):
    """1.0 where ``value`` equals ``v`` (an indicator, for per-element distributions)."""
    import jax.numpy as jnp

    return (jnp.asarray(value) == v).astype(jnp.result_type(float))


def _to_funsor(site):
    """A site's log density as a funsor over its named dims; one whose dims all have size 1
    (a term outside every plate that keeps a dim, as a counterfactual's evidence keeps
    the world dim) is a scalar (funsor reads an unnamed dim as a wrong shape)."""
    import funsor
    import jax.numpy as jnp

    log_prob, names = site.log_prob, site.infer["dim_to_name"]
    if not names and jnp.size(log_prob) == 1:
        log_prob = jnp.reshape(log_prob, ())
    return funsor.to_funsor(log_prob, output=funsor.Real, dim_to_name=names)


def funsor_posterior(backend, program, args, kwargs, max_plate_nesting):
    """Run ``program`` once with every latent site enumerated left of ``max_plate_nesting``
    plate dimensions; a latent site without finite support is a ``NotEnumerableError``."""
    own = {}

    def mark(msg):
        fn = msg["fn"]
        if not getattr(fn, "has_enumerate_support", False):
            raise NotEnumerableError(
                f"exact enumeration: latent site {msg['name']!r} ({type(fn).__name__}) has no finite "
                "support; exact queries need every latent site discrete (or fixed by evidence); "
                "use method='importance'")
        msg["infer"] = {**(msg.get("infer") or {}), "enumerate": "parallel"}
        own[msg["name"]] = None  # counted, to name the site that runs out of dimensions

    try:
        trace = backend.run(program, args, kwargs, draw=mark, enumerate_from=-(max_plate_nesting + 1))
    except ValueError as error:
        if "Ran out of free dims" not in str(error):
            raise
        raise NotEnumerableError(
            f"exact enumeration on the jax backend: {str(error).rsplit(' ', 1)[-1]!r} is latent site "
            f"number {len(own)}, more than NumPyro's enumeration has dimensions for (each latent "
            "site holds one until the query); use the torch backend, whose elimination plans around "
            "that, or method='importance'") from error
    for name, site in trace.latent.items():
        own[name] = next(d for d, n in site.infer["dim_to_name"].items() if n == name)
    posterior = FunsorPosterior(trace, own)
    if not math.isfinite(posterior.log_evidence):
        raise ValueError("exact enumeration: the evidence has probability zero under the program")
    return posterior
