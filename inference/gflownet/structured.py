"""The verbs of :class:`~inference.GFlowNetEM` for a user-defined action space
(``GFlowNetEM(model, action_space=...)``): set-up, the E-step with the balance losses and a
backward policy, replay, the M-step, evaluation and posterior draws. The protocol an
action space follows is in :mod:`inference.gflownet.actions`.

    >>> from inference.gflownet.structured import OPTIONS_WITHOUT_ACTION_SPACES
    >>> OPTIONS_WITHOUT_ACTION_SPACES
    ('order', 'local_search', 'sleep')
"""

import torch

from .actions import ActionMLPPolicy, construct, repeat_state
from .losses import detailed_balance, subtrajectory_balance, trajectory_balance
from ..program import common_plate

# order: the action space fixes the construction; local search: needs backward sampling of
# states; sleep: needs a trajectory for a dreamed value. None of them is in the protocol.
OPTIONS_WITHOUT_ACTION_SPACES = ("order", "local_search", "sleep")


def check_action_space_options(space, order, local_search, sleep):
    """Refuse the options the action-space path does not implement (rather than ignore them)."""
    given = {"order": order is not None, "local_search": bool(local_search), "sleep": bool(sleep)}
    for name in OPTIONS_WITHOUT_ACTION_SPACES:
        if given[name]:
            raise ValueError(f"GFlowNetEM: {name}= does not apply with action_space={space!r} (the "
                             "action space defines the construction; it has no backward sampler "
                             "for local search or sleep)")
    for attribute in ("sites", "num_actions", "max_steps", "initial_state", "mask", "apply",
                      "is_terminal", "encode", "values"):
        if not hasattr(space, attribute):
            raise ValueError(f"GFlowNetEM: action_space {space!r} has no {attribute!r} (see "
                             "inference.gflownet.actions for the protocol)")


def _pad_steps(tensors, width):
    return [torch.nn.functional.pad(t, (0, width - t.shape[-1])) for t in tensors]


