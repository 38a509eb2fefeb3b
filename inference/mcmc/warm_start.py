"""A warm start for MCMC from a fitted strategy's draws (a VI guide's, say): where each
chain begins, and the mass matrix's starting diagonal.

The sampler moves in an unconstrained space (each site mapped to the reals by its
support's bijection); the diagonal is the variance of the draws there, site by site in
sorted order, flattened, which is the layout both Pyro's and NumPyro's diagonal mass
matrices use. A point-mass fit (no spread) leaves the mass matrix at the identity.

    >>> import torch
    >>> import pyro.distributions as dist
    >>> from ppl.backends.torch import BACKEND
    >>> def model():
    ...     BACKEND.primitives.sample("scale", dist.LogNormal(0.0, 1.0))
    >>> trace = BACKEND.run(model)
    >>> draws = {"scale": torch.exp(torch.tensor([-1.0, 0.0, 1.0]))}   # log scale: -1, 0, 1
    >>> start = warm_start(BACKEND.ops, trace, draws, num_chains=2)
    >>> [round(float(v), 4) for v in start["inverse_mass"]], len(start["init"])
    ([0.6667], 2)
"""

import numpy as np

from ppl.errors import ShapeError, SiteError, UnsupportedError


def warm_start(ops, trace, draws, num_chains):
    """{"init": per chain {site: constrained value}, "init_unconstrained": the same
    unconstrained, "inverse_mass": the flat diagonal or None} for the continuous latent
    sites of ``trace`` (a dry run of the model), from ``draws`` (site -> ``[n, ...]``)."""
    sites = _continuous(trace)
    unconstrained, constrained = {}, {}
    for name in sites:
        if name not in draws:
            raise SiteError(f"MCMC: the warm start's draws lack latent site {name!r} (they have "
                            f"{sorted(draws)}); fit a guide that covers every continuous latent "
                            "site", site=name)
        value, expected = draws[name], tuple(getattr(trace.latent[name].value, "shape", ()))
        if tuple(value.shape[1:]) != expected:
            raise ShapeError(f"MCMC: the warm start's draws of site {name!r} have shape "
                             f"{tuple(value.shape[1:])} each, but the model's site has shape "
                             f"{expected}", site=name)
        constrained[name] = ops.to_numpy(value)
        unconstrained[name] = ops.to_numpy(ops.to_unconstrained(trace.latent[name].fn.support, value))
    num = len(next(iter(constrained.values()))) if sites else 0
    pick = np.linspace(0, num - 1, num_chains).round().astype(int) if num else []
    variance = (np.concatenate([unconstrained[n].reshape(num, -1).var(0) for n in sites])
                if num > 1 else np.zeros(0))
    return {
        "init": [{n: constrained[n][i] for n in sites} for i in pick],
        "init_unconstrained": [{n: unconstrained[n][i] for n in sites} for i in pick],
        "inverse_mass": variance if variance.size and np.all(variance > 0) else None,
    }


def continuation(ops, trace, result):
    """The start that continues ``result``'s chains: each from its last draw, with its
    adapted step size (``step_size``: adaptation off) and diagonal mass matrix."""
    if "inverse_mass" not in result.extra:
        raise UnsupportedError("MCMC.resume of chains whose mass matrix is not diagonal")
    sites = _continuous(trace)
    chains = result.diverging.shape[0]
    init = [{n: result.by_chain[n][c, -1] for n in sites} for c in range(chains)]
    return {
        "init": init,
        "init_unconstrained": [{n: ops.to_numpy(ops.to_unconstrained(trace.latent[n].fn.support,
                                                                     ops.asarray(v)))
                                for n, v in start.items()} for start in init],
        "inverse_mass": result.extra["inverse_mass"],
        "step_size": result.step_size,
    }


def _continuous(trace):
    return sorted(name for name, site in trace.latent.items()
                  if not getattr(site.fn.support, "is_discrete", False))
