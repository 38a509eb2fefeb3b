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
    >>> sampler = FixedOrderSampler(model, BACKEND, hidden=8)
    >>> sampler.setup(BACKEND.run(model, (x,)))
    >>> [(slot.name, slot.size) for slot in sampler.slots]
    [('c', 3)]
    >>> features = sampler.features(BACKEND.run(model, (x,)))
    >>> tuple(sampler.posterior(features, num=5)["c"].shape)
    (5, 2)
    >>> table = sampler.trajectory_log_probs(features)  # [N, 3]: log P_F of every value
    >>> [round(float(p), 5) for p in table.exp().sum(-1)]
    [1.0, 1.0]
"""

import pyro.poutine as poutine
import torch

from ppl.errors import ShapeError, SiteError

from ..program import common_plate
from .policies import MLPPolicy, non_finite_logits
from .sampler import Sampler


class Slot:
    """One latent site in the construction order: name, support size, the offset of its
    one-hot block in the state, and the site's value dtype."""

    def __init__(self, name, size, offset, dtype):
        self.name, self.size, self.offset, self.dtype = name, size, offset, dtype


class FixedOrderSampler(Sampler):
    """Builds the scalar sites in a fixed order with an :class:`MLPPolicy` by default
    (``order``, ``local_search``, ``sleep``, ``sleep_probability``: see
    :class:`~inference.GFlowNetEM`; the other options are :class:`Sampler`'s)."""

    def __init__(self, model, backend, order=None, local_search=0, sleep=0.0, sleep_probability=0.3,
                 **options):
        super().__init__(model, backend, **options)
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
            slots.append(Slot(site.name, support.shape[0], offset, support.dtype))
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
        self._finish_setup(lambda: MLPPolicy(width, offset, len(slots), max(s.size for s in slots),
                                             self.hidden))

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
    def construct(self, features, temperature=1.0, epsilon=0.0, greedy=False, forced=None, flows=False):
        """Build one trajectory per feature row: (slot values, log P_F per step ``[n, T]``,
        the log state flows ``[n, T]`` of s_0 .. s_{T-1} with ``flows``, else None).
        ``forced``: per slot, values to take instead of drawing (None: draw)."""
        n = features.shape[0]
        state = features.new_zeros(n, self.slots[-1].offset + self.slots[-1].size)
        steps, log_flows, values = [], [], []
        for t, slot in enumerate(self.slots):
            if flows:
                log_flows.append(self.policy.log_flow(features, state, t))
            logits = self.policy(features, state, t)
            width = max(s.size for s in self.slots)
            if tuple(logits.shape) not in ((n, slot.size), (n, width)):
                raise ShapeError(f"GFlowNetEM: the policy gives logits of shape {tuple(logits.shape)} "
                                 f"at site {slot.name!r}; expected ({n}, {slot.size}) (the site's "
                                 f"support) or ({n}, {width}) (the widest site's)", site=slot.name)
            log_probs = logits[:, :slot.size].log_softmax(-1)
            if forced is not None and forced[t] is not None:
                action = forced[t]
            elif greedy:  # argmax would pass over a NaN without a word
                bad = non_finite_logits(logits, f"site {slot.name!r}")
                if bad is not None:
                    raise bad
                action = log_probs.argmax(-1)
            else:
                behaviour = (log_probs / temperature).softmax(-1)
                if epsilon:
                    behaviour = (1 - epsilon) * behaviour + epsilon / slot.size
                try:
                    action = torch.multinomial(behaviour.detach(), 1).squeeze(-1)
                except RuntimeError as error:  # checked only when drawing failed: free otherwise
                    bad = non_finite_logits(logits, f"site {slot.name!r}")
                    if bad is not None:
                        raise bad from error
                    raise
            steps.append(log_probs.gather(-1, action.unsqueeze(-1)).squeeze(-1))
            state = state.clone()
            state[torch.arange(n), slot.offset + action] = 1.0
            values.append(action)
        return values, torch.stack(steps, -1), torch.stack(log_flows, -1) if flows else None

    def log_reward(self, values, args, kwargs, num=1, global_sites=True):
        """log p_theta(x_i, z_i) of slot values ``[num * N]`` each: ``[num, N]``, and the trace
        (``global_sites``: see :meth:`score_values`)."""
        return self.score_values({slot.name: v.to(slot.dtype) for slot, v in zip(self.slots, values)},
                                 args, kwargs, num, global_sites)

    # ---------------------------------------------------------------- the E-step
    def update(self, features, args, kwargs):
        """Fresh trajectories (tempered, epsilon-mixed), those local search moved them to and
        those replayed from the buffer, in one balance-loss update, plus the sleep phase."""
        num = self.num_trajectories
        fresh = features.repeat(num, 1)
        flows = self.loss != "tb"
        values, log_pf_steps, log_flows = self.construct(fresh, self.temperature, self.epsilon, flows=flows)
        with torch.no_grad():
            log_r = self.log_reward(values, args, kwargs, num=num, global_sites=False)[0].reshape(-1)
        parts = [(log_pf_steps, log_flows, log_r)]
        memory = (values, log_r)
        if self.local_search:
            searched, searched_r = self.search(fresh, values, log_pf_steps, log_r, args, kwargs)
            _, search_pf, search_flows = self.construct(fresh, forced=searched, flows=flows)
            parts.append((search_pf, search_flows, searched_r))
            memory = (searched, searched_r)
        if self.buffer is not None:  # off-policy: the best trajectories so far, rebuilt with P_F
            size = features.shape[0]
            self.buffer.add(torch.stack(memory[0], -1).reshape(num, size, len(self.slots)),
                            memory[1].reshape(num, size))
            replayed, replayed_r = self.buffer.sample(num)
            replayed = [replayed[..., t].reshape(-1) for t in range(len(self.slots))]
            _, replay_pf, replay_flows = self.construct(fresh, forced=replayed, flows=flows)
            parts.append((replay_pf, replay_flows, replayed_r.reshape(-1)))
        rows = fresh
        if len(parts) > 1:  # fresh, searched and replayed trajectories in one batch
            rows = fresh.repeat(len(parts), 1)
            log_pf_steps, log_flows, log_r = (None if p[0] is None else torch.cat(p) for p in zip(*parts))
        loss = self.balance_loss(rows, log_pf_steps, log_r, log_flows).mean()
        total = loss
        if self.sleep and torch.rand(()) < self.sleep_probability:
            total = total + self.sleep * self.sleep_loss(args, kwargs)
        self._descend(total)
        return loss.item()

    def search(self, features, values, log_pf_steps, log_r, args, kwargs):
        """One back-and-forth move per trajectory: keep the first T - k assignments, rebuild
        the rest with P_F, accept with min(1, R' P_F(old tail) / (R P_F(new tail)))."""
        keep = max(len(self.slots) - self.local_search, 0)
        with torch.no_grad():
            forced = values[:keep] + [None] * (len(self.slots) - keep)
            # rebuilt with P_F itself, so that the acceptance ratio is exact
            proposal, proposal_pf, _ = self.construct(features, forced=forced)
            proposal_r = self.log_reward(proposal, args, kwargs, num=self.num_trajectories,
                                         global_sites=False)[0].reshape(-1)
            log_accept = (proposal_r - log_r + log_pf_steps[:, keep:].sum(-1).detach()
                          - proposal_pf[:, keep:].sum(-1))
            accept = torch.rand_like(log_accept).log() < log_accept
        self.acceptance_rate = float(accept.float().mean())
        chosen = [torch.where(accept, new, old) for new, old in zip(proposal, values)]
        return chosen, torch.where(accept, proposal_r, log_r)

    def sleep_loss(self, args, kwargs):
        """-mean log P_F(z | x) on (z, x) dreamed by the model."""
        with torch.no_grad(), poutine.block():
            dream = self.backend.run(poutine.uncondition(self.model), args, kwargs)
        forced = [torch.as_tensor(dream[slot.name].value).reshape(-1).long() for slot in self.slots]
        _, log_pf_steps, _ = self.construct(self.features(dream), forced=forced)
        return -log_pf_steps.sum(-1).mean()

    # ---------------------------------------------------------------- draws
    def draw(self, features, num, args, kwargs, greedy=False):
        with torch.no_grad():
            values, log_pf_steps, _ = self.construct(features.repeat(num, 1), greedy=greedy)
        log_r, trace = self.log_reward(values, args, kwargs, num=num)
        return log_r, trace, log_pf_steps.sum(-1).reshape(num, features.shape[0])

    def posterior(self, features, num, greedy=False):
        with torch.no_grad():
            values, _, _ = self.construct(features.repeat(num, 1), greedy=greedy)
        return {slot.name: v.reshape(num, features.shape[0]) for slot, v in zip(self.slots, values)}

    def trajectory_log_probs(self, features):
        """log P_F of every complete assignment: ``[N, S_1, ..., S_T]`` (small models only)."""
        grids = torch.meshgrid(*[torch.arange(s.size) for s in self.slots], indexing="ij")
        configs = [g.reshape(-1) for g in grids]
        count = configs[0].numel()
        n = features.shape[0]
        forced = [c.repeat_interleave(n) for c in configs]
        with torch.no_grad():
            _, log_pf, _ = self.construct(features.repeat(count, 1), forced=forced)
        shape = [s.size for s in self.slots]
        return log_pf.sum(-1).reshape(count, n).T.reshape([n] + shape)

    def posterior_probs(self, features):
        """The marginal of each slot: site -> ``[N, support]`` probabilities (exact)."""
        table = self.trajectory_log_probs(features)
        return {slot.name: _marginal(table, i, slot.size) for i, slot in enumerate(self.slots)}


def _marginal(log_table, index, size):
    dims = [d + 1 for d in range(log_table.dim() - 1) if d != index]
    return torch.logsumexp(log_table, dims).exp() if dims else log_table.exp()
