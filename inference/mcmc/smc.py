"""Sequential Monte Carlo over a program's sample sites, resampling as the evidence comes in.

The K particles go through one vectorised run of the program (a particle plate left of
its plates), each latent site drawn from the prior (a bootstrap filter). Observed sites
multiply the weights; at the next latent site after new evidence, when the effective
sample size has fallen below ``ess_threshold * K``, the particles are resampled: that
site is drawn, for each new particle, from its ancestor's distribution (copies of one
ancestor draw independently), and the values recorded before it take their ancestors'
at the end. The program never sees a resampled past, so SMC checks, by dependency
tracking, that each later site reads earlier steps only through that latent site, as a
Markov chain ``z = sample(f"z_{t}", f(z))`` (or ``ppl.markov``) does; a program that
reads a value from before it (a static parameter, a second-order lag) is refused by name.

    >>> import torch, ppl, ppl.distributions as dist
    >>> from inference import SMC
    >>> def chain(ys):
    ...     z = torch.tensor(0.0)
    ...     for t, y in enumerate(ys):
    ...         z = ppl.sample(f"z_{t}", dist.Normal(0.9 * z, 1.0))
    ...         ppl.sample(f"y_{t}", dist.Normal(z, 0.5), obs=y)
    >>> result = SMC(chain, num_particles=2000, rng_seed=0).run(torch.tensor([0.3, -0.2, 1.1]))
    >>> abs(result.log_evidence - -3.8322) < 4 * result.log_evidence_stderr  # the Kalman filter's
    True

The evidence estimate is sum over resampling epochs of log mean weight (unbiased for
p(x) on its natural scale); its standard error is Lee and Whiteley's (2018) estimator
from the particles' time-0 ancestors.
"""

import math

import numpy as np

from ppl.errors import NonFiniteError, SiteError
from ppl.site_handler import SiteHandler
from ppl.validation import check_observations

from ..arguments import count
from ..particles import is_program_failure
from ..program import check_nesting_argument, checked_nesting
from ..strategy import Strategy
from ..trainer import run_steps
from ..weights import WeightLayout, total_log_weight
from .resampling import ancestors, check_scheme, copy_ranks
from .smc_checks import Order, check_markov_reads, not_one_structure
from .smc_result import SMCResult, pooled, relative_variance


class SMC(Strategy):
    """Sequential Monte Carlo (a bootstrap particle filter over the program's sites).

    Arguments:
        model: a program written with ``ppl`` (or the backend's own) primitives whose
            particles broadcast over a plate left of its own plates.
        num_particles: K, the particles of one sweep.
        resampling: ``"multinomial"`` (default: the scheme whose genealogy gives one sweep's
            standard error), ``"systematic"`` (less variance; pool sweeps for an error
            bar) or ``"stratified"``.
        ess_threshold: resample where the effective sample size falls below this fraction
            of K (1: after every observation; 0: never, which is importance sampling).
        max_plate_nesting: the program's plate dimensions (found by a dry run if omitted).
        rng_seed: an integer gives the strategy a random stream of its own.
        param_values: values for the program's ``param`` sites (e.g. ``vi.params``).

    ``run(*args, num_steps=1)`` pools ``num_steps`` independent sweeps; ``posterior``
    resamples the pooled particles; ``evaluate`` is the log evidence.
    """

    def __init__(self, model, num_particles=1000, *, resampling="multinomial", ess_threshold=0.5,
                 max_plate_nesting=None, rng_seed=None, param_values=None):
        num_particles = count("SMC", "num_particles", num_particles)
        check_nesting_argument("SMC", max_plate_nesting)
        if isinstance(ess_threshold, bool) or not isinstance(ess_threshold, (int, float)) \
                or not 0 <= ess_threshold <= 1:
            raise ValueError(f"SMC: ess_threshold must be a number in [0, 1], got {ess_threshold!r}")
        super().__init__(model, rng_seed)
        self.num_particles = num_particles
        self.resampling = check_scheme("SMC", resampling)
        self.ess_threshold = float(ess_threshold)
        self.max_plate_nesting = max_plate_nesting
        self.param_values = param_values
        self._checked = None  # (the arguments' signature, the sites in program order)
        self._indexable = {}

    def step(self, *args, **kwargs):
        """One sweep of ``num_particles`` particles: an :class:`SMCResult`."""
        with self.entered():
            signature = _signature(self.ops, args, kwargs)
            if self._checked is None or self._checked[0] != signature:
                self._checked = (signature, self._setup(args, kwargs))
            with self.backend.no_grad():
                result = self._sweep(args, kwargs)
        self.step_count += 1
        return result

    def run(self, *args, num_steps=1, progress=False, **kwargs):
        """Pool ``num_steps`` independent sweeps into one :class:`SMCResult`."""
        results = []

        def one_sweep(*a, **k):
            results.append(self.step(*a, **k))
            return -results[-1].log_evidence

        run_steps(one_sweep, args, kwargs, num_steps, progress, "smc")
        if not results:
            raise ValueError("SMC.run: num_steps must be at least 1 (no particles were drawn)")
        return pooled(self.ops, results)

    def evaluate(self, *args, num_steps=1, **kwargs):
        """Estimate of log p(x)."""
        return self.run(*args, num_steps=num_steps, **kwargs).log_evidence

    def posterior(self, *args, num_samples=1000, **kwargs):
        """``num_samples`` equally weighted draws: site name -> array ``[num_samples, ...]``."""
        count("SMC.posterior", "num_samples", num_samples)
        result = self.run(*args, **kwargs)
        with self.entered():
            return result.resample(num_samples, self.state.next_key())

    # ------------------------------------------------------------------ internals
    def _setup(self, args, kwargs):
        """A one-particle dry run (plate nesting, observations) and, where the particles may be
        resampled, the dependency check; returns the sites in program order."""
        order = Order()
        trace = self.backend.run(order(self.model), args, kwargs, rng=self.state.next_key(),
                                 params=self.param_values)
        check_observations(trace)
        self._plates = checked_nesting("SMC", self.max_plate_nesting, [trace])
        if self.ess_threshold > 0:
            check_markov_reads(order.names, self.backend.dependencies(self.model, args, kwargs), trace)
        return list(trace.sites)

    def _sweep(self, args, kwargs):
        K = self.num_particles
        sweep = _Sweep(self, K, self.state.next_key())
        try:
            trace = self.backend.run(sweep(self.model), args, kwargs, particles=(K, -(self._plates + 1)),
                                     rng=self.state.next_key(), params=self.param_values)
        except (RuntimeError, ValueError, TypeError) as error:
            if not is_program_failure(error):
                raise
            raise not_one_structure(error) from error
        if list(trace.sites) != self._checked[1]:
            raise SiteError(f"SMC: the program's sites changed between runs with the same arguments "
                            f"(first run: {self._checked[1]}, now: {list(trace.sites)}); SMC needs one "
                            "structure, the same in every particle and every run")
        return sweep.result()


