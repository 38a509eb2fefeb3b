"""Counterfactual queries on both backends: one implementation of the worlds (a SiteHandler
on the backend's array ops), the same answers on torch and JAX.

Oracles: closed forms of small SCMs. For a monotone binary SCM without confounding
(x ~ B(0.5), y = 1[u > 1 - p_x], p = (0.1, 0.8)), with p_1 = P(y | do(x=1)), p_0 = P(y | do(x=0)):
PN = (p_1 - p_0) / p_1, PS = (p_1 - p_0) / (1 - p_0), PNS = p_1 - p_0 (Tian & Pearl, 2000).
Exact answers are float32 sums of a few terms, compared at 1e-6; importance answers are
compared at 5 standard errors of the estimate (Estimate.stderr), with fixed seeds where
the backend takes one.
"""

import pytest

import inference
import ppl
import ppl.distributions as dist
from models import linear_gaussian_scm

wv = ppl.world_value
P1, P0 = 0.8, 0.1


def monotone():
    x = ppl.sample("x", dist.Bernoulli(0.5))
    return ppl.sample("y", dist.Bernoulli(P0 + (P1 - P0) * x))


def binary_mediation():
    """x -> m -> y and x -> y: P(m | x) = 0.2 + 0.6 x, P(y | x, m) = 0.1 + 0.3 x + 0.4 m."""
    x = ppl.sample("x", dist.Bernoulli(0.5))
    m = ppl.sample("m", dist.Bernoulli(0.2 + 0.6 * x))
    return ppl.sample("y", dist.Bernoulli(0.1 + 0.3 * x + 0.4 * m))


def linear_mediation():
    """x -> m -> y and x -> y, unit coefficients, standard normal noise (sample sites)."""
    x = ppl.sample("x", dist.Normal(0.0, 1.0))
    m = ppl.sample("m", dist.Normal(x, 1.0))
    return ppl.sample("y", dist.Normal(x + m, 1.0))


def test_probabilities_of_causation_are_their_closed_forms(on_backend):
    pn = inference.probability_of_necessity(monotone, "x", "y")
    ps = inference.probability_of_sufficiency(monotone, "x", "y")
    pns = inference.probability_of_necessity_and_sufficiency(monotone, "x", "y")
    assert pn.method == ps.method == pns.method == "exact"
    assert pn.mean == pytest.approx((P1 - P0) / P1, abs=1e-6)
    assert ps.mean == pytest.approx((P1 - P0) / (1 - P0), abs=1e-6)
    assert pns.mean == pytest.approx(P1 - P0, abs=1e-6)
    # sampled: the noise drawn given the evidence (u uniform on (1 - p_1, 1)), 20 000 draws
    sampled = inference.probability_of_necessity(monotone, "x", "y", method="importance",
                                                 num_particles=20_000)
    assert 0 < sampled.stderr < 0.01
    assert abs(sampled.mean - pn.mean) < 5 * sampled.stderr


def mechanism_mediation():
    """The linear mediation model with explicit noise and deterministic mechanisms."""
    u_x, u_m, u_y = (ppl.sample(f"u_{v}", dist.Normal(0.0, 1.0)) for v in "xmy")
    x = ppl.deterministic("X", u_x, event_dim=0)
    m = ppl.deterministic("M", 2.0 * x + u_m, event_dim=0)
    return ppl.deterministic("Y", 3.0 * x + m + u_y, event_dim=0)


