"""Causal handlers, graphs, identification and queries against textbook answers."""

import math

import networkx as nx
import pytest
import torch

import ppl
import ppl.distributions as dist
from inference import (
    adjustment_formula,
    average_treatment_effect,
    counterfactual,
    interventional,
    probability_of_necessity,
    probability_of_necessity_and_sufficiency,
    probability_of_sufficiency,
)
from models import confounded_scm, front_door_model, linear_gaussian_scm, normal_normal_model, simpson_model


# ------------------------------------------------------------------------------ do
def chain():
    a = ppl.sample("a", dist.Normal(0.0, 1.0))
    with ppl.plate("units", 3):
        b = ppl.sample("b", dist.Normal(a, 1.0))
        return ppl.sample("c", dist.Normal(b + 10.0, 0.01))


def test_hard_intervention_broadcasts_over_plate_and_cuts_parents():
    tr = ppl.trace(ppl.do(chain, {"b": 2.0}))()
    assert tr["b"].value.shape == (3,) and torch.all(tr["b"].value == 2.0)
    assert tr["b"].observed and float(tr["b"].log_prob.sum()) == 0.0
    assert torch.allclose(tr["c"].value, torch.full((3,), 12.0), atol=0.1)
    tr2 = ppl.trace(ppl.do(chain, {"a": 100.0, "b": 2.0}))()  # upstream no longer matters
    assert torch.allclose(tr2["c"].value, torch.full((3,), 12.0), atol=0.1)


def test_stochastic_and_shift_interventions():
    tr = ppl.trace(ppl.do(chain, {"b": dist.Normal(-50.0, 0.001)}))()
    assert torch.allclose(tr["b"].value, torch.full((3,), -50.0), atol=0.01)
    assert tr["b"].infer["do"] == "stochastic" and not tr["b"].observed
    tr = ppl.trace(ppl.do(chain, {"b": lambda natural: natural + 100.0}))()
    assert torch.allclose(tr["b"].value, tr["b__natural"].value + 100.0)
    assert tr["b"].infer["do"] == "shift"


def test_do_errors_name_the_site():
    with pytest.raises(ValueError, match="no sample site 'bb'; did you mean 'b'"):
        ppl.do(chain, {"bb": 1.0})()
    with pytest.raises(ValueError, match=r"site 'b': a value of shape \(4,\) does not fit"):
        ppl.do(chain, {"b": torch.zeros(4)})()
    with pytest.raises(ValueError, match="condition: the program has no sample site 'q'"):
        ppl.condition(chain, data={"q": 1.0})()


def test_condition_suggests_the_closest_site_name_within_difflibs_cutoff():
    # closest_name: difflib.get_close_matches on lower-cased names with its default cutoff,
    # a similarity ratio 2 M / T >= 0.6 (M matched characters, T the two lengths summed)
    data = torch.tensor([0.3, -0.2])
    with pytest.raises(ValueError, match="no sample site 'mu_'; did you mean 'mu'\\?"):
        ppl.condition(normal_normal_model, data={"mu_": 0.0})(data)  # 2 * 2 / 5 = 0.8
    with pytest.raises(ValueError, match="no sample site 'MU'; did you mean 'mu'\\?"):
        ppl.condition(normal_normal_model, data={"MU": 0.0})(data)  # case is ignored
    with pytest.raises(ValueError) as nothing_close:
        ppl.condition(normal_normal_model, data={"sigma": 0.0})(data)
    assert "did you mean" not in str(nothing_close.value)
    assert "no sample site 'sigma' (its sites: ['mu', 'x'])" in str(nothing_close.value)

    def program():
        ppl.sample("alpha", dist.Normal(0.0, 1.0))

    # at the cutoff: 'alpxy' shares 'alp' with 'alpha', 2 * 3 / 10 = 0.6, suggested;
    # 'alpxyz' shares as much but is longer, 2 * 3 / 11 = 0.55, not
    with pytest.raises(ValueError, match="no sample site 'alpxy'; did you mean 'alpha'\\?"):
        ppl.condition(program, data={"alpxy": 0.0})()
    with pytest.raises(ValueError, match=r"no sample site 'alpxyz' \(its sites: \['alpha'\]\)"):
        ppl.condition(program, data={"alpxyz": 0.0})()


