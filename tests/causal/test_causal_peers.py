"""Causal queries checked against peer libraries used as oracles: ChiRho and pgmpy.

- ChiRho (``chirho``, on Pyro): twin-world counterfactuals on the linear-Gaussian SCM.
  ChiRho shares a site's exogenous noise between the factual and the counterfactual world
  only when the site's mechanism is written as an invertible ``TransformedDistribution``
  (noise distribution + transform) and the site is observed: its
  ``FactualConditioningMessenger`` then inverts the transform to abduct the noise and pushes
  it through the counterfactual world's transform. A plain ``Normal(2 x, 1)`` mechanism is
  not reparameterised: the counterfactual world draws fresh noise, and the "counterfactual"
  is the interventional distribution (mean 0 here instead of 1). Our
  ``ppl.causal.counterfactual_worlds`` shares the noise of a plain ``Normal`` site by its documented
  location-scale convention, so the model needs no rewriting.
- pgmpy: exact interventional queries P(target | do(node = state)) on its bundled discrete
  networks (asia, cancer, survey, sachs, alarm), converted to our
  ``DiscreteBayesianNetwork``. Both sides are exact (variable elimination over the
  enumerated sites here; variable elimination and the back-door adjustment over the
  parents of the intervened node there), so the tolerance is float round-off: our tables
  are float32 (torch's default dtype), errors about 1e-7.

Each oracle skips cleanly when its library is not installed.
"""

import functools
import math
import warnings

import numpy as np
import pytest
import torch

from inference import counterfactual, interventional
from peers import (
    chirho_api,
    chirho_naive_scm,
    chirho_scm2,
    chirho_scm3,
    chirho_twin,
    load_network,
    ours_scm2,
    ours_scm3,
    ours_vector,
    theirs_vector,
)
from ppl.causal import world_value

EXACT_TOL = 1e-6  # both sides exact; float32 tables give about 1e-7


# --------------------------------------------------------------------------- ChiRho
@pytest.fixture
def chirho():
    return chirho_api()


def test_chirho_twin_world_linear_gaussian_counterfactual(chirho):
    # X = U_x, Y = 2 X + U_y; seen X = 1, Y = 3, so U_y = 1; had X been 0, Y = 0 + U_y = 1
    evidence, action = {"x": 1.0, "y": 3.0}, {"x": 0.0}
    ours = counterfactual(ours_scm2, evidence, action, "y", method="exact")
    factual, cf = chirho_twin(chirho, chirho_scm2, evidence, action)
    theirs_y = cf["y"].squeeze()
    assert theirs_y.numel() == 1
    assert ours.mean == pytest.approx(1.0, abs=1e-6)
    assert ours.stderr == 0.0
    assert float(theirs_y) == pytest.approx(1.0, abs=1e-6)
    assert ours.mean == pytest.approx(float(theirs_y), abs=1e-6)
    # both keep the evidence in the factual world and the intervention in the other
    assert float(factual["y"].squeeze()) == 3.0 and float(factual["x"].squeeze()) == 1.0
    assert float(cf["x"].squeeze()) == 0.0


def test_chirho_twin_world_three_node_counterfactual(chirho):
    # Z = X + Y + U_z; seen X = 1, Y = 3, Z = 5: U_y = 1, U_z = 1; under do(X = 0):
    # Y = 1 and Z = 0 + 1 + 1 = 2
    evidence, action = {"x": 1.0, "y": 3.0, "z": 5.0}, {"x": 0.0}
    _, cf = chirho_twin(chirho, chirho_scm3, evidence, action)
    for site, expected in (("y", 1.0), ("z", 2.0)):
        ours = counterfactual(ours_scm3, evidence, action, site, method="exact").mean
        theirs = float(cf[site].squeeze())
        assert ours == pytest.approx(expected, abs=1e-6)
        assert theirs == pytest.approx(expected, abs=1e-6)
        assert ours == pytest.approx(theirs, abs=1e-6)
    # an intervention on the mediator: do(Y = 0) leaves X = 1, so Z = 1 + 0 + U_z = 2
    _, cf = chirho_twin(chirho, chirho_scm3, evidence, {"y": 0.0})
    ours = counterfactual(ours_scm3, evidence, {"y": 0.0}, "z", method="exact").mean
    assert ours == pytest.approx(2.0, abs=1e-6)
    assert float(cf["z"].squeeze()) == pytest.approx(2.0, abs=1e-6)