def test_nested_worlds_give_the_natural_effects(on_backend):
    """Binary mediation, exact: NDE = sum_m P(m | x=0) [P(y | 1, m) - P(y | 0, m)] = 0.3 and
    NIE = E[Y(1)] - E[Y(1, M(0))] = (0.2 * 0.4 + 0.8 * 0.8) - (0.8 * 0.4 + 0.2 * 0.8) = 0.24
    (ppl.world(1) in world 2's interventions). Linear mediation: each effect is its path's
    coefficient in every draw (the worlds share the noise), so the estimate has no spread:
    with sample sites 1 and 1; with mechanisms (deterministic sites, y = 3x + m + u_y,
    m = 2x + u_m) NDE = 3 and NIE = 2."""
    nde = inference.natural_direct_effect(binary_mediation, "x", "m", "y")
    nie = inference.natural_indirect_effect(binary_mediation, "x", "m", "y")
    assert nde.method == nie.method == "exact"
    assert nde.mean == pytest.approx(0.3, abs=1e-6) and nie.mean == pytest.approx(0.24, abs=1e-6)
    for effect in (inference.natural_direct_effect, inference.natural_indirect_effect):
        answer = effect(linear_mediation, "x", "m", "y", num_particles=200)
        assert answer.method == "importance" and answer.mean == pytest.approx(1.0, abs=1e-5)
    def fresh():  # a new model: its plates are found by a dry run (not remembered from torch's)
        return mechanism_mediation()

    for effect, path in ((inference.natural_direct_effect, 3.0), (inference.natural_indirect_effect, 2.0)):
        answer = effect(fresh, "X", "M", "Y", num_particles=200)
        assert answer.mean == pytest.approx(path, abs=1e-5)
    # the worlds themselves: y_2 - y_1 = 1 (x from 0 to 1, m held at world 1's value)
    tr = ppl.trace(ppl.counterfactual_worlds(linear_mediation, {"x": 0.5, "m": 1.0, "y": 2.0},
                                      [{"x": 0.0}, {"x": 1.0, "m": ppl.world(1)}], worlds="multi"))()
    # u_m = 0.5, u_y = 0.5: world 1 has m = 0.5, y = 1; world 2 has m = 0.5, y = 2
    assert [float(wv(tr, "m", w)) for w in range(3)] == [1.0, 0.5, 0.5]
    assert [float(wv(tr, "y", w)) for w in range(3)] == [2.0, 1.0, 2.0]


def test_multi_worlds_of_a_linear_gaussian_scm(on_backend):
    """Evidence x = 1, y = 3, z = 5 fixes u = (1, 1, 1); three intervened worlds at once."""
    sets = [{"x": 0.0}, {"y": 0.0}, {"x": 2.0, "z": lambda z: z + 1.0}]
    tr = ppl.trace(ppl.counterfactual_worlds(linear_gaussian_scm, {"x": 1.0, "y": 3.0, "z": 5.0}, sets,
                                      worlds="multi"))()
    assert [float(wv(tr, "y", w)) for w in range(4)] == [3.0, 1.0, 0.0, 5.0]
    assert [float(wv(tr, "z", w)) for w in range(4)] == [5.0, 2.0, 2.0, 9.0]
    # another world's value in the first world's interventions (the dry run that finds the
    # plates runs the first world's values, and another world's is not one): y_1 = y_0 = 3
    def fresh():
        return linear_gaussian_scm()

    interventions = {"x": 0.0, "y": ppl.world(0)}
    tr = ppl.trace(ppl.counterfactual_worlds(fresh, {"x": 1.0, "y": 3.0, "z": 5.0}, interventions))()
    assert [float(wv(tr, "z", w)) for w in range(2)] == [5.0, 4.0]
    # every noise fixed by the evidence: an exact query without a latent site
    answer = inference.counterfactual(linear_gaussian_scm, {"x": 1.0, "y": 3.0, "z": 5.0}, {"x": 0.0}, "y")
    assert answer.method == "exact" and answer.mean == 1.0


def test_unknown_site_names_are_errors_naming_the_closest_site(on_backend):
    with pytest.raises(ValueError, match="counterfactual: the program has no sample site 'X'; "
                                         "did you mean 'x'\\?"):
        ppl.trace(ppl.counterfactual_worlds(monotone, {"X": 1.0}, {"x": 0.0}))()
    with pytest.raises(ValueError, match="no sample site 'yy'; did you mean 'y'\\?"):
        inference.counterfactual(monotone, {}, [{"x": 0.0}, {"yy": 1.0}], "y", worlds="multi")


def test_jax_answers_equal_torch_answers():
    """The same queries on both backends (exact: funsor's sum-product on JAX, the project's
    variable elimination on torch), equal to 1e-5."""
    pytest.importorskip("numpyro")

    def answers():
        return [inference.probability_of_necessity(binary_mediation, "x", "y").mean,
                inference.probability_of_sufficiency(binary_mediation, "x", "y").mean,
                inference.probability_of_necessity_and_sufficiency(binary_mediation, "x", "y").mean,
                inference.natural_direct_effect(binary_mediation, "x", "m", "y").mean,
                inference.counterfactual(binary_mediation, {"x": 1.0, "y": 0.0}, {"m": 0.0}, "y").mean,
                inference.counterfactual(binary_mediation, {"y": 1.0}, {"x": 0.0},
                                         lambda t: 2 * wv(t, "m", 1) + wv(t, "y", 1)).mean]

    with ppl.backend("torch"):
        torch_answers = answers()
    with ppl.backend("jax"):
        jax_answers = answers()
    assert jax_answers == pytest.approx(torch_answers, abs=1e-5)
    assert len(set(round(a, 6) for a in torch_answers)) == len(torch_answers)  # six different queries
