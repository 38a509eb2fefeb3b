"""The TransformedDistribution noise rule (``ppl/causal/noise_transformed.py``) and vector
(``to_event``) sites in counterfactual worlds, against closed forms, on both backends:

- a sigmoid of a Normal (Morpho-MNIST's intensity mechanism) shares its noise as the true
  SCM does: the counterfactual intensity is ``models.morpho_digits.counterfactual_intensity``;
- LogNormal (a subclass of torch's transformed distribution) keeps log x - loc;
- a world-dependent transform (a flow conditioned on a parent) gives ``T_1(T_0^-1(x))``;
- the factual evidence is scored by the factual world's density alone;
- a vector latent in a plate keeps its noise: ``y' = y + 2 (x' - x)`` exactly.
"""

import math

import numpy as np
import pytest

import inference
import ppl
from models.morpho_digits import counterfactual_intensity
from ppl.causal import world_value


def _f32(values):
    return np.asarray(values, dtype=np.float32)


def _cf(model, evidence, interventions):
    tr = ppl.trace(ppl.counterfactual_worlds(model, evidence, interventions))()
    return tr, lambda name, w: np.asarray(world_value(tr, name, w), dtype=np.float64)


def _intensity_scm():
    D = ppl.get_backend().distributions

    def model():
        with ppl.plate("n", 3):
            t = ppl.sample("t", D.Normal(2.5, 0.6))
            squash = [D.transforms.SigmoidTransform(), D.transforms.AffineTransform(64.0, 191.0)]
            ppl.sample("i", D.TransformedDistribution(D.Normal(2 * (t - 2.5), 0.5), squash))
            ppl.sample("l", D.LogNormal(t, 0.1))
    return model


EVIDENCE = {"t": _f32([2.0, 2.5, 3.0]), "i": _f32([100.0, 150.0, 250.0]), "l": _f32([7.0, 12.0, 20.0])}


def test_sigmoid_of_a_normal_shares_noise_as_the_true_scm(on_backend):
    _, value = _cf(_intensity_scm(), EVIDENCE, {"t": _f32([3.0, 3.0, 1.5])})
    expected = counterfactual_intensity(EVIDENCE["t"], EVIDENCE["i"], np.array([3.0, 3.0, 1.5]))
    np.testing.assert_allclose(value("i", 1), expected, rtol=1e-4)
    np.testing.assert_allclose(value("i", 0), EVIDENCE["i"], rtol=1e-6)
    # LogNormal: log l - t is held
    np.testing.assert_allclose(value("l", 1), np.exp(np.log(EVIDENCE["l"]) - EVIDENCE["t"] + [3.0, 3.0, 1.5]),
                               rtol=1e-4)


def test_the_evidence_is_scored_by_the_factual_world_alone(on_backend):
    tr, _ = _cf(_intensity_scm(), EVIDENCE, {"t": _f32([3.0, 3.0, 3.0])})
    t = EVIDENCE["t"].astype(np.float64)
    share = (EVIDENCE["i"] - 64.0) / 191.0
    logit = np.log(share / (1 - share))
    # log N(logit; 2 (t - 2.5), 0.5) - log |d i / d logit|
    log_normal = -0.5 * ((logit - 2 * (t - 2.5)) / 0.5) ** 2 - math.log(0.5 * math.sqrt(2 * math.pi))
    expected = log_normal - np.log(191.0 * share * (1 - share))
    scored = np.asarray(tr["i__evidence"].fn.log_prob(tr["i__evidence"].value), dtype=np.float64)
    np.testing.assert_allclose(scored.reshape(-1), expected, rtol=1e-4)