def test_chirho_twin_world_importance_and_unobserved_descendant(chirho):
    """Z unobserved: its counterfactual is random, E[Z | do(X = 0)] = 0 + U_y + E[U_z] = 1.

    Both sample it with 10,000 particles; the standard error is 1 / sqrt(10,000) = 0.01, so
    0.05 is five of them. The joint of the two worlds differs: ours shares Z's noise (by the
    location-scale convention Z_factual - Z_counterfactual = 4 - 1 = 3 in every particle),
    while ChiRho shares the noise of observed sites only and draws Z's afresh per world.
    """
    import pyro

    n = 10_000
    evidence, action = {"x": 1.0, "y": 3.0}, {"x": 0.0}
    ours_y = counterfactual(ours_scm2, evidence, action, "y", method="importance",
                            num_particles=n)
    assert ours_y.mean == pytest.approx(1.0, abs=1e-5)
    ours_z = counterfactual(ours_scm3, evidence, action, "z", method="importance",
                            num_particles=n)
    assert ours_z.mean == pytest.approx(1.0, abs=0.05)
    gap = counterfactual(ours_scm3, evidence, action,
                         lambda tr: world_value(tr, "z", 0) - world_value(tr, "z", 1),
                         method="importance", num_particles=n)
    assert gap.mean == pytest.approx(3.0, abs=1e-4) and gap.stderr < 1e-4

    def plated():
        with pyro.plate("particles", n, dim=-1):
            return chirho_scm3()

    torch.manual_seed(0)
    _, cf = chirho_twin(chirho, plated, evidence, action)
    theirs_y, theirs_z = cf["y"].reshape(-1), cf["z"].reshape(-1)
    assert theirs_y.numel() == n and theirs_z.numel() == n
    assert torch.allclose(theirs_y, torch.ones(n))
    assert float(theirs_z.mean()) == pytest.approx(1.0, abs=0.05)
    assert ours_z.mean == pytest.approx(float(theirs_z.mean()), abs=0.07)  # two 5-se bands


def test_chirho_naive_mechanism_gives_the_interventional_answer(chirho):
    """The pitfall the transformed-distribution recipe avoids (documents why it is used)."""
    n = 4000
    torch.manual_seed(0)
    _, cf = chirho_twin(chirho, functools.partial(chirho_naive_scm, n), {"x": 1.0, "y": 3.0},
                        {"x": 0.0})
    y = cf["y"].reshape(-1)
    assert y.numel() == n
    # fresh N(0, 1) noise in the counterfactual world: mean 0 (not 1), sd 1; 5 standard
    # errors of the mean is 5 / sqrt(4000) = 0.08
    assert abs(float(y.mean())) < 5 / math.sqrt(n)
    assert float(y.std()) == pytest.approx(1.0, abs=0.1)
    # ours needs no rewriting: the plain Normal site shares its noise
    ours = counterfactual(ours_scm2, {"x": 1.0, "y": 3.0}, {"x": 0.0}, "y", method="exact")
    assert ours.mean == pytest.approx(1.0, abs=1e-6)


# --------------------------------------------------------------------------- pgmpy
@pytest.fixture(scope="module")
def pgmpy():
    pytest.importorskip("pgmpy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import pgmpy.inference
        import pgmpy.utils
    return pgmpy


QUERIES = [  # (network, {node: state}, target)
    ("asia", {"either": "yes"}, "dysp"),
    ("asia", {"either": "no"}, "xray"),
    ("asia", {"smoke": "yes"}, "dysp"),
    ("asia", {"bronc": "yes"}, "dysp"),
    ("asia", {"tub": "yes"}, "xray"),
    ("asia", {"lung": "no"}, "dysp"),
    ("cancer", {"Smoker": "True"}, "Dyspnoea"),
    ("cancer", {"Cancer": "True"}, "Xray"),
    ("cancer", {"Pollution": "high"}, "Cancer"),
    ("survey", {"E": "high"}, "T"),
    ("survey", {"O": "self"}, "T"),
    ("survey", {"A": "old"}, "R"),
    ("sachs", {"PKA": "HIGH"}, "Akt"),
    ("sachs", {"Erk": "LOW"}, "Akt"),
    # 37 nodes, about 5.8e15 joint configurations: variable elimination, largest table 108
    ("alarm", {"HR": "LOW"}, "BP"),
    ("alarm", {"CATECHOL": "HIGH"}, "HR"),
    ("alarm", {"INTUBATION": "ONESIDED"}, "SAO2"),
]


@pytest.mark.parametrize("network, do, target", QUERIES,
                         ids=[f"{n}-do({next(iter(d))})-{t}" for n, d, t in QUERIES])
def test_pgmpy_interventional_queries(pgmpy, network, do, target):
    from pgmpy.inference import CausalInference

    model, bn = load_network(network)
    ours = interventional(bn, {k: bn.state_index(k, v) for k, v in do.items()}, target,
                          method="exact")
    theirs = CausalInference(model).query([target], do=do, show_progress=False)
    states = bn.states[target]
    ours_p = ours_vector(ours, len(states))
    theirs_p = theirs_vector(theirs, target, states)
    np.testing.assert_allclose(ours_p, theirs_p, rtol=0, atol=EXACT_TOL)
    assert ours_p.sum() == pytest.approx(1.0, abs=EXACT_TOL)
    if network == "asia" and do == {"either": "yes"}:
        # P(dysp = yes | do(either = yes)) = sum_b P(b) P(dysp | b, either = yes)
        # = 0.45 * 0.9 + 0.55 * 0.7 = 0.79
        assert ours.probability(states.index("yes")) == pytest.approx(0.79, abs=EXACT_TOL)


def test_pgmpy_conversion_keeps_the_observational_joint(pgmpy):
    """Without interventions, every marginal agrees with pgmpy's variable elimination."""
    from pgmpy.inference import VariableElimination

    model, bn = load_network("asia")
    ve = VariableElimination(model)
    for target in bn.cpds:
        ours = ours_vector(interventional(bn, {}, target, method="exact"), 2)
        theirs = theirs_vector(ve.query([target], show_progress=False), target,
                               bn.states[target])
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=EXACT_TOL)


