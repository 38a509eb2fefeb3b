"""Markov chains on torch: Pyro's own ``NUTS`` or ``HMC`` kernel (``jit_compile`` by
default), one chain after another in this process (Pyro runs several chains in worker
processes, which need a picklable model: a closure or a lambda is not), and the
deterministic sites recomputed from each draw (Pyro's ``get_samples`` drops them)."""

import numpy as np
from pyro.infer import HMC, MCMC, NUTS, Predictive

KERNELS = {"nuts": NUTS, "hmc": HMC}


def run_chains(model, args, kwargs, kernel, num_warmup, num_samples, num_chains, options,
               progress, deterministic):
    """(name -> draws ``[chains, draws, ...]`` as numpy, extra fields: ``diverging``
    ``[chains, draws]``, ``step_size`` ``[chains]``, ``acceptance_rate`` ``[chains]``)."""
    chains, diverging, step_sizes, acceptance = [], [], [], []
    for _ in range(num_chains):
        sampler = KERNELS[kernel](model, **options)
        mcmc = MCMC(sampler, num_samples=num_samples, warmup_steps=num_warmup,
                    disable_progbar=not progress)
        mcmc.run(*args, **kwargs)
        draws = mcmc.get_samples()
        if deterministic:  # name -> its shape in one run
            recomputed = Predictive(model, posterior_samples=draws,
                                    return_sites=list(deterministic))(*args, **kwargs)
            draws.update({n: recomputed[n].reshape((num_samples,) + tuple(shape))
                          for n, shape in deterministic.items()})
        chains.append({n: v.detach().cpu().numpy() for n, v in draws.items()})
        stats = mcmc.diagnostics()
        flags = np.zeros(num_samples, dtype=bool)
        flags[[int(i) for i in stats["divergences"]["chain 0"]]] = True
        diverging.append(flags)
        acceptance.append(float(stats["acceptance rate"]["chain 0"]))
        step_sizes.append(float(sampler.step_size))
    samples = {n: np.stack([c[n] for c in chains]) for n in chains[0]}
    extra = {"diverging": np.stack(diverging), "step_size": np.array(step_sizes),
             "acceptance_rate": np.array(acceptance)}
    return samples, extra

