"""Importance sampling: vectorised particles, log evidence, effective sample size, resampling.

    >>> import torch, ppl, ppl.distributions as dist
    >>> from inference import Importance
    >>> def model(x):
    ...     mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
    ...     with ppl.plate("data", len(x)):
    ...         ppl.sample("x", dist.Normal(mu, 1.0), obs=x)
    >>> result = Importance(model, num_particles=20000).run(torch.tensor([1.0, 2.0]))
    >>> abs(result.mean("mu") - 1.0) < 0.05   # the posterior mean is 1.0
    True
"""

import math
import warnings

from ppl.errors import ResourceError, ShapeError, is_allocation_failure, user_stacklevel
from ppl.validation import check_observations

from .arguments import count
from .enumeration import log_joint, model_enumerated
from .program import (bytes_per_particle, check_nesting_argument, checked_nesting, dry_run,
                      release_freed_memory, squeeze_particles, value_shapes, warn_auxiliary,
                      log_density_shapes, particle_broadcast_problem)
from .particles import check_mode, fell_back, is_program_failure, particles_arg, vectorisation_error
from .strategy import Strategy
from .trainer import run_batches
from .weights import WeightLayout, total_log_weight


class ImportanceResult:
    """Weighted particles: ``log_weights`` (shape ``[K]``) and site ``samples`` (``[K, ...]``:
    latent and deterministic sites, and observed ones that vary over particles, such as
    intervened or counterfactual values). ``trace``: the vectorised trace of a single batch
    (None once batches are pooled, and for a compiled batch: on JAX a chunk size's first run
    is eager and checked, later ones are one compiled call). Weights are normalised as
    exp(log w - logsumexp(log w)): the float32 denominator of ``softmax`` drifts (by 1.5%
    over 10^8 weights of spread 2), the pairwise sums of ``logsumexp`` and ``sum`` do not."""

    trace = None

    def __init__(self, ops, log_weights, samples):
        self.ops = ops
        self.log_weights = log_weights
        self.samples = samples
        self.num_particles = log_weights.shape[0]
        self._log_total = None

    @property
    def log_total_weight(self):
        """log sum_k w_k."""
        if self._log_total is None:
            self._log_total = self.ops.item(self.ops.logsumexp(self.log_weights, 0))
        return self._log_total

    @property
    def log_evidence(self):
        """log (1/K) sum_k w_k, an estimate of log p(x) (biased low by about var/2)."""
        return self.log_total_weight - math.log(self.num_particles)

    @property
    def normalized_weights(self):
        return self.ops.exp(self.log_weights - self.log_total_weight)

    @property
    def effective_sample_size(self):
        """(sum_k w_k)^2 / sum_k w_k^2."""
        ops = self.ops
        return math.exp(2 * self.log_total_weight - ops.item(ops.logsumexp(2 * self.log_weights, 0)))

    @property
    def log_evidence_stderr(self):
        """Delta-method standard error of :attr:`log_evidence`: sqrt((K / ESS - 1) / K)."""
        K = self.num_particles
        if K < 2:
            raise ValueError("log_evidence_stderr: one particle gives no estimate of its own "
                             "spread; draw num_particles >= 2")
        return math.sqrt(max(K / self.effective_sample_size - 1.0, 0.0) / K)

    def _site(self, site):
        try:
            return self.samples[site]
        except KeyError:
            raise KeyError(f"no site {site!r}; sites: {sorted(self.samples)}") from None

    def weighted_mean(self, values):
        """sum_k w_k values_k / sum_k w_k for per-particle ``values`` (``[K, ...]``)."""
        ops, w = self.ops, self.normalized_weights
        return ops.sum(ops.reshape(w, tuple(w.shape) + (1,) * (ops.ndim(values) - 1)) * values, 0)

    def expectation(self, site, fn=None):
        """Self-normalised estimate of E[fn(site)] under the posterior (fn defaults to identity)."""
        value = self._site(site)
        return self.weighted_mean(value if fn is None else fn(value))

    def mean(self, site):
        """Posterior mean of a site, as a float for scalar sites."""
        value = self.expectation(site)
        return self.ops.item(value) if self.ops.numel(value) == 1 else value

    def variance(self, site):
        """Posterior variance, E[(site - mean)^2] (two passes: no cancellation)."""
        mean = self.expectation(site)
        out = self.expectation(site, lambda v: (v - mean) * (v - mean))
        return self.ops.item(out) if self.ops.numel(out) == 1 else out

    def resample(self, num_samples, rng=None):
        """``num_samples`` equally weighted draws (multinomial resampling): site -> array."""
        index = self.ops.categorical(self.normalized_weights, num_samples, rng)
        return {name: value[index] for name, value in self.samples.items()}