def test_evidence_and_intervention_on_the_same_site_is_an_error():
    with pytest.raises(ValueError, match="condition: site 'a' is intervened on"):
        ppl.condition(ppl.do(chain, {"a": 0.5}), data={"a": 1.0})()
    with pytest.raises(ValueError, match="do: site 'a' is conditioned on"):
        ppl.do(ppl.condition(chain, data={"a": 1.0}), {"a": 0.5})()


def test_condition_and_do_commute_on_different_sites():
    data = {"c": torch.tensor([11.0, 12.0, 13.0])}
    one = ppl.trace(ppl.condition(ppl.do(chain, {"a": 0.5}), data=data))()
    two = ppl.trace(ppl.do(ppl.condition(chain, data=data), {"a": 0.5}))()
    for tr in (one, two):
        assert tr["c"].observed and tr["a"].observed and float(tr["a"].value) == 0.5


# --------------------------------------------------------------------------- graph
def test_graph_tracks_deterministic_code_and_do():
    def model():
        a = ppl.sample("a", dist.Normal(0.0, 1.0))
        d = ppl.deterministic("d", a ** 2 + 1)
        b = ppl.sample("b", dist.Normal(torch.sin(d), 1.0))
        with ppl.plate("p", 2):
            c = ppl.sample("c", dist.Normal(b.expand(2) * 2, 1.0), obs=torch.zeros(2))
        return c

    g = ppl.graph(model)
    # the deterministic site is a node (a mechanism) on the path a -> d -> b
    assert set(g.edges) == {("a", "d"), ("d", "b"), ("b", "c")}
    assert g.nodes["d"]["distribution"] == "Deterministic"
    assert g.nodes["c"]["observed"] and not g.nodes["a"]["observed"]
    assert g.nodes["c"]["plates"] == ("p",)
    cut = ppl.graph(ppl.do(model, {"b": 0.0}))
    assert set(cut.edges) == {("a", "d"), ("b", "c")} and cut.nodes["b"]["intervention"] == "hard"


# ------------------------------------------------------------------------ identify
def test_backdoor_games():
    one = nx.DiGraph([("Z", "X"), ("Z", "Y"), ("X", "Y")])
    assert ppl.identify(one, "X", "Y").adjustment_sets == [frozenset({"Z"})]
    two = nx.DiGraph([("A", "X"), ("A", "Y"), ("X", "Y"), ("D", "Y")])
    assert set(ppl.identify(two, "X", "Y").adjustment_sets) == {frozenset("A"), frozenset("AD")}
    four = nx.DiGraph([("A", "X"), ("A", "Y"), ("X", "Y"), ("D", "Y"), ("E", "X")])
    assert set(ppl.identify(four, "X", "Y").adjustment_sets) == {
        frozenset("A"), frozenset("AD"), frozenset("AE"), frozenset("ADE")}
    m_bias = nx.DiGraph([("A", "X"), ("A", "C"), ("B", "C"), ("B", "Y"), ("X", "Y")])
    result = ppl.identify(m_bias, "X", "Y")
    assert result.minimal == frozenset() and frozenset("C") not in result.adjustment_sets
    assert ppl.identify(m_bias, "X", "Y", which="minimal").adjustment_sets == [frozenset()]


def test_frontdoor_identified_then_not():
    g = nx.DiGraph([("U", "X"), ("U", "Y"), ("X", "M"), ("M", "Y")])
    result = ppl.identify(g, "X", "Y", latent=["U"])
    assert result.method == "frontdoor" and result.adjustment_sets == [frozenset({"M"})]
    g.add_edge("U", "M")
    result = ppl.identify(g, "X", "Y", latent=["U"])
    assert not result.identified
    assert "X - U - Y" in result.explanation and "front-door" in result.explanation


def test_identify_bad_input():
    g = nx.DiGraph([("X", "Y")])
    with pytest.raises(ValueError, match="treatment and outcome are the same node 'X'"):
        ppl.identify(g, "X", "X")
    with pytest.raises(ValueError, match="outcome 'y' is not a node of the graph; did you mean 'Y'"):
        ppl.identify(g, "X", "y")


def test_identify_on_a_program_graph():
    g = ppl.graph(front_door_model)
    result = ppl.identify(g, "smoking", "cancer", latent=["genotype"])
    assert result.method == "frontdoor" and result.adjustment_sets == [frozenset({"tar"})]