class _Sweep(SiteHandler):
    """One sweep's bookkeeping, as a handler on the vectorised run: the weights, where to
    resample, each recorded value's ancestry."""

    def __init__(self, smc, num, key):
        self.ops, self.backend, self.P, self.K = smc.ops, smc.backend, smc._plates, num
        self.scheme, self.threshold, self.key = smc.resampling, smc.ess_threshold, key
        self.indexable = smc._indexable  # distribution kind -> whether ops.index_batch serves it
        self.log_w = 0.0
        self.log_z = 0.0
        self.evidence = {}  # observed sites since the last latent one
        self.lineage = []  # each resampling's ancestor indices
        self.recorded = {}  # name -> (msg or value, particle axis, resamplings before it)
        self.eve = None
        self.resampled_at = []

    def process_sample(self, msg):
        if msg["is_observed"] or (msg.get("infer") or {}).get("_deterministic"):
            return
        if self.evidence:
            self._weigh()
            if self._ess() < self.threshold * self.K:
                self._resample(msg)

    def postprocess_sample(self, msg):
        fn = msg["fn"]
        if (msg.get("infer") or {}).get("_deterministic"):  # torch's deterministic sites
            self.process_deterministic({"name": msg["name"], "value": msg["value"],
                                        "event_dim": len(fn.event_shape)})
        elif msg["is_observed"]:
            self.evidence[msg["name"]] = msg
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
        view = self.backend.to_trace(_Sites(self.evidence))
        self.log_w = self.log_w + total_log_weight(self.ops, WeightLayout(self.P, True), view.sites.values())
        self.log_w = self.ops.broadcast_to(self.log_w, (self.K,))
        self.last_evidence = list(self.evidence)
        self.evidence = {}

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
        if indexed is not None:
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
            expected = ops.moveaxis(ops.moveaxis(fn.log_prob(probe), axis, 0)[index], 0, axis)
            taken = ops.moveaxis(ops.moveaxis(probe, axis, 0)[index], 0, axis)
            self.indexable[kind] = bool(np.allclose(ops.to_numpy(indexed.log_prob(taken)),
                                                    ops.to_numpy(expected), rtol=1e-5, atol=1e-5))
            if not self.indexable[kind]:
                return None
        return indexed

    def result(self):
        ops, K = self.ops, self.K
        if self.evidence:
            self._weigh()
        log_w = self.log_w if not isinstance(self.log_w, float) else None
        # composed[r]: where the particles' values recorded after r resamplings end up
        composed = [None] * (len(self.lineage) + 1)
        for r in range(len(self.lineage) - 1, -1, -1):
            later = composed[r + 1]
            composed[r] = self.lineage[r] if later is None else self.lineage[r][later]
        samples = {}
        for name, (source, axis, r) in self.recorded.items():
            value = source["value"] if isinstance(source, dict) else source
            samples[name] = _to_front(ops, value, axis, composed[r], K)
        if log_w is None:  # nothing observed: every weight 1
            log_w = ops.zeros((K,), next(iter(samples.values())) if samples else ops.asarray([0.0]))
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


def _to_front(ops, value, axis, index, num):
    """``value`` laid out ``[num, ...]``, its particles taken at ``index`` (None: as they are)."""
    if axis is None:
        value = ops.asarray(value)
        return ops.broadcast_to(value, (num,) + tuple(value.shape))
    value = ops.moveaxis(value, axis, 0)
    return value if index is None else value[index]


def _signature(ops, args, kwargs):
    """What the dry run's findings depend on: array shapes and dtypes, other values as given."""
    def key(value):
        if ops.is_array(value):
            return ("array", tuple(value.shape), str(value.dtype))
        try:
            hash(value)
            return value
        except TypeError:
            return ("object", id(value))
    return tuple(key(a) for a in args) + tuple((k, key(v)) for k, v in sorted((kwargs or {}).items()))
