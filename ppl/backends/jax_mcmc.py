"""Markov chains on JAX: NumPyro's own ``NUTS`` or ``HMC`` kernel, several chains
vectorised in one compiled sampler (``chain_method="vectorized"``: one CPU device here),
deterministic sites included, with the divergences, step sizes and trajectory lengths."""

import jax.numpy as jnp
import numpy as np
from numpyro.infer import HMC, MCMC, NUTS

KERNELS = {"nuts": NUTS, "hmc": HMC}


def run_chains(model, args, kwargs, kernel, num_warmup, num_samples, num_chains, options,
               progress, deterministic, key):  # NumPyro keeps deterministic sites itself
    """(name -> draws ``[chains, draws, ...]`` as numpy, extra fields: ``diverging``
    ``[chains, draws]``, ``step_size`` ``[chains]``, ``num_steps`` ``[chains, draws]``)."""
    options = {k: v for k, v in options.items()  # NumPyro finds the nesting itself
               if k not in ("jit_compile", "ignore_jit_warnings", "max_plate_nesting")}
    warm, init_params = options.pop("warm_start", None), None
    if warm is not None:
        if warm["inverse_mass"] is not None:  # the sites in sorted order, as NumPyro ravels them
            options["inverse_mass_matrix"] = jnp.asarray(warm["inverse_mass"])
        starts = warm["init_unconstrained"]
        init_params = ({n: jnp.asarray(v) for n, v in starts[0].items()} if num_chains == 1 else
                       {n: jnp.asarray(np.stack([s[n] for s in starts])) for n in starts[0]})
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
    return samples, extra
