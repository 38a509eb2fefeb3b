"""Interventional queries, effects and exact enumeration on both backends, against answers
summed by hand (torch: the project's variable elimination; JAX: funsor's sum-product)."""

import itertools
import math

import pytest

import ppl
import ppl.distributions as dist
from inference import average_treatment_effect, interventional
from inference.exact import enumerate_program


def scm():
    stress = ppl.sample("stress", dist.Bernoulli(0.5))
    smoking = ppl.sample("smoking", dist.Bernoulli(0.2 + 0.6 * stress))
    return ppl.sample("cancer", dist.Bernoulli(0.1 + 0.05 * smoking + 0.7 * stress))


def scm_joint(stress, smoking, cancer):
    p_smoking = 0.2 + 0.6 * stress
    p_cancer = 0.1 + 0.05 * smoking + 0.7 * stress
    return (0.5 * (p_smoking if smoking else 1 - p_smoking)
            * (p_cancer if cancer else 1 - p_cancer))


def by_hand(fn, evidence):
    """E[fn(stress, smoking, cancer) | evidence] by summing the joint."""
    total = weighted = 0.0
    for values in itertools.product((0, 1), repeat=3):
        named = dict(zip(("stress", "smoking", "cancer"), values))
        if any(named[k] != v for k, v in evidence.items()):
            continue
        p = scm_joint(*values)
        total += p
        weighted += p * fn(**named)
    return weighted / total, total


@pytest.mark.parametrize("method", ["exact", "importance"])
def test_doing_is_not_seeing(on_backend, method):
    kwargs = {} if method == "exact" else {"num_particles": 20000}
    doing = interventional(scm, {"smoking": 1.0}, "cancer", method=method, **kwargs)
    seeing = interventional(scm, {}, "cancer", evidence={"smoking": 1.0}, method=method, **kwargs)
    # do(smoking = 1): sum_s P(s) (0.15 + 0.7 s) = 0.5; seeing: P(s = 1 | smoking = 1) = 0.8
    tolerance = (lambda e: 1e-6) if method == "exact" else (lambda e: 5 * e.stderr)
    assert abs(doing.mean - 0.5) < tolerance(doing)
    assert abs(seeing.mean - by_hand(lambda cancer, **_: cancer, {"smoking": 1})[0]) < tolerance(seeing)
    assert abs(seeing.mean - 0.71) < tolerance(seeing)
    assert doing.method == method


def test_the_average_treatment_effect(on_backend):
    ate = average_treatment_effect(scm, "smoking", "cancer")
    assert ate.mean == pytest.approx(0.05, abs=1e-6)


def test_exact_expectations_of_functions_of_several_sites_and_the_evidence(on_backend):
    posterior = enumerate_program(ppl.condition(scm, {"cancer": 1.0}))
    expected, evidence = by_hand(lambda stress, smoking, **_: stress * smoking + 2 * smoking, {"cancer": 1})
    value = posterior.expectation(lambda tr: tr["stress"].value * tr["smoking"].value
                                  + 2 * tr["smoking"].value)
    assert value == pytest.approx(expected, rel=1e-5)
    assert float(posterior.log_evidence) == pytest.approx(math.log(evidence), rel=1e-5)
    table = posterior.distribution(lambda tr: tr["stress"].value + tr["smoking"].value)
    for total in (0, 1, 2):
        mass = by_hand(lambda stress, smoking, t=total, **_: float(stress + smoking == t), {"cancer": 1})[0]
        assert table.get(total, table.get(float(total), 0.0)) == pytest.approx(mass, rel=1e-5)


DATA = [0.3, 2.4, -0.7, 1.9]
WEIGHTS = [0.2, 0.5, 0.3]
MEANS = [-1.0, 0.5, 2.0]


def normal_pdf(x, loc):
    return math.exp(-0.5 * (x - loc) ** 2) / math.sqrt(2 * math.pi)


def test_a_global_categorical_with_plated_evidence(on_backend):
    ops = ppl.get_backend().ops

    def model():
        c = ppl.sample("c", dist.Categorical(probs=ops.asarray(WEIGHTS)))
        loc = ops.asarray(MEANS)[c]
        with ppl.plate("data", len(DATA)):
            ppl.sample("x", dist.Normal(loc, 1.0), obs=ops.asarray(DATA))

    joint = [w * math.prod(normal_pdf(x, m) for x in DATA) for w, m in zip(WEIGHTS, MEANS)]
    posterior = enumerate_program(model)
    assert float(posterior.log_evidence) == pytest.approx(math.log(sum(joint)), rel=1e-5)
    marginal = posterior.distribution(lambda tr: tr["c"].value)
    for k in range(3):
        assert marginal[k] == pytest.approx(joint[k] / sum(joint), rel=1e-4)