# -------------------------------------------------------------- textbook answers
def test_primer_front_door_table_3_1():
    assert interventional(front_door_model, {"smoking": 1.0}, "cancer").mean == pytest.approx(0.5475)
    assert interventional(front_door_model, {"smoking": 0.0}, "cancer").mean == pytest.approx(0.5025)
    # the same numbers from the 800 observational rows of Table 3.1 by the front-door formula
    rows = []  # (smoking, tar, cancer, count)
    rows += [(1, 1, 0, 323), (1, 1, 1, 57), (0, 1, 0, 1), (0, 1, 1, 19)]
    rows += [(1, 0, 0, 18), (1, 0, 1, 2), (0, 0, 0, 38), (0, 0, 1, 342)]
    data = {k: torch.tensor([r[i] for r in rows for _ in range(r[3])])
            for i, k in enumerate(["smoking", "tar", "cancer"])}
    for value, expected in ((1, 0.5475), (0, 0.5025)):
        est = adjustment_formula(data, "smoking", "cancer", ["tar"], value, kind="frontdoor")
        assert est.mean == pytest.approx(expected)


def test_stress_smoking_cancer():
    assert interventional(confounded_scm, {"smoking": 1.0}, "cancer").mean == pytest.approx(0.50)
    assert interventional(confounded_scm, {"smoking": 0.0}, "cancer").mean == pytest.approx(0.45)
    seen = interventional(confounded_scm, {}, "cancer", evidence={"smoking": 1.0})
    assert seen.mean == pytest.approx(0.71)
    assert interventional(confounded_scm, {}, "cancer", evidence={"smoking": 0.0}).mean == pytest.approx(0.24)
    ate = average_treatment_effect(confounded_scm, "smoking", "cancer")
    assert ate.mean == pytest.approx(0.05, abs=1e-6)


def test_simpson_paradox_primer_table_1_1():
    # Primer: P(recovery | do(drug)) = 0.832 and P(recovery | do(no drug)) = 0.7818, from
    # rates rounded to two digits; the unrounded counts give 0.8325 and 0.7789
    p_male = 357 / 700
    do_drug = p_male * 81 / 87 + (1 - p_male) * 192 / 263
    do_none = p_male * 234 / 270 + (1 - p_male) * 55 / 80
    assert interventional(simpson_model, {"drug": 1.0}, "recovery").mean == pytest.approx(do_drug)
    assert interventional(simpson_model, {"drug": 0.0}, "recovery").mean == pytest.approx(do_none)
    assert abs(do_drug - 0.832) < 1e-3 and abs(0.51 * 0.87 + 0.49 * 0.69 - 0.7818) < 1e-9
    seen = interventional(simpson_model, {}, "recovery", evidence={"drug": 1.0}).mean
    assert seen == pytest.approx(273 / 350)  # the aggregated table favours no drug: 289 / 350
    counts = [(1, 1, 1, 81), (1, 1, 0, 6), (1, 0, 1, 234), (1, 0, 0, 36),
              (0, 1, 1, 192), (0, 1, 0, 71), (0, 0, 1, 55), (0, 0, 0, 25)]
    data = {k: torch.tensor([r[i] for r in counts for _ in range(r[3])])
            for i, k in enumerate(["gender", "drug", "recovery"])}
    est = adjustment_formula(data, "drug", "recovery", ["gender"], 1)
    assert est.mean == pytest.approx(interventional(simpson_model, {"drug": 1.0}, "recovery").mean)


def test_importance_agrees_with_exact_within_standard_error():
    exact = interventional(confounded_scm, {}, "cancer", evidence={"smoking": 1.0})
    sampled = interventional(confounded_scm, {}, "cancer", evidence={"smoking": 1.0},
                             method="importance", num_particles=20_000)
    assert abs(sampled.mean - exact.mean) < 4 * sampled.stderr
    assert set(sampled.distribution) == {0.0, 1.0}


