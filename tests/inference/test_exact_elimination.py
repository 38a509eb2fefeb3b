"""The project's own variable elimination (``inference/exact/elimination.py``): the plan's
cost (barren sites dropped, greedy order), the ``max_cells`` limits, and answers whose
unscaled tables under- or overflow float64, against sums written out by hand (tolerances:
the models' parameters are float32, 1e-7 relative)."""

import math

import pytest
import torch

import ppl
import ppl.distributions as dist
from inference.exact import NotEnumerableError, enumerate_program


def chain(n, observe_last=False):
    """x_0 -> x_1 -> ... -> x_{n-1}, binary; the last one observed as 1 if asked."""
    def model():
        x = ppl.sample("x_0", dist.Bernoulli(0.3))
        for i in range(1, n):
            obs = torch.tensor(1.0) if observe_last and i == n - 1 else None
            x = ppl.sample(f"x_{i}", dist.Bernoulli(0.2 + 0.6 * x), obs=obs)
    return model


def first(trace):
    return trace["x_0"].value


def test_barren_sites_are_dropped_until_none_is_left():
    # queried for x_0, every later site is barren (its own dim in no other factor), one
    # after another: the plan multiplies out x_0's table alone (2 cells); without the
    # repeated drop it sums x_5 .. x_1 out through tables of 4 cells
    posterior = enumerate_program(chain(6))
    assert posterior.largest_table(first) == 2
    assert posterior.expectation(first) == pytest.approx(0.3, abs=1e-6)


def test_evidence_keeps_the_chain_and_the_greedy_order_stays_small():
    # x_5 observed: nothing is barren, each elimination step joins two neighbours (4 cells);
    # the answer is the forward-backward sum written out
    posterior = enumerate_program(chain(6, observe_last=True))
    assert posterior.largest_table(first) == 4
    transition = torch.tensor([[0.8, 0.2], [0.2, 0.8]], dtype=torch.float64)
    backward = transition[:, 1]  # P(x_5 = 1 | x_4)
    for _ in range(4):
        backward = transition @ backward  # P(x_5 = 1 | x_i)
    prior = torch.tensor([0.7, 0.3], dtype=torch.float64)
    evidence = float(prior @ backward)
    assert posterior.log_evidence == pytest.approx(math.log(evidence), abs=1e-6)
    assert posterior.expectation(first) == pytest.approx(0.3 * float(backward[1]) / evidence,
                                                         abs=1e-6)


def test_max_cells_is_the_largest_table_allowed():
    # the chain with evidence needs tables of 4 cells: 4 is allowed, 3 is not, and the
    # error names the limit; a queried marginal of 4 cells likewise
    def both(trace):
        return trace["x_0"].value + 2 * trace["x_1"].value

    assert enumerate_program(chain(4, True), max_cells=4).largest_table(first) == 4
    with pytest.raises(NotEnumerableError, match="table of 4 cells \\(more than max_cells=3\\)"):
        enumerate_program(chain(4, True), max_cells=3).expectation(first)
    assert enumerate_program(chain(2), max_cells=4).expectation(both) == pytest.approx(
        0.3 + 2 * (0.7 * 0.2 + 0.3 * 0.8), abs=1e-6)
    with pytest.raises(NotEnumerableError, match="queried marginal has 4 cells \\(more than "
                                                 "max_cells=3\\)"):
        enumerate_program(chain(2), max_cells=3).expectation(both)


def test_nothing_to_sum_gives_evidence_one():
    # latent sites with no evidence and no query: every factor is barren, log p() = 0
    assert enumerate_program(chain(3)).log_evidence == 0.0


def _two_latents(observations, scale, value):
    def model():
        a = ppl.sample("a", dist.Bernoulli(0.3))
        b = ppl.sample("b", dist.Bernoulli(0.2 + 0.5 * a))
        with ppl.plate("data", observations):
            ppl.sample("y", dist.Normal(a + b, scale), obs=torch.full((observations,), value))
    return model


