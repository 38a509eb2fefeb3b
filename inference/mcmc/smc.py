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
from the particles' time-0 ancestors. Rejuvenation moves run after the sweep, on the
whole program (:mod:`inference.mcmc.smc_moves`): within the sweep a move would change
values that the program's single run has already consumed.
"""

from ppl.errors import SiteError
from ppl.validation import check_observations

from ..arguments import count
from ..particles import is_program_failure
from ..program import check_nesting_argument, checked_nesting
from ..strategy import Strategy
from ..trainer import run_batches
from .resampling import check_scheme
from .smc_checks import Order, check_markov_reads, not_one_structure
from .smc_moves import rejuvenated
from .smc_proposal import check_proposal, draw_proposal
from .smc_result import pooled
from .smc_sweep import Sweep


class SMC(Strategy):
    """Sequential Monte Carlo (a bootstrap particle filter over the program's sites).

    Arguments:
        model: a program written with ``ppl`` (or the backend's own) primitives whose
            particles broadcast over a plate left of its own plates.
        num_particles: K, the particles of one sweep.
        proposal: None (each latent site from the model: a bootstrap filter) or a guide
            whose sites each read the data alone (a mean-field guide, as ``AutoNormal``):
            drawn for every particle before the sweep, weighted by log p - log q
            (:mod:`inference.mcmc.smc_proposal`; pass its parameters in ``param_values``).
        resampling: ``"multinomial"`` (default: the scheme whose genealogy gives one sweep's
            standard error), ``"systematic"`` (less variance; pool sweeps for an error
            bar) or ``"stratified"``.
        ess_threshold: resample where the effective sample size falls below this fraction
            of K (1: after every observation; 0: never, which is importance sampling).
        rejuvenation_steps: after the sweep, resample the particles and move every latent
            site this many times by Metropolis-Hastings under the full posterior
            (:mod:`inference.mcmc.smc_moves`: diverse paths, one program run per site and
            step; 0, the default, keeps the weighted particles).
        max_plate_nesting: the program's plate dimensions (found by a dry run if omitted).
        rng_seed: an integer gives the strategy a random stream of its own.
        param_values: values for the program's ``param`` sites (e.g. ``vi.params``).

    ``run(*args, num_steps=1)`` pools ``num_steps`` independent sweeps; ``posterior``
    resamples the pooled particles; ``evaluate`` is the log evidence.
    """

    def __init__(self, model, num_particles=1000, *, proposal=None, resampling="multinomial",
                 ess_threshold=0.5, rejuvenation_steps=0, max_plate_nesting=None, rng_seed=None,
                 param_values=None):
        num_particles = count("SMC", "num_particles", num_particles)
        check_nesting_argument("SMC", max_plate_nesting)
        if isinstance(ess_threshold, bool) or not isinstance(ess_threshold, (int, float)) \
                or not 0 <= ess_threshold <= 1:
            raise ValueError(f"SMC: ess_threshold must be a number in [0, 1], got {ess_threshold!r}")
        super().__init__(model, rng_seed)
        self.num_particles = num_particles
        self.resampling = check_scheme("SMC", resampling)
        self.ess_threshold = float(ess_threshold)
        self.rejuvenation_steps = count("SMC", "rejuvenation_steps", rejuvenation_steps, minimum=0)
        self.max_plate_nesting = max_plate_nesting
        self.param_values = param_values
        self.proposal = proposal
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
        return pooled(self.ops, run_batches("SMC", self.step, args, kwargs, num_steps, progress, "smc"))

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
        if self.proposal is not None:
            check_proposal(self.backend, self.proposal, args, kwargs, self.param_values,
                           self.state.next_key(), trace)
        return list(trace.sites)

    def _sweep(self, args, kwargs):
        K = self.num_particles
        guide = None if self.proposal is None else draw_proposal(
            self.backend, self.ops, self.proposal, args, kwargs, K, self._plates, self.param_values,
            self.state.next_key())
        sweep = Sweep(self, K, self.state.next_key(), guide)
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
        result = sweep.result()
        if self.rejuvenation_steps:
            result = rejuvenated(self, result, sweep, args, kwargs)
        return result


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
