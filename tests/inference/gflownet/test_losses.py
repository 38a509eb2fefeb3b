"""The balance losses against their definitions written out as loops over each
trajectory's own steps and sub-trajectories (Malkin et al. 2022 for TB, Bengio et al. 2021
for DB, Madan et al. 2023 for SubTB(lambda)); padding after a trajectory's length holds
garbage, infinities included, which must not reach the loss."""

import math

import pytest
import torch

from inference.gflownet.losses import detailed_balance, subtrajectory_balance, trajectory_balance

T = 5
LENGTHS = torch.tensor([5, 3, 1, 4])


def _batch(seed, garbage=True):
    g = torch.Generator().manual_seed(seed)
    n = len(LENGTHS)
    flows = torch.randn(n, T, generator=g, dtype=torch.float64)
    log_pf = -torch.rand(n, T, generator=g, dtype=torch.float64) * 2
    log_pb = -torch.rand(n, T, generator=g, dtype=torch.float64)
    log_r = torch.randn(n, generator=g, dtype=torch.float64) - 3
    if garbage:  # what padding steps and states may hold
        for k, length in enumerate(LENGTHS.tolist()):
            flows[k, length:] = torch.tensor([math.inf, -math.inf, 7.0, 1e30, -3.0])[: T - length]
            log_pf[k, length:] = 123.0
            log_pb[k, length:] = -math.inf
    return flows, log_pf, log_pb, log_r


def _states(flows, log_r, k, length):
    """log F(s_0) .. log F(s_{T_k}), with the reward as the terminal state's flow."""
    return flows[k, :length].tolist() + [float(log_r[k])]


def subtb_by_hand(flows, log_pf, log_pb, log_r, lam, lengths):
    out = []
    for k, length in enumerate(lengths):
        f = _states(flows, log_r, k, length)
        net = [float(log_pf[k, t]) - (float(log_pb[k, t]) if log_pb is not None else 0.0)
               for t in range(length)]
        total, weight = 0.0, 0.0
        for i in range(length + 1):
            for j in range(i + 1, length + 1):
                residual = f[i] + sum(net[i:j]) - f[j]
                total += lam ** (j - i) * residual ** 2
                weight += lam ** (j - i)
        out.append(total / weight)
    return torch.tensor(out, dtype=torch.float64)


def db_by_hand(flows, log_pf, log_pb, log_r, lengths):
    out = []
    for k, length in enumerate(lengths):
        f = _states(flows, log_r, k, length)
        terms = [(f[t] + float(log_pf[k, t]) - (float(log_pb[k, t]) if log_pb is not None else 0.0)
                  - f[t + 1]) ** 2 for t in range(length)]
        out.append(sum(terms) / length)
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("lam", [0.9, 0.3, 1.0])
@pytest.mark.parametrize("with_pb", [True, False], ids=["with_pb", "fixed_order"])
def test_subtrajectory_balance_is_its_definition(lam, with_pb):
    flows, log_pf, log_pb, log_r = _batch(1)
    log_pb = log_pb if with_pb else None
    got = subtrajectory_balance(flows, log_pf, log_r, lam, log_pb, LENGTHS)
    expected = subtb_by_hand(flows, log_pf, log_pb, log_r, lam, LENGTHS.tolist())
    assert torch.allclose(got, expected, rtol=1e-12, atol=1e-12)
    # every trajectory of full length: ``lengths`` may be left out
    flows, log_pf, full_pb, log_r = _batch(2, garbage=False)
    full_pb = full_pb if with_pb else None
    expected = subtb_by_hand(flows, log_pf, full_pb, log_r, lam, [T] * len(LENGTHS))
    for lengths in (None, torch.full_like(LENGTHS, T)):
        got = subtrajectory_balance(flows, log_pf, log_r, lam, full_pb, lengths)
        assert torch.allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_subtrajectory_balance_weighs_by_lambda_0_9_by_default():
    # GFlowNetEM passes its subtb_lambda (0.9 by default) explicitly; a direct caller gets
    # the same documented default
    flows, log_pf, log_pb, log_r = _batch(3)
    expected = subtb_by_hand(flows, log_pf, log_pb, log_r, 0.9, LENGTHS.tolist())
    got = subtrajectory_balance(flows, log_pf, log_r, log_pb_steps=log_pb, lengths=LENGTHS)
    assert torch.allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("with_pb", [True, False], ids=["with_pb", "fixed_order"])
