"""GFlowNet-EM on the paper's hierarchical mixture against exact EM and mean-field EM (fast mode:
1,000 points instead of 4,000; the full comparison is ``benchmarks/mixture_em.py``)."""

import torch

from benchmarks.mixture_em import TOLERANCE, run_gflownet_em
from models.hierarchical_mixture import (
    TRUE_MEANS,
    hierarchical_mixture_data,
    hierarchical_mixture_em,
    initial_means,
    log_joint,
    log_likelihood,
    mean_field_em,
)


def test_exact_em_never_decreases_the_likelihood_and_beats_the_true_means():
    x = hierarchical_mixture_data(400, seed=2)
    _, history = hierarchical_mixture_em(x, TRUE_MEANS + 0.3, iterations=30)
    assert all(b >= a - 1e-6 for a, b in zip(history, history[1:]))
    assert history[-1] >= log_likelihood(x, TRUE_MEANS) - 1e-6  # the MLE is at least as likely


def test_gflownet_em_reaches_exact_em_while_mean_field_em_stays_below():
    x = hierarchical_mixture_data(1000, seed=0)
    init = initial_means(x, seed=1)
    exact = hierarchical_mixture_em(x, init, iterations=100)[1][-1]
    mean_field = mean_field_em(x, init, iterations=100)[1][-1]
    assert exact > log_likelihood(x, TRUE_MEANS) - 0.01  # exact EM finds the global optimum here
    assert mean_field < exact - 0.5  # the factorised posterior leaves it in a worse optimum
    value, reached, updates, _, em = run_gflownet_em(x, init, exact, budget=float("inf"), max_updates=1500)
    assert reached is not None, (value, exact, updates)
    assert value >= exact - TOLERANCE
    # the same optimum, not merely as likely a point: a likelihood within TOLERANCE nats of
    # exact EM's puts the means within sqrt(2 TOLERANCE / lambda_min) of its means, where
    # lambda_min is the smallest curvature of the per-point log-likelihood there (about
    # 3.4 here, so 0.077; another optimum, a relabelling of the components, lies > 1 away)
    optimum = hierarchical_mixture_em(x, init, iterations=100)[0]
    curvature = torch.autograd.functional.hessian(
        lambda m: torch.logsumexp(log_joint(x, m).reshape(x.shape[0], -1), -1).mean(), optimum)
    lambda_min = float(torch.linalg.eigvalsh(-curvature.reshape(optimum.numel(), -1)).min())
    assert lambda_min > 0  # a maximum
    distance = float((em.params["super_means"] - optimum).abs().max())
    assert distance < (2 * TOLERANCE / lambda_min) ** 0.5, (distance, lambda_min)
