"""Exact queries on JAX: every latent site enumerated by NumPyro's funsor handlers (on a
dimension of its own, plates named), and sums taken by funsor's plated sum-product, the
machinery of NumPyro's ``TraceEnum_ELBO`` (the torch path, :mod:`inference.exact.queries`,
has its own variable elimination; ``ARCHITECTURE.md`` says why the two differ).

    >>> import ppl, ppl.distributions as dist
    >>> from inference.exact import enumerate_program
    >>> def coin():
    ...     bias = ppl.sample("bias", dist.Bernoulli(0.5))
    ...     ppl.sample("flip", dist.Bernoulli(0.2 + 0.6 * bias), obs=1.0)
    >>> with ppl.backend("jax"):
    ...     posterior = enumerate_program(coin)
    ...     print(round(posterior.expectation(lambda tr: tr["bias"].value), 3),
    ...           round(float(posterior.log_evidence), 4))
    0.8 -0.6931
"""

import math

import numpy as np

from ppl.errors import UnsupportedError

from .elimination import NotEnumerableError


class FunsorPosterior:
    """The enumerated trace of a program on JAX and exact queries on it (the same queries as
    the torch :class:`~inference.exact.queries.EnumeratedPosterior`)."""

    def __init__(self, trace, own_dims):
        self.trace = trace
        self._own = own_dims  # latent site -> its enumeration dim
        self._sites = list(trace.sites.values())
        self._plates = frozenset(p.name for s in self._sites for p in s.plates if p.dim is not None)

    def _sum(self, keep):
        """log of the joint summed over every latent site but those in ``keep`` (a funsor
        over their names), the plates product-reduced."""
        import funsor

        factors = [_to_funsor(s) for s in self._sites]
        eliminate = (frozenset(self._own) - frozenset(keep)) | self._plates
        with funsor.interpretations.lazy:
            lazy = funsor.sum_product.sum_product(funsor.ops.logaddexp, funsor.ops.add, factors,
                                                  eliminate=eliminate, plates=self._plates)
        return funsor.optimizer.apply_optimizer(lazy)

    @property
    def log_evidence(self):
        """log p(evidence), the latent sites summed out."""
        return float(self._sum(()).data)

    def _weighted(self, fn):
        """(values, normalised probabilities) on the grid of the latent sites ``fn`` reads."""
        import funsor
        import jax.numpy as jnp

        values = jnp.asarray(fn(self.trace))
        spans = [name for name, dim in self._own.items()
                 if values.ndim >= -dim and values.shape[dim] > 1]
        # a latent site inside a plate has a value per element: summing the plate out while
        # keeping the site would answer for one value shared by every element (wrong)
        plated = [name for name in spans if any(p.dim is not None for p in self.trace[name].plates)]
        if plated or any(values.ndim >= -d and values.shape[d] > 1 for d in self._plate_dims()):
            what = f"latent site {plated[0]!r}, which lies in a plate" if plated else "a value inside a plate"
            raise UnsupportedError(f"an exact query of {what}", backend="jax",
                                   hint="the torch backend answers it per element; or query a site "
                                   "outside plates, or use method='importance'")
        table = self._sum(spans)
        log_p = funsor.to_data(table, name_to_dim={name: self._own[name] for name in table.inputs})
        probs = jnp.exp(log_p - jnp.max(log_p))
        probs = probs / jnp.sum(probs)
        shape = jnp.broadcast_shapes(jnp.shape(probs), values.shape)
        return jnp.broadcast_to(values, shape), jnp.broadcast_to(probs, shape)

    def _plate_dims(self):
        return {p.dim for s in self._sites for p in s.plates if p.dim is not None}

    def expectation(self, fn):
        """E[fn(trace)] under the posterior."""
        values, probs = self._weighted(fn)
        return float(np.sum(np.asarray(probs, np.float64) * np.asarray(values, np.float64)))

    def distribution(self, fn):
        """{value: probability} of ``fn(trace)`` under the posterior."""
        values, probs = self._weighted(fn)
        table = {}
        probs = np.asarray(probs, np.float64).reshape(-1)
        for value, p in zip(np.asarray(values).reshape(-1).tolist(), probs):
            table[value] = table.get(value, 0.0) + float(p)
        return dict(sorted(table.items()))

    def marginal(self, name):
        """P(site = k) for a latent site's values, ``[support]`` (as on torch)."""
        import jax.numpy as jnp

        if name not in self._own:
            raise ValueError(f"exact enumeration: {name!r} is not an enumerated latent site "
                             f"(latent sites: {sorted(self._own)})")
        _, probs = self._weighted(lambda trace: trace[name].value)
        return jnp.reshape(probs, (-1,))


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