def mixture_per_element():
    """A component ``c`` per element of DATA, on the active backend."""
    ops = ppl.get_backend().ops
    with ppl.plate("data", len(DATA)):
        c = ppl.sample("c", dist.Categorical(probs=ops.asarray(WEIGHTS)))
        ppl.sample("x", dist.Normal(ops.asarray(MEANS)[c], 1.0), obs=ops.asarray(DATA))


def test_the_evidence_of_a_mixture_with_a_latent_per_element(on_backend):
    exact = sum(math.log(sum(w * normal_pdf(x, m) for w, m in zip(WEIGHTS, MEANS))) for x in DATA)
    assert float(enumerate_program(mixture_per_element).log_evidence) == pytest.approx(exact, rel=1e-5)


def test_a_latent_per_element_is_answered_per_element(on_backend):
    # p(c_i | x_i) differs by element; JAX's sum-product, keeping c while summing the plate
    # out, answered for one c shared by every element (0.996 here) without a word
    posterior = enumerate_program(mixture_per_element)
    exact = [[w * normal_pdf(x, m) for w, m in zip(WEIGHTS, MEANS)] for x in DATA]
    exact = [[p / sum(row) for p in row] for row in exact]
    table = posterior.marginal("c")  # [element, value]
    assert tuple(table.shape) == (len(DATA), len(WEIGHTS))
    mean = posterior.expectation(lambda trace: trace["c"].value)
    for i, row in enumerate(exact):
        assert float(mean[i]) == pytest.approx(sum(k * p for k, p in enumerate(row)), rel=1e-5)
        for k, p in enumerate(row):
            assert float(table[i, k]) == pytest.approx(p, rel=1e-5)


def test_a_continuous_latent_site_is_not_enumerable(on_backend):
    from inference.exact import NotEnumerableError

    def model():
        z = ppl.sample("z", dist.Normal(0.0, 1.0))
        ppl.sample("x", dist.Normal(z, 1.0), obs=0.5)

    with pytest.raises(NotEnumerableError, match="latent site 'z' \\(Normal\\) has no finite support"):
        enumerate_program(model)


def test_a_discrete_bayesian_network_answers_alike_on_both_backends(on_backend):
    from models.causal import DiscreteBayesianNetwork

    bn = DiscreteBayesianNetwork({
        "rain": ((), [0.8, 0.2]),
        "sprinkler": (("rain",), [[0.6, 0.4], [0.99, 0.01]]),
        "wet": (("rain", "sprinkler"), [[[1.0, 0.0], [0.1, 0.9]], [[0.2, 0.8], [0.01, 0.99]]])})
    # P(rain | wet) by hand: sum over the sprinkler of the joint
    joint = {(r, s): [0.8, 0.2][r] * [[0.6, 0.4], [0.99, 0.01]][r][s]
             * [[[1.0, 0.0], [0.1, 0.9]], [[0.2, 0.8], [0.01, 0.99]]][r][s][1]
             for r in (0, 1) for s in (0, 1)}
    expected = (joint[1, 0] + joint[1, 1]) / sum(joint.values())
    seen = interventional(bn, {}, "rain", evidence={"wet": 1})
    assert seen.mean == pytest.approx(expected, rel=1e-5)
    # do(sprinkler = 1): rain keeps its prior; wet = sum_r P(r) P(wet | r, s = 1)
    done = interventional(bn, {"sprinkler": 1}, "wet")
    assert done.mean == pytest.approx(0.8 * 0.9 + 0.2 * 0.99, rel=1e-5)


def test_a_network_larger_than_numpyro_s_enumeration_is_named_on_jax_and_auto_samples():
    pytest.importorskip("funsor")
    from inference.exact import NotEnumerableError

    def chain():
        x = ppl.sample("x_0", dist.Bernoulli(0.5))
        for t in range(1, 40):
            x = ppl.sample(f"x_{t}", dist.Bernoulli(0.2 + 0.6 * x))
        return x

    with ppl.backend("jax"):
        with pytest.raises(NotEnumerableError, match="exact enumeration on the jax backend: 'x_\\d+' is "
                           "latent site number \\d+, more than NumPyro's enumeration has dimensions"):
            interventional(chain, {}, "x_39")
        sampled = interventional(chain, {}, "x_39", method="auto", num_particles=4000)
    # the chain's stationary law is Bernoulli(0.5), started there
    assert sampled.method == "importance" and abs(sampled.mean - 0.5) < 5 * sampled.stderr
