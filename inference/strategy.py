"""The verbs every strategy shares: its own state, seeding, ``run``, ``params``, checkpoints.

A strategy owns a ``StrategyState`` from its backend (torch: a parameter store and, when
seeded, a random stream of its own; JAX: a PRNG stream). Every public verb runs inside
``self.entered()``, so two strategies never share parameters, a fault leaves the
backends' global handler stacks as they were, and strategies in two threads take turns.
A subclass writes ``step`` (and its estimate) and, to be checkpointed, ``state_dict`` /
``check_state_dict`` / ``load_state_dict``.

    >>> import torch, ppl, ppl.distributions as dist
    >>> from inference import VI
    >>> def model():
    ...     ppl.sample("z", dist.Normal(0.0, 1.0))
    >>> def guide():
    ...     ppl.sample("z", dist.Normal(ppl.param("loc", torch.tensor(0.5)), 1.0))
    >>> a, b = VI(model, guide, rng_seed=0), VI(model, guide, rng_seed=0)
    >>> _ = a.run(num_steps=5, progress=False)
    >>> float(b.params.get("loc", torch.tensor(0.5))), a.step_count, b.step_count
    (0.5, 5, 0)
"""

import contextlib
import functools

from ppl.backend import backend_of
from ppl.errors import CheckpointError, NonFiniteError, UnsupportedError

from . import checkpoint
from .trainer import run_steps
from .weights import find_non_finite


class Strategy:
    """Base class: ``model``, its backend, a state of its own, ``history`` and ``step_count``."""

    def __init__(self, model, rng_seed=None):
        if rng_seed is not None and (isinstance(rng_seed, bool) or not _is_integer(rng_seed)):
            raise ValueError(f"{type(self).__name__}: rng_seed must be an integer or None, got {rng_seed!r}")
        self.model = model
        self.backend = backend_of(model)
        self.ops = self.backend.ops
        self.state = self.backend.new_state(None if rng_seed is None else int(rng_seed))
        self.history = []
        self.step_count = 0

    def entered(self):
        """The context every verb runs in (the strategy's parameters and random stream)."""
        return self.backend.entered(self.state)

    @contextlib.contextmanager
    def param_scope(self):
        """A block in which ``ppl.param`` (and ``pyro.param``) read and write this strategy's
        parameters, e.g. to run a trained guide outside the strategy::

            with vi.param_scope():
                z = guide(x)
        """
        with self.entered():
            yield self

    def step(self, *args, **kwargs):
        """One unit of work (an optimisation step, a batch of particles); returns its loss
        or result. Subclasses write it, inside ``self.entered()``."""
        raise UnsupportedError(f"{type(self).__name__}.step")

    def evaluate(self, *args, **kwargs):
        """An estimate of log p(x) from what the strategy has learned."""
        raise UnsupportedError(f"{type(self).__name__}.evaluate")

    def posterior(self, *args, num_samples=1000, **kwargs):
        """``num_samples`` posterior draws: site name -> array ``[num_samples, ...]``."""
        raise UnsupportedError(f"{type(self).__name__}.posterior")

    def to_arviz(self, *args, num_samples=1000, kind="InferenceData", **kwargs):
        """``num_samples`` draws of :meth:`posterior` as ArviZ's ``InferenceData`` (or, with
        ``kind="DataTree"``, the ``DataTree`` of ArviZ 1.x), one chain, with each observed
        site's pointwise log-likelihood (every draw replayed through the model; the LOO
        functions read it) and the observed data."""
        from .mcmc.arviz_export import check_kind, inference_data, replayed_log_likelihood

        check_kind(f"{type(self).__name__}.to_arviz", kind)
        draws = self.posterior(*args, num_samples=num_samples, **kwargs)
        by_chain = {n: self.ops.to_numpy(v)[None] for n, v in draws.items()}
        with self.entered():
            observed, log_lik = replayed_log_likelihood(self, args, kwargs, by_chain)
        return inference_data(by_chain, {}, log_lik, observed, kind=kind)

    def run(self, *args, num_steps=1000, progress=True, **kwargs):
        """``num_steps`` calls of :meth:`step` with progress output; returns their losses
        (a strategy whose step returns a result, as ``Importance``, overrides it to pool
        them)."""
        return run_steps(self.step, args, kwargs, num_steps, progress, self._progress_label())

    def _progress_label(self):
        return type(self).__name__

    def non_finite(self, what, traces, otherwise):
        """The :class:`NonFiniteError` to raise: ``what``, then the first site responsible in
        ``traces`` (``(role, trace)`` pairs; its value, log density or a parameter), or
        ``otherwise`` when no single site is."""
        culprit = find_non_finite(self.ops, traces)
        return NonFiniteError(f"{what}: {culprit or otherwise}")

    # ------------------------------------------------------------- checkpoints
    def state_dict(self):
        return {"step": self.step_count, "history": list(self.history)}

    def check_state_dict(self, state):
        """The first way ``state`` does not fit this strategy, as a sentence, or None."""
        if not isinstance(state.get("step"), int) or not isinstance(state.get("history"), list):
            return "its step count or history is missing"
        return None

    def load_state_dict(self, state):
        self.step_count = state["step"]
        self.history = list(state["history"])

    def save(self, path):
        """Write everything needed to resume exactly (parameters, optimiser, random stream,
        history) to ``path``: arrays and JSON, written atomically. Raises ``CheckpointError``
        when the file cannot be written."""
        with self.entered():
            tree = self.state_dict()
        checkpoint.write(path, type(self).__name__, self.backend.name, tree)

    def load(self, path):
        """Restore a :meth:`save`; the next :meth:`step` continues the saved run exactly.
        Everything is read and checked first: a checkpoint that does not fit (another
        strategy, backend, parameter names or shapes, optimiser) raises ``CheckpointError``
        naming the first difference and changes nothing. Loaded into a strategy that has
        not run yet, parameters are checked when its first call reveals them."""
        tree = checkpoint.read(path, type(self).__name__, self.backend.name)
        with self.entered():
            found = self.check_state_dict(tree)
            if found:
                raise CheckpointError(f"{path!s} does not fit this {type(self).__name__}: {found}")
            self.load_state_dict(tree)


def entering(verb):
    """Decorate a strategy's method to run inside ``self.entered()``."""
    @functools.wraps(verb)
    def entered_verb(self, *args, **kwargs):
        with self.entered():
            return verb(self, *args, **kwargs)

    return entered_verb


def _is_integer(value):
    try:
        return int(value) == value
    except (TypeError, ValueError):
        return False
