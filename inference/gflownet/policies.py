"""The default policies of the two samplers on torch: :class:`MLPPolicy` for the
fixed-order construction of scalar sites, :class:`ActionMLPPolicy` for a user-defined
action space (JAX's is in :mod:`inference.gflownet.equinox_policies`).

Each gives the forward policy's logits, ``log_partition(features)`` (log Z(x)) and
``log_flow`` (the log state flow, for detailed and sub-trajectory balance).

    >>> import torch
    >>> policy = MLPPolicy(feature_dim=1, state_dim=5, num_steps=2, max_support=3, hidden=8)
    >>> tuple(policy(torch.zeros(4, 1), torch.zeros(4, 5), step=0).shape)
    (4, 3)
    >>> tuple(policy.log_partition(torch.zeros(4, 1)).shape)
    (4,)
"""

import math

import torch
from torch import nn

from ppl.backend import ops_of
from ppl.errors import NonFiniteError


def non_finite_logits(logits, where):
    """The :class:`NonFiniteError` for a policy's logits with a NaN or +inf (they give no
    distribution over actions; -inf, an impossible action, is allowed), or None."""
    ops = ops_of(logits)
    if not ops.isfinite(ops.where(logits == -math.inf, 0.0, logits)):
        return NonFiniteError(f"GFlowNetEM: the policy's logits at {where} are not finite (NaN or "
                              "+inf); check the policy's weights and its inputs (the features)")
    return None


def default_mlp_policy(backend_name, key, **sizes):
    """The fixed-order sampler's default policy on ``backend_name``: :class:`MLPPolicy` on
    torch, :class:`~inference.gflownet.equinox_policies.EquinoxMLPPolicy` (initialised from
    ``key``) on JAX; ``sizes``: feature_dim, state_dim, num_steps, max_support, hidden."""
    if backend_name == "jax":
        from .equinox_policies import EquinoxMLPPolicy

        return EquinoxMLPPolicy(key=key, **sizes)
    return MLPPolicy(**sizes)


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


class ActionMLPPolicy(nn.Module):
    """Policy for an action space: an MLP over [features of x, state encoding] -> one logit
    per action; ``log_partition(features)`` gives log Z(x) and ``log_flow(features, encoding)``
    the log state flow (for detailed and sub-trajectory balance).

        >>> policy = ActionMLPPolicy(feature_dim=4, state_dim=6, num_actions=5, hidden=16)
        >>> tuple(policy(torch.zeros(3, 4), torch.zeros(3, 6)).shape)
        (3, 5)
    """

    def __init__(self, feature_dim, state_dim, num_actions, hidden=64):
        super().__init__()
        self.num_actions = num_actions
        self.body = nn.Sequential(
            nn.Linear(feature_dim + state_dim, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, num_actions))
        self.log_z = nn.Sequential(nn.Linear(feature_dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.flow = nn.Sequential(nn.Linear(feature_dim + state_dim, hidden), nn.ReLU(),
                                  nn.Linear(hidden, 1))

    def forward(self, features, encoding):
        return self.body(torch.cat([features, encoding], -1))

    def log_flow(self, features, encoding):
        return self.flow(torch.cat([features, encoding], -1)).squeeze(-1)

    def log_partition(self, features):
        return self.log_z(features).squeeze(-1)
