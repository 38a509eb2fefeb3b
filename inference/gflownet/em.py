"""GFlowNet-EM (Hu et al., ICML 2023): EM whose E-step trains a GFlowNet sampler of a
program's discrete latent sites toward their posterior, on either backend.

The loop is written against the sampler protocol of :mod:`inference.gflownet.sampler`. An
E-step is one balance-loss update of the sampler toward the reward R(z) = p_theta(x, z)
(trajectory, detailed or sub-trajectory balance); an M-step is a gradient step on
-log p_theta(x, z) with z drawn from the sampler (``"sampled"``), its greedy construction
(``"greedy"``) or importance-reweighted draws (``"reweighted"``). The sampler builds scalar
sites one per step in a fixed order (:mod:`inference.gflownet.fixed_order`) or, with
``action_space=``, structures step by step (:mod:`inference.gflownet.action_sampler`).
Both the E-step and the M-step are steps of the strategy's engines on pure losses, so on
JAX each is compiled once (``jax.jit``) with an Equinox policy.

    >>> import torch, ppl, ppl.distributions as dist
    >>> def model(x):
    ...     with ppl.plate("data", len(x)):
    ...         c = ppl.sample("c", dist.Categorical(torch.ones(2) / 2))
    ...         ppl.sample("x", dist.Normal(torch.tensor([-2.0, 2.0])[c], 1.0), obs=x)
    >>> em = GFlowNetEM(model, hidden=16)
    >>> losses = em.run(torch.tensor([-2.0, 2.1]), num_steps=200, progress=False)
    >>> em.posterior_probs(torch.tensor([-2.0, 2.1]))["c"].argmax(-1).tolist()
    [0, 1]
"""

import math

from ppl.errors import CheckpointError, UnsupportedError
from ppl.validation import check_observations

from ..arguments import count
from ..engines import make_engine
from ..interrupts import deferred_interrupts
from ..optim import Adam
from ..strategy import Strategy, entering
from ..weights import NonFiniteError
from .action_sampler import ActionSpaceSampler, check_action_space_options
from .fixed_order import FixedOrderSampler
from .policies import MLPPolicy
from .sampler import LOSSES

__all__ = ["GFlowNetEM", "MLPPolicy"]