class StructuredSteps:
    """Mixed into GFlowNetEM: every method here serves ``self.action_space``."""

    def _setup_action_space(self, trace, latent):
        space = self.action_space
        by_name = {site.name: site for site in latent}
        for name in space.sites:
            if name not in by_name:
                raise ValueError(f"GFlowNetEM: action_space {space!r} builds site {name!r}, which is "
                                 f"not a latent site of the model (latent sites: {sorted(by_name)})")
        for name in by_name:
            if name not in space.sites:
                raise ValueError(f"GFlowNetEM: latent site {name!r} is not built by action_space "
                                 f"{space!r} (it builds {list(space.sites)})")
        return common_plate([by_name[name] for name in space.sites])

    def _action_features(self, trace):
        """Features from the action space (or the observations) and the initial states."""
        own = self.action_space.features(trace) if hasattr(self.action_space, "features") else None
        features = self._features(trace) if own is None else own
        initial = self.action_space.initial_state(trace)
        for key, value in initial.items():
            if value.shape[0] != features.shape[0]:
                raise ValueError(f"GFlowNetEM: action_space {self.action_space!r} gives "
                                 f"{value.shape[0]} initial states ({key!r}) for {features.shape[0]} "
                                 "data elements")
        self._initial = initial
        return features

    def _default_action_policy(self, features):
        encoding = self.action_space.encode(self._initial)
        return ActionMLPPolicy(features.shape[-1], encoding.shape[-1], self.action_space.num_actions,
                               self.hidden)

    def _score_values(self, values, args, kwargs, num):
        """log p(x, z) of the terminal states' site values: ``[num, N]`` and the trace."""
        replay = {}
        for name, value in values.items():
            shape = [1] * (self._nesting + 1)
            shape[0] = num
            if self._plate is not None:
                shape[self._plate[1]] = self._size
            replay[name] = value.reshape(shape + list(value.shape[1:]))
        return self._score(replay, args, kwargs, num)

    def _trajectories(self, num, **options):
        features = self._repeat(self._feature_cache, num)
        return features, construct(self.action_space, self.policy, features,
                                   repeat_state(self._initial, num), **options)

    def _e_step_actions(self, args, kwargs):
        num = self.num_trajectories
        self._current_features(args, kwargs)
        flows = self.loss != "tb"
        features, run = self._trajectories(num, temperature=self.temperature, epsilon=self.epsilon,
                                           flows=flows)
        with torch.no_grad():
            log_r = self._score_values(self.action_space.values(run.state), args, kwargs, num)[0].reshape(-1)
        runs, rewards = [run], [log_r]
        if self.replay:  # off-policy: the buffer's best trajectories, rebuilt with P_F
            self._remember_actions(run.actions, log_r, num)
            replayed, replayed_r = self._replayed_actions(num)
            _, again = self._trajectories(num, forced=replayed, flows=flows)
            runs.append(again)
            rewards.append(replayed_r)
            features = torch.cat([features, features])
        width = max(r.log_pf.shape[-1] for r in runs)
        log_pf = torch.cat(_pad_steps([r.log_pf for r in runs], width))
        log_pb = torch.cat(_pad_steps([r.log_pb for r in runs], width))
        lengths = torch.cat([r.lengths for r in runs])
        log_r = torch.cat(rewards)
        if self.loss == "tb":
            losses = trajectory_balance(self.policy.log_partition(features), log_pf.sum(-1), log_r,
                                        log_pb.sum(-1))
        else:
            log_flows = torch.cat(_pad_steps([r.log_flows for r in runs], width))
            if self.loss == "subtb":
                losses = subtrajectory_balance(log_flows, log_pf, log_r, self.subtb_lambda, log_pb, lengths)
            else:
                losses = detailed_balance(log_flows, log_pf, log_r, log_pb, lengths)
        loss = losses.mean()
        self.policy_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.policy_optimizer.step()
        return loss.item()

    def _remember_actions(self, actions, log_r, num):
        """Keep each element's ``replay`` highest-reward action sequences (padded with -1)."""
        actions = torch.nn.functional.pad(actions, (0, self.action_space.max_steps - actions.shape[-1]),
                                          value=-1)
        new_actions = actions.reshape(num, self._size, -1)
        new_r = log_r.reshape(num, self._size)
        if self._buffer is not None:
            new_actions = torch.cat([self._buffer[0], new_actions])
            new_r = torch.cat([self._buffer[1], new_r])
        best = new_r.topk(min(self.replay, new_r.shape[0]), dim=0).indices  # [k, N]
        kept = new_actions.gather(0, best.unsqueeze(-1).expand(-1, -1, new_actions.shape[-1]))
        self._buffer = (kept, new_r.gather(0, best))

    def _replayed_actions(self, num):
        actions, log_r = self._buffer
        pick = torch.randint(actions.shape[0], (num, self._size))
        chosen = actions.gather(0, pick.unsqueeze(-1).expand(-1, -1, actions.shape[-1]))
        return chosen.reshape(num * self._size, -1), log_r.gather(0, pick).reshape(-1)

    def _draw_and_score(self, num, args, kwargs, greedy=False):
        """(log p(x, z) with gradients for the model ``[num, N]``, its trace, and the log
        importance denominator log P_F(tau) - log P_B(tau | z) ``[num, N]``)."""
        with torch.no_grad():
            _, run = self._trajectories(num, greedy=greedy)
        log_r, trace = self._score_values(self.action_space.values(run.state), args, kwargs, num)
        log_q = (run.log_pf - run.log_pb).sum(-1).reshape(num, self._size)
        return log_r, trace, log_q

    def _posterior_actions(self, num_samples, greedy=False):
        with torch.no_grad():
            _, run = self._trajectories(num_samples, greedy=greedy)
        return {name: value.reshape((num_samples, self._size) + tuple(value.shape[1:]))
                for name, value in self.action_space.values(run.state).items()}

