"""Particles by ``jax.vmap`` on the JAX backend: the program runs as written for one
particle, mapped over ``num`` keys, and the trace is laid out as a particle plate would
lay it out (log densities ``[num, 1.., *batch]`` with the particles at ``dim``).

For programs that do not broadcast over an extra batch dimension: NumPyro's
``AutoContinuous`` guides (their flat latent is unpacked by reshaping), ``x @ w`` with
``w`` a sample. Values keep the mapped layout ``[num, *single-run shape]``, which is what a
mapped model replays; subsampled plates draw their indices in each particle.

    >>> import jax, jax.numpy as jnp, ppl, ppl.distributions as dist
    >>> with ppl.backend("jax") as backend:
    ...     def model():
    ...         w = ppl.sample("w", dist.Normal(jnp.zeros(3), 1.0).to_event(1))
    ...         with ppl.plate("data", 2):
    ...             ppl.sample("y", dist.Normal(jnp.ones((2, 3)) @ w, 1.0), obs=jnp.zeros(2))
    ...     trace = backend.run(model, particles=(4, -2, "vmap"), rng=jax.random.PRNGKey(0))
    >>> trace["w"].value.shape, trace["y"].log_prob.shape, trace["w"].log_prob.shape
    ((4, 3), (4, 2), (4, 1))
"""

import jax

from ..trace_view import Site, Trace


def run_mapped(backend, fn, args, kwargs, replay, draw, adjust, particles, params, rng):
    """``backend.run`` of one particle, mapped over ``particles[0]`` keys (see the module)."""
    num, dim = particles[0], particles[1]
    plate_dims = -dim - 1
    replay = dict(replay or {})
    keys = jax.random.split(rng, num)
    seen = {}

    def one(key, replayed):
        trace = backend.run(fn, args, kwargs, replay=replayed, draw=draw, adjust=adjust,
                            params=params, rng=key)
        seen["trace"] = trace  # the static parts: names, plates, infer, scale
        sites = {name: (site.value, site.log_prob, site.fn) for name, site in trace.sites.items()}
        return sites, trace.deterministics, trace.subsamples

    sites, deterministics, subsamples = jax.vmap(one)(keys, replay)
    single = seen["trace"]
    out = {}
    for name, template in single.sites.items():
        value, log_prob, fn = sites[name]
        # the plate's layout: the particles at dim, the site's batch dims right-aligned
        lead = plate_dims - (log_prob.ndim - 1)
        laid_out = log_prob.reshape((num,) + (1,) * lead + log_prob.shape[1:])
        out[name] = Site(name=name, value=value, fn=fn, observed=template.observed,
                         plates=template.plates, infer=template.infer, scale=template.scale,
                         _log_prob=laid_out)
    trace = Trace(out, single.params, deterministics, None, backend)
    trace.param_constraints = getattr(single, "param_constraints", {})
    trace.subsamples = subsamples
    return trace