class GFlowNetEM(Strategy):
    """EM with a GFlowNet E-step over the discrete latent sites of ``model``.

    Arguments:
        model: a program whose latent sites are all discrete and lie in one data plate.
        loss: ``"tb"``, ``"db"`` or ``"subtb"`` (with weight ``subtb_lambda``).
        policy: a module (``torch.nn.Module``; ``equinox.Module`` on JAX) with
            ``policy(features, state, step) -> logits`` and ``log_partition(features) ->
            log Z``; an :class:`MLPPolicy` by default (on JAX its Equinox twin).
        optimizer: for the sampler (default ``Adam(lr=1e-3)``);
            model_optimizer: for the model's parameters (default ``Adam(lr=1e-2)``).
        m_step: ``"sampled"``, ``"greedy"``, ``"reweighted"`` (importance-reweighted draws)
            or None (E-step only).
        e_steps: sampler updates per :meth:`step`, each on ``num_trajectories`` trajectories
            per data element; temperature, epsilon: exploration.
        sleep, sleep_probability: with that probability per update, add ``sleep`` times
            -log P_F(z | x) on (z, x) drawn from the model (the sleep phase).
        m_step_threshold: ``(start, end, anneal_steps)``: run the M-step only while an
            exponential moving average (0.9) of the E-step loss is under a threshold that
            goes linearly from ``start`` to ``end`` (the adaptive schedule); None: always.
        replay: keep the ``replay`` highest-reward trajectories of each data element and
            train on as many of them as fresh ones in each update (off-policy).
        local_search: go back that many steps of each fresh trajectory (the backward policy
            of a fixed order is deterministic), rebuild them with P_F and accept by
            Metropolis-Hastings with the P_F ratio; the chain's states are trained on too.
        order: the latent sites' names in the order a trajectory assigns them (default:
            program order).
        rng_seed: an integer gives the strategy a random stream of its own; None draws from
            torch's global generator (on JAX, a stream seeded with 0).
        action_space: a user-defined construction of the latent sites (a structure such as a
            parse tree, built step by step; see :mod:`inference.gflownet.actions` for the
            protocol), with a backward policy P_B (uniform over parents by default) in every
            balance loss; the policy is then ``forward(features, encoding) -> logits`` over
            the space's actions (an :class:`~inference.gflownet.actions.ActionMLPPolicy` by
            default). ``order``, ``local_search`` and ``sleep`` do not apply (an error), nor
            do :meth:`posterior_probs` and :meth:`trajectory_log_probs`. Torch only: the
            user's space is written in torch tensors, and its trajectories' lengths depend
            on the states reached, which a compiled JAX step cannot trace.
    """

    def __init__(self, model, policy=None, loss="tb", optimizer=None, model_optimizer=None,
                 m_step="sampled", e_steps=1, temperature=1.0, epsilon=0.0, hidden=64,
                 subtb_lambda=0.9, num_trajectories=16, sleep=0.0, sleep_probability=0.3,
                 m_step_threshold=None, replay=0, local_search=0, order=None, action_space=None,
                 rng_seed=None):
        Strategy.__init__(self, model, rng_seed)
        if action_space is not None and self.backend.name != "torch":
            raise UnsupportedError("GFlowNet-EM with an action_space", backend=self.backend.name,
                                   hint="an action space is written in torch tensors: define the "
                                   "model on the torch backend, or build scalar sites in a fixed order")
        if loss not in LOSSES:
            raise ValueError(f"GFlowNetEM: loss must be one of {LOSSES}, got {loss!r}")
        e_steps, hidden, num_trajectories = (
            count("GFlowNetEM", name, value) for name, value in
            (("e_steps", e_steps), ("hidden", hidden), ("num_trajectories", num_trajectories)))
        if not (isinstance(subtb_lambda, (int, float)) and subtb_lambda > 0):
            raise ValueError(f"GFlowNetEM: subtb_lambda must be a positive number (the weight of "
                             f"sub-trajectories by length), got {subtb_lambda!r}")
        if sleep < 0 or not 0 <= sleep_probability <= 1:
            raise ValueError("GFlowNetEM: sleep is a non-negative weight and sleep_probability "
                             "a probability")
        if m_step_threshold is not None and len(m_step_threshold) != 3:
            raise ValueError("GFlowNetEM: m_step_threshold is (start, end, anneal_steps)")
        replay = count("GFlowNetEM", "replay", replay, minimum=0)
        local_search = count("GFlowNetEM", "local_search", local_search, minimum=0)
        if action_space is not None:
            check_action_space_options(action_space, order, local_search, sleep)
        if m_step not in ("sampled", "greedy", "reweighted", None):
            raise ValueError("GFlowNetEM: m_step must be 'sampled', 'greedy', 'reweighted' or None, "
                             f"got {m_step!r}")
        if not temperature > 0 or not 0 <= epsilon < 1:
            raise ValueError("GFlowNetEM: temperature must be positive and epsilon in [0, 1)")
        options = dict(policy=policy, optimizer=optimizer, hidden=hidden, loss=loss,
                       subtb_lambda=subtb_lambda, num_trajectories=num_trajectories,
                       temperature=temperature, epsilon=epsilon, replay=replay)
        if action_space is None:
            self.sampler = FixedOrderSampler(model, self.backend, self.state, order=order,
                                             local_search=local_search, sleep=sleep,
                                             sleep_probability=sleep_probability, **options)
        else:
            self.sampler = ActionSpaceSampler(model, self.backend, self.state, action_space, **options)
        self.action_space = action_space
        self.model_engine = make_engine(self.backend.name, model_optimizer or Adam(lr=1e-2), self.state,
                                        owners=(model,))
        self.m_step = m_step
        self.e_steps = e_steps
        self.num_trajectories = num_trajectories
        self.m_step_threshold = m_step_threshold
        self._loss_average = None  # of the E-step loss, for the adaptive M-step schedule
        self.m_steps_taken = 0
        self._feature_args = self._feature_cache = None
        self._pending_state = None  # a loaded checkpoint's sampler state, until set-up

    # ---------------------------------------------------------------- the sampler
    @property
    def policy(self):
        """The sampler's policy (None until the first call builds the default one)."""
        return self.sampler.policy

    @policy.setter
    def policy(self, policy):
        self.sampler.policy = policy

    @property
    def slots(self):
        """The fixed-order sampler's sites in construction order (None with an action space)."""
        return self.sampler.slots

    @property
    def acceptance_rate(self):
        """The fraction of local search's last moves accepted (None without local search)."""
        return self.sampler.acceptance_rate

    def _setup(self, args, kwargs):
        with self.backend.preserved_rng(), self.backend.no_grad(), self.backend.handlers.block():
            trace = self.backend.run(self.model, args, kwargs)
        self.model_engine.discover([trace], create_optimizer=False)
        check_observations(trace)
        if not trace.latent:
            raise ValueError("GFlowNetEM: the model has no latent site; a GFlowNet needs "
                             "discrete latent sites to construct")
        self.sampler.setup(trace)
        if self._pending_state is not None:
            pending, self._pending_state = self._pending_state, None
            found = self.sampler.check_state_dict(pending)
            if found:
                raise CheckpointError(f"the loaded checkpoint does not fit this program: {found}")
            self.sampler.load_state_dict(pending)

    def _current_features(self, args, kwargs):
        """The data elements' features, ``[N, F]``; N follows the call, so minibatches of any
        size work. Cached while the same argument objects come back (held, not their ids,
        which a freed minibatch hands on)."""
        if not self.sampler.ready:
            self._setup(args, kwargs)
        if self._feature_args is None or not _same_objects(self._feature_args, (args, kwargs)):
            with self.backend.preserved_rng(), self.backend.no_grad(), self.backend.handlers.block():
                trace = self.backend.run(self.model, args, kwargs)
            self._feature_args = (args, dict(kwargs))
            self._feature_cache = self.sampler.checked_features(trace)
        return self._feature_cache

    # ------------------------------------------------------------------ verbs
    @entering
    def e_step(self, *args, **kwargs):
        """One update of the sampler with the chosen balance loss; returns its mean."""
        features = self._current_features(args, kwargs)
        return self.sampler.update(features, args, kwargs, self.model_engine.constrained())

    def _m_step_allowed(self, loss):
        if self.m_step_threshold is None:
            return True
        self._loss_average = loss if self._loss_average is None else 0.9 * self._loss_average + 0.1 * loss
        start, end, anneal = self.m_step_threshold
        threshold = start + (end - start) * min(1.0, len(self.history) / max(anneal, 1))
        return self._loss_average < threshold

    @entering
    def m_step_update(self, *args, **kwargs):
        """One gradient step on -log p_theta(x, z) with z from the sampler (or, with
        ``m_step="reweighted"``, on -sum_k w_k log p_theta(x, z_k) over ``num_trajectories``
        draws with self-normalised weights w_k proportional to p_theta(x, z_k) / q(z_k | x));
        returns that loss."""
        features = self._current_features(args, kwargs)
        aux = {"features": features, "policy": self.sampler.engine.constrained()}
        loss, _ = self.model_engine.step(self._m_step_loss, aux, args, kwargs)
        if not math.isfinite(loss):
            self._explain(loss, "M-step loss", features, args, kwargs)
        return loss

    def _m_step_loss(self, values, key, aux, args, kwargs):
        """The model engine's loss (values: the model's parameters where the backend passes
        values): -log p_theta(x, z), or its importance-weighted form."""
        ops = self.ops
        num = self.num_trajectories if self.m_step == "reweighted" else 1
        policy = self.sampler.policy_at(aux["policy"])
        log_r, trace, log_q = self.sampler.draw(policy, aux["features"], num, args, kwargs, key,
                                                greedy=self.m_step == "greedy", model=values, check=False)
        if self.m_step == "reweighted":
            loss = -ops.sum(ops.softmax(ops.stop_gradient(log_r) - log_q, 0) * log_r)
        else:
            loss = -ops.sum(log_r)
        return loss, -loss, [trace], None, aux

    def _explain(self, loss, what, features, args, kwargs):
        """Raise the :class:`NonFiniteError` for a non-finite loss: the policy's logits or a
        reward (from an eager draw, which names them), else a policy parameter, else the loss."""
        policy = self.sampler.policy
        self.sampler.draw(policy, features, 1, args, kwargs, self.state.next_key(), greedy=True,
                          model=self.model_engine.constrained())
        values, _ = self.backend.module_params(policy)
        bad = [name for name, value in values.items() if not self.ops.isfinite(value)]
        culprit = f": the policy's parameter {bad[0]!r} is not finite" if bad else ""
        raise NonFiniteError(f"GFlowNetEM: {what} is {loss}{culprit}")

    @entering
    def step(self, *args, **kwargs):
        """``e_steps`` sampler updates, then one M-step (unless ``m_step=None``, or the
        adaptive schedule holds it); returns the last E-step loss. An interrupt during a
        step takes effect when it ends (:mod:`inference.interrupts`)."""
        with deferred_interrupts():  # the updates and their bookkeeping land together
            for _ in range(self.e_steps):
                loss = self.e_step(*args, **kwargs)
                if not math.isfinite(loss):
                    features = self._current_features(args, kwargs)
                    self._explain(loss, "the balance loss", features, args, kwargs)
            if self.m_step is not None and self._m_step_allowed(loss):
                self.m_step_update(*args, **kwargs)
                self.m_steps_taken += 1
            self.history.append(loss)
            self.step_count += 1
        return loss

    def _progress_label(self):
        return "GFlowNet-EM"

    @property
    def params(self):
        """The model's fitted parameters (constrained values) by name."""
        with self.entered():
            return self.model_engine.trained_params()

    @entering
    def evaluate(self, *args, num_samples=1000, per_element=False, **kwargs):
        """log p(x) by importance sampling with the sampler as proposal: summed over the data
        elements, or with ``per_element`` one estimate per element (``[N]`` array)."""
        num_samples = count("GFlowNetEM.evaluate", "num_samples", num_samples)
        features = self._current_features(args, kwargs)
        with self.backend.no_grad():
            log_r, _, log_q = self.sampler.draw(self.sampler.policy, features, num_samples, args, kwargs,
                                                self.state.next_key(), model=self.model_engine.constrained())
            per_point = self.ops.logsumexp(log_r - log_q, 0) - math.log(num_samples)
        return per_point if per_element else float(self.ops.sum(per_point))

    @entering
    def posterior(self, *args, num_samples=1000, **kwargs):
        """Draws from the sampler: site -> ``[num_samples, N, *event_shape]``."""
        num_samples = count("GFlowNetEM.posterior", "num_samples", num_samples)
        return self.sampler.posterior(self.sampler.policy, self._current_features(args, kwargs),
                                      num_samples, self.state.next_key())

    @entering
    def greedy_posterior(self, *args, **kwargs):
        """The sampler's greedy construction (the most probable action at each step): site ->
        ``[N, *event_shape]``."""
        draws = self.sampler.posterior(self.sampler.policy, self._current_features(args, kwargs), 1,
                                       greedy=True)
        return {name: value[0] for name, value in draws.items()}

    @entering
    def posterior_probs(self, *args, **kwargs):
        """The sampler's marginal of each site: site -> ``[N, support]`` probabilities (exact,
        by enumerating trajectories; scalar sites only)."""
        return self.sampler.posterior_probs(self.sampler.policy, self._current_features(args, kwargs))

    @entering
    def trajectory_log_probs(self, *args, **kwargs):
        """log P_F of every complete assignment: ``[N, S_1, ..., S_T]`` (small models with
        scalar sites only)."""
        return self.sampler.trajectory_log_probs(self.sampler.policy, self._current_features(args, kwargs))

    # ------------------------------------------------------------- checkpoints
    def state_dict(self):
        """The sampler (policy, its optimiser, the replay buffer), the model's parameters and
        optimiser, the random stream and the adaptive schedule's state."""
        if not self.sampler.ready:
            raise CheckpointError("GFlowNetEM.save: nothing to save before the first step")
        state = Strategy.state_dict(self)
        state.update(self.sampler.state_dict())
        state.update({"model": self.model_engine.state_dict(), "loss_average": self._loss_average,
                      "m_steps_taken": self.m_steps_taken})
        return state

    def check_state_dict(self, state):
        found = Strategy.check_state_dict(self, state)
        if found is None and "model" not in state:
            found = "it has no model state"
        return (found or self.sampler.check_state_dict(state)
                or self.model_engine.check_state_dict(state["model"]))

    def load_state_dict(self, state):
        Strategy.load_state_dict(self, state)
        self._loss_average = state["loss_average"]
        self.m_steps_taken = state["m_steps_taken"]
        if self.sampler.ready:
            self.sampler.load_state_dict(state)
        else:
            self._pending_state = state
        self.model_engine.load_state_dict(state["model"])


def _same_objects(a, b):
    (args_a, kwargs_a), (args_b, kwargs_b) = a, b
    return (len(args_a) == len(args_b) and all(p is q for p, q in zip(args_a, args_b))
            and kwargs_a.keys() == kwargs_b.keys() and all(kwargs_a[k] is kwargs_b[k] for k in kwargs_a))
