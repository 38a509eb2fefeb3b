"""The sampler protocol the GFlowNet-EM loop is written against, and what every sampler
shares: the data plate, the reward log p_theta(x, z), the policy's optimiser, the balance
loss, the replay buffer and checkpoints.

:class:`~inference.gflownet.em.GFlowNetEM` calls, inside the strategy's state:

* ``setup(trace)`` once, with a trace of the model: learn the latent sites and the data
  plate, build the default policy and its optimiser;
* ``features(trace) -> [N, F]``: each data element's features for the policy, for a call;
* ``update(features, args, kwargs) -> float``: one E-step, a balance-loss update of the
  policy (exploration, replay and whatever else the sampler does), returning the loss;
* ``draw(features, num, args, kwargs, greedy) -> (log_reward [num, N], trace, log_q [num,
  N])``: ``num`` draws per element, their rewards (with gradients for the model) and the
  log importance denominator, for the M-step and for ``evaluate``;
* ``posterior(features, num, greedy) -> {site: [num, N, ...]}``;
* ``trajectory_log_probs(features)`` and ``posterior_probs(features)``: exact enumeration,
  where the sampler can (otherwise a ``ValueError``);
* ``state_dict()``, ``check_state_dict(state)``, ``load_state_dict(state)``: the policy,
  its optimiser and the replay buffer.

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
    >>> sampler = FixedOrderSampler(model, backend, hidden=8)
    >>> sampler.setup(backend.run(model, (x,)))
    >>> log_r, _ = sampler.score_values({"c": torch.tensor([0, 0, 1, 1])}, (x,), {}, num=2)
    >>> [[round(v, 4) for v in row] for row in log_r.tolist()]  # log 1/2 + log N(x | c, 1)
    [[-1.6121, -2.1121], [-2.1121, -1.6121]]
"""

import abc

import torch

from ppl.shapes import broadcast_shape

from ..checkpoint import difference
from ..optim import Adam, make_torch_optimizer, optimizer_difference, optimizer_name
from ..program import plate_nesting
from ..weights import NonFiniteError, WeightLayout, find_non_finite, total_log_weight
from .losses import detailed_balance, subtrajectory_balance, trajectory_balance
from .replay import ReplayBuffer

LOSSES = ("tb", "subtb", "db")


