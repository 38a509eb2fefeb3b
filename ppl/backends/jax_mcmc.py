"""Markov chains on JAX: NumPyro's own ``NUTS`` or ``HMC`` kernel, several chains
vectorised in one compiled sampler (``chain_method="vectorized"``: one CPU device here),
deterministic sites included, with the divergences, step sizes and trajectory lengths."""

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer import HMC, MCMC, NUTS

KERNELS = {"nuts": NUTS, "hmc": HMC}


def run_chains(model, args, kwargs, kernel, num_warmup, num_samples, num_chains, options,
               progress, deterministic, key):  # NumPyro keeps deterministic sites itself
    """(name -> draws ``[chains, draws, ...]`` as numpy, extra fields: ``diverging``
    ``[chains, draws]``, ``step_size`` ``[chains]``, ``num_steps`` ``[chains, draws]``,
    ``inverse_mass`` ``[chains, size]``, with NUTS ``tree_depth`` ``[chains, draws]``). A
    continuation (``warm_start`` with step sizes) runs chain after chain, each with its own
    adapted kernel."""
    options = {k: v for k, v in options.items()  # NumPyro finds the nesting itself
               if k not in ("jit_compile", "ignore_jit_warnings", "max_plate_nesting")}
    warm = options.pop("warm_start", None)
    if warm is not None and "step_size" in warm:
        parts = []
        for chain, chain_key in enumerate(jax.random.split(key, num_chains)):
            fixed = dict(options, step_size=float(warm["step_size"][chain]), adapt_step_size=False,
                         adapt_mass_matrix=False,
                         inverse_mass_matrix=jnp.asarray(warm["inverse_mass"][chain]))
            start = {n: jnp.asarray(v) for n, v in warm["init_unconstrained"][chain].items()}
            parts.append(_run(model, args, kwargs, kernel, 0, num_samples, 1, fixed, progress,
                              chain_key, start))
        return ({n: np.concatenate([p[0][n] for p in parts]) for n in parts[0][0]},
                {f: np.concatenate([p[1][f] for p in parts]) for f in parts[0][1]})
    init_params = None
    if warm is not None:
        if warm["inverse_mass"] is not None:  # the sites in sorted order, as NumPyro ravels them
            options["inverse_mass_matrix"] = jnp.asarray(warm["inverse_mass"])
        starts = warm["init_unconstrained"]
        init_params = ({n: jnp.asarray(v) for n, v in starts[0].items()} if num_chains == 1 else
                       {n: jnp.asarray(np.stack([s[n] for s in starts])) for n in starts[0]})
    return _run(model, args, kwargs, kernel, num_warmup, num_samples, num_chains, options,
                progress, key, init_params)


def _run(model, args, kwargs, kernel, num_warmup, num_samples, num_chains, options, progress, key,
         init_params):
    mcmc = MCMC(KERNELS[kernel](model, **options), num_warmup=num_warmup, num_samples=num_samples,
                num_chains=num_chains, progress_bar=progress,
                chain_method="vectorized" if num_chains > 1 else "sequential")
    mcmc.run(key, *args, extra_fields=("diverging", "num_steps", "adapt_state.step_size"),
             init_params=init_params, **kwargs)
    samples = {n: np.asarray(v) for n, v in mcmc.get_samples(group_by_chain=True).items()}
    fields = mcmc.get_extra_fields(group_by_chain=True)
    extra = {"diverging": np.asarray(fields["diverging"]).astype(bool),
             "step_size": np.asarray(fields["adapt_state.step_size"])[:, -1],
             "num_steps": np.asarray(fields["num_steps"])}
    if kernel == "nuts":  # the doublings: a tree of j doublings takes 2^(j-1) to 2^j - 1 steps
        extra["tree_depth"] = np.floor(np.log2(np.maximum(extra["num_steps"], 1))).astype(int) + 1
    mass = mcmc.last_state.adapt_state.inverse_mass_matrix  # {every site, sorted: diagonal}
    if isinstance(mass, dict) and len(mass) == 1:
        mass = next(iter(mass.values()))
    if not isinstance(mass, dict) and np.ndim(mass) == (2 if num_chains > 1 else 1):
        extra["inverse_mass"] = np.asarray(mass).reshape(num_chains, -1)
    return samples, extra