def test_a_world_dependent_transform_is_inverted_in_the_factual_world(on_backend):
    """x = exp(a(p)) * eps + b(p): a flow step conditioned on a parent p, which differs
    between the worlds; the counterfactual is T_1(T_0^-1(x))."""
    D = ppl.get_backend().distributions

    def model():
        p = ppl.sample("p", D.Normal(0.0, 1.0))
        affine = D.transforms.AffineTransform(2 * p, ppl.get_backend().ops.exp(0.5 * p))
        ppl.sample("x", D.TransformedDistribution(D.Normal(0.0, 1.0), [affine]))

    _, value = _cf(model, {"p": _f32(1.0), "x": _f32(4.0)}, {"p": _f32(-1.0)})
    eps = (4.0 - 2.0) / math.exp(0.5)
    assert float(value("x", 1)) == pytest.approx(-2.0 + math.exp(-0.5) * eps, rel=1e-5)
    _, value = _cf(model, {"p": _f32(1.0), "x": _f32(4.0)}, {})  # the null intervention
    assert float(value("x", 1)) == pytest.approx(4.0, rel=1e-6)


def test_a_vector_latent_in_a_plate_keeps_its_noise(on_backend):
    """z in R^2 per element is latent (its noise a vector site); y' = y + 2 (x' - x) exactly,
    whatever z is, when z's and y's noises are both held."""
    D = ppl.get_backend().distributions
    ops = ppl.get_backend().ops

    def model(y=None):
        with ppl.plate("n", 3):
            x = ppl.sample("x", D.Normal(0.0, 1.0))
            z = ppl.sample("z", D.Normal(x[..., None] * ops.asarray(_f32([1.0, 1.0])), 1.0).to_event(1))
            ppl.sample("y", D.Normal(z + x[..., None], 0.5).to_event(1), obs=y)

    y = _f32([[1.0, 2.0], [0.0, -1.0], [3.0, 3.0]])
    x, x_new = _f32([0.5, -1.0, 2.0]), _f32([1.5, 0.0, 0.0])
    answer = inference.counterfactual(model, {"x": x}, {"x": x_new},
                                      lambda tr: world_value(tr, "y", 1)[..., 2, 1], ops.asarray(y),
                                      method="importance", num_particles=200)
    assert answer.mean == pytest.approx(3.0 + 2 * (0.0 - 2.0), abs=1e-5)
    assert answer.stderr < 1e-5  # the same in every particle: no noise drawn afresh


def test_bad_transformed_sites_are_named(on_backend):
    model = _intensity_scm()
    with pytest.raises(ValueError, match="site 'i': the evidence lies outside the values its "
                                         "TransformedDistribution takes"):
        _cf(model, {**EVIDENCE, "i": _f32([100.0, 150.0, 300.0])}, {"t": 3.0})
    with pytest.raises(ValueError, match="site 'i': the intervention's value in world 1 lies outside"):
        _cf(model, EVIDENCE, {"i": 300.0})


def test_a_transform_that_folds_is_refused():
    D = ppl.get_backend().distributions  # torch: AbsTransform is not bijective

    def model():
        ppl.sample("h", D.TransformedDistribution(D.Normal(0.0, 1.0), [D.transforms.AbsTransform()]))

    with pytest.raises(ValueError, match="only through bijective transforms; AbsTransform is not"):
        _cf(model, {"h": _f32(1.0)}, {})


def test_exact_counterfactuals_refuse_a_vector_bernoulli_by_name(on_backend):
    D = ppl.get_backend().distributions
    ops = ppl.get_backend().ops

    def model():
        with ppl.plate("p", 2):
            b = ppl.sample("b", D.Bernoulli(0.3 * ops.asarray(_f32([1.0, 1.0, 1.0]))).to_event(1))
            ppl.sample("y", D.Normal(b.sum(-1), 1.0), obs=ops.asarray(_f32([1.0, 1.0])))

    with pytest.raises(ppl.errors.SiteError, match="site 'b': exact counterfactuals enumerate"):
        inference.counterfactual(model, {}, {"b": ops.asarray(np.ones((2, 3), np.float32))},
                                 lambda tr: world_value(tr, "y", 1).sum(-1), method="exact")
