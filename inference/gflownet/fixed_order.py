"""The fixed-order sampler: a trajectory assigns a program's discrete scalar latent sites
one per step, in program order (or ``order``), for each element of the data plate.

The construction order is fixed, so each state has one parent and P_B = 1: trajectory
balance reads (log Z(x) + sum_t log P_F(z_t | z_<t, x) - log p_theta(x, z))^2. Besides the
balance losses it offers local search (rebuild the last steps, accept by
Metropolis-Hastings), the sleep phase (-log P_F(z | x) on dreams of the model) and, the
trajectories being few, exact enumeration of the sampler's distribution.

    >>> import torch, ppl, ppl.distributions as dist
    >>> BACKEND = ppl.get_backend("torch")
    >>> def model(x):
    ...     with ppl.plate("data", len(x)):
    ...         ppl.sample("c", dist.Categorical(torch.ones(3) / 3))
    ...         ppl.sample("x", dist.Normal(0.0, 1.0), obs=x)
    >>> x = torch.tensor([0.5, -1.0])
    >>> sampler = FixedOrderSampler(model, BACKEND, BACKEND.new_state(), hidden=8)
    >>> sampler.setup(BACKEND.run(model, (x,)))
    >>> [(slot.name, slot.size) for slot in sampler.slots]
    [('c', 3)]
    >>> features = sampler.features(BACKEND.run(model, (x,)))
    >>> tuple(sampler.posterior(sampler.policy, features, num=5)["c"].shape)
    (5, 2)
    >>> table = sampler.trajectory_log_probs(sampler.policy, features)  # [N, 3]: log P_F of every value
    >>> [round(float(p), 5) for p in table.exp().sum(-1)]
    [1.0, 1.0]
"""

import numpy as np

from ppl.errors import ShapeError, SiteError

from ..program import common_plate
from . import replay
from .policies import default_mlp_policy, non_finite_logits
from .sampler import Sampler, repeated, split_keys


class Slot:
    """One latent site in the construction order: name, support size, the offset of its
    one-hot block in the state, and the site's support (its values' dtype and device)."""

    def __init__(self, name, size, offset, support):
        self.name, self.size, self.offset, self.support = name, size, offset, support


