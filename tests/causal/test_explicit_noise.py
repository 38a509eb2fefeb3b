"""Causal models written ChiRho's way: exogenous noise as sample sites, mechanisms as
deterministic sites. Counterfactual worlds, graphs and identification accept them, and
nested counterfactuals give the natural direct and indirect effects."""

import pytest
import torch

import inference
import ppl
import ppl.distributions as dist
from ppl.errors import SiteError


def mediation():
    """X -> M -> Y and X -> Y, unit coefficients, Gaussian noise (ChiRho's mediation test)."""
    u_x, u_m, u_y = (ppl.sample(f"u_{v}", dist.Normal(0.0, 1.0)) for v in "xmy")
    x = ppl.deterministic("X", u_x, event_dim=0)
    m = ppl.deterministic("M", x + u_m, event_dim=0)
    return ppl.deterministic("Y", x + m + u_y, event_dim=0)


def test_linear_mediation_effects():
    nde = inference.natural_direct_effect(mediation, "X", "M", "Y", num_particles=500)
    nie = inference.natural_indirect_effect(mediation, "X", "M", "Y", num_particles=500)
    total = inference.average_treatment_effect(mediation, "X", "Y", method="importance",
                                               num_particles=500)
    # every noise draw gives exactly these differences (the model is linear)
    assert nde.mean == pytest.approx(1.0, abs=1e-5) and nie.mean == pytest.approx(1.0, abs=1e-5)
    assert abs(total.mean - 2.0) < 4 * total.stderr  # two independent runs: Monte Carlo error
    # the obvious attempt without a nested world reads the total effect, not the direct one
    naive = inference.counterfactual(mediation, {}, [{"X": 0.0}, {"X": 1.0}],
                                     lambda t: ppl.world_value(t, "Y", 2) - ppl.world_value(t, "Y", 1),
                                     worlds="multi", method="importance", num_particles=100)
    assert naive.mean == pytest.approx(2.0, abs=1e-5)


def test_graph_and_identification_see_the_mechanisms():
    g = ppl.graph(mediation)
    assert set(g.edges) == {("u_x", "X"), ("u_m", "M"), ("u_y", "Y"), ("X", "M"), ("X", "Y"),
                            ("M", "Y")}
    found = ppl.identify(g, "X", "Y", latent=["u_x", "u_m", "u_y"])
    assert found.method == "backdoor" and frozenset() in found.adjustment_sets


def discrete_mediation():
    """Binary X -> M -> Y with X -> Y, noise written as explicit Bernoulli sites."""
    u_x = ppl.sample("u_x", dist.Bernoulli(0.5))
    u_m = ppl.sample("u_m", dist.Categorical(torch.tensor([0.3, 0.5, 0.2])))
    u_y = ppl.sample("u_y", dist.Categorical(torch.tensor([0.4, 0.4, 0.2])))
    x = ppl.deterministic("X", u_x, event_dim=0)
    m = ppl.deterministic("M", (u_m + x >= 2).float(), event_dim=0)  # P(M=1|x) = 0.2, 0.7
    return ppl.deterministic("Y", ((u_y + x + m) >= 2).float(), event_dim=0)


def test_discrete_mediation_matches_the_mediation_formula():
    # P(M=1 | x): 0.2 at x=0, 0.7 at x=1; P(Y=1 | x, m) = P(u_y >= 2 - x - m)
    p_m = {0: 0.2, 1: 0.7}
    p_y = {(x, m): float(torch.tensor([0.4, 0.4, 0.2])[max(0, 2 - x - m):].sum()) if 2 - x - m > 0
           else 1.0 for x in (0, 1) for m in (0, 1)}

    def mean_y(x, m_dist):
        return sum(p_y[(x, m)] * (m_dist if m else 1 - m_dist) for m in (0, 1))

    nde_formula = mean_y(1, p_m[0]) - mean_y(0, p_m[0])
    nie_formula = mean_y(1, p_m[1]) - mean_y(1, p_m[0])
    nde = inference.natural_direct_effect(discrete_mediation, "X", "M", "Y", method="exact")
    nie = inference.natural_indirect_effect(discrete_mediation, "X", "M", "Y", method="exact")
    assert nde.method == "exact" and nde.mean == pytest.approx(nde_formula, abs=1e-6)
    assert nie.mean == pytest.approx(nie_formula, abs=1e-6)


def test_evidence_and_interventions_on_mechanisms():
    # evidence on a deterministic site keeps the worlds where it holds (exact: discrete noise)
    answer = inference.counterfactual(discrete_mediation, {"X": 1.0, "Y": 0.0}, {"X": 0.0}, "Y",
                                      method="exact")
    # Y = 0 with X = 1 means u_y + m < 1: u_y = 0 and m = 0 (so u_m = 0); with X = 0 then
    # m = 1[u_m >= 2] = 0 and Y = 1[u_y + m >= 2] = 0
    assert answer.mean == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(SiteError, match="world 1 reads world\\(5\\)"):
        ppl.trace(ppl.counterfactual_worlds(mediation, {}, {"X": 1.0, "M": ppl.world(5)}))()
    with pytest.raises(SiteError, match="site 'M' is deterministic"):
        ppl.trace(ppl.counterfactual_worlds(mediation, {}, {"M": dist.Normal(0.0, 1.0)}))()


def test_categorical_counterfactual_is_consistent_with_its_evidence():
    # intervening with the factual value must reproduce the evidence (consistency); the
    # factual world's distribution of a Categorical is its world-0 slice along the batch,
    # not along the categories
    def model():
        x = ppl.sample("x", dist.Bernoulli(0.5))
        table = torch.tensor([[0.6, 0.3, 0.1], [0.1, 0.2, 0.7]])
        return ppl.sample("c", dist.Categorical(table[x.long()]))

    same = inference.counterfactual(model, {"x": 1.0, "c": 2}, {"x": 1.0}, "c", method="importance",
                                    num_particles=2000)
    assert same.mean == pytest.approx(2.0, abs=1e-6)
    # the flipped counterfactual is checked against rejection sampling of explicit Gumbel
    # noise in test_noise_oracles.py
