"""The replay buffer of GFlowNet-EM: each data element's ``capacity`` highest-reward
trajectories seen so far, replayed off-policy next to fresh ones.

A trajectory is a row of integers (the fixed-order sampler: one value per site; the
action-space sampler: the actions, padded with -1). The buffer's state is a value, ``(
trajectories [capacity, N, T], log_rewards [capacity, N])`` sorted best first along the
first axis, with reward -inf in the slots not filled yet; :func:`added` and :func:`sampled`
are pure functions of it, so that a compiled update threads it as it threads the policy.

    >>> import torch, ppl
    >>> ops = ppl.get_backend("torch").ops
    >>> state = empty(ops, capacity=2, size=2, width=1, like=torch.zeros(()))
    >>> trajectories = torch.tensor([[[0], [1]], [[2], [3]], [[4], [5]]])  # [num 3, N 2, T 1]
    >>> state = added(ops, state, trajectories, torch.tensor([[0.0, -1.0], [2.0, -3.0], [1.0, -2.0]]))
    >>> state[0][..., 0].tolist(), state[1].tolist()  # best first
    ([[2, 1], [4, 5]], [[2.0, -1.0], [1.0, -2.0]])
    >>> chosen, log_r = sampled(ops, state, 3)
    >>> tuple(chosen.shape), tuple(log_r.shape)
    ((3, 2, 1), (3, 2))
"""

import math


def empty(ops, capacity, size, width, like):
    """A buffer of ``capacity`` slots for each of ``size`` elements, trajectories of
    ``width`` integers (``like``: a float array giving the rewards' dtype and device)."""
    trajectories = ops.to_index(ops.zeros((capacity, size, width), like))
    return trajectories, ops.zeros((capacity, size), like) - math.inf


def check_size(state, size):
    """Refuse a call whose data set has another size than the buffer's."""
    if state is not None and state[1].shape[1] != size:
        raise ValueError(
            f"GFlowNetEM: replay keeps the best trajectories of each of {state[1].shape[1]} data "
            f"elements, but this call has {size}; replay needs the same data set at every step "
            "(use replay=0 with minibatches)")


def added(ops, state, trajectories, log_rewards):
    """``state`` merged with ``trajectories [num, N, T]`` of rewards ``[num, N]``: each
    element's best, sorted."""
    held, held_r = state
    trajectories = ops.concatenate([held, ops.to_index(trajectories)], 0)
    log_rewards = ops.concatenate([held_r, log_rewards], 0)
    best = ops.top_k_indices(log_rewards, held.shape[0])  # [capacity, N]
    return _gathered(ops, trajectories, log_rewards, best)


def sampled(ops, state, num, key=None):
    """``num`` trajectories per element, drawn uniformly from its filled slots: ``[num, N,
    T]`` and their rewards ``[num, N]``."""
    held, held_r = state
    filled = ops.sum(ops.astype(held_r > -math.inf, held_r), 0)  # [N]
    uniform = ops.uniform((num, held_r.shape[1]), held_r, key)
    pick = ops.to_index(uniform * ops.maximum(filled, 1.0))
    return _gathered(ops, held, held_r, ops.where(pick >= held.shape[0], 0, pick))


def _gathered(ops, trajectories, log_rewards, index):
    full = ops.broadcast_to(index[..., None], tuple(index.shape) + (trajectories.shape[-1],))
    return ops.take_along(trajectories, full, 0), ops.take_along(log_rewards, index, 0)
