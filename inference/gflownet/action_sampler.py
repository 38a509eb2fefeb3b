"""The action-space sampler: latent sites whose values are structures (parse trees, sets,
graphs) built step by step in a user-defined action space
(``GFlowNetEM(model, action_space=...)``; the protocol is in
:mod:`inference.gflownet.actions`).

Several trajectories may build the same value, so every balance loss has a backward
policy P_B (the space's ``log_backward``, uniform over parents by default), and the
importance weights of the M-step and ``evaluate`` are p(x, z) P_B(tau | z) / P_F(tau).

    >>> OPTIONS_WITHOUT_ACTION_SPACES
    ('order', 'local_search', 'sleep')
    >>> check_action_space_options(object(), order=["z"], local_search=0, sleep=0.0)
    Traceback (most recent call last):
    ...
    ValueError: GFlowNetEM: order= does not apply with action_space=<object object at ...> (the ...
"""

import torch

from ..program import common_plate
from . import replay
from .actions import construct, repeat_state
from .policies import ActionMLPPolicy
from .sampler import Sampler

# order: the action space fixes the construction; local search: needs backward sampling of
# states; sleep: needs a trajectory for a dreamed value. None of them is in the protocol.
OPTIONS_WITHOUT_ACTION_SPACES = ("order", "local_search", "sleep")


def check_action_space_options(space, order, local_search, sleep):
    """Refuse the options the action-space sampler does not implement (rather than ignore
    them), and an action space without a member of the protocol."""
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


class ActionSpaceSampler(Sampler):
    """Builds the sites of ``action_space`` with an
    :class:`~inference.gflownet.policies.ActionMLPPolicy` by default (the options are
    :class:`~inference.gflownet.sampler.Sampler`'s)."""

    def __init__(self, model, backend, state, action_space, **options):
        super().__init__(model, backend, state, **options)
        self.action_space = action_space
        self._initial = None  # the initial states of the call whose features came last

    def setup(self, trace):
        space = self.action_space
        by_name = {site.name: site for site in trace.latent.values()}
        for name in space.sites:
            if name not in by_name:
                raise ValueError(f"GFlowNetEM: action_space {space!r} builds site {name!r}, which is "
                                 f"not a latent site of the model (latent sites: {sorted(by_name)})")
        for name in by_name:
            if name not in space.sites:
                raise ValueError(f"GFlowNetEM: latent site {name!r} is not built by action_space "
                                 f"{space!r} (it builds {list(space.sites)})")
        self._set_plate(trace, common_plate([by_name[name] for name in space.sites]))
        width = self.features(trace).shape[-1]
        self._finish_setup(lambda key: ActionMLPPolicy(width, space.encode(self._initial).shape[-1],
                                                       space.num_actions, self.hidden))

    def features(self, trace):
        """Features from the action space (or the observations); keeps the initial states."""
        own = self.action_space.features(trace) if hasattr(self.action_space, "features") else None
        features = self.observations(trace) if own is None else own
        initial = self.action_space.initial_state(trace)
        for key, value in initial.items():
            if value.shape[0] != features.shape[0]:
                raise ValueError(f"GFlowNetEM: action_space {self.action_space!r} gives "
                                 f"{value.shape[0]} initial states ({key!r}) for {features.shape[0]} "
                                 "data elements")
        self._initial = initial
        return features

    def trajectories(self, policy, features, num, **options):
        """``num`` trajectories per element (options: those of ``construct``): the repeated
        features and the :class:`~inference.gflownet.actions.Trajectories`."""
        features = features.repeat(num, 1)
        return features, construct(self.action_space, policy, features,
                                   repeat_state(self._initial, num), **options)

    # ---------------------------------------------------------------- the E-step
    def update(self, features, args, kwargs, model=None):
        """Fresh trajectories (tempered, epsilon-mixed) and those replayed from the buffer, of
        varying lengths, in one balance-loss update with P_B (eager: a trajectory's length
        depends on the states the user's action space reaches)."""
        return self._step(self._e_step_loss, features, args, kwargs, model, self.action_space.max_steps)

    def _e_step_loss(self, values, key, aux, args, kwargs):
        features, policy = aux["features"], self._rebuild(values)
        num, size = self.num_trajectories, features.shape[0]
        flows = self.loss != "tb"
        repeated, run = self.trajectories(policy, features, num, temperature=self.temperature,
                                          epsilon=self.epsilon, flows=flows)
        with torch.no_grad():
            log_r = self.score_values(self.action_space.values(run.state), args, kwargs, num,
                                      global_sites=False)[0].reshape(-1)
        runs, rewards = [run], [log_r]
        buffer = aux["buffer"]
        if self.replay:  # off-policy: the best trajectories so far, rebuilt with P_F
            padding = self.action_space.max_steps - run.actions.shape[-1]
            actions = torch.nn.functional.pad(run.actions, (0, padding), value=-1)
            buffer = replay.added(self.ops, buffer, actions.reshape(num, size, -1), log_r.reshape(num, size))
            replayed, replayed_r = replay.sampled(self.ops, buffer, num)
            _, again = self.trajectories(policy, features, num, forced=replayed.reshape(num * size, -1),
                                         flows=flows)
            runs.append(again)
            rewards.append(replayed_r.reshape(-1))
            repeated = torch.cat([repeated, repeated])
        width = max(r.log_pf.shape[-1] for r in runs)
        log_flows = torch.cat(_pad_steps([r.log_flows for r in runs], width)) if flows else None
        losses = self.balance_loss(policy, repeated, torch.cat(_pad_steps([r.log_pf for r in runs], width)),
                                   torch.cat(rewards), log_flows,
                                   torch.cat(_pad_steps([r.log_pb for r in runs], width)),
                                   torch.cat([r.lengths for r in runs]))
        loss = losses.mean()
        return loss, -loss, [], None, {"buffer": buffer}

    # ---------------------------------------------------------------- draws
    def draw(self, policy, features, num, args, kwargs, key=None, greedy=False, model=None, check=True):
        """(log p(x, z) with gradients for the model ``[num, N]``, its trace, and the log
        importance denominator log P_F(tau) - log P_B(tau | z) ``[num, N]``)."""
        with torch.no_grad():
            _, run = self.trajectories(policy, features, num, greedy=greedy)
        log_r, trace = self.score_values(self.action_space.values(run.state), args, kwargs, num,
                                         model=model, check=check)
        log_q = (run.log_pf - run.log_pb).sum(-1).reshape(num, features.shape[0])
        return log_r, trace, log_q

    def posterior(self, policy, features, num, key=None, greedy=False):
        with torch.no_grad():
            _, run = self.trajectories(policy, features, num, greedy=greedy)
        return {name: value.reshape((num, features.shape[0]) + tuple(value.shape[1:]))
                for name, value in self.action_space.values(run.state).items()}

    def trajectory_log_probs(self, policy, features):
        raise ValueError("GFlowNetEM: trajectory_log_probs enumerates scalar sites; with an "
                         "action_space, force trajectories through inference.gflownet.actions.construct")

    posterior_probs = trajectory_log_probs