# ------------------------------------------------------------- exact (variable elimination)
def _brute_force(tables, evidence, query):
    """P(query | evidence) for binary networks given as {node: (parents, P(node = 1 | ...))},
    by summing the joint over every configuration (tiny networks only)."""
    import itertools

    nodes = list(tables)
    dist_q, total = {}, 0.0
    for values in itertools.product([0, 1], repeat=len(nodes)):
        x = dict(zip(nodes, values))
        if any(x[k] != v for k, v in evidence.items()):
            continue
        p = 1.0
        for node, (parents, table) in tables.items():
            p1 = float(table[tuple(x[q] for q in parents)])
            p *= p1 if x[node] else 1 - p1
        key = query(x)
        dist_q[key] = dist_q.get(key, 0.0) + p
        total += p
    return {k: v / total for k, v in dist_q.items()}


DIAMOND = {  # a -> b, a -> c, (b, c) -> d, d -> e: P(node = 1 | parents)
    "a": ((), torch.tensor(0.3)),
    "b": (("a",), torch.tensor([0.2, 0.9])),
    "c": (("a",), torch.tensor([0.6, 0.1])),
    "d": (("b", "c"), torch.tensor([[0.05, 0.5], [0.7, 0.95]])),
    "e": (("d",), torch.tensor([0.25, 0.8])),
}


def diamond():
    x = {}
    for node, (parents, table) in DIAMOND.items():
        p = table[tuple(x[q].long() for q in parents)] if parents else table
        x[node] = ppl.sample(node, dist.Bernoulli(p))
    return x


@pytest.mark.parametrize("evidence", [{}, {"e": 1.0}, {"d": 0.0, "e": 1.0}, {"c": 1.0}])
def test_exact_marginals_match_the_joint_sum(evidence):
    """Every marginal and a function of two sites, with evidence above and below (the
    barren-site pruning must keep the sites that evidence depends on)."""
    ev = {k: int(v) for k, v in evidence.items()}
    for target in DIAMOND:
        if target in evidence:
            continue
        est = interventional(diamond, {}, target, evidence=evidence)
        expected = _brute_force(DIAMOND, ev, lambda x: x[target]).get(1, 0.0)
        assert est.mean == pytest.approx(expected, abs=1e-6)
    both = interventional(diamond, {}, lambda tr: tr["a"].value + 2 * tr["b"].value,
                          evidence=evidence)
    expected = _brute_force(DIAMOND, ev, lambda x: x["a"] + 2 * x["b"])
    assert both.distribution.keys() == expected.keys()
    for key, p in expected.items():
        assert both.distribution[key] == pytest.approx(p, abs=1e-6)


def test_exact_intervention_cuts_the_parents():
    do_b = interventional(diamond, {"b": 1.0}, "d", evidence={"a": 1.0})
    # d | do(b = 1), a = 1: c ~ Bernoulli(0.1), P(d) = 0.9 * 0.7 + 0.1 * 0.95
    assert do_b.mean == pytest.approx(0.9 * 0.7 + 0.1 * 0.95, abs=1e-6)
    seen = interventional(diamond, {}, "a", evidence={"b": 1.0})
    assert interventional(diamond, {"b": 1.0}, "a").mean == pytest.approx(0.3, abs=1e-6)
    assert seen.mean == pytest.approx(0.3 * 0.9 / (0.3 * 0.9 + 0.7 * 0.2), abs=1e-6)


def test_exact_answers_follow_changed_parameters():
    """The elimination plan is reused for programs of the same shapes; the answers are not:
    a Categorical network queried again after its table changes in place."""
    table = torch.tensor([[0.9, 0.1], [0.3, 0.7]])

    def network(prior):
        a = ppl.sample("a", dist.Categorical(prior))
        return ppl.sample("b", dist.Categorical(table[a]))

    for p_a in (0.2, 0.6):
        prior = torch.tensor([1 - p_a, p_a])
        expected = (1 - p_a) * float(table[0, 1]) + p_a * float(table[1, 1])
        assert interventional(network, {}, "b", prior).mean == pytest.approx(expected, abs=1e-6)
    table[1] = torch.tensor([0.5, 0.5])
    assert interventional(network, {}, "b", prior).mean == pytest.approx(0.4 * 0.1 + 0.6 * 0.5)
    seen = interventional(network, {}, "a", prior, evidence={"b": 1})
    assert seen.mean == pytest.approx(0.6 * 0.5 / (0.4 * 0.1 + 0.6 * 0.5), abs=1e-6)