def _varies_over_particles(trace, name, num):
    site = trace.sites.get(name)
    if site is None:
        return False
    particle_dim = next((p.dim for p in site.plates if p.name.startswith("_particles")), None)
    value = site.value
    if particle_dim is None or not hasattr(value, "shape"):
        return False
    dim = particle_dim - len(site.fn.event_shape)
    return len(value.shape) >= -dim and value.shape[dim] == num


def _merge(ops, results):
    if len(results) == 1:
        return results[0]
    log_weights = ops.concatenate([r.log_weights for r in results], 0)
    samples = {n: ops.concatenate([r.samples[n] for r in results], 0) for n in results[0].samples}
    return ImportanceResult(ops, log_weights, samples)


def _renamed_params(param_values, params):
    """``params=``, the name before 2026-12 (an input named like ``vi.params``, a result),
    kept for one release."""
    if params is None:
        return param_values
    if param_values is not None:
        raise TypeError("Importance: pass param_values= only (params= is its old name)")
    warnings.warn("Importance(params=...) is now Importance(param_values=...): values for the "
                  "programs' param sites, e.g. a fit's vi.params; the old name goes in the next "
                  "release", DeprecationWarning, stacklevel=3)
    return params


class Importance(Strategy):
    """Importance sampling from ``proposal`` (the prior when None, else a guide).

    ``num_particles`` are drawn at once on a particle plate; ``run(num_steps=n)`` pools n
    such batches. Weights are over whole traces, so the samples are joint posterior draws.
    A guide's parameters belong to the strategy that fitted it: pass them as
    ``param_values=vi.params`` (otherwise the proposal's ``param`` sites take their initial
    values). ``rng_seed``: an integer makes runs reproducible (a random stream of this
    strategy's own); None draws from the backend's global generator (JAX: key 0).
    ``vectorize_particles="auto"`` (the default) draws them on a particle plate and, for
    programs that do not broadcast over an extra batch dimension (``x @ w``), warns once and
    maps them with ``jax.vmap`` (JAX) or runs them one by one (torch); ``True`` insists on
    the plate, ``False`` runs one by one, ``"vmap"`` maps (:mod:`inference.particles`).
    Vectorised particles run in
    chunks of ``chunk_size`` (by default as many as fit in ``max_memory`` bytes, estimated
    from the first run), so that 10^7 particles on 1,000 observations never ask for one
    huge allocation; the weights are pooled exactly. A result has a ``trace`` only when
    its particles ran at once.
    """

    def __init__(self, model, proposal=None, num_particles=1000, *, max_plate_nesting=None,
                 rng_seed=None, param_values=None, vectorize_particles="auto", max_memory=2 ** 28,
                 chunk_size=None, params=None):
        num_particles = count("Importance", "num_particles", num_particles)
        check_nesting_argument("Importance", max_plate_nesting)
        super().__init__(model, rng_seed)
        self.proposal = proposal
        self.num_particles = int(num_particles)
        self.max_plate_nesting = max_plate_nesting
        self.param_values = _renamed_params(param_values, params)
        self.vectorize_particles = check_mode("Importance", vectorize_particles)
        self._vectorised_ok = False
        # None: no limit, and a chunk size found from the memory budget
        self.max_memory = None if max_memory is None else count("Importance", "max_memory", max_memory)
        self.chunk_size = None if chunk_size is None else count("Importance", "chunk_size", chunk_size)
        self._ready = False
        self._compiled = {}  # chunk size -> its compiled run (backends that compile)

    def _next_rng(self):
        return self.state.next_key()

    def _draw(self, msg):
        if msg["name"] not in self._model_enum:  # those are enumerated, not drawn
            self.backend.draw_reparam(msg)

    def _setup(self, args, kwargs):
        self._model_enum = frozenset()
        guide_tr, model_tr = dry_run(self.backend, self.model, self.proposal, args, kwargs,
                                     self._draw, rng=self._next_rng(), params=self.param_values,
                                     role="proposal")
        self._model_enum = frozenset(model_enumerated(model_tr, guide_tr))
        if guide_tr is not None:
            for name in model_tr.latent:
                if name not in guide_tr.latent and name not in self._model_enum:
                    raise ValueError(f"the proposal is missing latent site {name!r} of the model")
            for name, site in guide_tr.latent.items():
                if name not in model_tr.sites:
                    warn_auxiliary(name, site, model_tr)
                elif name not in model_tr.latent:
                    raise ValueError(f"the proposal has site {name!r} that the model lacks as a "
                                     f"latent site (model sites: {sorted(model_tr.sites)})")
            self._warn_initial_params(guide_tr)
        check_observations(model_tr)
        P = checked_nesting("Importance", self.max_plate_nesting, [model_tr, guide_tr])
        self._plates = P
        self._layout = WeightLayout(P, True)
        self._shapes = value_shapes(model_tr)
        self._log_density_shapes = log_density_shapes([("proposal", guide_tr), ("model", model_tr)])
        if self.chunk_size is None:  # particles per vectorised run, under the memory budget
            self.chunk_size = self.num_particles if self.max_memory is None else max(
                1, self.max_memory // bytes_per_particle([model_tr, guide_tr]))
        self._ready = True

    def _warn_initial_params(self, guide_tr):
        """A fitted guide's parameters belong to the strategy that fitted it: say so when
        the proposal runs with initial values (a valid but untrained proposal)."""
        given = set(self.param_values or {}) | set(self.state.inherited)
        initial = sorted(n for n in guide_tr.params if n not in given and "$$$" not in n)
        if initial:
            warnings.warn(f"Importance: the proposal's parameters {initial} take their initial "
                          "values; to use a fitted guide pass its parameters, e.g. "
                          "Importance(model, guide, param_values=vi.params)", UserWarning,
                          stacklevel=user_stacklevel())

    def step(self, *args, **kwargs):
        """One batch of ``num_particles`` weighted particles."""
        with self.entered():
            if not self._ready:
                self._setup(args, kwargs)
            try:
                result = self._batch(args, kwargs)
            except ShapeError as failure:  # "auto": the plate failed on the first chunk
                if not fell_back("Importance", self, failure, self.num_particles):
                    raise
                result = self._batch(args, kwargs)
        self.step_count += 1
        return result

    def _batch(self, args, kwargs):
        ops, K = self.ops, self.num_particles
        with self.backend.no_grad():
            if self.vectorize_particles:  # in chunks of at most chunk_size particles
                chunks = []
                for start in range(0, K, self.chunk_size):
                    k = min(self.chunk_size, K - start)
                    try:
                        log_w_k, samples, model_tr = self._chunk(args, kwargs, k)
                    except (RuntimeError, MemoryError) as error:
                        if not is_allocation_failure(error):
                            raise
                        raise self._out_of_memory(k, error) from error
                    chunks.append((log_w_k, samples))
                    if K > self.chunk_size:
                        release_freed_memory()
                log_w = ops.concatenate([w for w, _ in chunks], 0) if len(chunks) > 1 else chunks[0][0]
            else:  # one run per particle, as Pyro's Importance does
                runs = [self._weights(args, kwargs, None) for _ in range(K)]
                log_w = ops.concatenate([ops.reshape(w, (1,)) for w, _ in runs], 0)
                model_tr = runs[-1][1][-1][1]
        log_total = ops.item(ops.logsumexp(log_w, 0))  # kept for the result: an exp per weight
        if not math.isfinite(log_total):  # every weight zero (or one infinite)
            if model_tr is None:  # a compiled chunk: an eager run names the site
                model_tr = self._vectorised(args, kwargs, min(self.chunk_size, K))[1][-1][1]
            raise self.non_finite(
                f"every one of the {K} importance weights is zero or one is infinite",
                [("model", model_tr)], "the evidence has probability zero under every particle")
        if self.vectorize_particles:
            samples = chunks[0][1] if len(chunks) == 1 else {
                n: ops.concatenate([s[n] for _, s in chunks], 0) for n in chunks[0][1]}
        else:
            names = [n for n in model_tr.latent if n not in self._model_enum] + list(model_tr.deterministics)
            samples = {n: ops.stack([traces[-1][1].values()[n] for _, traces in runs]) for n in names}
        result = ImportanceResult(ops, log_w, samples)
        result._log_total = log_total
        result.trace = model_tr if self.vectorize_particles and len(chunks) == 1 else None
        return result

    def _out_of_memory(self, k, error):
        budget = ("no max_memory" if self.max_memory is None else
                  f"max_memory={self.max_memory} bytes (a chunk size estimated from the first run)")
        return ResourceError(
            f"Importance: a chunk of {k} particles ran out of memory ({budget}, chunk_size="
            f"{self.chunk_size}): {str(error).splitlines()[0][:200]}; lower max_memory (e.g. "
            f"max_memory={max(1, (self.max_memory or 2 ** 28) // 4)}) or pass a smaller chunk_size: "
            "the particles then run in more, smaller chunks and are pooled exactly")

    def _chunk(self, args, kwargs, k):
        """``k`` weighted particles in one vectorised run: (log weights ``[k]``, samples, the
        model's trace, or None from a compiled run). The first run of ``k`` particles is
        eager (checked, and it fixes which sites are samples); later ones are compiled where
        the backend compiles."""
        compiled = self._compiled.get(k)
        if compiled:
            log_w, samples = compiled(self.state, args, kwargs)
            return log_w, samples, None  # a NaN weight is named by _batch's check, from an eager run
        log_w, traces = self._vectorised(args, kwargs, k)
        model_tr = traces[-1][1]
        samples = self._samples(model_tr, k)
        if compiled is None and not self._model_enum:  # False: the backend runs eagerly
            names = frozenset(samples)
            self._compiled[k] = self.backend.compile(
                lambda key, a, kw: self._compiled_chunk(key, a, kw, k, names)) or False
        return self.ops.broadcast_to(log_w, (k,)), samples, model_tr

    def _compiled_chunk(self, key, args, kwargs, k, names):
        log_w, traces = self._weights(args, kwargs, particles_arg(self.vectorize_particles, k, self._plates),
                                      rng=key)
        samples = squeeze_particles(self.ops, traces[-1][1].values(), self._shapes, k)
        return self.ops.broadcast_to(log_w, (k,)), {n: v for n, v in samples.items() if n in names}

    def _samples(self, model_tr, k):
        """Site values of a vectorised run: latent and deterministic sites, and observed ones
        that vary over particles (intervened or counterfactual values)."""
        samples = squeeze_particles(self.ops, model_tr.values(), self._shapes, k)
        return {n: v for n, v in samples.items() if n not in self._model_enum and (
            n in model_tr.latent or n in model_tr.deterministics
            or _varies_over_particles(model_tr, n, k))}

    def _vectorised(self, args, kwargs, K):
        """The first vectorised run names the likely cause when the programs do not broadcast."""
        if self._vectorised_ok:
            return self._weights(args, kwargs, particles_arg(self.vectorize_particles, K, self._plates))
        try:
            out = self._weights(args, kwargs, particles_arg(self.vectorize_particles, K, self._plates))
            self._vectorised_ok = True
            return out
        except (RuntimeError, ValueError, TypeError) as error:
            if not is_program_failure(error):
                raise
            raise vectorisation_error("Importance", K, self._plates, error) from error

    def _weights(self, args, kwargs, particles, rng=None):
        """One run of proposal and model: (log weights, [(role, trace)] ending with the
        model's); ``particles`` None runs a single particle. NaN weights are named here, in
        the run (chunk) that made them, from the proposal's trace and the model's. ``rng``:
        the run's key, inside a compiled run (which cannot check for NaN)."""
        backend, ops = self.backend, self.ops
        keys = backend.split_rng(rng) if rng is not None else None
        layout = self._layout if particles is not None else WeightLayout(self._plates, False)
        values, log_q, traces = None, 0.0, []
        if self.proposal is not None:
            rng = self._next_rng() if keys is None else keys[0]
            guide_tr = backend.run(self.proposal, args, kwargs, draw=self._draw, particles=particles,
                                   rng=rng, params=self.param_values)
            values = guide_tr.replay_values()
            log_q = total_log_weight(ops, layout, guide_tr.sites.values())  # factors too
            traces.append(("proposal", guide_tr))
        enumerate_from = None
        if self._model_enum:
            enumerate_from = -(self._plates + (2 if particles is not None else 1))
        model_tr = backend.run(self.model, args, kwargs, replay=values, draw=self._draw,
                               particles=particles, rng=self._next_rng() if keys is None else keys[1],
                               params=self.param_values, enumerate_from=enumerate_from)
        # with the prior as proposal, log p(z) of the drawn sites cancels: weight by the
        # observed (and enumerated) sites only
        scored = [s for s in model_tr if self.proposal is not None or s.observed
                  or s.name in self._model_enum]
        if self._model_enum:
            keep = [backend.particle_plate] if particles is not None else []
            log_p, _ = log_joint(scored, self._model_enum, keep, backend.name)
        else:
            log_p = total_log_weight(ops, layout, scored)
        traces.append(("model", model_tr))
        if particles is not None and not self._vectorised_ok:
            problem = particle_broadcast_problem(self._log_density_shapes, traces, self._plates)
            if problem:
                raise ValueError(problem)  # _vectorised names the remedy
        log_w = log_p - log_q  # the number 0 when nothing is scored (a prior, no evidence)
        if keys is None and not isinstance(log_w, float) and ops.isnan(log_w):
            raise self.non_finite("importance weights are NaN", traces, "no single site is NaN")
        return log_w, traces

    def run(self, *args, num_steps=1, progress=False, **kwargs):
        """Pool ``num_steps`` batches of particles into one :class:`ImportanceResult`."""
        return _merge(self.ops, run_batches("Importance", self.step, args, kwargs, num_steps,
                                            progress, "importance"))

    def evaluate(self, *args, num_steps=1, **kwargs):
        """Estimate of log p(x)."""
        return self.run(*args, num_steps=num_steps, **kwargs).log_evidence

    def posterior(self, *args, num_samples=1000, **kwargs):
        """``num_samples`` resampled posterior draws: site name -> array ``[num_samples, ...]``."""
        count("Importance.posterior", "num_samples", num_samples)
        result = self.run(*args, **kwargs)
        with self.entered():
            return result.resample(num_samples, self._next_rng())
