"""GFlowNet-EM (Hu et al., ICML 2023): a GFlowNet sampler for the E-step of EM over a
program's discrete latent sites (torch).

A trajectory assigns the latent sites one at a time, in program order (or ``order``), for each element
of the data plate (the plate every latent site lies in), conditioned on that element's
observations. The E-step trains the forward policy P_F and a learned log Z(x) toward the
reward R(z) = p_theta(x, z) with trajectory balance (the construction order is fixed, so
P_B = 1):

    L_TB = (log Z(x) + sum_t log P_F(z_t | z_<t, x) - log p_theta(x, z))^2

or with detailed balance (``loss="db"``) or lambda-weighted sub-trajectory balance
(``loss="subtb"``), which also learn a state flow log F(s) with log F(s_T) = log R,
with off-policy exploration (policy temperature, epsilon-uniform mixing). The M-step
takes gradient steps on -log p_theta(x, z) with z drawn from the sampler ("sampled") or
its greedy argmax ("greedy").

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

import pyro.poutine as poutine
import torch
from torch import nn

from ppl.backends.torch import BACKEND
from ppl.errors import CheckpointError
from ppl.shapes import broadcast_shape

from ..engines import make_engine
from .losses import detailed_balance, subtrajectory_balance, trajectory_balance
from .structured import StructuredSteps, check_action_space_options
from ..checkpoint import difference
from ..optim import Adam, make_torch_optimizer
from ..program import common_plate, plate_nesting
from ..strategy import Strategy, entering
from ..weights import NonFiniteError, WeightLayout, find_non_finite, total_log_weight


LOSSES = ("tb", "subtb", "db")


class _Slot:
    """One latent site in the construction order: name, support size and value dtype."""

    def __init__(self, name, size, offset, dtype):
        self.name, self.size, self.offset, self.dtype = name, size, offset, dtype


class MLPPolicy(nn.Module):
    """Autoregressive policy: [x features, one-hot of the assigned slots, step] -> logits
    over the next slot's values; a second head gives log Z(x) and a third the log state
    flow log F(s) (for detailed and sub-trajectory balance)."""

    def __init__(self, feature_dim, state_dim, num_steps, max_support, hidden=64):
        super().__init__()
        self.num_steps = num_steps
        self.body = nn.Sequential(
            nn.Linear(feature_dim + state_dim + num_steps, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, max_support))
        self.log_z = nn.Sequential(nn.Linear(feature_dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.flow = nn.Sequential(
            nn.Linear(feature_dim + state_dim + num_steps, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def _inputs(self, features, state, step):
        onehot = torch.zeros(features.shape[0], self.num_steps, dtype=features.dtype,
                             device=features.device)
        onehot[:, step] = 1.0
        return torch.cat([features, state, onehot], -1)

    def forward(self, features, state, step):
        return self.body(self._inputs(features, state, step))

    def log_flow(self, features, state, step):
        if step == 0:
            return self.log_partition(features)  # the initial state's flow is Z(x)
        return self.flow(self._inputs(features, state, step)).squeeze(-1)

    def log_partition(self, features):
        return self.log_z(features).squeeze(-1)


class GFlowNetEM(StructuredSteps, Strategy):
    """EM with a GFlowNet E-step over the discrete latent sites of ``model``.

    Arguments:
        model: a program whose latent sites are all discrete and lie in one data plate.
        policy: a module with ``forward(features, state, step) -> logits`` and
            ``log_partition(features) -> log Z``; an :class:`MLPPolicy` by default.
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
            torch's global generator.
        action_space: a user-defined construction of the latent sites (a structure such as a
            parse tree, built step by step; see :mod:`inference.gflownet.actions` for the
            protocol), with a backward policy P_B (uniform over parents by default) in every
            balance loss; the policy is then ``forward(features, encoding) -> logits`` over
            the space's actions (an :class:`~inference.gflownet.actions.ActionMLPPolicy` by
            default). ``order``, ``local_search`` and ``sleep`` do not apply (an error), nor
            do :meth:`posterior_probs` and :meth:`trajectory_log_probs`.
    """

    def __init__(self, model, policy=None, loss="tb", optimizer=None, model_optimizer=None,
                 m_step="sampled", e_steps=1, temperature=1.0, epsilon=0.0, hidden=64,
                 subtb_lambda=0.9, num_trajectories=16, sleep=0.0, sleep_probability=0.3,
                 m_step_threshold=None, replay=0, local_search=0, order=None, action_space=None,
                 rng_seed=None):
        Strategy.__init__(self, model, rng_seed)
        if loss not in LOSSES:
            raise ValueError(f"GFlowNetEM: loss must be one of {LOSSES}, got {loss!r}")
        self.loss = loss
        self.subtb_lambda = subtb_lambda
        if not isinstance(num_trajectories, int) or num_trajectories < 1:
            raise ValueError("GFlowNetEM: num_trajectories must be a positive integer, "
                             f"got {num_trajectories!r}")
        self.num_trajectories = num_trajectories
        if sleep < 0 or not 0 <= sleep_probability <= 1:
            raise ValueError("GFlowNetEM: sleep is a non-negative weight and sleep_probability "
                             "a probability")
        self.sleep = sleep
        self.sleep_probability = sleep_probability
        if m_step_threshold is not None and len(m_step_threshold) != 3:
            raise ValueError("GFlowNetEM: m_step_threshold is (start, end, anneal_steps)")
        self.m_step_threshold = m_step_threshold
        self._loss_average = None
        self.m_steps_taken = 0
        if not isinstance(replay, int) or replay < 0:
            raise ValueError(f"GFlowNetEM: replay must be a non-negative integer, got {replay!r}")
        self.replay = replay
        if not isinstance(local_search, int) or local_search < 0:
            raise ValueError(f"GFlowNetEM: local_search must be a non-negative integer, got {local_search!r}")
        self.local_search = local_search
        self.order = None if order is None else list(order)
        if action_space is not None:
            check_action_space_options(action_space, order, local_search, sleep)
        self.action_space = action_space
        self.acceptance_rate = None
        self._buffer = None  # (values [k, N, T], log rewards [k, N]) of the best trajectories
        if m_step not in ("sampled", "greedy", "reweighted", None):
            raise ValueError("GFlowNetEM: m_step must be 'sampled', 'greedy', 'reweighted' or None, "
                             f"got {m_step!r}")
        if not temperature > 0 or not 0 <= epsilon < 1:
            raise ValueError("GFlowNetEM: temperature must be positive and epsilon in [0, 1)")
        self.policy = policy
        self.optimizer_spec = optimizer or Adam(lr=1e-3)
        self.model_engine = make_engine(BACKEND.name, model_optimizer or Adam(lr=1e-2), self.state,
                                        owners=(model,))
        self.m_step = m_step
        self.e_steps = e_steps
        self.temperature = temperature
        self.epsilon = epsilon
        self.hidden = hidden
        self._ready = False
        self._pending_state = None

    # ---------------------------------------------------------------- set-up
    def _setup(self, args, kwargs):
        with BACKEND.preserved_rng(), torch.no_grad(), poutine.block():
            trace = BACKEND.run(self.model, args, kwargs)
        self.model_engine.discover([trace], create_optimizer=False)
        latent = list(trace.latent.values())
        if not latent:
            raise ValueError("GFlowNetEM: the model has no latent site; a GFlowNet needs "
                             "discrete latent sites to construct")
        if self.action_space is not None:
            self._setup_structured(trace, latent)
            return
        if self.order is not None:
            latent = self._ordered(latent)
        slots, offset = [], 0
        for site in latent:
            fn = site.fn
            if not getattr(fn, "has_enumerate_support", False) or tuple(fn.event_shape):
                raise ValueError(
                    f"GFlowNetEM: latent site {site.name!r} ({type(fn).__name__}) is not a "
                    "discrete scalar site; the construction assigns Categorical or Bernoulli sites "
                    "one per step. Declare how to treat it: observe it (obs= or ppl.condition), "
                    "make it a parameter (ppl.param) that the M-step fits, or build it with "
                    "action_space= (a structured value constructed step by step)")
            support = fn.enumerate_support(expand=False)
            slots.append(_Slot(site.name, support.shape[0], offset, support.dtype))
            size = support.shape[0]
            offset += size
        self.slots = slots
        self._set_plate(trace, latent)
        features = self._features(trace)
        self._finish_setup(lambda: MLPPolicy(features.shape[-1], offset, len(slots),
                                             max(s.size for s in slots), self.hidden))

    def _setup_structured(self, trace, latent):
        self.slots = None
        self._set_plate(trace, self._setup_action_space(trace, latent))
        features = self._action_features(trace)
        self._finish_setup(lambda: self._default_action_policy(features))

    def _set_plate(self, trace, latent_or_plate):
        self._nesting = plate_nesting([trace])
        plate = common_plate(latent_or_plate) if isinstance(latent_or_plate, list) else latent_or_plate
        self._plate = None if plate is None else (plate.name, plate.dim)
        self._size = 1 if plate is None else plate.size
        self._layout = WeightLayout(self._nesting, True, self._plate)
        self._observed = [name for name, site in trace.observed.items()
                          if plate is not None and any(p.name == plate.name for p in site.plates)]

    def _finish_setup(self, make_policy):
        if self.policy is None:
            # initialised off the global random stream, so that a resumed run replays exactly
            with BACKEND.preserved_rng():
                self.policy = make_policy()
        self.policy_optimizer = make_torch_optimizer(self.optimizer_spec, list(self.policy.parameters()))
        self._ready = True
        if self._pending_state is not None:
            pending, self._pending_state = self._pending_state, None
            found = self._check_sampler(pending)
            if found:
                raise CheckpointError(f"the loaded checkpoint does not fit this program: {found}")
            self._load_sampler(pending)

    def _ordered(self, latent):
        by_name = {site.name: site for site in latent}
        unknown = [name for name in self.order if name not in by_name]
        if unknown:
            raise ValueError(f"GFlowNetEM: order names {unknown[0]!r}, which is not a latent site "
                             f"of the model (latent sites: {sorted(by_name)})")
        missing = [name for name in by_name if name not in self.order]
        if missing or len(set(self.order)) != len(self.order):
            raise ValueError("GFlowNetEM: order must list every latent site once; "
                             f"{'missing ' + repr(missing[0]) if missing else 'a site is repeated'}")
        return [by_name[name] for name in self.order]

    def _features(self, trace):
        """Each data element's observations, flattened: ``[N, F]`` (a zero column if none)."""
        columns = []
        for name in self._observed:
            site = trace[name]
            value = torch.as_tensor(site.value, dtype=torch.get_default_dtype())
            dim = self._plate[1] - len(site.fn.event_shape)
            full = broadcast_shape(value.shape, site.fn.batch_shape + site.fn.event_shape)
            value = value.expand(full)
            columns.append(value.movedim(dim, 0).reshape(self._size, -1))
        if not columns:
            return torch.zeros(self._size, 1)
        return torch.cat(columns, -1)

    # ---------------------------------------------------------------- sampling
    def _lay_out(self, values, num):
        """[num * N] slot values -> the site's batch layout: particles at -(P+1), N at the plate dim."""
        shape = [1] * (self._nesting + 1)
        shape[0] = num
        if self._plate is not None:
            shape[self._plate[1]] = self._size
        return values.reshape(shape)

    def _construct(self, features, temperature=1.0, epsilon=0.0, greedy=False, forced=None,
                   flows=False):
        """Build one trajectory per feature row; returns (slot values, log P_F per step [n, T],
        and with ``flows`` the log state flows [n, T] of s_0 .. s_{T-1})."""
        n = features.shape[0]
        state = features.new_zeros(n, self.slots[-1].offset + self.slots[-1].size)
        steps, log_flows, values = [], [], []
        for t, slot in enumerate(self.slots):
            if flows:
                log_flows.append(self.policy.log_flow(features, state, t))
            logits = self.policy(features, state, t)
            if logits.shape[-1] < slot.size:
                raise ValueError(f"GFlowNetEM: the policy gives {logits.shape[-1]} logits at site "
                                 f"{slot.name!r}, whose support has {slot.size} values")
            log_probs = logits[:, :slot.size].log_softmax(-1)
            if forced is not None and forced[t] is not None:
                action = forced[t]
            elif greedy:
                action = log_probs.argmax(-1)
            else:
                behaviour = (log_probs / temperature).softmax(-1)
                if epsilon:
                    behaviour = (1 - epsilon) * behaviour + epsilon / slot.size
                action = torch.multinomial(behaviour.detach(), 1).squeeze(-1)
            steps.append(log_probs.gather(-1, action.unsqueeze(-1)).squeeze(-1))
            state = state.clone()
            state[torch.arange(n), slot.offset + action] = 1.0
            values.append(action)
        log_pf_steps = torch.stack(steps, -1)
        if flows:
            return values, log_pf_steps, torch.stack(log_flows, -1)
        return values, log_pf_steps

    def _log_reward(self, values, args, kwargs, num=1):
        """log p_theta(x_i, z_i) per trajectory, shape [num, N]."""
        replay = {slot.name: self._lay_out(v, num).to(slot.dtype) for slot, v in zip(self.slots, values)}
        return self._score(replay, args, kwargs, num)

    def _score(self, replay, args, kwargs, num):
        """log p_theta(x_i, z_i) of the replayed site values, ``[num, N]``, and the trace."""
        trace = BACKEND.run(self.model, args, kwargs, replay=replay,
                            particles=(num, -(self._nesting + 1)))
        log_r = total_log_weight(BACKEND.ops, self._layout, trace.sites.values())
        log_r = log_r.reshape(log_r.shape[0], -1).expand(num, self._size)
        if not torch.isfinite(log_r).all():
            culprit = find_non_finite(BACKEND.ops, [("model", trace)])
            raise NonFiniteError(f"GFlowNetEM: non-finite reward: {culprit or 'log p(x, z) overflowed'}")
        return log_r, trace

    def _repeat(self, features, num):
        return features.repeat(num, 1)

    # ------------------------------------------------------------------ verbs
    @entering
    def e_step(self, *args, **kwargs):
        """One update of the sampler with the chosen balance loss; returns its mean."""
        if self.action_space is not None:
            return self._e_step_actions(args, kwargs)
        num = self.num_trajectories
        base = self._current_features(args, kwargs)
        features = self._repeat(base, num)
        flows = self.loss != "tb"
        values, log_pf_steps, *log_flows = self._construct(
            features, self.temperature, self.epsilon, flows=flows)
        with torch.no_grad():
            log_r = self._log_reward(values, args, kwargs, num=num)[0].reshape(-1)
        memory = (values, log_r)
        fresh = features
        if self.local_search:
            searched, searched_r = self._search(fresh, values, log_pf_steps, log_r, args, kwargs)
            _, search_pf, *search_flows = self._construct(fresh, forced=searched, flows=flows)
            features = torch.cat([features, fresh])
            log_pf_steps = torch.cat([log_pf_steps, search_pf])
            log_flows = [torch.cat([log_flows[0], search_flows[0]])] if flows else []
            log_r = torch.cat([log_r, searched_r])
            memory = (searched, searched_r)
        if self.replay:  # off-policy: add trajectories from the buffer of the best ones
            self._remember(*memory, num)
            replayed, replayed_r = self._replayed(num)
            _, replay_pf, *replay_flows = self._construct(fresh, forced=replayed, flows=flows)
            features = torch.cat([features, fresh])
            log_pf_steps = torch.cat([log_pf_steps, replay_pf])
            log_flows = [torch.cat([log_flows[0], replay_flows[0]])] if flows else []
            log_r = torch.cat([log_r, replayed_r])
        if self.loss == "tb":
            losses = trajectory_balance(self.policy.log_partition(features), log_pf_steps.sum(-1), log_r)
        elif self.loss == "subtb":
            losses = subtrajectory_balance(log_flows[0], log_pf_steps, log_r, self.subtb_lambda)
        else:
            losses = detailed_balance(log_flows[0], log_pf_steps, log_r)
        loss = losses.mean()
        total = loss
        if self.sleep and torch.rand(()) < self.sleep_probability:
            total = total + self.sleep * self._sleep_loss(args, kwargs)
        self.policy_optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.policy_optimizer.step()
        return loss.item()

    def _search(self, features, values, log_pf_steps, log_r, args, kwargs):
        """One back-and-forth move per trajectory: keep the first T - k assignments, rebuild
        the rest with P_F, accept with min(1, R' P_F(old tail) / (R P_F(new tail)))."""
        num = self.num_trajectories
        keep = max(len(self.slots) - self.local_search, 0)
        with torch.no_grad():
            forced = values[:keep] + [None] * (len(self.slots) - keep)
            # rebuilt with P_F itself, so that the acceptance ratio is exact
            proposal, proposal_pf = self._construct(features, forced=forced)
            proposal_r = self._log_reward(proposal, args, kwargs, num=num)[0].reshape(-1)
            log_accept = (proposal_r - log_r + log_pf_steps[:, keep:].sum(-1).detach()
                          - proposal_pf[:, keep:].sum(-1))
            accept = torch.rand_like(log_accept).log() < log_accept
        self.acceptance_rate = float(accept.float().mean())
        chosen = [torch.where(accept, new, old) for new, old in zip(proposal, values)]
        return chosen, torch.where(accept, proposal_r, log_r)

    def _remember(self, values, log_r, num):
        """Keep each element's ``replay`` best trajectories seen so far."""
        new_values = torch.stack(values, -1).reshape(num, self._size, len(self.slots))
        new_r = log_r.reshape(num, self._size)
        if self._buffer is not None:
            new_values = torch.cat([self._buffer[0], new_values])
            new_r = torch.cat([self._buffer[1], new_r])
        best = new_r.topk(min(self.replay, new_r.shape[0]), dim=0).indices  # [k, N]
        gathered = new_values.gather(0, best.unsqueeze(-1).expand(-1, -1, len(self.slots)))
        self._buffer = (gathered, new_r.gather(0, best))

    def _replayed(self, num):
        """``num`` trajectories per element drawn uniformly from its buffer."""
        values, log_r = self._buffer
        pick = torch.randint(values.shape[0], (num, self._size))
        chosen = values.gather(0, pick.unsqueeze(-1).expand(-1, -1, len(self.slots)))
        chosen_r = log_r.gather(0, pick)
        return [chosen[..., t].reshape(-1) for t in range(len(self.slots))], chosen_r.reshape(-1)

    def _m_step_allowed(self, loss):
        if self.m_step_threshold is None:
            return True
        self._loss_average = loss if self._loss_average is None else 0.9 * self._loss_average + 0.1 * loss
        start, end, anneal = self.m_step_threshold
        threshold = start + (end - start) * min(1.0, len(self.history) / max(anneal, 1))
        return self._loss_average < threshold

    def _sleep_loss(self, args, kwargs):
        """-mean log P_F(z | x) on (z, x) dreamed by the model."""
        with torch.no_grad(), poutine.block():
            dream = BACKEND.run(poutine.uncondition(self.model), args, kwargs)
        features = self._features(dream)
        forced = [torch.as_tensor(dream[slot.name].value).reshape(-1).long() for slot in self.slots]
        _, log_pf_steps = self._construct(features, forced=forced)
        return -log_pf_steps.sum(-1).mean()

    @entering
    def m_step_update(self, *args, **kwargs):
        """One gradient step on -log p_theta(x, z) with z from the sampler (or, with
        ``m_step="reweighted"``, on -sum_k w_k log p_theta(x, z_k) over ``num_trajectories``
        draws with self-normalised weights w_k proportional to p_theta(x, z_k) / q(z_k | x));
        returns that loss."""
        features = self._current_features(args, kwargs)
        num = self.num_trajectories if self.m_step == "reweighted" else 1
        if self.action_space is not None:
            log_r, trace, log_q = self._draw_and_score(num, args, kwargs, greedy=self.m_step == "greedy")
        else:
            with torch.no_grad():
                values, log_pf_steps = self._construct(self._repeat(features, num),
                                                       greedy=self.m_step == "greedy")
            log_r, trace = self._log_reward(values, args, kwargs, num=num)  # [num, N]
            log_q = log_pf_steps.sum(-1).reshape(num, self._size)
        if self.m_step == "reweighted":
            weights = (log_r.detach() - log_q).softmax(0)
            loss = -(weights * log_r).sum()
        else:
            loss = -log_r.sum()
        self.model_engine.discover([trace])
        if self.model_engine.optimizer is None:
            return loss.item()  # the model has no parameters to fit
        self.model_engine.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.model_engine.optimizer.step()
        return loss.item()

    def _current_features(self, args, kwargs):
        """The data elements' features, ``[N, F]``; N follows the call, so minibatches of any
        size work. Cached while the same argument objects come back (held, not their ids,
        which a freed minibatch hands on)."""
        if not self._ready:
            self._setup(args, kwargs)
        cached = getattr(self, "_feature_args", None)
        if cached is None or not _same_objects(cached, (args, kwargs)):
            with BACKEND.preserved_rng(), torch.no_grad(), poutine.block():
                trace = BACKEND.run(self.model, args, kwargs)
            features = self._features_of_call(trace)
            if self.replay and self._buffer is not None and features.shape[0] != self._buffer[1].shape[1]:
                raise ValueError(
                    f"GFlowNetEM: replay keeps the best trajectories of each of "
                    f"{self._buffer[1].shape[1]} data elements, but this call has {features.shape[0]}; "
                    "replay needs the same data set at every step (use replay=0 with minibatches)")
            self._feature_args, self._feature_cache = (args, dict(kwargs)), features
        self._size = self._feature_cache.shape[0]
        return self._feature_cache

    def _features_of_call(self, trace):
        if self._plate is not None:
            self._size = _plate_size(trace, self._plate[0])
        if self.action_space is not None:
            return self._action_features(trace)
        return self._features(trace)

    @entering
    def step(self, *args, **kwargs):
        """``e_steps`` sampler updates, then one M-step (unless ``m_step=None``); returns the
        last TB loss."""
        for _ in range(self.e_steps):
            loss = self.e_step(*args, **kwargs)
        if self.m_step is not None and self._m_step_allowed(loss):
            self.m_step_update(*args, **kwargs)
            self.m_steps_taken += 1
        if not math.isfinite(loss):
            raise NonFiniteError(f"GFlowNetEM: trajectory-balance loss is {loss}")
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
        elements, or with ``per_element`` one estimate per element (``[N]`` tensor)."""
        features = self._current_features(args, kwargs)
        with torch.no_grad():
            if self.action_space is not None:  # weights on trajectories: p(x, z) P_B(tau | z) / P_F(tau)
                log_r, _, log_q = self._draw_and_score(num_samples, args, kwargs)
                log_w = log_r - log_q
            else:
                values, log_pf = self._construct(self._repeat(features, num_samples))
                log_r, _ = self._log_reward(values, args, kwargs, num=num_samples)
                log_w = log_r - log_pf.sum(-1).reshape(num_samples, self._size)
            per_point = torch.logsumexp(log_w, 0) - math.log(num_samples)
        return per_point if per_element else float(per_point.sum())

    @entering
    def posterior(self, *args, num_samples=1000, **kwargs):
        """Draws from the sampler: site -> ``[num_samples, N, *event_shape]``."""
        features = self._current_features(args, kwargs)
        if self.action_space is not None:
            return self._posterior_actions(num_samples)
        with torch.no_grad():
            values, _ = self._construct(self._repeat(features, num_samples))
        return {slot.name: v.reshape(num_samples, self._size) for slot, v in zip(self.slots, values)}

    # ------------------------------------------------------------- checkpoints
    def state_dict(self):
        """The sampler, both optimisers, the model's parameters, the random stream, the
        replay buffer and the adaptive schedule's state."""
        if not self._ready:
            raise CheckpointError("GFlowNetEM.save: nothing to save before the first step")
        state = Strategy.state_dict(self)
        state.update({"policy": dict(self.policy.state_dict()),
                      "policy_optimizer": self.policy_optimizer.state_dict(),
                      "model": self.model_engine.state_dict(), "buffer": self._buffer,
                      "loss_average": self._loss_average, "m_steps_taken": self.m_steps_taken})
        return state

    def check_state_dict(self, state):
        found = Strategy.check_state_dict(self, state)
        if found is None and not all(k in state for k in ("policy", "policy_optimizer", "model", "buffer")):
            found = "it has no sampler or model state"
        if found is None and self._ready:
            found = self._check_sampler(state)
        return found or self.model_engine.check_state_dict(state["model"])

    def _check_sampler(self, state):
        current = {k: tuple(v.shape) for k, v in self.policy.state_dict().items()}
        return difference({k: tuple(v.shape) for k, v in state["policy"].items()}, current,
                          "policy tensor")

    def load_state_dict(self, state):
        Strategy.load_state_dict(self, state)
        self._buffer = state["buffer"]
        self._loss_average = state["loss_average"]
        self.m_steps_taken = state["m_steps_taken"]
        if self._ready:
            self._load_sampler(state)
        else:
            self._pending_state = state
        self.model_engine.load_state_dict(state["model"])

    def _load_sampler(self, state):
        self.policy.load_state_dict(state["policy"])
        self.policy_optimizer.load_state_dict(state["policy_optimizer"])

    @entering
    def greedy_posterior(self, *args, **kwargs):
        """The sampler's greedy construction (the most probable action at each step): site ->
        ``[N, *event_shape]``."""
        self._current_features(args, kwargs)
        if self.action_space is not None:
            return {name: v[0] for name, v in self._posterior_actions(1, greedy=True).items()}
        with torch.no_grad():
            values, _ = self._construct(self._feature_cache, greedy=True)
        return {slot.name: v for slot, v in zip(self.slots, values)}

    def posterior_probs(self, *args, **kwargs):
        """The sampler's marginal of the first slot, or of every slot when there is one:
        site -> ``[N, support]`` probabilities (exact, by enumerating trajectories)."""
        table = self.trajectory_log_probs(*args, **kwargs)
        return {slot.name: _marginal(table, i, slot.size) for i, slot in enumerate(self.slots)}

    @entering
    def trajectory_log_probs(self, *args, **kwargs):
        """log P_F of every complete assignment: ``[N, S_1, ..., S_T]`` (small models only)."""
        if self.action_space is not None:
            raise ValueError("GFlowNetEM: trajectory_log_probs enumerates scalar sites; with an "
                             "action_space, force trajectories through inference.gflownet.actions.construct")
        features = self._current_features(args, kwargs)
        grids = torch.meshgrid(*[torch.arange(s.size) for s in self.slots], indexing="ij")
        configs = [g.reshape(-1) for g in grids]
        count = configs[0].numel()
        n = features.shape[0]
        forced = [c.repeat_interleave(n) for c in configs]
        with torch.no_grad():
            _, log_pf = self._construct(features.repeat(count, 1), forced=forced)
        shape = [s.size for s in self.slots]
        return log_pf.sum(-1).reshape(count, n).T.reshape([n] + shape)


def _same_objects(a, b):
    (args_a, kwargs_a), (args_b, kwargs_b) = a, b
    return (len(args_a) == len(args_b) and all(p is q for p, q in zip(args_a, args_b))
            and kwargs_a.keys() == kwargs_b.keys() and all(kwargs_a[k] is kwargs_b[k] for k in kwargs_a))


def _plate_size(trace, name):
    for site in trace.sites.values():
        for plate in site.plates:
            if plate.name == name:
                return plate.size
    raise ValueError(f"GFlowNetEM: no site lies in the data plate {name!r} in this call")


def _marginal(log_table, index, size):
    dims = [d + 1 for d in range(log_table.dim() - 1) if d != index]
    return torch.logsumexp(log_table, dims).exp() if dims else log_table.exp()
