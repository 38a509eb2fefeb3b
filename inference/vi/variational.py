"""Variational inference: a model, a guide, an objective and an optimiser.

    >>> import torch, ppl, ppl.distributions as dist
    >>> from inference import VI, ELBO, Adam
    >>> def model(x):
    ...     mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
    ...     with ppl.plate("data", len(x)):
    ...         ppl.sample("x", dist.Normal(mu, 1.0), obs=x)
    >>> def guide(x):
    ...     loc = ppl.param("loc", torch.tensor(0.0))
    ...     ppl.sample("mu", dist.Normal(loc, 0.5))
    >>> vi = VI(model, guide, ELBO(), Adam(lr=0.05), rng_seed=0)
    >>> history = vi.run(torch.full((4,), 2.0), num_steps=300, progress=False)
    >>> 1.2 < float(vi.params["loc"]) < 2.0   # the posterior mean is 1.6
    True

The parameters belong to ``vi``, not to Pyro's global param store: a second ``VI`` on
the same programs starts from the initial values. ``with vi.param_scope():`` runs code
(e.g. the trained guide) with them.
"""

import math

from ppl.errors import ShapeError, SiteError, UnsupportedError
from ppl.trace_view import Trace
from ppl.validation import check_observations

from ..engines import make_engine
from ..enumeration import (check_batch_in_plates, check_model_enum_within_guide_enum, log_joint,
                           marginal_terms, model_enumerated)
from ..interrupts import deferred_interrupts
from ..optim import Adam
from ..particles import check_mode, fell_back, is_program_failure, vectorisation_error
from ..program import (bytes_per_particle, check_nesting_argument, checked_nesting, dry_run,
                       log_density_shapes, particle_broadcast_problem, point_masses, value_shapes)
from ..strategy import Strategy
from ..weights import WeightLayout, enumerated_score, total_log_weight
from .baselines import LearnedBaseline, RunningBaseline
from .estimators import Estimator, resolve_estimator
from .fitted import FittedQueries
from .objectives import ELBO
from .peers import as_objective
from .log_weights import LogWeights, as_arrays, stacked
from .sites import check_sites, independent_plate


class _Detached(Estimator):
    """Draw without reparameterisation; the objective supplies the proposal gradient."""

    def draw(self, backend, msg, step):
        backend.draw_detached(msg)


