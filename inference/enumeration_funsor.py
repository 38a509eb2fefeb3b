"""Model-side enumeration on JAX: the sum over enumerated sites by funsor's plated
sum-product (the machinery of NumPyro's ``TraceEnum_ELBO``), each site's log density named
by the ``dim_to_name`` that the JAX backend records while enumerating
(:mod:`ppl.backends.jax_enum`).

    >>> import math, jax.numpy as jnp, ppl, ppl.distributions as dist
    >>> from inference import VI
    >>> with ppl.backend("jax"):
    ...     def model():
    ...         c = ppl.sample("c", dist.Bernoulli(0.3), infer={"enumerate": "parallel"})
    ...         ppl.sample("x", dist.Normal(2.0 * c, 1.0), obs=jnp.array(0.5))
    ...     loss = VI(model, lambda: None).loss()
    >>> def normal(x, loc):
    ...     return math.exp(-0.5 * (x - loc) ** 2) / math.sqrt(2 * math.pi)
    >>> abs(loss + math.log(0.7 * normal(0.5, 0.0) + 0.3 * normal(0.5, 2.0))) < 1e-5
    True
"""

from ppl.errors import UnsupportedError


def log_joint(sites, enumerated, keep):
    """log sum over the ``enumerated`` sites of the product of the ``sites``' densities: an
    array over the plates named in ``keep`` that the sites use (in that order),
    product-reduced over every other plate; and the names of those kept. A scale common to
    every site (a ``scale`` handler around the program) is applied to the log of the sum;
    otherwise the enumerated sites must have scale 1 (other sites' scales stay inside)."""
    import funsor

    sites = list(sites)
    scale = _common_scale(sites, enumerated)
    factors, plates = [], set()
    for site in sites:
        log_prob = site.log_prob if scale == 1.0 else site.log_prob / scale
        factors.append(funsor.to_funsor(log_prob, output=funsor.Real, dim_to_name=site.infer["dim_to_name"]))
        plates |= {p.name for p in site.plates if p.dim is not None}
    kept = [name for name in keep if name in plates]
    reduced = frozenset(plates - set(kept))
    with funsor.interpretations.lazy:
        lazy = funsor.sum_product.sum_product(funsor.ops.logaddexp, funsor.ops.add, factors,
                                              eliminate=frozenset(enumerated) | reduced, plates=reduced)
    result = funsor.optimizer.apply_optimizer(lazy)
    data = result.data
    if kept:  # funsor orders the kept plates by name: lay them out as asked
        order = list(result.inputs)
        data = data.transpose([order.index(name) for name in kept])
    return data * scale if scale != 1.0 else data, kept


def marginal_terms(sites, enumerated, guide_enumerated=None):
    """The model's log densities with its ``enumerated`` sites summed out while the guide's
    enumerated sites (``guide_enumerated``: name -> dim) stay, one term per connected group
    and plate context (funsor's ``partial_sum_product``), each laid out by dimension as a
    site's log density is (``log_prob``, ``plates``, a ``name``); the sites no sum involves,
    as they are. The JAX side of :func:`inference.enumeration.marginal_terms`."""
    import funsor

    from .enumeration import MarginalTerm, PlateDim

    sites = list(sites)
    scale = _common_scale(sites, enumerated)
    # a guide's enumerated value reaches the model on its own dimension, which the model's run
    # named afresh: name it after the guide's site, to be kept (the guide weights it)
    guide_name = {dim: f"_guide.{name}" for name, dim in (guide_enumerated or {}).items()}
    named = [{dim: guide_name.get(dim, name) for dim, name in s.infer["dim_to_name"].items()} for s in sites]
    involved = [i for i, names in enumerate(named) if set(enumerated) & set(names.values())]
    plate_dim = {p.name: p.dim for s in sites for p in s.plates if p.dim is not None}
    factors = [funsor.to_funsor(sites[i].log_prob if scale == 1.0 else sites[i].log_prob / scale,
                                output=funsor.Real, dim_to_name=named[i]) for i in involved]
    with funsor.interpretations.lazy:
        lazy = funsor.sum_product.partial_sum_product(funsor.ops.logaddexp, funsor.ops.add, factors,
                                                      eliminate=frozenset(enumerated),
                                                      plates=frozenset(plate_dim))
    name_to_dim = dict(plate_dim, **{name: dim for dim, name in guide_name.items()})
    label = f"the sum over enumerated sites {sorted(enumerated)}"
    terms = [site for i, site in enumerate(sites) if i not in set(involved)]
    for term in lazy:
        term = funsor.optimizer.apply_optimizer(term)
        data = funsor.to_data(term, name_to_dim={name: name_to_dim[name] for name in term.inputs})
        plates = tuple(PlateDim(name, plate_dim[name]) for name in term.inputs if name in plate_dim)
        terms.append(MarginalTerm(label, data * scale if scale != 1.0 else data, plates))
    return terms


