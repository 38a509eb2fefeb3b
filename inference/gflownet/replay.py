"""The replay buffer of GFlowNet-EM: each data element's ``capacity`` highest-reward
trajectories seen so far, replayed off-policy next to fresh ones.

A trajectory is a row of integers (the fixed-order sampler: one value per site; the
action-space sampler: the actions, padded with -1). Both samplers keep theirs here, and the
buffer's contents go into checkpoints.

    >>> import torch
    >>> buffer = ReplayBuffer(capacity=2)
    >>> trajectories = torch.tensor([[[0], [1]], [[2], [3]], [[4], [5]]])  # [num 3, N 2, T 1]
    >>> buffer.add(trajectories, torch.tensor([[0.0, -1.0], [2.0, -3.0], [1.0, -2.0]]))
    >>> buffer.trajectories[..., 0].tolist(), buffer.log_rewards.tolist()  # best first
    ([[2, 1], [4, 5]], [[2.0, -1.0], [1.0, -2.0]])
    >>> chosen, log_r = buffer.sample(3)
    >>> tuple(chosen.shape), tuple(log_r.shape)
    ((3, 2, 1), (3, 2))
"""

import torch


class ReplayBuffer:
    """``trajectories [k, N, T]`` and their ``log_rewards [k, N]`` (None until the first
    :meth:`add`), sorted best first along k."""

    def __init__(self, capacity):
        self.capacity = capacity
        self.trajectories = None
        self.log_rewards = None

    def add(self, trajectories, log_rewards):
        """Merge ``trajectories [num, N, T]`` with rewards ``[num, N]`` into each element's best."""
        if self.trajectories is not None:
            size = self.log_rewards.shape[1]
            if log_rewards.shape[1] != size:
                raise ValueError(
                    f"GFlowNetEM: replay keeps the best trajectories of each of {size} data elements, "
                    f"but this call has {log_rewards.shape[1]}; replay needs the same data set at "
                    "every step (use replay=0 with minibatches)")
            trajectories = torch.cat([self.trajectories, trajectories])
            log_rewards = torch.cat([self.log_rewards, log_rewards])
        best = log_rewards.topk(min(self.capacity, log_rewards.shape[0]), dim=0).indices  # [k, N]
        self.trajectories = trajectories.gather(0, best.unsqueeze(-1).expand(-1, -1, trajectories.shape[-1]))
        self.log_rewards = log_rewards.gather(0, best)

    def sample(self, num):
        """``num`` trajectories per element drawn uniformly from its buffer: ``[num, N, T]``
        and their rewards ``[num, N]``."""
        pick = torch.randint(self.trajectories.shape[0], (num, self.log_rewards.shape[1]))
        chosen = self.trajectories.gather(0, pick.unsqueeze(-1).expand(-1, -1, self.trajectories.shape[-1]))
        return chosen, self.log_rewards.gather(0, pick)

    def state_dict(self):
        return None if self.trajectories is None else (self.trajectories, self.log_rewards)

    def load_state_dict(self, state):
        self.trajectories, self.log_rewards = (None, None) if state is None else state