EVIDENCE_QUERIES = [  # (network, do, evidence, target): pgmpy's formula is exact for these
    # the evidence lies in the adjustment set (the intervened node's parents)
    ("asia", {"bronc": "yes"}, {"smoke": "yes"}, "dysp"),
    ("asia", {"lung": "yes"}, {"smoke": "no"}, "dysp"),
    # the intervened node is a root: do equals seeing, with the evidence alongside
    ("asia", {"smoke": "yes"}, {"asia": "yes"}, "either"),
    ("cancer", {"Smoker": "True"}, {"Pollution": "high"}, "Dyspnoea"),
]


@pytest.mark.parametrize("network, do, evidence, target", EVIDENCE_QUERIES,
                         ids=[f"{n}-do({next(iter(d))})-{next(iter(e))}-{t}"
                              for n, d, e, t in EVIDENCE_QUERIES])
def test_pgmpy_interventional_queries_with_evidence(pgmpy, network, do, evidence, target):
    from pgmpy.inference import CausalInference, VariableElimination

    model, bn = load_network(network)
    ours = interventional(bn, {k: bn.state_index(k, v) for k, v in do.items()}, target,
                          evidence={k: bn.state_index(k, v) for k, v in evidence.items()},
                          method="exact")
    states = bn.states[target]
    ours_p = ours_vector(ours, len(states))
    theirs = CausalInference(model).query([target], do=do, evidence=evidence,
                                          show_progress=False)
    np.testing.assert_allclose(ours_p, theirs_vector(theirs, target, states), rtol=0,
                               atol=EXACT_TOL)
    # the definition: condition the mutilated network (pgmpy's model.do) on the evidence
    mutilated = VariableElimination(model.do(list(do)))
    definition = mutilated.query([target], evidence={**evidence, **do}, show_progress=False)
    np.testing.assert_allclose(ours_p, theirs_vector(definition, target, states), rtol=0,
                               atol=EXACT_TOL)


def test_pgmpy_evidence_outside_the_adjustment_set(pgmpy):
    """P(dysp | do(either = yes), smoke = yes) = sum_b P(b | smoke = yes) P(dysp | b, either
    = yes) = 0.6 * 0.9 + 0.4 * 0.7 = 0.82: ours and pgmpy's mutilated network agree.

    pgmpy 1.1.2's ``CausalInference.query(..., do=, evidence=)`` returns 0.7912 here: it
    weights the adjustment set by P(z | evidence) but then drops the evidence from the
    inner query P(target | do, z), which is exact only when the target is independent of
    the evidence given the intervened node and its parents (not so here: smoke -> bronc
    -> dysp). So this query is checked against the definition, not against that method.
    """
    from pgmpy.inference import VariableElimination

    model, bn = load_network("asia")
    ours = interventional(bn, {"either": bn.state_index("either", "yes")}, "dysp",
                          evidence={"smoke": bn.state_index("smoke", "yes")}, method="exact")
    yes = bn.states["dysp"].index("yes")
    assert ours.probability(yes) == pytest.approx(0.82, abs=EXACT_TOL)
    definition = VariableElimination(model.do(["either"])).query(
        ["dysp"], evidence={"either": "yes", "smoke": "yes"}, show_progress=False)
    assert ours.probability(yes) == pytest.approx(
        float(theirs_vector(definition, "dysp", bn.states["dysp"])[yes]), abs=EXACT_TOL)
