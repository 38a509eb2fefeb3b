"""Counterfactual draws of whole sites (images, vectors): the distribution of a site's value
in a counterfactual world, as weighted draws with their mean and spread, with the
abduction done by the strategy the caller picks.

``abduction``:

- ``"guide"``: the guide's draws of the noise (an amortised posterior fitted by VI), taken
  as they are (equal weights; as good as the guide);
- ``"importance"``: importance sampling of the counterfactual program with the guide (or
  the prior, without one) as proposal: self-normalised weights, exact as the particles grow;
- ``"mcmc"``: NUTS on the counterfactual program's noise sites (:class:`inference.MCMC`),
  whose draws are then replayed through the worlds.

Weights are over the whole program run, so one query should hold one unit (one image);
``"guide"`` draws each plate element from its own guide distribution and may hold many.
A guide for a counterfactual program samples the noise sites, ``"<site>__noise"``; for a
latent with a standard prior (``z ~ Normal(0, I)``) the noise is the value itself.

    >>> import torch, ppl, ppl.distributions as dist
    >>> def scm():
    ...     x = ppl.sample("x", dist.Normal(0.0, 1.0))
    ...     return ppl.sample("y", dist.Normal(x[..., None] + torch.zeros(3), 0.5).to_event(1))
    >>> draws = counterfactual_draws(scm, {"y": torch.ones(3)}, {"x": 2.0}, "y",
    ...                              abduction="importance", num_particles=20000, rng_seed=0)
    >>> # y's noise held: y' = 2 + (y - x), x | y ~ N(12/13, 1/13): mean 2.08, sd 0.28
    >>> [round(float(v), 1) for v in draws.mean("y")], [round(float(v), 1) for v in draws.sd("y")]
    ([2.1, 2.1, 2.1], [0.3, 0.3, 0.3])
"""

import contextlib
import warnings

import numpy as np

from ppl.backend import backend_of
from ppl.causal import world_value
from ppl.causal.worlds import world_dim
from ppl.causal.world_handler import counterfactual_worlds

from ..importance import Importance
from ..mcmc import MCMC
from .queries import _check_world

ABDUCTIONS = ("guide", "importance", "mcmc")


class CounterfactualDraws:
    """Draws of sites in one world: ``values[site]`` (numpy, ``[S, *site shape]``, the world
    dimension dropped), normalised ``weights`` ``[S]``, and how they were found."""

    def __init__(self, values, weights, abduction):
        self.values = values
        self.weights = weights
        self.abduction = abduction

    @property
    def effective_sample_size(self):
        return float(1.0 / np.sum(self.weights ** 2))

    def mean(self, site):
        """The weighted mean of the site's draws (its counterfactual expectation)."""
        return np.tensordot(self.weights, self.values[site], 1)

    def sd(self, site):
        """The weighted standard deviation of the site's draws: the answer's spread."""
        deviation = self.values[site] - self.mean(site)
        return np.sqrt(np.tensordot(self.weights, deviation ** 2, 1))

    def __repr__(self):
        return (f"CounterfactualDraws({len(self.weights)} draws of {sorted(self.values)}, "
                f"abduction={self.abduction!r}, ess={self.effective_sample_size:.1f})")


def counterfactual_draws(model, evidence, interventions, sites, *args, abduction="importance",
                         guide=None, num_samples=100, num_particles=1000, worlds="twin", world=1,
                         num_warmup=200, rng_seed=None, **kwargs):
    """The distribution of ``sites`` (a name or a list) in counterfactual ``world`` given
    ``evidence`` (and the observations the model makes of its arguments): a
    :class:`CounterfactualDraws` of ``num_samples`` draws (``"guide"``, ``"mcmc"``) or
    ``num_particles`` weighted ones (``"importance"``); for a list of worlds (``worlds="multi"``,
    one abduction shared by every world), a list of them. See the module docstring."""
    if abduction not in ABDUCTIONS:
        raise ValueError(f"counterfactual_draws: abduction must be one of {ABDUCTIONS}, got {abduction!r}")
    if abduction == "guide" and guide is None:
        raise ValueError("counterfactual_draws(abduction='guide') needs guide=: a program sampling "
                         "the counterfactual program's noise sites '<site>__noise'")
    for w in [world] if isinstance(world, int) else world:
        _check_world(w, worlds, interventions)
    sites = [sites] if isinstance(sites, str) else list(sites)
    program = counterfactual_worlds(model, evidence, interventions, worlds=worlds)
    backend = backend_of(model)
    # NUTS needs gradients; the other abductions only draw
    with backend.no_grad() if abduction != "mcmc" else contextlib.nullcontext():
        if abduction == "mcmc":
            trace, weights = _mcmc_trace(program, args, kwargs, num_warmup, num_samples, rng_seed)
        else:
            count = num_samples if abduction == "guide" else num_particles
            result = Importance(program, guide, num_particles=count, rng_seed=rng_seed,
                                vectorize_particles=True).run(*args, **kwargs)
            trace = result.trace
            weights = (np.full(count, 1.0 / count) if abduction == "guide" else
                       result.ops.to_numpy(result.normalized_weights).astype(np.float64))
    count = len(weights)
    answers = [CounterfactualDraws({site: _world_draws(trace, site, w, count) for site in sites},
                                   weights, abduction)
               for w in ([world] if isinstance(world, int) else world)]
    ess = answers[0].effective_sample_size
    if abduction == "importance" and ess < min(10.0, count / 10):
        warnings.warn(f"counterfactual_draws: the importance weights' effective sample size is "
                      f"{ess:.1f} of {count} particles, so the answer rests on a few draws; weights "
                      "are over the whole program, so ask one query per unit (one image), and use a "
                      "proposal closer to the posterior (a fitted guide) or more particles",
                      RuntimeWarning, stacklevel=2)
    return answers[0] if isinstance(world, int) else answers


def _mcmc_trace(program, args, kwargs, num_warmup, num_samples, rng_seed):
    """NUTS draws of the program's latent (noise) sites, replayed through every world at
    once on a particle plate."""
    # (torch: the worlds' handler reads values in Python, which torch.jit.trace cannot follow)
    mcmc = MCMC(program, num_warmup=num_warmup, num_samples=num_samples, rng_seed=rng_seed,
                jit_compile=False)
    result = mcmc.run(*args, progress=False, **kwargs)
    backend = backend_of(program.model)
    nesting = program.plate_nesting(args, kwargs) + 1  # the model's plates and the worlds'
    replay = {name: backend.ops.asarray(draws) for name, draws in result.samples.items()}
    with backend.no_grad():
        trace = backend.run(program, args, kwargs, replay=replay,
                            particles=(num_samples, -(nesting + 1)))
    return trace, np.full(num_samples, 1.0 / num_samples)


def _world_draws(trace, site, world, count):
    """The site's value in ``world`` as ``[count, *shape]`` numpy draws, world dim dropped."""
    ops = trace.backend.ops
    value = ops.to_numpy(world_value(trace, site, world))
    event = len(trace[site].fn.event_shape) if site in trace.sites else 0
    axis = value.ndim + world_dim(trace) - event  # world_value keeps it, as size 1
    if 0 <= axis < value.ndim and value.shape[axis] == 1:
        value = np.squeeze(value, axis)
    if value.shape[:1] != (count,):  # the same in every draw (evidence, an intervention)
        value = np.broadcast_to(value, (count,) + value.shape)
    return value