class VI(FittedQueries, Strategy):
    """Fit a guide (and the model's parameters) by stochastic optimisation of ``objective``.

    Arguments:
        model, guide: programs written with ``ppl`` (or the backend's own) primitives and
            taking the same arguments; either may be a ``torch.nn.Module``.
        objective: ``ELBO()`` (default), ``IWAE(K)``, ``Renyi(alpha, K)``, ``VIS(K)``, ``RWS(K)``,
            or Pyro's own (``Trace_ELBO``, ``TraceEnum_ELBO``, ``RenyiELBO``, ...; see
            :mod:`inference.vi.peers`).
        optimizer: ``Adam(lr=1e-2)`` (default) or another spec from :mod:`inference.optim`,
            a ``torch.optim`` class or factory, a ``pyro.optim`` optimiser, or (JAX) an
            optax transformation.
        estimators: site name -> ``"reparam" | "score" | "enum" | "gumbel"`` or an
            :class:`~inference.vi.estimators.Estimator`; a site's ``infer={"estimator": ...}``
            does the same. Default: reparameterise where possible, else score function.
        independent_plate: with ``K > 1`` particles, the plate whose elements get their own
            importance weights (a per-datapoint bound, as in the IWAE paper). ``"auto"``
            takes the outermost plate every latent site lies in and every other plate all
            sites lie in (Pyro's ``RenyiELBO`` keeps those); a site outside them that reads
            no particle's value (an observed global) counts once; ``None`` weights whole
            traces (one weight per particle for the whole mini-batch).
        max_plate_nesting: plate dimensions the programs use (found by a dry run if omitted).
        rng_seed: an integer gives this VI a random stream of its own (reproducible runs,
            untouched by other code); None draws from the backend's global generator.
        params: starting values (constrained) for ``param`` sites by name, e.g. another
            fit's ``vi.params`` to continue from it (copied; modules keep their weights).
        vectorize_particles: ``"auto"`` (the default) draws the ``K`` particles at once on a
            particle plate and, if the first vectorised run fails (a program that does not
            broadcast over an extra batch dimension: ``x @ w``), warns once and maps them
            with ``jax.vmap`` (JAX) or runs them one by one (torch); True insists on the
            plate; False runs the programs once per particle, as Pyro does by default;
            ``"vmap"`` (JAX) maps the one-particle programs (:mod:`inference.particles`).
        compile: True runs each step's loss (both programs, the objective and its backward)
            through ``torch.compile`` on torch, once per argument shape and program
            structure; the first step pays the compilation (seconds), later steps skip
            Python's per-operation cost, and the draws are the eager step's for the same
            seed. Where compiling fails it warns and runs eagerly. On JAX every step is
            compiled (``jax.jit``) whatever this says.
    """

    def __init__(self, model, guide, objective=None, optimizer=None, *, estimators=None,
                 independent_plate="auto", max_plate_nesting=None, rng_seed=None, params=None,
                 vectorize_particles="auto", compile=False):
        super().__init__(model, rng_seed)
        if not isinstance(compile, bool):
            raise TypeError(f"VI: compile must be True or False, not {compile!r}")
        self.compile = compile
        self._compiled_loss = None
        self.guide = guide
        self.objective = as_objective(objective) if objective is not None else ELBO()
        self.estimator_config = {name: resolve_estimator(spec, name)
                                 for name, spec in (estimators or {}).items()}
        self.independent_plate = independent_plate
        check_nesting_argument("VI", max_plate_nesting)
        self.max_plate_nesting = max_plate_nesting
        self.vectorize_particles = check_mode("VI", vectorize_particles)
        self._vectorised_ok = False
        self.engine = make_engine(self.backend.name, optimizer if optimizer is not None else Adam(),
                                  self.state, owners=(model, guide), initial=params)
        self._aux = {}  # score site -> its running baseline's state, threaded through each step
        self._learned = {}  # score site -> its learned baseline's parameter (held here on torch)
        self._ready = False

    # ----------------------------------------------------------------- set-up
    def _setup(self, args, kwargs):
        """One dry run (random state preserved) to learn sites, plates and estimators."""
        guide_tr, model_tr = dry_run(self.backend, self.model, self.guide, args, kwargs,
                                     self._draw_plain, **self._functional_inputs())
        self._model_enum = frozenset(model_enumerated(model_tr, guide_tr))
        self._enumerated_chain = any("_markov_scope" in model_tr[n].infer for n in self._model_enum)
        check_sites(model_tr, guide_tr, self._model_enum, self.objective, self.estimator_config)
        check_observations(model_tr)
        self._model_sites = model_tr.sites.keys()
        self._eval_chunk = max(1, 2 ** 28 // bytes_per_particle([model_tr, guide_tr]))
        P = checked_nesting("VI", self.max_plate_nesting, [model_tr, guide_tr])
        K = self.objective.num_particles
        keep = independent_plate(self.independent_plate, model_tr, guide_tr)
        self._keep = keep
        self._plates = P
        self._single_shapes = value_shapes(guide_tr)
        self._point_masses = point_masses(guide_tr, model_tr)
        self._log_density_shapes = log_density_shapes([("guide", guide_tr), ("model", model_tr)])
        self._estimators = {}
        self._enum_dims = {}
        self._baselines = {}
        for name, site in guide_tr.latent.items():
            self._estimators[name] = self._choose_estimator(name, site.fn, site.infer)
            if self._estimators[name].enumerates:
                check_batch_in_plates(site)
        vectorised = K > 1 and bool(self.vectorize_particles)
        self._layout = WeightLayout(P, vectorised, keep if K > 1 else None, {})
        first_enum_dim = self._first_enum_dim = -(P + (1 if vectorised else 0) + 1)
        for name, est in self._estimators.items():
            if est.enumerates:
                self._enum_dims[name] = first_enum_dim - len(self._enum_dims)
        if self._model_enum and self._enum_dims:
            check_model_enum_within_guide_enum(model_tr, self._model_enum, guide_tr, self._enum_dims)
        self._enumerate_from = (first_enum_dim - len(self._enum_dims)) if self._model_enum else None
        # the estimators that change how the model scores their site
        self._relaxed = {n: e for n, e in self._estimators.items()
                         if type(e).relax_model_site is not Estimator.relax_model_site}
        learned = {}
        for name, est in self._baselines.items():
            like = guide_tr[name].log_prob
            if est.baseline == "running":
                self._aux.setdefault(name, self.ops.asarray(float("nan"), like=like))
            else:
                learned[f"_baseline.{name}"] = self._learned[name] = self.ops.asarray(0.0, like=like)
        self.engine.discover([guide_tr, model_tr], extra=learned, create_optimizer=False)
        if self.vectorize_particles == "vmap":
            self._check_mappable(guide_tr)
        self._ready = True

    def _check_mappable(self, guide_tr):
        if self._enum_dims:
            raise UnsupportedError(f"guide sites {sorted(self._enum_dims)} enumerated with particles "
                                   "mapped by vmap", hint="vectorize_particles=True or False")
        subsampled = [name for name, _ in self._layout.keep or () if name in guide_tr.subsamples]
        if subsampled:  # each mapped particle draws its own indices: elements would not line up
            raise UnsupportedError(f"per-element weights over subsampled plate {subsampled[0]!r} with "
                                   "particles mapped by vmap", hint="pass independent_plate=None")

    def _falling_back(self, failure, args, kwargs):
        """``vectorize_particles="auto"``: after the first vectorised run failed as a program
        that does not broadcast (raised before any update, outside or inside a compiled
        step), switch to ``jax.vmap`` or one by one with one warning, and set up again."""
        if not fell_back("VI", self, failure, self.objective.num_particles):
            return False
        self._setup(args, kwargs)
        return True

    def _check_structure(self, model_tr, guide_tr):
        """A model site first met after the set-up (stochastic structure) needs a guide site
        too: checked whenever the model's sites change, not only on the first run."""
        for name in model_tr.latent.keys() - guide_tr.latent.keys() - self._model_enum:
            raise SiteError(f"the guide is missing latent site {name!r} of the model (first met at "
                            f"step {self.step_count}); every latent site needs a guide site", site=name)
        self._model_sites = model_tr.sites.keys()
        self._eval_chunk = max(1, 2 ** 28 // bytes_per_particle([model_tr, guide_tr]))

    def _choose_estimator(self, name, fn, infer):
        spec = self.estimator_config.get(name) or infer.get("estimator")
        if spec is None and infer.get("enumerate") == "parallel":
            spec = "enum"
        objective = self.objective
        if objective.detached_samples:
            if spec is not None and not resolve_estimator(spec, name).scores:
                raise ValueError(
                    f"site {name!r}: {type(objective).__name__} samples the guide without "
                    f"reparameterisation and supplies its own proposal gradient, so estimator "
                    f"{spec!r} does not apply")
            return _Detached()
        if spec is None:
            spec = "reparam" if fn.has_rsample else "score"
        est = resolve_estimator(spec, name)
        if est.enumerates and not objective.supports_enum:
            raise ValueError(f"site {name!r}: estimator 'enum' needs an objective linear in the "
                             f"log-weights (ELBO), not {objective!r}")
        if est.scores and est.baseline is not None:
            self._baselines[name] = est
        return est

    # ------------------------------------------------------------------ drawing
    def _draw_plain(self, msg):
        self.backend.draw_reparam(msg)

    def _draw(self, msg):
        name = msg["name"]
        est = self._estimators.get(name)
        if est is None:  # a site the dry run did not visit (dynamic structure)
            est = self._estimators[name] = self._choose_estimator(name, msg["fn"], msg["infer"])
            if est.enumerates:
                if self._model_enum:  # the model's enumeration dims start where the dry run's end
                    raise UnsupportedError(
                        f"guide site {name!r}: an enumerated guide site that the first run did not "
                        "visit, in a program whose model enumerates too",
                        hint="visit it on every run, or enumerate it in the model")
                self._enum_dims[name] = min(self._enum_dims.values(), default=self._first_enum_dim + 1) - 1
        if name in self._enum_dims:
            msg["_enum_dim"] = self._enum_dims[name]
        est.draw(self.backend, msg, self.step_count)

    def _relax_model_site(self, msg):
        est = self._relaxed.get(msg["name"])
        if est is not None:
            est.relax_model_site(self.backend, msg, self.step_count)

    # ------------------------------------------------------------------- losses
    def _baselines_at(self, score_log_q, params, aux):
        """The score sites' baselines, each given its state: a running one's from ``aux``, a
        learned one's parameter from ``params`` (functional engines) or held here (torch)."""
        ops, out = self.ops, {}
        for name, like in score_log_q.items():
            est = self._baselines.get(name)
            if est is None:
                continue
            if est.baseline == "running":
                state = aux.get(name)
                out[name] = RunningBaseline(ops, est.decay, ops.asarray(float("nan"), like=like)
                                            if state is None else state)
            elif params is not None:
                if f"_baseline.{name}" not in params:
                    raise UnsupportedError(
                        f"guide site {name!r}: a learned baseline for a site the first run did not "
                        "visit", backend=self.backend.name, hint="Score('running') for it")
                out[name] = LearnedBaseline(ops, params[f"_baseline.{name}"])
            else:
                if name not in self._learned:  # a site the dry run did not visit
                    self._learned[name] = ops.asarray(0.0, like=ops.stop_gradient(like))
                    self.engine.discover([], extra={f"_baseline.{name}": self._learned[name]})
                out[name] = LearnedBaseline(ops, self._learned[name])
        return out

    def baseline_parameters(self):
        """Learned baselines' parameters, by name (for the optimiser)."""
        return {f"_baseline.{name}": param for name, param in self._learned.items()}

    def _traces(self, args, kwargs, params=None, rng=None):
        backend = self.backend
        layout = self._layout
        particles = self._particles(self.objective.num_particles) if layout.vectorised else None
        # split as NumPyro's ELBOs split a particle's key, (model, guide): on JAX the same
        # key gives the same draws as NumPyro's Trace_ELBO (tests/test_parity.py)
        rng_model, rng_guide = (None, None) if rng is None else backend.split_rng(rng)
        guide_tr = backend.run(self.guide, args, kwargs, draw=self._draw, particles=particles,
                               params=params, rng=rng_guide)
        values = guide_tr.replay_values()
        model_tr = backend.run(self.model, args, kwargs, replay=values,
                               adjust=self._relax_model_site if self._relaxed else None,
                               particles=particles, params=params, rng=rng_model,
                               enumerate_from=self._enumerate_from)
        if self._enum_dims:
            layout.enum = {name: (dim, self.ops.exp(guide_tr[name].fn.log_prob(guide_tr[name].value)))
                           for name, dim in self._enum_dims.items() if name in guide_tr.sites}
        return guide_tr, model_tr

    def _surrogate(self, args, kwargs, params=None, rng=None, aux=None):
        """(surrogate loss, bound value, guide trace, model trace, baselines' next state) for
        one step from the baselines' state ``aux`` (the strategy's own by default)."""
        ops = self.ops
        K = self.objective.num_particles
        sleep_rng = None
        if self.objective.sleep and rng is not None:
            rng, sleep_rng = self.backend.split_rng(rng)
        if self._layout.vectorised:
            run = self._checked_vectorised(args, kwargs, params, rng)
        elif K == 1:
            run = self._weights(args, kwargs, params, rng)
        else:  # one run per particle, their weights stacked as a vectorised run would lay them out
            runs = []
            for _ in range(K):
                rng, key = (None, None) if rng is None else self.backend.split_rng(rng)
                runs.append(self._weights(args, kwargs, params, key))
            run = stacked(ops, runs)
        log_p, log_q, score_log_q, guide_tr, model_tr = (
            run.log_p, run.log_q, run.score_log_q, run.guide_tr, run.model_tr)
        aux = self._aux if aux is None else aux
        baselines = self._baselines_at(score_log_q, params, aux)
        surrogate, value = self.objective.loss(ops, log_p, log_q, score_log_q, baselines)
        new_aux = dict(aux)
        new_aux.update({name: b.new_state for name, b in baselines.items() if isinstance(b, RunningBaseline)})
        if run.enum_score is not None:  # only the ELBO enumerates guide sites
            surrogate = surrogate - ops.sum(ops.mean(run.enum_score, 0))
        if self.objective.sleep:
            surrogate = surrogate + self.objective.sleep * self._sleep_loss(args, kwargs, params, sleep_rng)
        return surrogate, value, guide_tr, model_tr, new_aux

    def _checked_vectorised(self, args, kwargs, params, rng):
        """The first vectorised run names the likely cause when the programs do not broadcast."""
        if self._vectorised_ok:
            return self._weights(args, kwargs, params, rng)
        try:
            out = self._weights(args, kwargs, params, rng)
        except (RuntimeError, ValueError, TypeError) as error:
            if not is_program_failure(error):
                raise
            raise vectorisation_error("VI", self.objective.num_particles, self._plates, error) from error
        self._vectorised_ok = True
        return out

    def _weights(self, args, kwargs, params, rng):
        """One run of guide and model: its :class:`~inference.vi.log_weights.LogWeights`."""
        ops = self.ops
        layout = self._layout
        guide_tr, model_tr = self._traces(args, kwargs, params, rng)
        if model_tr.sites.keys() != self._model_sites:  # the structure changed: check it again
            self._check_structure(model_tr, guide_tr)
        if layout.vectorised and not self._vectorised_ok:
            problem = particle_broadcast_problem(self._log_density_shapes,
                                                 [("guide", guide_tr), ("model", model_tr)], self._plates)
            if problem:
                raise ValueError(problem)  # _checked_vectorised names the remedy
        # one particle per run, weights per element: what is counted once must not vary by run
        outside = [] if layout.keep is not None and not layout.vectorised else None
        log_q = total_log_weight(ops, layout, guide_tr.sites.values(), outside)  # a guide factor too
        costs = self._model_costs(layout, model_tr)
        log_p = self._log_p(layout, model_tr, costs, outside)
        log_p, log_q = as_arrays(ops, log_p, log_q, self.objective.num_particles if layout.vectorised else 1)
        score_log_q, downstream = {}, []
        for name, est in self._estimators.items():
            if est.scores and name in guide_tr.sites:
                site = guide_tr[name]
                if any(ops.ndim(site.log_prob) >= -d and site.log_prob.shape[d] > 1
                       for d in self._enum_dims.values()):
                    downstream.append(site)  # drawn once per value of an enumerated site
                else:
                    score_log_q[name] = total_log_weight(ops, layout, [site])
        enum_score = None
        if downstream:
            model_costs = list(model_tr.sites.values()) if costs is None else costs
            enum_score = enumerated_score(ops, layout, downstream, model_costs, guide_tr.sites.values())
        return LogWeights(log_p, log_q, score_log_q, enum_score, guide_tr, model_tr, outside)

    def _model_costs(self, layout, model_tr):
        """The model's log-density terms as sites: with model enumeration, the sums over
        its enumerated sites per plate context, keeping the guide's enumerated dimensions
        (weighted site by site afterwards) and the kept plates' elements; None without
        model enumeration, or when one tensor per particle is all that is needed."""
        if not self._model_enum or (not layout.enum and layout.keep is None):
            return None
        guide_enumerated = {name: dim for name, (dim, _) in layout.enum.items()}
        return marginal_terms(model_tr.sites.values(), self._model_enum, guide_enumerated, self.backend.name)

    def _log_p(self, layout, model_tr, costs, outside=None):
        """log p(x, z) per particle (and element): the model sites' log densities (or the
        ``costs`` of :meth:`_model_costs` standing for them), with the model-enumerated sites
        summed out."""
        if costs is not None or not self._model_enum:
            sites = model_tr.sites.values() if costs is None else costs
            return total_log_weight(self.ops, layout, sites, outside)
        particle = self.backend.particle_plate
        value, kept = log_joint(model_tr, self._model_enum, [particle] if layout.vectorised else [],
                                self.backend.name)
        return value if particle in kept else self.ops.reshape(value, (1,))  # the same in every particle

    def _sleep_loss(self, args, kwargs, params=None, rng=None):
        """-log q(z | x) on (z, x) drawn from the model (reweighted wake-sleep's sleep phase)."""
        backend = self.backend
        layout = self._layout
        particles = self._particles(self.objective.num_particles) if layout.vectorised else None
        rng_dream, rng_guide = (None, None) if rng is None else backend.split_rng(rng)
        with backend.no_grad():
            dream = backend.run(backend.handlers.uncondition(self.model), args, kwargs,
                                draw=backend.draw_detached, particles=particles, params=params,
                                rng=rng_dream)
        guide_args, guide_kwargs = args, kwargs
        if self.objective.sleep_inputs is not None:
            observed = {n: s.value for n, s in dream.sites.items() if n not in self._estimators}
            guide_args, guide_kwargs = self.objective.sleep_inputs(observed, args, kwargs)
        values = {n: dream[n].value for n in self._estimators if n in dream.sites}
        values.update(dream.subsamples)
        guide_tr = backend.run(self.guide, guide_args, guide_kwargs, replay=values, particles=particles,
                               params=params, rng=rng_guide)
        log_q = total_log_weight(self.ops, layout, guide_tr.latent.values())
        return -self.ops.sum(self.ops.mean(log_q, 0))

    def _loss(self, params, rng, aux, args, kwargs):
        """The engine's loss function, pure in (params, rng, aux) under ``jax.jit``:
        (surrogate, bound value, traces, extra leaves, the baselines' next state)."""
        surrogate, value, guide_tr, model_tr, new_aux = self._surrogate(args, kwargs, params, rng, aux)
        return surrogate, value, (guide_tr, model_tr), {}, new_aux

    def loss(self, *args, **kwargs):
        """The objective's loss (negative bound) on one fresh draw, without a gradient step."""
        with self.entered():
            if not self._ready:
                self._setup(args, kwargs)
            try:
                with self.backend.no_grad():
                    value = self._surrogate(args, kwargs, *self.engine.loss_inputs())[1]
            except ShapeError as failure:
                if not self._falling_back(failure, args, kwargs):
                    raise
                return self.loss(*args, **kwargs)
            return -self.ops.item(value)

    def differentiable_loss(self, *args, **kwargs):
        """The surrogate loss whose gradient is the estimator's (torch: call ``.backward()``)."""
        with self.entered():
            if not self._ready:
                self._setup(args, kwargs)
            try:
                return self._surrogate(args, kwargs)[0]
            except ShapeError as failure:
                if not self._falling_back(failure, args, kwargs):
                    raise
                return self.differentiable_loss(*args, **kwargs)

    # ------------------------------------------------------------------- verbs
    def step(self, *args, **kwargs):
        """One optimisation step; returns the loss (the negative bound) before the step."""
        with self.entered():
            if not self._ready:
                self._setup(args, kwargs)
            engine = self.engine
            updates = engine.updates
            with deferred_interrupts():  # the update and its bookkeeping land together
                try:
                    value, aux = engine.step(self._step_loss(), self._aux, args, kwargs)
                except BaseException as failure:
                    if engine.updates != updates:  # failed after the parameters moved
                        self._record(engine.last_loss)
                    elif self._falling_back(failure, args, kwargs):
                        return self.step(*args, **kwargs)
                    raise
                if not math.isfinite(value):
                    self._raise_non_finite(value, args, kwargs)
                self._aux = aux
                self._record(value)
            return value

    def _step_loss(self):
        """The loss a step differentiates: compiled once, on the first step, with ``compile``."""
        if not self.compile:
            return self._loss
        if self._compiled_loss is None:
            self._compiled_loss = self.backend.compiled_loss(self._loss)
        return self._compiled_loss

    def _record(self, value):
        self.step_count += 1
        self.history.append(value)

    def _raise_non_finite(self, value, args, kwargs):
        with self.backend.no_grad():
            guide_tr, model_tr = self._traces(args, kwargs, *self.engine.loss_inputs())
        # modules passed as model or guide keep weights that their traces need not record
        owners = [("module", Trace({}, {f"{type(m).__name__}.{n}": p for n, p in m.named_parameters()}))
                  for m in getattr(self.engine, "owners", ())]
        raise self.non_finite(f"loss is {value} at step {self.step_count}",
                              [("guide", guide_tr), ("model", model_tr)] + owners,
                              "no single site is non-finite; the objective overflowed")

    def _progress_label(self):
        return type(self.objective).__name__

    @property
    def params(self):
        """The trained parameters (constrained values) by name, on either backend. They
        belong to this VI; pass them on with ``Importance(..., param_values=vi.params)``."""
        with self.entered():
            return self.engine.trained_params()

    # ------------------------------------------------------------- checkpoints
    def state_dict(self):
        state = super().state_dict()
        state["engine"] = self.engine.state_dict()
        state["baselines"] = dict(self._aux)  # running baselines (learned ones are parameters)
        return state

    def check_state_dict(self, state):
        found = super().check_state_dict(state)
        if found is None and not isinstance(state.get("engine"), dict):
            found = "it has no engine state"
        return found or self.engine.check_state_dict(state["engine"])

    def load_state_dict(self, state):
        self.engine.load_state_dict(state["engine"])
        super().load_state_dict(state)
        saved = state.get("baselines") or {}
        self._aux.update({name: self.ops.asarray(value) for name, value in saved.items()})
