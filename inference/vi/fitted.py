"""What a fitted :class:`~inference.vi.variational.VI` answers: the evidence bound
(``evaluate``), draws from the guide (``posterior``) and the model-enumerated sites'
posterior (``infer_discrete``). A mixin of ``VI``: it reads the set-up's layout, the
guide's draw rule and the engine's parameters and key.

    >>> import torch, ppl, ppl.distributions as dist
    >>> from inference import VI
    >>> def model():
    ...     ppl.sample("z", dist.Normal(0.0, 1.0))
    >>> def guide():
    ...     ppl.sample("z", dist.Normal(0.0, 1.0))
    >>> vi = VI(model, guide, rng_seed=0)
    >>> round(vi.evaluate(num_particles=10), 6)   # the guide is the prior: log p = 0
    0.0
    >>> tuple(vi.posterior(num_samples=7)["z"].shape)
    (7,)
"""

import math
import warnings

from ppl.errors import user_stacklevel

from ..arguments import count
from ..enumeration import discrete_posterior
from ..particles import particles_arg
from ..program import release_freed_memory, squeeze_particles
from ..weights import WeightLayout, total_log_weight
from .log_weights import as_arrays, check_outside_equal


class FittedQueries:
    """``evaluate``, ``posterior`` and ``infer_discrete`` of a ``VI``."""

    def evaluate(self, *args, num_particles=1000, batch_particles=None, **kwargs):
        """IWAE bound log (1/K) sum_k p(x, z_k) / q(z_k) with ``num_particles`` guide draws
        (per element of the independent plate, summed), computed in batches. With a MAP
        guide (``Delta`` sites) it is log p(x, z) at the point, not a bound: a warning says so."""
        count("VI.evaluate", "num_particles", num_particles)
        if batch_particles is not None:
            count("VI.evaluate", "batch_particles", batch_particles)
        with self.entered():
            if not self._ready:
                self._setup(args, kwargs)
            if self._point_masses:
                warnings.warn(f"VI.evaluate: guide sites {self._point_masses} are point masses (Delta): "
                              "the estimate is log p(x, z) at that point, not a bound on log p(x); "
                              "use a guide with a density (AutoNormal, ...) for the evidence",
                              UserWarning, stacklevel=user_stacklevel())
            batch = batch_particles or self._eval_chunk  # under a 256 MiB budget by default
            return self._evaluate(args, kwargs, num_particles, batch if self.vectorize_particles else 1)

    def _evaluate(self, args, kwargs, num_particles, batch):
        backend, ops = self.backend, self.ops
        vectorised = bool(self.vectorize_particles)
        layout = WeightLayout(self._plates, vectorised, self._keep)
        chunks, outsides = [], []
        with backend.no_grad():
            for start in range(0, num_particles, batch):
                k = min(batch, num_particles - start)
                particles = self._particles(k)
                guide_tr = backend.run(self.guide, args, kwargs, draw=self._draw_plain,
                                       particles=particles, **self._functional_inputs())
                values = guide_tr.replay_values()
                enumerate_from = -(self._plates + (2 if vectorised else 1)) if self._model_enum else None
                model_tr = backend.run(self.model, args, kwargs, replay=values, particles=particles,
                                       enumerate_from=enumerate_from, **self._functional_inputs())
                outside = [] if self._keep is not None and not vectorised else None
                log_q = total_log_weight(ops, layout, guide_tr.sites.values(), outside)
                log_p = self._log_p(layout, model_tr, self._model_costs(layout, model_tr), outside)
                log_p, log_q = as_arrays(ops, log_p, log_q, k if vectorised else 1)
                log_w = log_p - log_q
                if outside is not None:
                    outsides.append(outside)
                    check_outside_equal(ops, [outsides[0], outside])
                chunks.append(ops.logsumexp(log_w, 0))
                if num_particles > batch:
                    release_freed_memory()
        combined = ops.logsumexp(ops.stack(chunks), 0) - math.log(num_particles)
        return ops.item(ops.sum(combined))

    def _particles(self, num):
        return particles_arg(self.vectorize_particles, num, self._plates)

    def _functional_inputs(self):
        params, rng = self.engine.loss_inputs()
        return {"params": params, "rng": rng}

    def infer_discrete(self, *args, temperature=1, **kwargs):
        """The model-enumerated sites' posterior given one draw of the guide: a joint sample
        (``temperature=1``) or the MAP assignment (``temperature=0``, Viterbi on a chain),
        by Pyro's ``infer_discrete`` (on JAX, NumPyro's); site name -> value."""
        with self.entered():
            if not self._ready:
                self._setup(args, kwargs)
            if not self._model_enum:
                raise ValueError("VI.infer_discrete: the model has no enumerated site the guide "
                                 "leaves out (mark them infer={'enumerate': 'parallel'})")
            params, rng = self.engine.loss_inputs()
            rng_guide, rng_model = (None, None) if rng is None else self.backend.split_rng(rng)
            with self.backend.no_grad():
                guide_tr = self.backend.run(self.guide, args, kwargs, draw=self._draw_plain, params=params,
                                            rng=rng_guide)
            return discrete_posterior(self.backend, self.model, guide_tr.replay_values(), args, kwargs,
                                      self._plates, temperature, params, rng_model,
                                      chain=self._enumerated_chain)

    def posterior(self, *args, num_samples=1000, **kwargs):
        """``num_samples`` joint draws from the guide: site name -> array ``[num_samples, ...]``."""
        count("VI.posterior", "num_samples", num_samples)
        with self.entered():
            if not self._ready:
                self._setup(args, kwargs)
            backend = self.backend
            with backend.no_grad():
                if not self.vectorize_particles:  # one run per draw, stacked
                    runs = [backend.run(self.guide, args, kwargs, draw=self._draw_plain,
                                        **self._functional_inputs()).values()
                            for _ in range(num_samples)]
                    return {name: self.ops.stack([run[name] for run in runs]) for name in runs[0]}
                guide_tr = backend.run(self.guide, args, kwargs, draw=self._draw_plain,
                                       particles=self._particles(num_samples),
                                       **self._functional_inputs())
            return squeeze_particles(self.ops, guide_tr.values(), self._single_shapes, num_samples)