def _common_scale(sites, enumerated):
    scales = {float(s.scale) for s in sites if s.scale is not None}
    if all(s.scale is not None for s in sites) and len(scales) == 1:
        return scales.pop()
    for site in sites:
        if site.name in enumerated and site.scale is not None and float(site.scale) != 1.0:
            raise UnsupportedError(f"site {site.name!r}: model-side enumeration inside a subsampled "
                                   "(scaled) plate beside sites of another scale", backend="jax",
                                   hint="enumerate in a plate without subsample_size")
    return 1.0


def sequential_discrete_posterior(backend, program, values, args, kwargs, nesting, temperature,
                                  params, rng):
    """One joint draw (``temperature=1``) or the MAP assignment (``temperature=0``) of the
    enumerated sites of ``program`` (with ``values`` replayed), one site at a time in program
    order: each from its marginal (or max-marginal) given the sites decoded before it, the
    later ones summed (or maximised) out by funsor's plated sum-product. Memory stays linear
    along a ``ppl.markov`` chain (NumPyro's decoder's grew exponentially with it); time is
    one run of the program per site. Site name -> value."""
    import funsor
    import jax

    sum_op = funsor.ops.logaddexp if temperature else funsor.ops.max
    replayed = backend.handlers.replay(program, values=values)
    decoded = {}
    while True:
        rng, run_key, draw_key = jax.random.split(rng, 3)
        conditioned = backend.handlers.condition(replayed, data=decoded) if decoded else replayed
        trace = backend.run(conditioned, args, kwargs, params=params, rng=run_key,
                            enumerate_from=-(nesting + 1))
        pending = [s for s in trace.sites.values() if not s.observed and s.name not in decoded
                   and s.infer.get("enumerate") == "parallel"]
        if not pending:
            return decoded
        site = pending[0]
        own = next(d for d, n in site.infer["dim_to_name"].items() if n == site.name)
        plates = {p.name: p.dim for s in trace.sites.values() for p in s.plates if p.dim is not None}
        kept_plates = {p.name for p in site.plates if p.dim is not None}
        factors = [funsor.to_funsor(s.log_prob, output=funsor.Real, dim_to_name=s.infer["dim_to_name"])
                   for s in trace.sites.values()]
        eliminate = (frozenset(s.name for s in pending[1:]) | frozenset(plates)) - kept_plates
        with funsor.interpretations.lazy:
            lazy = funsor.sum_product.sum_product(sum_op, funsor.ops.add, factors,
                                                  eliminate=eliminate, plates=frozenset(plates))
        table = funsor.optimizer.apply_optimizer(lazy)
        name_to_dim = {name: plates[name] for name in kept_plates}
        name_to_dim[site.name] = own
        logits = funsor.to_data(table, name_to_dim={n: name_to_dim[n] for n in table.inputs})
        if temperature:
            value = jax.random.categorical(draw_key, logits, axis=own)
        else:
            value = jax.numpy.argmax(logits, axis=own)
        depth = max((-plates[name] for name in kept_plates), default=0)
        decoded[site.name] = value.reshape(value.shape[value.ndim - depth:] if depth else ())