def _by_hand(observations, scale, value):
    """(log evidence, P(a = 1 | y)) by logsumexp over the four configurations."""
    log_joint = {}
    for a in (0, 1):
        for b in (0, 1):
            p_b = 0.2 + 0.5 * a
            log_prior = math.log(0.3 if a else 0.7) + math.log(p_b if b else 1 - p_b)
            log_lik = observations * torch.distributions.Normal(
                float(a + b), scale).log_prob(torch.tensor(value, dtype=torch.float64)).item()
            log_joint[a, b] = log_prior + log_lik
    top = max(log_joint.values())
    total = top + math.log(sum(math.exp(v - top) for v in log_joint.values()))
    p_a = sum(math.exp(v - total) for (a, _), v in log_joint.items() if a)
    return total, p_a


@pytest.mark.parametrize("observations,scale,value", [
    (1, 0.05, 5.0),    # log p(y | a, b) about -1800
    (150, 1e-3, 2.0),  # 150 densities of about 400 at a = b = 1: log p(y | 1, 1) about 900
], ids=["tiny-density", "huge-density"])
def test_density_factors_far_outside_float64_are_scaled_by_their_maximum(observations, scale, value):
    exact, p_a = _by_hand(observations, scale, value)
    assert not -745 < exact < 709  # exp(exact) leaves float64: the case this test is for
    posterior = enumerate_program(_two_latents(observations, scale, value))
    assert posterior.log_evidence == pytest.approx(exact, rel=1e-7)
    assert float(posterior.marginal("a")[1]) == pytest.approx(p_a, abs=1e-6)


def test_a_product_of_probability_tables_that_underflows_is_rescaled_at_every_step():
    # a -> b, and 120 observed coins of probability 0.001 or 0.002 given b multiply to about
    # 1e-360: the unscaled contraction gives 0, the rescaled one (two elimination steps) the
    # log evidence summed by hand
    def model():
        a = ppl.sample("a", dist.Bernoulli(0.4))
        b = ppl.sample("b", dist.Bernoulli(0.3 + 0.4 * a))
        for i in range(120):
            ppl.sample(f"y_{i}", dist.Bernoulli(1e-3 * (1 + b)), obs=torch.tensor(1.0))

    log_p_y = [float(dist.Bernoulli(1e-3 * (1 + b)).log_prob(torch.tensor(1.0))) for b in (0, 1)]
    log_joint = {}
    for a in (0, 1):
        p_b = float(torch.tensor(0.3 + 0.4 * a))
        for b in (0, 1):
            log_joint[a, b] = (math.log(0.4 if a else 0.6) + math.log(p_b if b else 1 - p_b)
                               + 120 * log_p_y[b])
    top = max(log_joint.values())
    exact = top + math.log(sum(math.exp(v - top) for v in log_joint.values()))
    assert exact < -745
    posterior = enumerate_program(model)
    assert posterior.log_evidence == pytest.approx(exact, rel=1e-7)
    p_a = sum(math.exp(v - exact) for (a, _), v in log_joint.items() if a)
    assert float(posterior.marginal("a")[1]) == pytest.approx(p_a, abs=1e-6)


def test_an_unnormalised_latent_site_that_nothing_reads_is_summed_not_dropped():
    """z ~ Bernoulli(0.3) under scale 2, read by nothing: its factor p(z)^2 sums to
    0.3^2 + 0.7^2 = 0.58, not to one, so it is neither barren nor droppable; the evidence
    of y = 1 (y ~ Bernoulli(0.6)) is 0.58 * 0.6."""
    def model():
        with ppl.scale(scale=2.0):
            ppl.sample("z", dist.Bernoulli(0.3))
        ppl.sample("y", dist.Bernoulli(0.6), obs=torch.tensor(1.0))

    posterior = enumerate_program(model)
    assert float(posterior.log_evidence) == pytest.approx(math.log(0.58 * 0.6), rel=1e-6)


def test_a_program_writing_into_its_enumerated_value_does_not_change_later_queries():
    """Exact queries reuse each support tensor (arange(k) on its dim) across queries; a
    program that writes into its site's value in place must not leave a later query, of
    another program, enumerating the changed values."""
    from inference import interventional

    def writes_in_place():
        a = ppl.sample("a", dist.Categorical(torch.ones(3) / 3))
        a.clamp_(max=1)  # the support it was given, changed for every later reader

    def clean():
        a = ppl.sample("a", dist.Categorical(torch.tensor([0.2, 0.3, 0.5])))
        return a

    interventional(writes_in_place, {}, "a")
    assert interventional(clean, {}, "a").mean == pytest.approx(0.3 + 2 * 0.5, abs=1e-6)
