"""User-defined action spaces for :class:`~inference.GFlowNetEM`: a latent site whose value
is a structure (a parse tree, a set, a graph) built step by step.

An action space is an object with these members (subclass :class:`ActionSpace` for the
defaults). A *state* is a dict of tensors whose first dimension is the batch (one row per
trajectory), so that the sampler can repeat, select and concatenate batches of states.

* ``sites``: the names of the latent sites it builds (every latent site of the program,
  all in the data plate);
* ``num_actions``: the number of action ids; a policy outputs one logit per id;
* ``max_steps``: an upper bound on a trajectory's length;
* ``initial_state(trace)``: the initial states of the data elements, ``N`` rows, from a
  trace of the model (read the element's observations or a site's distribution there);
* ``mask(state)``: ``[n, num_actions]`` booleans, the valid actions (the policy's other
  logits are set to -inf); a state that is not terminal must have one;
* ``apply(state, actions)``: the next states; ``actions [n]`` holds -1 for rows that are
  already terminal, which must come back unchanged;
* ``is_terminal(state)``: ``[n]`` booleans; trajectories in one batch may differ in length;
* ``encode(state)``: ``[n, D]`` floats, the state as the policy sees it;
* ``num_parents(state)``: ``[n]`` counts; the default backward policy is uniform over the
  parents, ``log P_B(s | s') = -log num_parents(s')`` (override ``log_backward(state,
  actions, next_state)`` for another one);
* ``values(state)``: site name -> ``[n, *event_shape]`` values of terminal states, which
  are replayed into the model to score the reward log p(x, z);
* optional ``features(trace)``: ``[N, F]`` features of each data element for the policy
  (default: the element's observations, flattened).

Trajectory balance then reads (log Z(x) + sum log P_F - log R - sum log P_B)^2.

    >>> import torch
    >>> class Bits(ActionSpace):
    ...     '''Set k bits one by one, in any order: action i sets bit i.'''
    ...     sites, num_actions, max_steps = ("z",), 3, 3
    ...     def initial_state(self, trace):
    ...         return {"bits": torch.full((len(trace["x"].value), 3), -1)}
    ...     def mask(self, state):
    ...         return state["bits"] < 0
    ...     def apply(self, state, actions):
    ...         bits = state["bits"].clone()
    ...         rows = (actions >= 0).nonzero().squeeze(-1)
    ...         bits[rows, actions[rows]] = 1
    ...         return {"bits": bits}
    ...     def is_terminal(self, state):
    ...         return (state["bits"] >= 0).all(-1)
    ...     def encode(self, state):
    ...         return state["bits"].float()
    ...     def num_parents(self, state):
    ...         return (state["bits"] >= 0).sum(-1)
    ...     def values(self, state):
    ...         return {"z": state["bits"].float()}
    >>> space = Bits()
    >>> policy = ActionMLPPolicy(feature_dim=1, state_dim=3, num_actions=3, hidden=8)
    >>> start = {"bits": torch.full((2, 3), -1)}
    >>> run = construct(space, policy, torch.zeros(2, 1), start)
    >>> run.lengths.tolist(), tuple(run.actions.shape), round(float(run.log_pb.sum(-1)[0].exp()), 4)
    ([3, 3], (2, 3), 0.1667)
"""

import math
from collections import namedtuple

import torch

from .policies import ActionMLPPolicy, non_finite_logits

__all__ = ["ActionMLPPolicy", "ActionSpace", "Trajectories", "cat_states", "construct", "repeat_state"]


class ActionSpace:
    """Defaults for the action-space protocol (see the module docstring): the uniform
    backward policy and features taken from the observations (``None``: the sampler's own)."""

    sites = ()
    num_actions = 0
    max_steps = 0

    def log_backward(self, state, actions, next_state):
        """log P_B(state | next_state) of each row: uniform over the parents of next_state."""
        return -self.num_parents(next_state).to(torch.get_default_dtype()).log()

    def features(self, trace):
        return None

    def __repr__(self):
        return type(self).__name__


# ---------------------------------------------------------------- batches of states
def repeat_state(state, num):
    """``num`` copies of a batch of states, stacked (row ``k * n + i`` is copy k of row i)."""
    return {k: v.repeat(num, *([1] * (v.dim() - 1))) for k, v in state.items()}


def cat_states(states):
    return {k: torch.cat([s[k] for s in states]) for k in states[0]}


Trajectories = namedtuple("Trajectories", ["actions", "log_pf", "log_pb", "lengths", "log_flows", "state"])
Trajectories.__doc__ = """A batch of trajectories: ``actions [n, T]`` (-1 after a trajectory's end),
``log_pf`` and ``log_pb [n, T]`` per step (0 after the end), ``lengths [n]``, ``log_flows
[n, T]`` of s_0 .. s_{T-1} (or None) and the terminal ``state``."""


