"""The soundness metrics (``inference/causal/soundness.py``) on cases whose values are known:
the exact counterfactual (the true renderer) scores 0 on every image metric, a
counterfactual that adds a constant c scores c, m c and 2 c, one that does nothing scores
the true change, and effectiveness is the oracle's own error."""

import numpy as np
import pytest

from inference.causal import counterfactual_soundness
from inference.causal.soundness import (composition, effectiveness, ground_truth_error,
                                        image_l1, reversibility)
from models.morpho_digits import morpho_digits, render, true_counterfactual

DATA = morpho_digits(40, seed=3, split="test")
DO_THICKER = {"thickness": lambda t: t + 1.0}


def _shifted(c):
    """A counterfactual that moves every pixel by c, whatever the intervention."""
    def counterfactual(data, interventions):
        return {"images": data["images"] + c}
    return counterfactual


def _unchanged(data, interventions):
    return {"images": data["images"]}


def _exact_oracle(offset=0.0):
    """Reads the causes of a rendered image exactly (by matching the renders of its base
    digit), plus ``offset`` on the thickness."""
    def oracle(images):
        found = true_counterfactual(DATA, DO_THICKER)
        known = {k.tobytes(): (t, i) for k, t, i in zip(
            np.concatenate([DATA["images"], found["images"]]),
            np.concatenate([DATA["thickness"], found["thickness"]]),
            np.concatenate([DATA["intensity"], found["intensity"]]))}
        pairs = np.array([known[image.tobytes()] for image in np.asarray(images, np.float32)])
        return {"thickness": pairs[:, 0] + offset, "intensity": pairs[:, 1]}
    return oracle


def test_the_true_counterfactual_scores_zero():
    report = counterfactual_soundness(true_counterfactual, DATA, DO_THICKER,
                                      truth=true_counterfactual, oracle=_exact_oracle())
    assert report == pytest.approx({"ground-truth error": 0.0, "effectiveness: thickness": 0.0,
                                    "effectiveness: intensity": 0.0, "composition, m=1": 0.0,
                                    "composition, m=10": 0.0, "reversibility": 0.0}, abs=1e-3)
    assert "reversibility" in report.table()


def test_a_constant_shift_scores_its_size():
    c = 2.5
    assert ground_truth_error(DATA["images"] + c, DATA["images"]) == pytest.approx(c)
    assert composition(_shifted(c), DATA, (1, 10)) == pytest.approx({1: c, 10: 10 * c})
    assert reversibility(_shifted(c), DATA, DO_THICKER) == pytest.approx(2 * c)


def test_doing_nothing_scores_the_true_change():
    truth = true_counterfactual(DATA, DO_THICKER)["images"]
    report = counterfactual_soundness(_unchanged, DATA, DO_THICKER, truth=true_counterfactual)
    assert report["ground-truth error"] == pytest.approx(image_l1(DATA["images"], truth).mean())
    assert report["ground-truth error"] > 20  # thicker strokes change a digit a lot
    assert report["reversibility"] == 0.0 and report["composition, m=10"] == 0.0


def test_effectiveness_is_the_oracles_error():
    images = true_counterfactual(DATA, DO_THICKER)["images"]
    targets = {"thickness": DATA["thickness"] + 1.0}
    assert effectiveness(_exact_oracle(0.3), images, targets) == pytest.approx({"thickness": 0.3})


def test_the_true_counterfactual_renders_the_scm():
    both = true_counterfactual(DATA, {"thickness": 3.0, "intensity": 200.0})
    np.testing.assert_array_equal(both["images"], render(DATA["base"], 3.0, 200.0))
    null = true_counterfactual(DATA, {})
    np.testing.assert_allclose(null["images"], DATA["images"], atol=1e-3)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="the SCM has no site 'width'"):
        true_counterfactual(DATA, {"width": 2.0})
    with pytest.raises(ValueError, match="the oracle does not read \\['width'\\]"):
        effectiveness(_exact_oracle(), DATA["images"], {"width": 1.0})
    with pytest.raises(ValueError, match="must return a dict holding 'images'"):
        composition(lambda data, interventions: {"pixels": data["images"]}, DATA)
    with pytest.raises(ValueError, match="repeats must be positive"):
        composition(_unchanged, DATA, (0,))
    with pytest.raises(ValueError, match="shapes"):
        image_l1(DATA["images"], DATA["images"][:3])
