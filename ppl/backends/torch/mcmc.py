"""Markov chains on torch: Pyro's own ``NUTS`` or ``HMC`` kernel (``jit_compile`` by
default), one chain after another in this process (Pyro runs several chains in worker
processes, which need a picklable model: a closure or a lambda is not), and the
deterministic sites recomputed from each draw (Pyro's ``get_samples`` drops them)."""

import numpy as np
import torch
from pyro.infer import HMC, MCMC, NUTS, Predictive
from pyro.infer.autoguide.initialization import init_to_value

def _warm_kernel(kernel, inverse_mass):
    """``kernel``'s class whose mass matrix starts at the diagonal ``inverse_mass`` (the
    sites in sorted order, as Pyro lays them out), its first step size found with it
    unless the step size is fixed."""
    class Warm(kernel):
        def _initialize_adapter(self):
            super()._initialize_adapter()
            sites = tuple(sorted(self.initial_params))
            like = next(iter(self.initial_params.values()))
            self.mass_matrix_adapter.inverse_mass_matrix = {
                sites: torch.as_tensor(inverse_mass, dtype=like.dtype, device=like.device)}
            if self._adapter.adapt_step_size:
                self._adapter.reset_step_size_adaptation(self._initial_params)
    return Warm


class _CountedNUTS(NUTS):
    """Pyro's NUTS, noting each transition's tree depth (its number of doublings, as Stan
    and ArviZ count it): Pyro keeps it in a local variable."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.tree_depths, self._nested, self._doublings = [], 0, 0

    def sample(self, params):
        self._doublings = 0
        out = super().sample(params)
        self.tree_depths.append(self._doublings)
        return out

    def _build_tree(self, *args):
        self._nested += 1
        self._doublings += self._nested == 1  # a doubling, not its recursion
        try:
            return super()._build_tree(*args)
        finally:
            self._nested -= 1


KERNELS = {"nuts": _CountedNUTS, "hmc": HMC}


def _chain_kernel(kernel, options, warm, chain):
    """The kernel of chain ``chain`` (a warm start or a continuation applied) and its options."""
    options = dict(options)
    if warm is None:
        return KERNELS[kernel], options
    options["init_strategy"] = init_to_value(
        values={n: torch.as_tensor(v) for n, v in warm["init"][chain].items()})
    if "step_size" in warm:  # a continuation: the adapted kernel, adaptation off
        options.update(step_size=float(warm["step_size"][chain]), adapt_step_size=False,
                       adapt_mass_matrix=False)
    mass = warm["inverse_mass"]
    if mass is None:
        return KERNELS[kernel], options
    return _warm_kernel(KERNELS[kernel], mass[chain] if np.ndim(mass) == 2 else mass), options


def _diagonal(sampler):
    """The adapted diagonal inverse mass matrix (sorted sites, flattened), or None."""
    blocks = sampler.inverse_mass_matrix
    if len(blocks) != 1 or next(iter(blocks.values())).dim() != 1:
        return None
    return next(iter(blocks.values())).detach().cpu().numpy()


def run_chains(model, args, kwargs, kernel, num_warmup, num_samples, num_chains, options,
               progress, deterministic):
    """(name -> draws ``[chains, draws, ...]`` as numpy, extra fields: ``diverging``
    ``[chains, draws]``, ``step_size`` ``[chains]``, ``acceptance_rate`` ``[chains]``,
    ``inverse_mass`` ``[chains, size]``, with NUTS ``tree_depth`` ``[chains, draws]``)."""
    chains, diverging, step_sizes, acceptance, masses, depths = [], [], [], [], [], []
    options = dict(options)
    warm = options.pop("warm_start", None)
    for chain in range(num_chains):
        kernel_class, chain_options = _chain_kernel(kernel, options, warm, chain)
        sampler = kernel_class(model, **chain_options)
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
        masses.append(_diagonal(sampler))
        if kernel == "nuts":
            depths.append(sampler.tree_depths[-num_samples:])
    samples = {n: np.stack([c[n] for c in chains]) for n in chains[0]}
    extra = {"diverging": np.stack(diverging), "step_size": np.array(step_sizes),
             "acceptance_rate": np.array(acceptance)}
    if all(m is not None for m in masses):
        extra["inverse_mass"] = np.stack(masses)
    if depths:
        extra["tree_depth"] = np.array(depths)
    return samples, extra
