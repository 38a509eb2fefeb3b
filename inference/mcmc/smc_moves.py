"""Rejuvenation after an SMC sweep (resample-move at the end): the final particles are
resampled by their weights, then every latent site of every particle takes
``rejuvenation_steps`` Metropolis-Hastings moves targeting the full posterior.

A move of site s proposes a fresh draw from the model's own conditional p(z_s | its
parents), so the acceptance ratio is the joint density of every other site, new against
old: each move is one vectorised run of the program replaying every other site's value
(the current state's log densities are kept, site by site, and updated where accepted).
The moves leave the posterior invariant; they restore the diversity of the early
steps' values, which resampling leaves with few distinct ancestors (the smoothing
distribution of z_0, say), at the cost of one program run per site and step. The
evidence estimate is the sweep's, untouched.

    >>> import ppl
    >>> from inference import SMC
    >>> from models.state_space import linear_gaussian_data, linear_gaussian_model
    >>> ys = linear_gaussian_data(8, seed=0)
    >>> plain = SMC(linear_gaussian_model, 500, ess_threshold=1.0, rng_seed=0).run(ys)
    >>> moved = SMC(linear_gaussian_model, 500, ess_threshold=1.0, rejuvenation_steps=2,
    ...             rng_seed=0).run(ys)
    >>> distinct = [len(set(r.samples["z_0"].tolist())) for r in (plain, moved)]
    >>> distinct[0] < 100 < distinct[1]   # z_0's values: few ancestors left, then restored
    True
"""

from ..weights import WeightLayout, total_log_weight
from .resampling import ancestors, taken
from .smc_result import SMCResult
from .smc_sweep import to_front


def rejuvenated(smc, result, sweep, args, kwargs):
    """``result``'s particles resampled, then moved ``smc.rejuvenation_steps`` times site by
    site; ``sweep``: the sweep that made them (each latent site's final values, in the run's
    layout, and every recorded site's particle axis)."""
    ops, backend, K = smc.ops, smc.backend, result.num_particles
    final = sweep.final
    index = ancestors(ops, result.normalized_weights, smc.resampling, smc.state.next_key())
    values = {name: taken(ops, value, index, axis) for name, (value, axis) in final.items()}
    particles = (K, -(smc._plates + 1))
    layout = WeightLayout(smc._plates, True)

    def replayed(replay):
        return backend.run(smc.model, args, kwargs, replay=replay, particles=particles,
                           rng=smc.state.next_key(), params=smc.param_values)

    current = _per_site(ops, layout, replayed(values), K)  # the state's log densities, by site
    for _ in range(smc.rejuvenation_steps):
        for site, (_, axis) in final.items():
            new = replayed({n: v for n, v in values.items() if n != site})
            proposed = _per_site(ops, layout, new, K)
            gain = sum(proposed[n] - current[n] for n in current if n != site)
            accept = ops.log(ops.uniform((K,), gain, smc.state.next_key())) < gain
            shape = [1] * ops.ndim(values[site])
            shape[axis] = K
            values[site] = ops.where(ops.reshape(accept, tuple(shape)), new.sites[site].value, values[site])
            current = {n: ops.where(accept, proposed[n], lp) for n, lp in current.items()}
    run = replayed(values)
    samples = {n: to_front(ops, v, final[n][1], None, K) for n, v in values.items()}
    for name, value in run.deterministics.items():
        samples[name] = to_front(ops, value, sweep.recorded[name][1], None, K)
    return SMCResult(ops, ops.zeros((K,), result.log_weights), samples, result.log_evidence,
                     result._relative_variance, result.resampled_at)


def _per_site(ops, layout, trace, num):
    """Each site's log density per particle, summed over its plates: site -> ``[num]``."""
    return {name: ops.broadcast_to(ops.asarray(total_log_weight(ops, layout, [site])), (num,))
            for name, site in trace.sites.items()}

