"""Interventional queries, effects and exact enumeration on both backends, against answers
summed by hand (the project's variable elimination on both; latent sites inside plates:
Pyro's plated sum-product on torch, funsor's on JAX)."""

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


def test_evidence_outside_a_categorical_s_support_is_named(on_backend):
    # NumPyro's Categorical clips an index outside its support (it would score state 1)
    ops = ppl.get_backend().ops

    def model():
        rain = ppl.sample("rain", dist.Categorical(probs=ops.asarray([0.8, 0.2])))
        return ppl.sample("wet", dist.Categorical(probs=ops.asarray([[0.9, 0.1], [0.2, 0.8]])[rain]))

    with pytest.raises(ValueError, match="site 'wet'.* outside the support of (its )?Categorical"):
        interventional(model, {}, "rain", evidence={"wet": 2})


BAD_PROBS = {"negative": [[0.5, 0.5], [1.2, -0.2]], "unnormalised": [[0.5, 0.5], [0.3, 0.3]]}


@pytest.mark.parametrize("problem", sorted(BAD_PROBS))
@pytest.mark.parametrize("where", ["latent", "latent, scaled", "observed", "bernoulli"])
def test_probabilities_checked_on_the_tables_are_named(on_backend, problem, where):
    """Exact queries build each Categorical unchecked and check the tables they use. NumPyro's
    Categorical does not normalise its probabilities, so on JAX unnormalised ones would give
    silently wrong answers; torch's normalises them, so there only negative ones are wrong."""
    ops = ppl.get_backend().ops
    table = ops.asarray(BAD_PROBS[problem])

    def model():
        a = ppl.sample("a", dist.Bernoulli(0.5))
        index = ops.to_index(a)
        if where == "bernoulli":
            return ppl.sample("k", dist.Bernoulli(probs=table[index, 0] * 1.5 - 0.3))
        if where == "observed":
            return ppl.sample("k", dist.Categorical(probs=table[index]), obs=ops.asarray(0))
        with ppl.scale(scale=2.0 if where == "latent, scaled" else 1.0):
            return ppl.sample("k", dist.Categorical(probs=table[index]))

    valid = problem == "unnormalised" and ppl.get_backend().name == "torch"  # torch normalises
    valid = valid or (where == "bernoulli" and problem == "unnormalised")  # p = 0.45: fine
    target = "a" if where == "observed" else "k"
    if valid:
        interventional(model, {}, target)
        return
    # torch's Bernoulli keeps its own check (its message does not name the site)
    named = "site 'k' .*(negative or NaN|do not sum to 1)|Expected parameter probs .* Bernoulli"
    with pytest.raises(ValueError, match=named):
        interventional(model, {}, target)


def test_scaled_and_masked_sites_weigh_the_sums(on_backend):
    # the evidence x = 1 counts twice (scale 2), a masked-out observation not at all:
    # P(z = 1 | evidence) = 0.3 * 0.9^2 / (0.3 * 0.9^2 + 0.7 * 0.2^2)
    ops = ppl.get_backend().ops

    def model():
        z = ppl.sample("z", dist.Bernoulli(0.3))
        with ppl.scale(scale=2.0):
            ppl.sample("x", dist.Bernoulli(0.2 + 0.7 * z), obs=ops.asarray(1.0))
        with ppl.mask(mask=False):
            ppl.sample("y", dist.Bernoulli(0.01 + 0.98 * z), obs=ops.asarray(0.0))

    posterior = enumerate_program(model)
    on, off = 0.3 * 0.9 ** 2, 0.7 * 0.2 ** 2
    assert posterior.expectation(lambda tr: tr["z"].value) == pytest.approx(on / (on + off), rel=1e-6)
    assert float(posterior.log_evidence) == pytest.approx(math.log(on + off), rel=1e-6)

    # a latent site's own density scaled (its prior squared) or masked out (a flat prior)
    def latent_weighted(scale, mask):
        def program():
            with ppl.scale(scale=scale), ppl.mask(mask=mask):
                z = ppl.sample("z", dist.Bernoulli(0.3))
            ppl.sample("x", dist.Bernoulli(0.2 + 0.7 * z), obs=ops.asarray(1.0))
        return program

    squared = enumerate_program(latent_weighted(2.0, True)).expectation(lambda tr: tr["z"].value)
    assert squared == pytest.approx(0.09 * 0.9 / (0.09 * 0.9 + 0.49 * 0.2), rel=1e-6)
    for mask in (False, ops.asarray(False)):
        flat = enumerate_program(latent_weighted(1.0, mask)).expectation(lambda tr: tr["z"].value)
        assert flat == pytest.approx(0.9 / (0.9 + 0.2), rel=1e-6)


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


def _persistent_chain(length, first=0.9):
    def chain():
        x = ppl.sample("x_0", dist.Bernoulli(first))
        for t in range(1, length):
            x = ppl.sample(f"x_{t}", dist.Bernoulli(0.05 + 0.9 * x))
        return x
    return chain


def test_a_chain_longer_than_numpyro_s_enumeration_is_exact_on_both_backends(on_backend):
    # 20 latent sites: more than NumPyro's enumeration has dimensions for (it holds one per
    # site: 17 beside 8 plate dims), within the project's elimination on both backends. The
    # chain forgets its start at rate 0.9 per step: P(x_t = 1) = 0.5 + (0.9 - 0.5) 0.9^t, and
    # P(x_0 = 1 | x_19 = 1) = 0.9 P(x_19 = 1 | x_0 = 1) / P(x_19 = 1), P(x_19 = 1 | x_0 = 1) =
    # 0.5 + 0.5 0.9^19.
    chain = _persistent_chain(20)
    p_last = 0.5 + 0.4 * 0.9 ** 19
    assert interventional(chain, {}, "x_19").mean == pytest.approx(p_last, rel=1e-5)
    seen = interventional(chain, {}, "x_0", evidence={"x_19": 1.0})
    assert seen.mean == pytest.approx(0.9 * (0.5 + 0.5 * 0.9 ** 19) / p_last, rel=1e-5)


def test_more_latent_sites_than_arrays_have_dimensions_are_named_and_auto_samples(on_backend):
    from inference.exact import NotEnumerableError

    chain = _persistent_chain(60, first=0.5)
    with pytest.raises(NotEnumerableError, match="'x_\\d+' is latent site number \\d+, more than "
                       "(NumPyro's enumeration has|torch's 64 tensor) dimensions"):
        interventional(chain, {}, "x_59")
    sampled = interventional(chain, {}, "x_59", method="auto", num_particles=4000)
    # the chain's stationary law is Bernoulli(0.5), started there
    assert sampled.method == "importance" and abs(sampled.mean - 0.5) < 5 * sampled.stderr