def test_detailed_balance_is_its_definition(with_pb):
    flows, log_pf, log_pb, log_r = _batch(3)
    log_pb = log_pb if with_pb else None
    got = detailed_balance(flows, log_pf, log_r, log_pb, LENGTHS)
    assert torch.allclose(got, db_by_hand(flows, log_pf, log_pb, log_r, LENGTHS.tolist()),
                          rtol=1e-12, atol=1e-12)
    flows, log_pf, full_pb, log_r = _batch(4, garbage=False)
    full_pb = full_pb if with_pb else None
    expected = db_by_hand(flows, log_pf, full_pb, log_r, [T] * len(LENGTHS))
    for lengths in (None, torch.full_like(LENGTHS, T)):
        assert torch.allclose(detailed_balance(flows, log_pf, log_r, full_pb, lengths), expected,
                              rtol=1e-12, atol=1e-12)


def test_trajectory_balance_is_its_definition():
    flows, log_pf, log_pb, log_r = _batch(5, garbage=False)
    log_z = torch.tensor([0.3, -1.2, 2.0, 0.0], dtype=torch.float64)
    pf, pb = log_pf.sum(-1), log_pb.sum(-1)
    for k in range(len(log_z)):
        with_pb = float(log_z[k]) + float(pf[k]) - float(log_r[k]) - float(pb[k])
        without = float(log_z[k]) + float(pf[k]) - float(log_r[k])
        assert float(trajectory_balance(log_z, pf, log_r, pb)[k]) == pytest.approx(with_pb ** 2, rel=1e-12)
        assert float(trajectory_balance(log_z, pf, log_r)[k]) == pytest.approx(without ** 2, rel=1e-12)


def test_a_one_step_trajectory_makes_the_three_losses_agree():
    # with one step there is one sub-trajectory and one transition: SubTB = DB = TB with
    # log Z = log F(s_0)
    flows, log_pf, log_pb, log_r = _batch(6)
    one = torch.ones(len(LENGTHS), dtype=torch.long)
    tb = trajectory_balance(flows[:, 0], log_pf[:, 0], log_r, log_pb[:, 0])
    assert torch.allclose(detailed_balance(flows, log_pf, log_r, log_pb, one), tb, rtol=1e-12)
    assert torch.allclose(subtrajectory_balance(flows, log_pf, log_r, 0.5, log_pb, one), tb, rtol=1e-12)


@pytest.mark.parametrize("loss", ["subtb", "db"])
def test_padding_gets_no_gradient_and_leaves_the_others_finite(loss):
    # an impossible padding action (log P_F = -inf) and infinite padding flows: the loss and
    # its gradient are finite, and nothing flows back into the padding
    flows, log_pf, log_pb, log_r = _batch(7)
    log_pf[1, 3:] = -math.inf
    flows, log_pf = flows.requires_grad_(), log_pf.requires_grad_()
    if loss == "subtb":
        value = subtrajectory_balance(flows, log_pf, log_r, 0.9, log_pb, LENGTHS)
    else:
        value = detailed_balance(flows, log_pf, log_r, log_pb, LENGTHS)
    value.sum().backward()
    assert torch.isfinite(value).all()
    padding = torch.arange(T) >= LENGTHS.unsqueeze(-1)
    for grad in (flows.grad, log_pf.grad):
        assert torch.isfinite(grad).all() and bool((grad[padding] == 0).all())
        assert bool((grad[~padding] != 0).any())