class Sampler(abc.ABC):
    """The protocol (the abstract methods) and what the samplers share: options, the data
    plate, rewards, the policy's optimiser, the balance loss and checkpoints."""

    acceptance_rate = None  # of local search's last moves, in a sampler that searches
    slots = None  # the scalar sites in construction order, in a sampler that has them

    def __init__(self, model, backend, policy=None, optimizer=None, hidden=64, loss="tb",
                 subtb_lambda=0.9, num_trajectories=16, temperature=1.0, epsilon=0.0, replay=0):
        self.model = model
        self.backend = backend
        self.policy = policy
        self.optimizer_spec = optimizer or Adam(lr=1e-3)
        self.hidden = hidden
        self.loss = loss
        self.subtb_lambda = subtb_lambda
        self.num_trajectories = num_trajectories
        self.temperature = temperature
        self.epsilon = epsilon
        self.buffer = ReplayBuffer(replay) if replay else None
        self.ready = False

    # ---------------------------------------------------------------- the protocol
    @abc.abstractmethod
    def setup(self, trace):
        """Learn the latent sites and the data plate from a trace of the model; build the
        default policy (when none was given) and its optimiser; set ``ready``."""

    @abc.abstractmethod
    def features(self, trace):
        """``[N, F]``: each data element's features for the policy, in this call."""

    @abc.abstractmethod
    def update(self, features, args, kwargs):
        """One E-step: a balance-loss update of the policy; returns the loss (a float)."""

    @abc.abstractmethod
    def draw(self, features, num, args, kwargs, greedy=False):
        """``num`` draws per element: (log p(x, z) ``[num, N]`` with gradients for the
        model, the model's trace, the log importance denominator ``[num, N]``)."""

    @abc.abstractmethod
    def posterior(self, features, num, greedy=False):
        """``num`` draws per element: site -> ``[num, N, *event_shape]``."""

    def trajectory_log_probs(self, features):
        """log P_F of every complete construction, where the sampler can enumerate them."""
        raise ValueError(f"GFlowNetEM: {type(self).__name__} does not enumerate its trajectories")

    def posterior_probs(self, features):
        """Each site's exact marginal under the sampler, where it can enumerate them."""
        raise ValueError(f"GFlowNetEM: {type(self).__name__} does not enumerate its trajectories")

    # ---------------------------------------------------------------- set-up
    def _set_plate(self, trace, plate):
        """The data plate (None: one element) and the observed sites in it."""
        self._nesting = plate_nesting([trace])
        self._plate = None if plate is None else (plate.name, plate.dim)
        self._layout = WeightLayout(self._nesting, True, None if plate is None else (self._plate,))
        self._observed = [name for name, site in trace.observed.items()
                          if plate is not None and any(p.name == plate.name for p in site.plates)]

    def _finish_setup(self, make_policy):
        if self.policy is None:
            # initialised off the global random stream, so that a resumed run replays exactly
            with self.backend.preserved_rng():
                self.policy = make_policy()
        self.policy_optimizer = make_torch_optimizer(self.optimizer_spec, list(self.policy.parameters()))
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
        features = self.features(trace)
        if not bool(torch.isfinite(features).all()):
            culprit = next((name for name in self._observed if not bool(torch.isfinite(
                torch.as_tensor(trace[name].value, dtype=torch.get_default_dtype())).all())), None)
            where = (f"site {culprit!r} has a non-finite observed value" if culprit
                     else "the policy's features are not finite")
            raise NonFiniteError(f"GFlowNetEM: {where}; the policy reads the observations as "
                                 "its features, so they must be finite")
        return features

    def observations(self, trace):
        """Each data element's observations, flattened: ``[N, F]`` (a zero column if none)."""
        size = self._data_size(trace)
        columns = []
        for name in self._observed:
            site = trace[name]
            value = torch.as_tensor(site.value, dtype=torch.get_default_dtype())
            dim = self._plate[1] - len(site.fn.event_shape)
            full = broadcast_shape(value.shape, site.fn.batch_shape + site.fn.event_shape)
            value = value.expand(full)
            columns.append(value.movedim(dim, 0).reshape(size, -1))
        if not columns:
            return torch.zeros(size, 1)
        return torch.cat(columns, -1)

    # ---------------------------------------------------------------- rewards
    def score_values(self, values, args, kwargs, num, global_sites=True):
        """log p_theta(x, z) of site values ``{site: [num * N, *event_shape]}`` (row ``k * N
        + i``: draw k of element i): ``[num, N]``, and the model's trace. Sites outside the
        data plate count once, on element 0 (the M-step and the evidence need them);
        ``global_sites=False`` leaves them out: constant in z, they do not change the
        posterior the E-step's rewards target."""
        size = next(iter(values.values())).shape[0] // num
        replay = {}
        for name, value in values.items():
            # particles at -(nesting + 1), the elements at the data plate's dim
            shape = [1] * (self._nesting + 1)
            shape[0] = num
            if self._plate is not None:
                shape[self._plate[1]] = size
            replay[name] = value.reshape(shape + list(value.shape[1:]))
        trace = self.backend.run(self.model, args, kwargs, replay=replay,
                                 particles=(num, -(self._nesting + 1)))
        sites = trace.sites.values()
        if not global_sites and self._plate is not None:
            sites = [site for site in sites if any(p.name == self._plate[0] for p in site.plates)]
        log_r = total_log_weight(self.backend.ops, self._layout, sites)
        log_r = log_r.reshape(log_r.shape[0], -1).expand(num, size)
        if not torch.isfinite(log_r).all():
            culprit = find_non_finite(self.backend.ops, [("model", trace)])
            raise NonFiniteError(f"GFlowNetEM: non-finite reward: {culprit or 'log p(x, z) overflowed'}")
        return log_r, trace

    # ---------------------------------------------------------------- the update
    def balance_loss(self, features, log_pf_steps, log_r, log_flows=None, log_pb_steps=None, lengths=None):
        """Per-trajectory loss of the chosen balance condition (``log_pb_steps`` None: P_B = 1)."""
        if self.loss == "tb":
            log_z = self.policy.log_partition(features)
            log_pb = None if log_pb_steps is None else log_pb_steps.sum(-1)
            return trajectory_balance(log_z, log_pf_steps.sum(-1), log_r, log_pb)
        if self.loss == "subtb":
            return subtrajectory_balance(log_flows, log_pf_steps, log_r, self.subtb_lambda, log_pb_steps,
                                         lengths)
        return detailed_balance(log_flows, log_pf_steps, log_r, log_pb_steps, lengths)

    def _descend(self, loss):
        self.policy_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.policy_optimizer.step()

    # ---------------------------------------------------------------- checkpoints
    def state_dict(self):
        return {"policy": dict(self.policy.state_dict()),
                "policy_optimizer": self.policy_optimizer.state_dict(),
                "policy_optimizer_class": optimizer_name(self.optimizer_spec, self.policy_optimizer),
                "buffer": None if self.buffer is None else self.buffer.state_dict()}

    def check_state_dict(self, state):
        """The first way ``state`` does not fit this sampler, as a sentence, or None (before
        :meth:`setup`, only that the sampler's entries are there)."""
        if not all(k in state for k in ("policy", "policy_optimizer", "buffer")):
            return "it has no sampler state"
        found = optimizer_difference(state.get("policy_optimizer_class"), self.optimizer_spec,
                                     getattr(self, "policy_optimizer", None))
        if found:
            return f"(the policy's) {found}"
        if not self.ready:
            return None
        current = {k: tuple(v.shape) for k, v in self.policy.state_dict().items()}
        return difference({k: tuple(v.shape) for k, v in state["policy"].items()}, current,
                          "policy tensor")

    def load_state_dict(self, state):
        self.policy.load_state_dict(state["policy"])
        self.policy_optimizer.load_state_dict(state["policy_optimizer"])
        if self.buffer is not None:
            self.buffer.load_state_dict(state["buffer"])
