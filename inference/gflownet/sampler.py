"""The sampler protocol the GFlowNet-EM loop is written against, and what every sampler
shares: the data plate, the reward log p_theta(x, z), the policy and its training engine,
the balance loss, the replay buffer and checkpoints, on either backend.

The policy is trained by the strategy's engine (:mod:`inference.engines`), as VI's
parameters are: an E-step is one engine step on a pure loss of (policy values, key,
auxiliary state, args), compiled under ``jax.jit`` on JAX; the replay buffer and local
search's acceptance rate are auxiliary state threaded through it. A policy is a module of
the backend's network library (a ``torch.nn.Module``; an ``equinox.Module`` on JAX) with
``policy(features, state, step) -> logits`` and ``log_partition(features) -> log Z``.

:class:`~inference.gflownet.em.GFlowNetEM` calls, inside the strategy's state:

* ``setup(trace)`` once, with a trace of the model: learn the latent sites and the data
  plate, build the default policy and register it with the engine;
* ``features(trace) -> [N, F]``: each data element's features for the policy, for a call;
* ``update(features, args, kwargs, model) -> float``: one E-step (``model``: the model's
  parameter values where the backend passes values, else None);
* ``draw(policy, features, num, args, kwargs, key, greedy, model) -> (log_reward [num,
  N], trace, log_q [num, N])``: ``num`` draws per element, their rewards (with gradients for
  the model) and the log importance denominator, for the M-step and for ``evaluate``;
* ``posterior(policy, features, num, key, greedy) -> {site: [num, N, ...]}``;
* ``trajectory_log_probs(policy, features)`` and ``posterior_probs``: exact enumeration,
  where the sampler can (otherwise a ``ValueError``);
* ``state_dict()``, ``check_state_dict(state)``, ``load_state_dict(state)``.

The two samplers are :class:`~inference.gflownet.fixed_order.FixedOrderSampler` and
:class:`~inference.gflownet.action_sampler.ActionSpaceSampler`. Draws are laid out as rows
``k * N + i`` (draw k of element i), and rewards come back as ``[num, N]``:

    >>> import torch, ppl, ppl.distributions as dist
    >>> from inference.gflownet.fixed_order import FixedOrderSampler
    >>> def model(x):
    ...     with ppl.plate("data", len(x)):
    ...         c = ppl.sample("c", dist.Categorical(torch.ones(2) / 2))
    ...         ppl.sample("x", dist.Normal(c.float(), 1.0), obs=x)
    >>> backend, x = ppl.get_backend("torch"), torch.tensor([0.0, 1.0])
    >>> sampler = FixedOrderSampler(model, backend, backend.new_state(), hidden=8)
    >>> sampler.setup(backend.run(model, (x,)))
    >>> log_r, _ = sampler.score_values({"c": torch.tensor([0, 0, 1, 1])}, (x,), {}, num=2)
    >>> [[round(v, 4) for v in row] for row in log_r.tolist()]  # log 1/2 + log N(x | c, 1)
    [[-1.6121, -2.1121], [-2.1121, -1.6121]]
"""

import abc

from ppl.shapes import broadcast_shape

from ..engines import make_engine
from ..optim import Adam
from ..program import plate_nesting
from ..weights import NonFiniteError, WeightLayout, find_non_finite, total_log_weight
from . import replay
from .losses import detailed_balance, subtrajectory_balance, trajectory_balance

LOSSES = ("tb", "subtb", "db")


def repeated(ops, rows, num):
    """``num`` copies of ``rows [n, ...]`` stacked: row ``k * n + i`` is copy k of row i."""
    return ops.reshape(ops.broadcast_to(rows[None], (num,) + tuple(rows.shape)),
                       (num * rows.shape[0],) + tuple(rows.shape[1:]))


def split_keys(backend, key, num):
    """``num`` independent keys from ``key`` (Nones where randomness is global, or where
    nothing is drawn: ``key`` None)."""
    if key is None:
        return [None] * num
    keys = []
    for _ in range(num):
        key, sub = backend.split_rng(key)
        keys.append(sub)
    return keys