def test_exact_long_chain_beyond_joint_enumeration():
    """A 40-step binary Markov chain (2^40 joint configurations) observed at its end: variable
    elimination answers it exactly; the forward recursion is the oracle."""
    steps = 40
    stay = torch.tensor([0.9, 0.8], dtype=torch.float64)  # P(x_t = x_{t-1})

    def chain_model():
        x = ppl.sample("x0", dist.Bernoulli(torch.tensor(0.5, dtype=torch.float64)))
        for t in range(1, steps):
            p_one = torch.where(x > 0.5, stay[1], 1 - stay[0])
            x = ppl.sample(f"x{t}", dist.Bernoulli(p_one))
        ppl.sample("y", dist.Bernoulli(0.2 + 0.7 * x), obs=torch.tensor(1.0, dtype=torch.float64))

    transition = torch.stack([torch.stack([stay[0], 1 - stay[0]]),
                              torch.stack([1 - stay[1], stay[1]])])
    forward = torch.tensor([0.5, 0.5], dtype=torch.float64)
    for _ in range(1, steps):
        forward = forward @ transition
    posterior_last = forward * torch.tensor([0.2, 0.9], dtype=torch.float64)
    expected = float(posterior_last[1] / posterior_last.sum())
    est = interventional(chain_model, {}, f"x{steps - 1}")
    assert est.mean == pytest.approx(expected, abs=1e-9)
    backward = torch.tensor([0.2, 0.9], dtype=torch.float64)
    for _ in range(1, steps):
        backward = transition @ backward
    first = interventional(chain_model, {}, "x0").mean
    assert first == pytest.approx(float(backward[1] / backward.sum()), abs=1e-9)


def test_exact_latent_outside_a_plate_of_observations():
    data = torch.tensor([2.0, 1.5, 2.5])

    def model():
        z = ppl.sample("z", dist.Bernoulli(0.3))
        with ppl.plate("data", 3):
            ppl.sample("x", dist.Normal(2.0 * z, 1.0), obs=data)

    like = [math.exp(sum(-0.5 * (float(x) - 2 * z) ** 2 for x in data)) for z in (0, 1)]
    expected = 0.3 * like[1] / (0.7 * like[0] + 0.3 * like[1])
    assert interventional(model, {}, "z").mean == pytest.approx(expected, abs=1e-6)


def test_exact_evidence_too_unlikely_for_float64_products():
    """400 observed sites of probability about 0.05 each: the products underflow float64
    (about 1e-520), so elimination rescales; the answer is Bayes' rule in log space."""
    n = 400

    def model():
        z = ppl.sample("z", dist.Bernoulli(0.5))
        for i in range(n):
            ppl.sample(f"x{i}", dist.Bernoulli(0.95 - 0.02 * z), obs=torch.tensor(0.0))

    from inference.exact import enumerate_program

    posterior = enumerate_program(model)
    log0, log1 = n * math.log(0.05), n * math.log(0.07)
    expected = 1 / (1 + math.exp(log0 - log1))
    assert posterior.expectation(lambda tr: tr["z"].value) == pytest.approx(expected, abs=1e-9)
    log_evidence = math.log(0.5) + log1 + math.log1p(math.exp(log0 - log1))
    assert posterior.log_evidence == pytest.approx(log_evidence, rel=1e-6)


