"""Markov chain Monte Carlo over a program's latent sites, on the backend's own kernels:
Pyro's ``NUTS``/``HMC`` on torch (``jit_compile`` by default), NumPyro's on JAX (chains
vectorised). The same program as every other strategy; discrete latent sites are summed
out where marked ``infer={"enumerate": "parallel"}`` (both kernels enumerate them) and
refused by name otherwise.

    >>> import torch, ppl, ppl.distributions as dist
    >>> from inference import MCMC
    >>> def model(x):
    ...     mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
    ...     with ppl.plate("data", len(x)):
    ...         ppl.sample("x", dist.Normal(mu, 1.0), obs=x)
    >>> x = torch.tensor([0.9, 1.3, 1.1, 0.7])  # posterior N(4/5, 1/5)
    >>> result = MCMC(model, num_warmup=200, num_samples=400, rng_seed=0).run(x, progress=False)
    >>> abs(result.mean("mu") - 0.8) < 4 * result.stderr("mu")
    True
"""

import warnings

import numpy as np

from ppl.errors import SiteError

from ..arguments import count
from .arviz_export import check_kind, inference_data, replayed_log_likelihood
from .diagnostics import summary
from .warm_start import continuation, warm_start
from ..program import plate_nesting
from ..strategy import Strategy, entering

_KERNELS = ("nuts", "hmc")


class MCMCResult:
    """Draws of a run: ``by_chain`` (site -> ``[chains, draws, ...]``, numpy), ``samples``
    (the chains pooled: ``[chains * draws, ...]``), ``diverging`` (``[chains, draws]``),
    ``step_size`` (per chain, after warm-up) and the kernel's other fields in ``extra``."""

    def __init__(self, by_chain, extra):
        self.by_chain = by_chain
        self.samples = {n: v.reshape((-1,) + v.shape[2:]) for n, v in by_chain.items()}
        self.diverging = extra.pop("diverging")
        self.step_size = extra.pop("step_size")
        self.extra = extra
        self._summary = None

    def extended(self, later):
        """These draws followed by ``later``'s (a continuation of the same chains)."""
        by_chain = {n: np.concatenate([v, later.by_chain[n]], 1) for n, v in self.by_chain.items()}
        extra = dict(later.extra)
        for name, value in self.extra.items():  # per-draw fields: [chains, draws]
            if np.shape(value) == self.diverging.shape and name in later.extra:
                extra[name] = np.concatenate([value, later.extra[name]], 1)
        extra["diverging"] = np.concatenate([self.diverging, later.diverging], 1)
        extra["step_size"] = later.step_size
        return MCMCResult(by_chain, extra)

    @property
    def num_divergences(self):
        return int(self.diverging.sum())

    def summary(self):
        """site -> {mean, sd, r_hat, ess_bulk, ess_tail} (rank-normalised split R-hat, bulk
        and tail effective sample sizes: :mod:`inference.mcmc.diagnostics`)."""
        if self._summary is None:
            self._summary = summary(self.by_chain)
        return self._summary

    def mean(self, name):
        return self.summary()[name]["mean"]

    def stderr(self, name):
        """Monte Carlo standard error of :meth:`mean`: sd / sqrt(bulk ESS)."""
        stats = self.summary()[name]
        error = np.asarray(stats["sd"]) / np.sqrt(stats["ess_bulk"])
        return float(error) if error.ndim == 0 else error