class Sampler(abc.ABC):
    """The protocol (the abstract methods) and what the samplers share: options, the data
    plate, rewards, the policy and its engine, the balance loss and checkpoints."""

    slots = None  # the scalar sites in construction order, in a sampler that has them

    def __init__(self, model, backend, state, policy=None, optimizer=None, hidden=64, loss="tb",
                 subtb_lambda=0.9, num_trajectories=16, temperature=1.0, epsilon=0.0, replay=0):
        self.model, self.backend, self.ops, self.state = model, backend, backend.ops, state
        self._policy = policy
        self.optimizer_spec = optimizer or Adam(lr=1e-3)
        self.hidden = hidden
        self.loss = loss
        self.subtb_lambda = subtb_lambda
        self.num_trajectories = num_trajectories
        self.temperature = temperature
        self.epsilon = epsilon
        self.replay = replay
        self.buffer = None  # the replay buffer's state (see replay.py), once an update ran
        self.acceptance_rate = None  # of local search's last moves, in a sampler that searches
        self.engine = make_engine(backend.name, self.optimizer_spec, state)
        self._rebuild = None
        self.ready = False

    # ---------------------------------------------------------------- the protocol
    @abc.abstractmethod
    def setup(self, trace):
        """Learn the latent sites and the data plate from a trace of the model; build the
        default policy (when none was given) and register it; set ``ready``."""

    @abc.abstractmethod
    def features(self, trace):
        """``[N, F]``: each data element's features for the policy, in this call."""

    @abc.abstractmethod
    def update(self, features, args, kwargs, model=None):
        """One E-step: a balance-loss update of the policy; returns the loss (a float)."""

    @abc.abstractmethod
    def draw(self, policy, features, num, args, kwargs, key=None, greedy=False, model=None):
        """``num`` draws per element: (log p(x, z) ``[num, N]`` with gradients for the
        model, the model's trace, the log importance denominator ``[num, N]``)."""

    @abc.abstractmethod
    def posterior(self, policy, features, num, key=None, greedy=False):
        """``num`` draws per element: site -> ``[num, N, *event_shape]``."""

    def trajectory_log_probs(self, policy, features):
        """log P_F of every complete construction, where the sampler can enumerate them."""
        raise ValueError(f"GFlowNetEM: {type(self).__name__} does not enumerate its trajectories")

    def posterior_probs(self, policy, features):
        """Each site's exact marginal under the sampler, where it can enumerate them."""
        raise ValueError(f"GFlowNetEM: {type(self).__name__} does not enumerate its trajectories")

    # ---------------------------------------------------------------- the policy
    @property
    def policy(self):
        """The policy as trained so far (on JAX rebuilt from the engine's values; None until
        set-up builds the default one)."""
        if self._rebuild is None:
            return self._policy
        return self._rebuild(self.engine.constrained())

    def policy_at(self, values):
        """The policy holding ``values`` (the engine's, inside a loss; None on torch)."""
        return self._rebuild(values)

    @policy.setter
    def policy(self, policy):
        self._policy = policy
        if self.ready:  # a new policy after set-up: trained from here by a fresh engine
            self.engine = make_engine(self.backend.name, self.optimizer_spec, self.state)
            self._register()

    def _register(self):
        try:
            values, self._rebuild = self.backend.module_params(self._policy)
        except TypeError as error:
            raise ValueError(f"GFlowNetEM: policy: {error}") from None
        self.engine.discover([], extra=values)

    # ---------------------------------------------------------------- set-up
    def _set_plate(self, trace, plate):
        """The data plate (None: one element) and the observed sites in it."""
        self._nesting = plate_nesting([trace])
        self._plate = None if plate is None else (plate.name, plate.dim)
        self._layout = WeightLayout(self._nesting, True, None if plate is None else (self._plate,))
        self._observed = [name for name, site in trace.observed.items()
                          if plate is not None and any(p.name == plate.name for p in site.plates)]

    def _finish_setup(self, make_policy):
        if self._policy is None:
            # initialised off the strategy's random stream (its key on JAX), without moving
            # torch's: a resumed run replays exactly
            with self.backend.preserved_rng():
                self._policy = make_policy(self.state.next_key())
        self._register()
        self.ready = True

    def _data_size(self, trace):
        """The number of data elements in this call (1 without a data plate)."""
        if self._plate is None:
            return 1
        for site in trace.sites.values():
            for plate in site.plates:
                if plate.name == self._plate[0]:
                    return plate.size
        raise ValueError(f"GFlowNetEM: no site lies in the data plate {self._plate[0]!r} in this call")

    def checked_features(self, trace):
        """:meth:`features`, refused when not finite (naming the observed site responsible):
        the policy reads them, and a NaN or infinite input makes every logit NaN."""
        ops = self.ops
        features = self.features(trace)
        if not ops.isfinite(features):
            culprit = next((name for name in self._observed
                            if not ops.isfinite(ops.to_float(trace[name].value))), None)
            where = (f"site {culprit!r} has a non-finite observed value" if culprit
                     else "the policy's features are not finite")
            raise NonFiniteError(f"GFlowNetEM: {where}; the policy reads the observations as "
                                 "its features, so they must be finite")
        return features

    def observations(self, trace):
        """Each data element's observations, flattened: ``[N, F]`` (a zero column if none)."""
        ops, size = self.ops, self._data_size(trace)
        columns = []
        for name in self._observed:
            site = trace[name]
            value = ops.to_float(site.value)
            dim = self._plate[1] - len(site.fn.event_shape)
            full = broadcast_shape(tuple(value.shape), tuple(site.fn.batch_shape + site.fn.event_shape))
            columns.append(ops.reshape(ops.moveaxis(ops.broadcast_to(value, full), dim, 0), (size, -1)))
        if not columns:
            return ops.zeros((size, 1), ops.to_float(0.0))
        return ops.concatenate(columns, -1)

    # ---------------------------------------------------------------- rewards
    def score_values(self, values, args, kwargs, num, global_sites=True, model=None, key=None,
                     check=True):
        """log p_theta(x, z) of site values ``{site: [num * N, *event_shape]}`` (row ``k * N
        + i``: draw k of element i): ``[num, N]``, and the model's trace. Sites outside the
        data plate count once, on element 0 (the M-step and the evidence need them);
        ``global_sites=False`` leaves them out: constant in z, they do not change the
        posterior the E-step's rewards target. ``model``: the model's parameter values
        (where the backend passes values); ``check``: refuse a non-finite reward, naming
        the site (not inside a compiled loss, which cannot raise)."""
        ops = self.ops
        size = next(iter(values.values())).shape[0] // num
        replayed = {}
        for name, value in values.items():
            # particles at -(nesting + 1), the elements at the data plate's dim
            shape = [1] * (self._nesting + 1)
            shape[0] = num
            if self._plate is not None:
                shape[self._plate[1]] = size
            replayed[name] = ops.reshape(value, tuple(shape) + tuple(value.shape[1:]))
        trace = self.backend.run(self.model, args, kwargs, replay=replayed, params=model, rng=key,
                                 particles=(num, -(self._nesting + 1)))
        sites = trace.sites.values()
        if not global_sites and self._plate is not None:
            sites = [site for site in sites if any(p.name == self._plate[0] for p in site.plates)]
        log_r = total_log_weight(ops, self._layout, sites)
        log_r = ops.broadcast_to(ops.reshape(log_r, (log_r.shape[0], -1)), (num, size))
        if check and not ops.isfinite(log_r):
            culprit = find_non_finite(ops, [("model", trace)])
            raise NonFiniteError(f"GFlowNetEM: non-finite reward: {culprit or 'log p(x, z) overflowed'}")
        return log_r, trace

    # ---------------------------------------------------------------- the update
    def balance_loss(self, policy, features, log_pf_steps, log_r, log_flows=None, log_pb_steps=None,
                     lengths=None):
        """Per-trajectory loss of the chosen balance condition (``log_pb_steps`` None: P_B = 1)."""
        if self.loss == "tb":
            log_z = policy.log_partition(features)
            log_pb = None if log_pb_steps is None else self.ops.sum(log_pb_steps, -1)
            return trajectory_balance(log_z, self.ops.sum(log_pf_steps, -1), log_r, log_pb)
        if self.loss == "subtb":
            return subtrajectory_balance(log_flows, log_pf_steps, log_r, self.subtb_lambda, log_pb_steps,
                                         lengths)
        return detailed_balance(log_flows, log_pf_steps, log_r, log_pb_steps, lengths)

    def _step(self, loss, features, args, kwargs, model, width):
        """One engine step of ``loss`` with the features, the model's values and the replay
        buffer (``width`` integers a trajectory) as auxiliary state; returns the loss."""
        if self.replay:
            replay.check_size(self.buffer, features.shape[0])
            if self.buffer is None:
                self.buffer = replay.empty(self.ops, self.replay, features.shape[0], width, features)
        aux = {"features": features, "model": model, "buffer": self.buffer}
        result, new_aux = self.engine.step(loss, aux, args, kwargs)
        self.buffer = new_aux["buffer"]
        if new_aux.get("acceptance") is not None:
            self.acceptance_rate = float(new_aux["acceptance"])
        return result

    # ---------------------------------------------------------------- checkpoints
    def state_dict(self):
        return {"policy": self.engine.state_dict(), "buffer": self.buffer}

    def check_state_dict(self, state):
        """The first way ``state`` does not fit this sampler, as a sentence, or None (before
        :meth:`setup`, only that the sampler's entries are there and its optimiser)."""
        if not all(k in state for k in ("policy", "buffer")):
            return "it has no sampler state"
        found = self.engine.check_state_dict(state["policy"])
        return f"(the policy's) {found}" if found else None

    def load_state_dict(self, state):
        self.engine.load_state_dict(state["policy"])
        self.buffer = state["buffer"]