def _check_logits(space, logits):
    if logits.dim() != 2 or logits.shape[-1] != space.num_actions:
        raise ValueError(f"GFlowNetEM: the policy gives logits of shape {tuple(logits.shape)}, but "
                         f"the action space {space!r} has {space.num_actions} actions (expected "
                         f"[{logits.shape[0]}, {space.num_actions}])")


def construct(space, policy, features, state, temperature=1.0, epsilon=0.0, greedy=False,
              forced=None, flows=False):
    """Run ``policy`` in ``space`` from ``state`` until every row is terminal.

    ``temperature`` and ``epsilon`` (uniform mixing over the valid actions) shape the
    behaviour policy that draws the actions; the returned log P_F is the policy's own.
    ``greedy``: the most probable action at each step. ``forced [n, T']``: take these
    actions (-1 once a row is terminal) instead; they must be valid.
    """
    n = features.shape[0]
    rows = torch.arange(n, device=features.device)
    actions, log_pf, log_pb, log_flows = [], [], [], []
    lengths = torch.zeros(n, dtype=torch.long, device=features.device)
    t = 0
    while True:
        done = space.is_terminal(state)
        if bool(done.all()):
            break
        if t >= space.max_steps:
            raise ValueError(f"GFlowNetEM: a trajectory of the action space {space!r} has not ended "
                             f"after max_steps = {space.max_steps} steps")
        encoding = space.encode(state)
        if flows:
            log_flows.append(policy.log_partition(features) if t == 0
                             else policy.log_flow(features, encoding))
        logits = policy(features, encoding)
        _check_logits(space, logits)
        logits = torch.where(done.unsqueeze(-1), torch.zeros((), dtype=logits.dtype), logits)
        mask = space.mask(state)
        stuck = ~done & ~mask.any(-1)
        if bool(stuck.any()):
            raise ValueError(f"GFlowNetEM: the action space {space!r} gives a state that is not "
                             f"terminal but has no valid action (row {int(stuck.nonzero()[0])})")
        mask = mask.clone()
        mask[:, 0] |= done  # a placeholder action keeps finished rows finite; never applied
        log_probs = logits.masked_fill(~mask, -math.inf).log_softmax(-1)
        if forced is not None:
            chosen = forced[:, t] if t < forced.shape[1] else torch.full_like(rows, -1)
            bad = ~done & ((chosen < 0) | ~mask.gather(-1, chosen.clamp(min=0).unsqueeze(-1)).squeeze(-1))
            if bool(bad.any()):
                raise ValueError(f"GFlowNetEM: forced action {int(chosen[bad][0])} at step {t} is not "
                                 f"valid in the action space {space!r}")
            chosen = chosen.clamp(min=0)
        elif greedy:  # argmax would pass over a NaN without a word
            bad = non_finite_logits(logits, f"step {t} of the action space {space!r}")
            if bad is not None:
                raise bad
            chosen = log_probs.argmax(-1)
        else:
            with torch.no_grad():
                behaviour = (log_probs / temperature).softmax(-1)
                if epsilon:
                    uniform = mask.to(behaviour.dtype)
                    behaviour = (1 - epsilon) * behaviour + epsilon * uniform / uniform.sum(-1, keepdim=True)
            try:
                chosen = torch.multinomial(behaviour, 1).squeeze(-1)
            except RuntimeError as error:  # checked only when drawing failed: free otherwise
                bad = non_finite_logits(logits, f"step {t} of the action space {space!r}")
                if bad is not None:
                    raise bad from error
                raise
        zero = torch.zeros((), dtype=log_probs.dtype, device=log_probs.device)
        step_pf = torch.where(done, zero, log_probs.gather(-1, chosen.unsqueeze(-1)).squeeze(-1))
        chosen = torch.where(done, torch.full_like(chosen, -1), chosen)
        next_state = space.apply(state, chosen)
        step_pb = torch.where(done, zero, space.log_backward(state, chosen, next_state).to(zero.dtype))
        actions.append(chosen)
        log_pf.append(step_pf)
        log_pb.append(step_pb)
        lengths = lengths + (~done).long()
        state = next_state
        t += 1
    if t == 0:
        raise ValueError(f"GFlowNetEM: the initial states of the action space {space!r} are terminal")
    return Trajectories(torch.stack(actions, -1), torch.stack(log_pf, -1), torch.stack(log_pb, -1),
                        lengths, torch.stack(log_flows, -1) if flows else None, state)
