"""The GFlowNet balance losses, per trajectory: trajectory balance (TB), detailed balance
(DB) and lambda-weighted sub-trajectory balance (SubTB), on either backend's arrays.

Each takes the forward log-probabilities of the steps taken and, optionally, the backward
log-probabilities ``log P_B(s_t | s_{t+1})`` of the same transitions (omitted: a fixed
construction order, P_B = 1) and the trajectories' ``lengths`` (omitted: every trajectory
has all ``T`` steps; given: steps at or after a trajectory's length are padding and are
ignored, whatever they hold). State flows ``log_flows [n, T]`` are those of s_0 .. s_{T-1};
the terminal state's flow is the reward, log F(s_T) = log R.

    >>> import torch
    >>> log_pf = torch.tensor([[-0.5, -1.0, 0.0]])   # a 2-step trajectory, padded to 3
    >>> log_pb = torch.tensor([[0.0, -0.7, 0.0]])
    >>> log_r, lengths = torch.tensor([-3.0]), torch.tensor([2])
    >>> log_z = log_r - (log_pf - log_pb)[:, :2].sum(-1)  # the balancing log Z
    >>> round(float(trajectory_balance(log_z, log_pf.sum(-1), log_r, log_pb.sum(-1))), 9)
    0.0
    >>> flows = torch.stack([log_z, log_z + log_pf[:, 0] - log_pb[:, 0], torch.zeros(1)], -1)
    >>> round(float(detailed_balance(flows, log_pf, log_r, log_pb, lengths)), 9)
    0.0
    >>> round(float(subtrajectory_balance(flows, log_pf, log_r, 0.9, log_pb, lengths)), 9)
    0.0
"""

from ppl.backend import ops_of


def trajectory_balance(log_z, log_pf, log_reward, log_pb=None):
    """Per-trajectory TB residual squared: (log Z + sum log P_F - log R - sum log P_B)^2
    (``log_pf``, ``log_pb``: the sums along each trajectory, ``[n]``)."""
    if log_pb is None:
        return (log_z + log_pf - log_reward) ** 2
    return (log_z + log_pf - log_reward - log_pb) ** 2


def _positions(ops, n, like):
    """``0 .. n - 1`` with ``like``'s dtype and device."""
    return ops.astype(ops.arange(n), like)


def _terminal_flows(ops, log_flows, log_reward, lengths):
    """``[n, T + 1]``: the state flows with log R at each trajectory's own end."""
    flows = ops.concatenate([log_flows, log_reward[:, None]], -1)
    if lengths is None:
        return flows
    at_end = _positions(ops, flows.shape[-1], lengths)[None, :] == lengths[:, None]
    return ops.where(at_end, log_reward[:, None], flows)


def _net_steps(log_pf_steps, log_pb_steps):
    """log P_F - log P_B per step (padding steps too: the losses mask what reaches them)."""
    return log_pf_steps if log_pb_steps is None else log_pf_steps - log_pb_steps


def subtrajectory_balance(log_flows, log_pf_steps, log_reward, lam=0.9, log_pb_steps=None,
                          lengths=None):
    """Per-trajectory SubTB(lambda): sum over sub-trajectories i < j <= T of lambda^(j - i)
    (log F(s_i) + sum_{i <= t < j} (log P_F - log P_B) - log F(s_j))^2, normalised by the
    weights of the trajectory's own sub-trajectories; log F(s_T) = log R."""
    ops = ops_of(log_flows)
    flows = _terminal_flows(ops, log_flows, log_reward, lengths)  # [n, T + 1]
    net = _net_steps(log_pf_steps, log_pb_steps)
    cumulative = ops.concatenate([ops.zeros(net[:, :1].shape, net), ops.cumsum(net, -1)], -1)
    residual = (flows[:, :, None] - cumulative[:, :, None]
                + cumulative[:, None, :] - flows[:, None, :])  # [n, i, j]
    length = _positions(ops, flows.shape[-1], flows)
    span = length[None, :] - length[:, None]  # j - i
    weights = ops.where(span > 0, lam ** span, ops.zeros((), flows))
    if lengths is None:
        return ops.sum(weights * residual ** 2, (-1, -2)) / ops.sum(weights)
    inside = _positions(ops, flows.shape[-1], lengths)[None, :] <= lengths[:, None]  # j <= T_n
    weights = weights * ops.astype(inside[:, None, :], flows)  # [n, i, j]
    # padding states hold arbitrary flows; zero weight must not meet an infinite residual
    residual = ops.where(weights > 0, residual, ops.zeros((), flows))
    return ops.sum(weights * residual ** 2, (-1, -2)) / ops.sum(weights, (-1, -2))


def detailed_balance(log_flows, log_pf_steps, log_reward, log_pb_steps=None, lengths=None):
    """Per-trajectory DB: mean over steps of (log F(s_t) + log P_F - log F(s_{t+1}) - log P_B)^2."""
    ops = ops_of(log_flows)
    flows = _terminal_flows(ops, log_flows, log_reward, lengths)
    net = _net_steps(log_pf_steps, log_pb_steps)
    residual = flows[:, :-1] + net - flows[:, 1:]
    if lengths is None:
        return ops.mean(residual ** 2, -1)
    valid = _positions(ops, net.shape[-1], lengths)[None, :] < lengths[:, None]
    residual = ops.where(valid, residual, ops.zeros((), residual))
    return ops.sum(residual ** 2, -1) / ops.astype(lengths, residual)
