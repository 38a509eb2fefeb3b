"""Exact queries with discrete latent sites inside plates and along ppl.markov chains,
against hand enumeration and the forward-backward algorithm."""

import itertools
import math

import pytest
import torch

import ppl
import ppl.distributions as dist
from inference import interventional
from inference.exact import enumerate_program
from inference.exact.plated import PlatedPosterior

Y = torch.tensor([1.0, 0.0, 1.0, 1.0])


def units(y):
    u = ppl.sample("u", dist.Bernoulli(0.3))
    with ppl.plate("units", len(y)):
        x = ppl.sample("x", dist.Bernoulli(0.2 + 0.6 * u))
        ppl.sample("y", dist.Bernoulli(0.1 + 0.8 * x), obs=y)


def brute_force(y):
    """P(u = 1 | y), P(x_i = 1 | y) and p(y) over all 2^(1 + n) configurations."""
    total, u_mass, x_mass = 0.0, 0.0, [0.0] * len(y)
    for u, *xs in itertools.product((0, 1), repeat=1 + len(y)):
        p = 0.3 if u else 0.7
        for x, obs in zip(xs, y.tolist()):
            px = 0.2 + 0.6 * u
            p *= (px if x else 1 - px) * ((0.1 + 0.8 * x) if obs else (0.9 - 0.8 * x))
        total += p
        u_mass += p * u
        for i, x in enumerate(xs):
            x_mass[i] += p * x
    return u_mass / total, [m / total for m in x_mass], total


def test_latents_inside_a_plate_match_hand_enumeration():
    posterior = enumerate_program(units, Y)
    assert isinstance(posterior, PlatedPosterior)
    p_u, p_x, evidence = brute_force(Y)
    assert posterior.log_evidence == pytest.approx(math.log(evidence), rel=1e-6)
    assert posterior.expectation(lambda tr: tr["u"].value) == pytest.approx(p_u, rel=1e-6)
    assert torch.allclose(posterior.expectation(lambda tr: tr["x"].value),
                          torch.tensor(p_x, dtype=torch.float64), rtol=1e-6)
    assert torch.allclose(posterior.marginal("x")[:, 1], torch.tensor(p_x, dtype=torch.float64))
    # the causal query goes the same way
    answer = interventional(units, {}, "u", Y, method="exact")
    assert answer.method == "exact" and answer.mean == pytest.approx(p_u, rel=1e-6)
    assert answer.distribution[1.0] == pytest.approx(p_u, rel=1e-6)


STATES = 3
TRANSITION = torch.tensor([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]])
MEANS = torch.tensor([-2.0, 0.0, 2.0])


def chain(ys):
    z = 0
    for t in ppl.markov(range(len(ys))):
        z = ppl.sample(f"z_{t}", dist.Categorical(TRANSITION[z]))
        ppl.sample(f"y_{t}", dist.Normal(MEANS[z], 1.0), obs=ys[t])


def forward_backward(ys):
    emit = torch.distributions.Normal(MEANS, 1.0).log_prob(ys[:, None]).double()
    log_t = TRANSITION.log().double()
    alpha = [log_t[0] + emit[0]]
    for t in range(1, len(ys)):
        alpha.append(torch.logsumexp(alpha[-1][:, None] + log_t, 0) + emit[t])
    beta = [torch.zeros(STATES, dtype=torch.float64)]
    for t in range(len(ys) - 1, 0, -1):
        beta.insert(0, torch.logsumexp(log_t + (emit[t] + beta[0])[None, :], 1))
    log_z = torch.logsumexp(alpha[-1], 0)
    return float(log_z), [torch.softmax(a + b, 0) for a, b in zip(alpha, beta)]


@pytest.mark.parametrize("steps", [40, 120])  # 120 latent sites exceed torch's 64 dims
def test_a_markov_chain_matches_the_forward_backward_algorithm(steps):
    g = torch.Generator().manual_seed(0)
    ys = 2.0 * torch.randn(steps, generator=g)
    posterior = enumerate_program(chain, ys)
    log_z, smoothed = forward_backward(ys)
    assert posterior.log_evidence == pytest.approx(log_z, rel=1e-5)
    for t in (0, 10, steps - 1):
        assert torch.allclose(posterior.marginal(f"z_{t}"), smoothed[t], atol=1e-5), t  # float32 sums
    if isinstance(posterior, PlatedPosterior):
        # a query on a site whose dimension the chain recycles is refused, naming the remedy
        with pytest.raises(ValueError, match="marginal\\(name\\)"):
            posterior.expectation(lambda tr: tr["z_10"].value)
