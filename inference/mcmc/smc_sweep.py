"""One SMC sweep's bookkeeping, as a handler on the program's vectorised run: the weights,
where to resample, how a resampling point's site is drawn, each recorded value's ancestry.

    >>> import torch, ppl, ppl.distributions as dist
    >>> from inference import SMC
    >>> def model(y):
    ...     z = ppl.sample("z", dist.Normal(0.0, 1.0))
    ...     ppl.sample("y", dist.Normal(z, 0.1), obs=y)
    ...     return ppl.sample("w", dist.Normal(z, 1.0))
    >>> result = SMC(model, num_particles=500, rng_seed=0).run(torch.tensor(1.0))
    >>> result.resampled_at   # the evidence at y leaves few particles: resampled at w
    ['w']
"""

import math

import numpy as np

from ppl.errors import NonFiniteError
from ppl.site_handler import SiteHandler

from ..weights import WeightLayout, total_log_weight
from .resampling import ancestors, copy_ranks, taken
from .smc_proposal import ancestral_log_prob
from .smc_result import SMCResult, relative_variance


class Sweep(SiteHandler):
    """One sweep's bookkeeping, as a handler on the vectorised run: the weights, where to
    resample, each recorded value's ancestry."""

    def __init__(self, smc, num, key, guide=None):
        self.ops, self.backend, self.P, self.K = smc.ops, smc.backend, smc._plates, num
        self.guide = guide  # site -> (proposed values, log q [K]), or None: the prior
        self.proposed = {}  # latent sites drawn from the guide, still to be weighed
        self.scheme, self.threshold, self.key = smc.resampling, smc.ess_threshold, key
        self.indexable = smc._indexable  # distribution kind -> whether ops.index_batch serves it
        self.log_w = 0.0
        self.log_z = 0.0
        self.evidence = {}  # observed sites since the last latent one
        self.last_evidence_new = False  # whether evidence came in since the last latent site
        self.lineage = []  # each resampling's ancestor indices
        self.recorded = {}  # name -> (msg or value, particle axis, resamplings before it)
        self.eve = None
        self.resampled_at = []

    def process_sample(self, msg):
        if msg["is_observed"] or (msg.get("infer") or {}).get("_deterministic"):
            return
        # the weights are brought up to date only where they decide a resampling (and at
        # the end): guide-drawn sites wait until then
        resampling = False
        if self.last_evidence_new:
            self._weigh()
            resampling = self._ess() < self.threshold * self.K
        if resampling:
            self._resample(msg)
        elif self.guide is not None:
            msg["value"] = self.guide[msg["name"]][0]
            self.proposed[msg["name"]] = msg
        self.last_evidence_new = False

    def postprocess_sample(self, msg):
        fn = msg["fn"]
        if (msg.get("infer") or {}).get("_deterministic"):  # torch's deterministic sites
            self.process_deterministic({"name": msg["name"], "value": msg["value"],
                                        "event_dim": len(fn.event_shape)})
        elif msg["is_observed"]:
            self.evidence[msg["name"]] = msg
            self.last_evidence_new = True
        else:
            self.recorded[msg["name"]] = (msg, len(fn.batch_shape) - (self.P + 1), len(self.lineage))

    def process_deterministic(self, msg):
        value = msg["value"]
        axis = _particle_axis(getattr(value, "shape", ()), msg.get("event_dim"), self.P, self.K)
        self.recorded[msg["name"]] = (value, axis, len(self.lineage))

    def _next_key(self):
        if self.key is None:
            return None
        self.key, key = self.backend.split_rng(self.key)
        return key

    def _weigh(self):
        """Add the log densities of the sites met since the last weighing: observed sites,
        and latent ones drawn from the guide (log p - log q)."""
        view = self.backend.to_trace(_Sites({**self.evidence, **self.proposed}))
        log_w = self.log_w + total_log_weight(self.ops, WeightLayout(self.P, True), view.sites.values())
        for name in self.proposed:
            log_w = log_w - self.guide[name][1]
        self.log_w = self.ops.broadcast_to(log_w, (self.K,))
        if self.evidence:
            self.last_evidence = list(self.evidence)
        self.evidence, self.proposed = {}, {}

    def _ess(self):
        ops = self.ops
        self.lse = ops.item(ops.logsumexp(self.log_w, 0))
        if not math.isfinite(self.lse):
            raise NonFiniteError(f"SMC: after site {self.last_evidence[-1]!r} every one of the {self.K} "
                                 "particles has weight zero (or one is infinite): the evidence has "
                                 "probability zero under every particle; draw more particles or check "
                                 "the observations against the model")
        return math.exp(2 * self.lse - ops.item(ops.logsumexp(2 * self.log_w, 0)))

    def _resample(self, msg):
        """Resample, and draw ``msg``'s site for each new particle from its ancestor's
        distribution (the copies of one ancestor independently)."""
        ops, K = self.ops, self.K
        index = ancestors(ops, ops.exp(self.log_w - self.lse), self.scheme, self._next_key())
        fn = msg["fn"]
        axis = len(fn.batch_shape) - (self.P + 1)  # the particle axis of a value
        indexed = self._indexed(fn, index, axis)
        if self.guide is not None:  # each new particle's own proposal, scored by its ancestor
            value, log_q = self.guide[msg["name"]]
            msg["value"] = value
            drawn = ancestral_log_prob(ops, msg, value, index, axis, indexed) - log_q
        elif indexed is not None:
            msg["value"] = ops.sample_n(indexed, 1, self._next_key())[0]
        else:  # as many draws of the whole batch as the most copied ancestor has copies
            ranks = copy_ranks(ops, index)
            copies = int(ops.item(ops.amax(ranks))) + 1
            draws = ops.moveaxis(ops.sample_n(fn, copies, self._next_key()), axis + 1, 1)
            msg["value"] = ops.moveaxis(draws[ranks, index], 0, axis)
        self.log_z += self.lse - math.log(K)
        self.eve = index if self.eve is None else self.eve[index]
        self.lineage.append(index)
        self.log_w = ops.zeros((K,), self.log_w)
        if self.guide is not None:
            self.log_w = self.log_w + drawn
        self.resampled_at.append(msg["name"])

    def _indexed(self, fn, index, axis):
        """``fn`` taken at the ancestors (``ops.index_batch``), where that gives, for a kind
        of distribution checked once, the log densities of ``fn`` at those particles."""
        kind = _kind(fn)
        if self.indexable.get(kind) is False:
            return None
        indexed = self.ops.index_batch(fn, index, axis)
        if indexed is not None and kind not in self.indexable:
            ops = self.ops
            probe = ops.sample_n(fn, 1, self._next_key())[0]
            expected = ops.to_numpy(taken(ops, fn.log_prob(probe), index, axis))
            scored = ops.to_numpy(indexed.log_prob(taken(ops, probe, index, axis)))
            self.indexable[kind] = bool(np.allclose(scored, expected, rtol=1e-5, atol=1e-5))
            if not self.indexable[kind]:
                return None
        return indexed

    def result(self):
        ops, K = self.ops, self.K
        if self.evidence or self.proposed:
            self._weigh()
        log_w = self.log_w if not isinstance(self.log_w, float) else None
        # composed[r]: where the particles' values recorded after r resamplings end up
        composed = [None] * (len(self.lineage) + 1)
        for r in range(len(self.lineage) - 1, -1, -1):
            later = composed[r + 1]
            composed[r] = self.lineage[r] if later is None else self.lineage[r][later]
        samples = {}
        self.final = {}  # latent site -> (its values with their ancestry, in the run's layout, axis)
        for name, (source, axis, r) in self.recorded.items():
            value = source["value"] if isinstance(source, dict) else source
            samples[name] = to_front(ops, value, axis, composed[r], K)
            if isinstance(source, dict):
                self.final[name] = (ops.moveaxis(samples[name], 0, axis), axis)
        if log_w is None:  # nothing observed: every weight 1
            log_w = ops.zeros((K,), ops.asarray([0.0]))
        eve = self.eve if self.eve is not None else ops.arange(K)
        log_evidence = self.log_z + ops.item(ops.logsumexp(log_w, 0)) - math.log(K)
        relative = (relative_variance(ops, log_w, eve, len(self.lineage))
                    if self.scheme == "multinomial" and K > 1 else None)
        return SMCResult(ops, log_w, samples, log_evidence, relative, self.resampled_at)


def _kind(fn):
    """A distribution's classes down its chain of base distributions."""
    kinds = []
    while fn is not None:
        kinds.append(type(fn))
        fn = getattr(fn, "base_dist", None)
    return tuple(kinds)


class _Sites:
    """The fields of a Recorder that ``backend.to_trace`` reads, for a few messages."""

    def __init__(self, sites):
        self.sites, self.params, self.deterministics = sites, {}, {}
        self.subsamples, self.param_constraints, self.plate_sizes = {}, {}, {}


def _particle_axis(shape, event_dim, plates, num):
    """Where the particle axis of a deterministic value lies (None: it does not vary)."""
    for event in ((event_dim,) if event_dim is not None else ()) + (0,):
        axis = len(shape) - event - (plates + 1)
        if 0 <= axis < len(shape) and shape[axis] == num:
            return axis
    return None


def to_front(ops, value, axis, index, num):
    """``value`` laid out ``[num, ...]``, its particles taken at ``index`` (None: as they are)."""
    if axis is None:
        value = ops.asarray(value)
        return ops.broadcast_to(value, (num,) + tuple(value.shape))
    value = ops.moveaxis(value, axis, 0)
    return value if index is None else value[index]