class FixedOrderSampler(Sampler):
    """Builds the scalar sites in a fixed order with an MLP policy by default (``order``,
    ``local_search``, ``sleep``, ``sleep_probability``: see :class:`~inference.GFlowNetEM`;
    the other options are :class:`Sampler`'s)."""

    def __init__(self, model, backend, state, order=None, local_search=0, sleep=0.0,
                 sleep_probability=0.3, **options):
        super().__init__(model, backend, state, **options)
        self.order = None if order is None else list(order)
        self.local_search = local_search
        self.sleep = sleep
        self.sleep_probability = sleep_probability

    def setup(self, trace):
        latent = list(trace.latent.values())
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
            slots.append(Slot(site.name, support.shape[0], offset, support))
            offset += support.shape[0]
        self.slots = slots
        plate = common_plate(latent)
        for site in latent:  # a latent outside the data plate would be shared by every element
            for p in site.plates:
                if p.size > 1 and (plate is None or p.name != plate.name):
                    others = [s.name for s in latent if p not in s.plates]
                    raise SiteError(
                        f"GFlowNetEM: latent site {site.name!r} lies in plate {p.name!r} but "
                        f"{others[0]!r} does not; every latent site must lie in the one data plate "
                        "(a latent outside it would be shared by every element): make it a "
                        "parameter of the model, or move it into the plate", site=site.name)
        self._set_plate(trace, plate)
        width = self.features(trace).shape[-1]
        self._finish_setup(lambda key: default_mlp_policy(
            self.backend.name, key, feature_dim=width, state_dim=offset, num_steps=len(slots),
            max_support=max(s.size for s in slots), hidden=self.hidden))

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

    def features(self, trace):
        return self.observations(trace)

    # ---------------------------------------------------------------- trajectories
    def construct(self, policy, features, key=None, temperature=1.0, epsilon=0.0, greedy=False,
                  forced=None, flows=False, check=True):
        """Build one trajectory per feature row with ``policy``: (slot values, log P_F per
        step ``[n, T]``, the log state flows ``[n, T]`` of s_0 .. s_{T-1} with ``flows``, else
        None). ``forced``: per slot, values to take instead of drawing (None: draw);
        ``check``: refuse non-finite logits of a greedy step (not inside a compiled loss)."""
        ops = self.ops
        n, width = features.shape[0], max(s.size for s in self.slots)
        state = ops.zeros((n, self.slots[-1].offset + self.slots[-1].size), features)
        keys = split_keys(self.backend, key, len(self.slots))
        steps, log_flows, values = [], [], []
        for t, slot in enumerate(self.slots):
            if flows:
                log_flows.append(policy.log_flow(features, state, t))
            logits = policy(features, state, t)
            if tuple(logits.shape) not in ((n, slot.size), (n, width)):
                raise ShapeError(f"GFlowNetEM: the policy gives logits of shape {tuple(logits.shape)} "
                                 f"at site {slot.name!r}; expected ({n}, {slot.size}) (the site's "
                                 f"support) or ({n}, {width}) (the widest site's)", site=slot.name)
            log_probs = ops.log_softmax(logits[:, :slot.size], -1)
            if forced is not None and forced[t] is not None:
                action = forced[t]
            elif greedy:  # argmax would pass over a NaN without a word
                bad = non_finite_logits(logits, f"site {slot.name!r}") if check else None
                if bad is not None:
                    raise bad
                action = ops.argmax(log_probs, -1)
            else:
                action = self._explore(logits, log_probs, slot, keys[t], temperature, epsilon)
            steps.append(ops.take_last(log_probs, action[:, None])[:, 0])
            state = ops.marked(state, action + slot.offset)  # each slot's columns start at 0
            values.append(action)
        return values, ops.stack(steps, -1), ops.stack(log_flows, -1) if flows else None

    def _explore(self, logits, log_probs, slot, key, temperature, epsilon):
        """A draw from the behaviour policy: tempered, mixed with the uniform by epsilon."""
        ops = self.ops
        # at temperature 1 the policy's own probabilities (a softmax fewer per step)
        behaviour = ops.exp(log_probs) if temperature == 1 else ops.softmax(log_probs / temperature, -1)
        if epsilon:
            behaviour = (1 - epsilon) * behaviour + epsilon / slot.size
        try:
            return ops.draw_index(ops.stop_gradient(behaviour), key)
        except RuntimeError as error:  # checked only when drawing failed: free otherwise
            bad = non_finite_logits(logits, f"site {slot.name!r}")
            if bad is not None:
                raise bad from error
            raise

    def log_reward(self, values, args, kwargs, num=1, global_sites=True, model=None, key=None,
                   check=True):
        """log p_theta(x_i, z_i) of slot values ``[num * N]`` each: ``[num, N]``, and the trace
        (the options: see :meth:`score_values`)."""
        return self.score_values({slot.name: self.ops.astype(v, slot.support)
                                  for slot, v in zip(self.slots, values)},
                                 args, kwargs, num, global_sites, model, key, check)

    def _rewards(self, values, args, kwargs, model, key):
        """The E-step's rewards ``[num * N]``, without gradients or the global sites."""
        with self.backend.no_grad():
            log_r = self.log_reward(values, args, kwargs, self.num_trajectories, False, model, key,
                                    check=False)[0]
        return self.ops.stop_gradient(self.ops.reshape(log_r, (-1,)))

    # ---------------------------------------------------------------- the E-step
    def update(self, features, args, kwargs, model=None):
        """Fresh trajectories (tempered, epsilon-mixed), those local search moved them to and
        those replayed from the buffer, in one balance-loss update, plus the sleep phase."""
        return self._step(self.e_step_loss, features, args, kwargs, model, len(self.slots))

    def e_step_loss(self, values, key, aux, args, kwargs):
        """The engine's loss: (the balance loss plus the sleep term, minus the balance loss,
        no traces, no extra leaves, the next replay buffer and acceptance rate)."""
        ops, num = self.ops, self.num_trajectories
        policy = self._rebuild(values)
        features, model = aux["features"], aux["model"]
        k_fresh, k_reward, k_search, k_replay, k_coin, k_sleep = split_keys(self.backend, key, 6)
        fresh = repeated(ops, features, num)
        flows = self.loss != "tb"
        drawn, log_pf_steps, log_flows = self.construct(policy, fresh, k_fresh, self.temperature,
                                                        self.epsilon, flows=flows)
        log_r = self._rewards(drawn, args, kwargs, model, k_reward)
        parts = [(log_pf_steps, log_flows, log_r)]
        memory = (drawn, log_r)
        new_aux = {"buffer": aux["buffer"], "acceptance": None}
        if self.local_search:
            searched, searched_r, new_aux["acceptance"] = self.search(
                policy, fresh, drawn, log_pf_steps, log_r, args, kwargs, model, k_search)
            _, search_pf, search_flows = self.construct(policy, fresh, forced=searched, flows=flows)
            parts.append((search_pf, search_flows, searched_r))
            memory = (searched, searched_r)
        if self.replay:  # off-policy: the best trajectories so far, rebuilt with P_F
            size, length = features.shape[0], len(self.slots)
            new_aux["buffer"] = replay.added(ops, aux["buffer"],
                                             ops.reshape(ops.stack(memory[0], -1), (num, size, length)),
                                             ops.reshape(memory[1], (num, size)))
            chosen, chosen_r = replay.sampled(ops, new_aux["buffer"], num, k_replay)
            forced = [ops.reshape(chosen[..., t], (-1,)) for t in range(length)]
            _, replay_pf, replay_flows = self.construct(policy, fresh, forced=forced, flows=flows)
            parts.append((replay_pf, replay_flows, ops.reshape(chosen_r, (-1,))))
        rows = fresh
        if len(parts) > 1:  # fresh, searched and replayed trajectories in one batch
            rows = repeated(ops, fresh, len(parts))
            log_pf_steps, log_flows, log_r = (None if p[0] is None else ops.concatenate(list(p), 0)
                                              for p in zip(*parts))
        loss = ops.mean(self.balance_loss(policy, rows, log_pf_steps, log_r, log_flows))
        total = loss
        if self.sleep:  # with probability sleep_probability, the sleep phase's term
            coin = ops.uniform((), loss, k_coin) < self.sleep_probability
            dreamed = self.sleep_loss(policy, args, kwargs, model, k_sleep)
            total = total + ops.where(coin, self.sleep * dreamed, ops.zeros((), loss))
        return total, -loss, [], None, new_aux

    def search(self, policy, features, values, log_pf_steps, log_r, args, kwargs, model=None, key=None):
        """One back-and-forth move per trajectory: keep the first T - k assignments, rebuild
        the rest with P_F, accept with min(1, R' P_F(old tail) / (R P_F(new tail))). Returns
        the chosen values, their rewards and the fraction accepted."""
        ops = self.ops
        keep = max(len(self.slots) - self.local_search, 0)
        k_build, k_reward, k_accept = split_keys(self.backend, key, 3)
        with self.backend.no_grad():
            forced = values[:keep] + [None] * (len(self.slots) - keep)
            # rebuilt with P_F itself, so that the acceptance ratio is exact
            proposal, proposal_pf, _ = self.construct(policy, features, k_build, forced=forced)
            proposal_r = self._rewards(proposal, args, kwargs, model, k_reward)
            log_accept = ops.stop_gradient(proposal_r - log_r + ops.sum(log_pf_steps[:, keep:], -1)
                                           - ops.sum(proposal_pf[:, keep:], -1))
            accept = ops.log(ops.uniform(log_accept.shape, log_accept, k_accept)) < log_accept
        chosen = [ops.where(accept, new, old) for new, old in zip(proposal, values)]
        return chosen, ops.where(accept, proposal_r, log_r), ops.mean(ops.astype(accept, log_accept))

    def sleep_loss(self, policy, args, kwargs, model=None, key=None):
        """-mean log P_F(z | x) on (z, x) dreamed by the model."""
        handlers = self.backend.handlers
        with self.backend.no_grad(), handlers.block():
            dream = self.backend.run(handlers.uncondition(self.model), args, kwargs, params=model, rng=key)
        forced = [self.ops.reshape(self.ops.to_index(dream[slot.name].value), (-1,)) for slot in self.slots]
        _, log_pf_steps, _ = self.construct(policy, self.features(dream), forced=forced)
        return -self.ops.mean(self.ops.sum(log_pf_steps, -1))

    # ---------------------------------------------------------------- draws
    def draw(self, policy, features, num, args, kwargs, key=None, greedy=False, model=None, check=True):
        ops = self.ops
        k_draw, k_reward = split_keys(self.backend, key, 2)
        with self.backend.no_grad():
            values, log_pf_steps, _ = self.construct(policy, repeated(ops, features, num), k_draw,
                                                     greedy=greedy, check=check)
        log_r, trace = self.log_reward(values, args, kwargs, num, model=model, key=k_reward, check=check)
        log_q = ops.reshape(ops.sum(ops.stop_gradient(log_pf_steps), -1), (num, features.shape[0]))
        return log_r, trace, log_q

    def posterior(self, policy, features, num, key=None, greedy=False):
        with self.backend.no_grad():
            values, _, _ = self.construct(policy, repeated(self.ops, features, num), key, greedy=greedy)
        size = features.shape[0]
        return {slot.name: self.ops.reshape(v, (num, size)) for slot, v in zip(self.slots, values)}

    def trajectory_log_probs(self, policy, features):
        """log P_F of every complete assignment: ``[N, S_1, ..., S_T]`` (small models only)."""
        ops = self.ops
        grids = np.meshgrid(*[np.arange(s.size) for s in self.slots], indexing="ij")
        count, n = grids[0].size, features.shape[0]
        index = ops.to_index(ops.zeros((), features))  # integers on the features' device
        forced = [ops.asarray(np.repeat(g.reshape(-1), n), like=index) for g in grids]
        with self.backend.no_grad():
            _, log_pf, _ = self.construct(policy, repeated(ops, features, count), forced=forced)
        table = ops.reshape(ops.sum(log_pf, -1), (count, n))
        return ops.reshape(ops.moveaxis(table, 0, 1), (n,) + tuple(s.size for s in self.slots))

    def posterior_probs(self, policy, features):
        """The marginal of each slot: site -> ``[N, support]`` probabilities (exact)."""
        table = self.trajectory_log_probs(policy, features)
        return {slot.name: self._marginal(table, i) for i, slot in enumerate(self.slots)}

    def _marginal(self, log_table, index):
        dims = tuple(d + 1 for d in range(len(log_table.shape) - 1) if d != index)
        return self.ops.exp(self.ops.logsumexp(log_table, dims) if dims else log_table)