def test_exact_errors_name_the_problem():
    def bad_probs():
        ppl.sample("a", dist.Bernoulli(0.5))
        return ppl.sample("c", dist.Categorical(torch.tensor([-0.2, 1.2])))

    with pytest.raises(ValueError, match="site 'c' .*negative or NaN probabilities"):
        interventional(bad_probs, {}, "c")
    with pytest.raises(ValueError, match="site 'e': .* outside the support of Bernoulli"):
        interventional(diamond, {}, "a", evidence={"e": 2.0})

    def die():
        a = ppl.sample("a", dist.Bernoulli(0.5))
        return ppl.sample("k", dist.Categorical(torch.tensor([[0.5, 0.5], [0.2, 0.8]])[a.long()]))

    with pytest.raises(ValueError, match="support"):
        interventional(die, {}, "a", evidence={"k": 5})

    def bad_evidence_probs():
        a = ppl.sample("a", dist.Bernoulli(0.5))
        ppl.sample("k", dist.Categorical(torch.tensor([[0.5, 0.5], [1.5, -0.5]])[a.long()]),
                   obs=torch.tensor(0))

    with pytest.raises(ValueError, match="site 'k' .*negative or NaN probabilities"):
        interventional(bad_evidence_probs, {}, "a")

    def copy():  # b = a exactly (torch's Bernoulli and Categorical clamp zero probabilities)
        a = ppl.sample("a", dist.Bernoulli(0.5))
        return ppl.sample("b", dist.Delta(a))

    assert interventional(copy, {}, "a", evidence={"b": 1.0}).mean == pytest.approx(1.0)
    with pytest.raises(ValueError, match="evidence has probability zero"):
        interventional(copy, {"a": 0.0}, "a", evidence={"b": 1.0})  # a constant factor
    with pytest.raises(ValueError, match="evidence has probability zero"):
        interventional(copy, {}, "a", evidence={"b": 0.5})  # zero in every configuration

    def plated_target():
        with ppl.plate("units", 3):
            return ppl.sample("u", dist.Bernoulli(0.5 * torch.ones(3)), obs=torch.ones(3))

    with pytest.raises(ValueError, match="does not line up with the grid"):
        interventional(plated_target, {}, "u")

    def batch_latent():
        return ppl.sample("v", dist.Bernoulli(torch.full((3,), 0.5)))

    with pytest.raises(ValueError, match="latent site 'v' has batch shape"):
        interventional(batch_latent, {}, "v")
    from inference.exact import enumerate_program

    posterior = enumerate_program(diamond, max_cells=4)
    with pytest.raises(ValueError, match="more than max_cells=4"):
        posterior.expectation(lambda tr: tr["e"].value)


# ------------------------------------------------------------------ counterfactuals
def test_twin_world_linear_gaussian_closed_form():
    evidence = {"x": 1.0, "y": 3.0, "z": 5.0}  # abduction: u_x = 1, u_y = 1, u_z = 1
    y = counterfactual(linear_gaussian_scm, evidence, {"x": 0.0}, "y")
    z = counterfactual(linear_gaussian_scm, evidence, {"x": 0.0}, "z")
    assert y.mean == pytest.approx(1.0) and z.mean == pytest.approx(2.0)  # z = 0 + 1 + 1
    sampled = counterfactual(linear_gaussian_scm, evidence, {"x": 0.0}, "z",
                             method="importance", num_particles=1000)
    assert sampled.mean == pytest.approx(2.0, abs=1e-5)


def test_twin_world_with_a_latent_site_needs_sampling():
    # y unobserved: y_cf = 2 * 0 + u_y, u_y | (x = 1, z = 4) ~ N(m, v), closed form below
    evidence = {"x": 1.0, "z": 4.0}
    with pytest.raises(ValueError, match="latent site 'y__noise'"):
        counterfactual(linear_gaussian_scm, evidence, {"x": 0.0}, "y")
    est = counterfactual(linear_gaussian_scm, evidence, {"x": 0.0}, "y", method="importance",
                         num_particles=40_000)
    # z = x + (2x + u_y) + u_z = 3 + u_y + u_z  =>  u_y | z ~ N((z - 3) / 2, 1 / 2)
    assert abs(est.mean - 0.5) < 4 * est.stderr


def test_inverse_cdf_sites_scored_in_the_factual_world_only():
    def scm():
        x = ppl.sample("x", dist.Exponential(1.0))
        return ppl.sample("y", dist.Uniform(x, x + 2.0))

    # u_y = (2.5 - 1) / 2 = 0.75; under do(x = 3), y = 3 + 2 * 0.75. The evidence y = 2.5 lies
    # outside the counterfactual world's support [3, 5], which must not matter.
    tr = ppl.trace(ppl.causal.counterfactual_worlds(scm, {"x": 1.0, "y": 2.5}, {"x": 3.0}))()
    assert [float(ppl.world_value(tr, "y", w)) for w in (0, 1)] == [2.5, 4.5]


def test_multi_world_holds_k_plus_one_worlds():
    sets = [{"x": 0.0}, {"x": 1.0}, {"x": 2.0}]
    program = ppl.counterfactual_worlds(linear_gaussian_scm, {"x": 1.0, "y": 3.0}, sets, worlds="multi")
    tr = ppl.trace(program)()
    assert tr["y"].value.shape[-1] == 4  # 3 interventions + the factual world, not 2^3
    assert [float(ppl.world_value(tr, "y", w)) for w in range(4)] == [3.0, 1.0, 3.0, 5.0]