class MCMC(Strategy):
    """Draw from the posterior of ``model``'s latent sites with NUTS (default) or HMC.

    Arguments:
        model: a program written with ``ppl`` (or the backend's own) primitives.
        kernel: ``"nuts"`` or ``"hmc"``.
        num_warmup, num_samples: adaptation steps and kept draws per chain.
        num_chains: independent chains (torch: one after another; JAX: vectorised).
        rng_seed: an integer gives the strategy a random stream of its own.
        max_plate_nesting: plate dimensions, for enumerated discrete sites (found by a dry
            run if omitted).
        jit_compile: torch only: Pyro's TorchScript-compiled potential (the default).
        target_accept_prob: the step size's adaptation target.
    """

    def __init__(self, model, kernel="nuts", num_warmup=1000, num_samples=1000, num_chains=1, *,
                 rng_seed=None, max_plate_nesting=None, jit_compile=True, target_accept_prob=0.8):
        super().__init__(model, rng_seed)
        if kernel not in _KERNELS:
            raise ValueError(f"MCMC: kernel must be one of {_KERNELS}, not {kernel!r}")
        num_warmup = count("MCMC", "num_warmup", num_warmup, minimum=0)
        num_samples = count("MCMC", "num_samples", num_samples)
        num_chains = count("MCMC", "num_chains", num_chains)
        if not 0 < target_accept_prob < 1:
            raise ValueError(f"MCMC: target_accept_prob must lie in (0, 1), got {target_accept_prob!r}")
        self.kernel = kernel
        self.num_warmup, self.num_samples, self.num_chains = num_warmup, num_samples, num_chains
        self.max_plate_nesting = max_plate_nesting
        self.options = {"target_accept_prob": target_accept_prob, "jit_compile": jit_compile,
                        "ignore_jit_warnings": True}  # (JAX's kernels always compile)
        self.result = None
        self._last_call = None  # the last run's (args, kwargs), for to_arviz

    def run(self, *args, progress=True, init_from=None, **kwargs):
        """Run the chains on ``args``; returns an :class:`MCMCResult` (also kept as
        ``self.result``). Divergent transitions are counted in the result and warned of.

        ``init_from``: a fitted strategy with a ``posterior`` (a ``VI``, say), for a warm
        start: each chain starts at one of its draws, and the mass matrix (the sampler's
        estimate of the posterior's scales, in its unconstrained space) at their variance
        instead of the identity, so that a short warm-up suffices where the scales differ
        by orders of magnitude."""
        draws = None
        if init_from is not None:
            if not callable(getattr(init_from, "posterior", None)):
                raise TypeError(f"MCMC.run: init_from must be a fitted strategy with a posterior "
                                f"(a VI, say), got {type(init_from).__name__}")
            draws = init_from.posterior(*args, num_samples=max(1000, self.num_chains), **kwargs)
        with self.entered():
            return self._run(args, kwargs, progress, draws)

    def _run(self, args, kwargs, progress, draws):
        deterministic, nesting, trace = self._check(args, kwargs)
        options = self._options(nesting)
        if draws is not None:
            options["warm_start"] = warm_start(self.ops, trace, draws, self.num_chains)
        result = self._chains(args, kwargs, self.num_warmup, self.num_samples, options, progress,
                              deterministic)
        self.result = result
        return result

    def resume(self, *args, num_samples=None, progress=True, **kwargs):
        """Continue the last run's chains (or a loaded checkpoint's) for ``num_samples``
        more draws each (default: ``num_samples``), from each chain's last draw with its
        adapted step size and mass matrix and no warm-up; the draws are appended to
        :attr:`result`, which is returned. A run saved with :meth:`save` and resumed in
        another process continues the same chains (from the loading strategy's random
        stream, so statistically, not draw for draw)."""
        if self.result is None:
            raise RuntimeError("MCMC.resume: nothing to continue; call run(...) or load(...) first")
        num = self.num_samples if num_samples is None else count("MCMC.resume", "num_samples", num_samples)
        with self.entered():
            deterministic, nesting, trace = self._check(args, kwargs)
            options = self._options(nesting)
            options["warm_start"] = continuation(self.ops, trace, self.result)
            later = self._chains(args, kwargs, 0, num, options, progress, deterministic)
            self.result = self.result.extended(later)
        return self.result

    def _options(self, nesting):
        options = dict(self.options)
        if nesting is not None:
            options["max_plate_nesting"] = nesting
        return options

    def _chains(self, args, kwargs, num_warmup, num_samples, options, progress, deterministic):
        """The backend's chains; the run's arguments kept for to_arviz; divergences warned of."""
        self._last_call = (args, kwargs)
        by_chain, extra = self.backend.mcmc_chains(
            self.model, args, kwargs, self.kernel, num_warmup, num_samples, self.num_chains,
            options, progress, deterministic, self.state.next_key())
        result = MCMCResult(by_chain, extra)
        self.step_count += 1
        if result.num_divergences:
            total = self.num_chains * num_samples
            warnings.warn(f"MCMC: {result.num_divergences} of {total} transitions diverged "
                          "(the sampler met curvature its step size cannot follow, so the draws "
                          "may miss part of the posterior); raise target_accept_prob or "
                          "reparameterise the model", RuntimeWarning, stacklevel=4)
        return result

    # ------------------------------------------------------------- checkpoints
    def state_dict(self):
        state = super().state_dict()
        result = self.result
        state["result"] = None if result is None else {
            "by_chain": dict(result.by_chain), "extra": dict(result.extra),
            "diverging": result.diverging, "step_size": result.step_size}
        return state

    def check_state_dict(self, state):
        found = super().check_state_dict(state)
        saved = state.get("result")
        if found or saved is None:
            return found
        chains = np.shape(saved["diverging"])[0]
        if chains != self.num_chains:
            return f"it holds {chains} chains, this MCMC runs {self.num_chains}"
        return None

    def load_state_dict(self, state):
        super().load_state_dict(state)
        saved = state.get("result")
        if saved is not None:
            extra = dict(saved["extra"], diverging=np.asarray(saved["diverging"]),
                         step_size=np.asarray(saved["step_size"]))
            self.result = MCMCResult({n: np.asarray(v) for n, v in saved["by_chain"].items()}, extra)

    def _check(self, args, kwargs):
        """A dry run: a discrete latent site not marked for enumeration is an error naming
        it; returns the deterministic sites' shapes by name and the plate nesting the kernel's
        enumeration needs (None: nothing enumerated, or as given)."""
        with self.backend.preserved_rng(), self.backend.no_grad():
            trace = self.backend.run(self.model, args, kwargs)
        enumerated = False
        for name, site in trace.latent.items():
            if not getattr(site.fn.support, "is_discrete", False):
                continue
            enumerated = True
            if site.infer.get("enumerate") != "parallel":
                raise SiteError(
                    f"MCMC: latent site {name!r} ({type(site.fn).__name__}) is discrete; "
                    f"{self.kernel.upper()} moves continuous sites only: mark it "
                    "infer={'enumerate': 'parallel'} to sum it out, or use Importance or VI",
                    site=name)
        nesting = self.max_plate_nesting
        if nesting is None and enumerated:
            nesting = plate_nesting([trace])
        shapes = {n: tuple(getattr(v, "shape", ())) for n, v in trace.deterministics.items()}
        return shapes, nesting, trace

    @entering
    def to_arviz(self, kind="InferenceData"):
        """The last run as ArviZ's ``InferenceData``: posterior draws by chain, sample
        statistics (divergences, step sizes), the pointwise log-likelihood of every
        observed site (each draw replayed through the model: ``arviz.loo`` reads it) and
        the observed data. With sites summed out by enumeration, the log-likelihood group
        is left out (a replay would draw them), with a warning naming them. ``kind``:
        ``"InferenceData"`` (ArviZ 0.2x) or ``"DataTree"`` (ArviZ 1.x's object)."""
        check_kind("MCMC.to_arviz", kind)
        if self.result is None:
            raise RuntimeError("MCMC.to_arviz: call run(...) first")
        result, (args, kwargs) = self.result, self._last_call
        chains, draws = result.diverging.shape
        stats = {"diverging": result.diverging,
                 "step_size": np.broadcast_to(result.step_size[:, None], (chains, draws))}
        stats.update({k: v for k, v in result.extra.items() if np.shape(v) == (chains, draws)})
        observed, log_lik = replayed_log_likelihood(self, args, kwargs, result.by_chain)
        return inference_data(result.by_chain, stats, log_lik, observed, kind=kind)

    def posterior(self, *args, num_samples=None, **kwargs):
        """The last run's draws, the chains pooled (site -> ``[draws, ...]``); with
        ``num_samples``, that many spread evenly over them."""
        if self.result is None:
            raise RuntimeError("MCMC.posterior: call run(...) first")
        samples = self.result.samples
        if num_samples is None:
            return dict(samples)
        total = next(iter(samples.values())).shape[0]
        index = np.linspace(0, total - 1, num_samples).round().astype(int)
        return {n: v[index] for n, v in samples.items()}

    def _progress_label(self):
        return f"MCMC({self.kernel})"


__all__ = ["MCMC", "MCMCResult"]