def test_probabilities_of_causation_with_monotone_coupling():
    def binary():
        x = ppl.sample("x", dist.Bernoulli(0.5))
        return ppl.sample("y", dist.Bernoulli(0.2 + 0.5 * x))

    # exogenous treatment, monotone (Gumbel-max) coupling: Tian and Pearl's closed forms
    assert probability_of_necessity_and_sufficiency(binary, "x", "y").mean == pytest.approx(0.5)
    assert probability_of_necessity(binary, "x", "y").mean == pytest.approx(0.5 / 0.7)
    assert probability_of_sufficiency(binary, "x", "y").mean == pytest.approx(0.5 / 0.8)
    sampled = probability_of_necessity(binary, "x", "y", method="importance", num_particles=20_000)
    assert abs(sampled.mean - 0.5 / 0.7) < 4 * sampled.stderr


def test_exact_joint_of_factual_and_counterfactual_worlds():
    """A function of two worlds' values of enumerated sites: x ~ B(0.5), y ~ B(0.2 + 0.5 x),
    no evidence, do(x = 1). With the shared threshold noise u of y, y_w = 1[u > 1 - p_w]:
    if x = 1 both worlds agree; if x = 0, y_0 = 1[u > 0.8] and y_1 = 1[u > 0.3]. So
    (y_0, y_1) is (0, 0) w.p. 0.3, (0, 1) w.p. 0.25 and (1, 1) w.p. 0.45."""
    def binary():
        x = ppl.sample("x", dist.Bernoulli(0.5))
        return ppl.sample("y", dist.Bernoulli(0.2 + 0.5 * x))

    both = counterfactual(binary, {}, {"x": 1.0},
                          lambda tr: 2 * ppl.world_value(tr, "y", 0) + ppl.world_value(tr, "y", 1))
    assert both.distribution.keys() == {0.0, 1.0, 3.0}
    for value, p in ((0.0, 0.3), (1.0, 0.25), (3.0, 0.45)):
        assert both.probability(value) == pytest.approx(p, abs=1e-6)
    # world values of different sites stay aligned with each other in the enumerated trace
    gap = counterfactual(binary, {}, {"x": 1.0},
                         lambda tr: ppl.world_value(tr, "y", 1) - ppl.world_value(tr, "x", 0))
    assert gap.mean == pytest.approx(0.7 - 0.5, abs=1e-6)
    assert gap.distribution.keys() == {-1.0, 0.0, 1.0}


def test_counterfactual_bad_input():
    def beta_model():
        return ppl.sample("p", dist.Beta(2.0, 2.0))

    with pytest.raises(ValueError, match="site 'p': Beta has no noise-sharing rule"):
        ppl.trace(ppl.causal.counterfactual_worlds(beta_model, {}, {"p": 0.5}))()
    with pytest.raises(ValueError, match="counterfactual: the program has no sample site 'w'"):
        ppl.trace(ppl.causal.counterfactual_worlds(linear_gaussian_scm, {"w": 1.0}, {"x": 0.0}))()
    assert math.isfinite(counterfactual(linear_gaussian_scm, {"x": 1.0, "y": 3.0, "z": 5.0},
                                        {"x": 0.0}, "y").mean)


def test_vi_method_fits_a_guide_then_corrects_it_by_importance():
    def stress_guide():  # every latent site of the conditioned program: stress and cancer
        p = ppl.param("q_stress", torch.tensor(0.5), constraint=dist.constraints.unit_interval)
        stress = ppl.sample("stress", dist.Bernoulli(p))
        q_cancer = ppl.param("q_cancer", torch.tensor([0.5, 0.5]),
                             constraint=dist.constraints.unit_interval)
        ppl.sample("cancer", dist.Bernoulli(q_cancer[stress.long()]))

    exact = interventional(confounded_scm, {}, "cancer", evidence={"smoking": 1.0})
    est = interventional(confounded_scm, {}, "cancer", evidence={"smoking": 1.0}, method="vi",
                         guide=stress_guide, num_steps=300, num_particles=20_000)
    assert est.method == "vi" and abs(est.mean - exact.mean) < 4 * est.stderr
    # the fitted guide is the exact posterior P(stress = 1 | smoking = 1) = 0.8, up to SGD noise
    assert abs(est.params["q_stress"].item() - 0.8) < 0.1
    with pytest.raises(ValueError, match="method='vi' needs guide="):
        interventional(confounded_scm, {}, "cancer", method="vi")


def test_a_noise_rule_registered_for_a_new_family_is_used():
    from ppl.causal import noise

    def gamma_scm():
        a = ppl.sample("a", dist.Normal(0.0, 1.0))
        return ppl.sample("x", dist.Gamma(a.exp(), 1.0))

    def scm():
        a = ppl.sample("a", dist.Normal(0.0, 1.0))
        return ppl.sample("x", dist.LogNormal(a, 1.0))

    evidence, intervention = {"a": 0.0, "x": math.e}, {"a": 1.0}
    with pytest.raises(ValueError, match="site 'x': Gamma has no noise-sharing rule"):
        ppl.trace(ppl.counterfactual_worlds(gamma_scm, evidence, intervention))()
    pushed = []

    class LogLocationScale(noise.NoiseModel):
        """x = exp(loc + scale * eps), eps ~ Normal(0, 1) (LogNormal's own rule, as a
        transformed Normal, gives the same; ``pushed`` shows which rule ran)."""

        params = ("loc", "scale")

        def prior(self, base, shape):
            return dist.Normal(torch.zeros(shape), torch.ones(shape))

        def push(self, base, eps):
            pushed.append(True)
            return (base.loc + base.scale * eps).exp()

        def abduct(self, mechanism, value):
            return (value.log() - mechanism.world0("loc")) / mechanism.world0("scale"), True

    noise.register_noise(dist.LogNormal)(LogLocationScale)
    try:
        trace = ppl.trace(ppl.counterfactual_worlds(scm, evidence, intervention))()
        # abduction: eps = log(e) - 0 = 1; in the world where a = 1, x = exp(1 + 1)
        assert float(ppl.world_value(trace, "x", 1)) == pytest.approx(math.e ** 2)
        assert float(ppl.world_value(trace, "x", 0)) == pytest.approx(math.e)
        assert pushed  # the registered rule, found before the TransformedDistribution one
    finally:
        del noise._RULES[dist.LogNormal]


def test_method_auto_is_exact_where_it_can_be_and_samples_otherwise():
    from inference import counterfactual, interventional

    def discrete():
        z = ppl.sample("z", dist.Bernoulli(0.4))
        x = ppl.sample("x", dist.Bernoulli(0.2 + 0.6 * z))
        return ppl.sample("y", dist.Bernoulli(0.1 + 0.3 * x + 0.5 * z))

    answer = interventional(discrete, {"x": 1.0}, "y", method="auto")
    assert answer.method == "exact" and answer.mean == pytest.approx(0.6, abs=1e-6)

    def continuous():  # a latent Normal cannot be enumerated
        z = ppl.sample("z", dist.Normal(0.0, 1.0))
        return ppl.sample("y", dist.Normal(2.0 * z, 1.0))

    torch.manual_seed(0)
    answer = interventional(continuous, {}, "z", evidence={"y": 2.0}, method="auto",
                            num_particles=20_000)
    # posterior of z given y = 2: Normal(0.8, sqrt(0.2)); 4 standard errors of the estimate
    assert answer.method == "importance" and abs(answer.mean - 0.8) < 4 * answer.stderr
    with pytest.raises(ValueError, match="no finite support"):
        interventional(continuous, {}, "z", evidence={"y": 2.0}, method="exact")

    # a counterfactual whose Bernoulli noise is enumerable runs exactly
    def scm():
        x = ppl.sample("x", dist.Bernoulli(0.5))
        return ppl.sample("y", dist.Bernoulli(0.2 + 0.6 * x))

    answer = counterfactual(scm, {"x": 1.0, "y": 1.0}, {"x": 0.0}, "y", method="auto")
    exact = counterfactual(scm, {"x": 1.0, "y": 1.0}, {"x": 0.0}, "y", method="exact")
    assert answer.method == "exact" and answer.mean == pytest.approx(exact.mean)
