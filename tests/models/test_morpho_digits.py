"""The morpho-digits renderer and SCM (models/morpho_digits.py): the exact counterfactual of
a rendered digit is its re-render, thickness and intensity act as the SCM says, the draws
follow its distributions, and bad inputs are named."""

import math

import numpy as np
import pytest

from models.morpho_digits import (base_digits, counterfactual_intensity, intensity_of,
                                  morpho_digits, render)


def test_a_digit_s_counterfactual_is_its_re_render():
    data = morpho_digits(50, seed=3)
    b, t, i = data["base"], data["thickness"], data["intensity"]
    # the null intervention gives the factual image back, exactly
    np.testing.assert_array_equal(render(b, t, counterfactual_intensity(t, i, t)), data["images"])
    np.testing.assert_allclose(counterfactual_intensity(t, i, t), i, rtol=1e-9)
    # do(t + 1): the noise held, the intensity follows the mechanism; the image is the render
    new_i = counterfactual_intensity(t, i, t + 1)
    np.testing.assert_allclose(new_i, intensity_of(t + 1, data["noise"]), rtol=1e-9)
    assert np.all(new_i > i)  # the mechanism rises with thickness
    assert not np.array_equal(render(b, t + 1, new_i), data["images"])


def test_thickness_grows_the_stroke_and_intensity_scales_it():
    base = np.arange(0, 1797, 97)
    areas = [render(base, t, 200.0).sum((1, 2)) for t in (1.0, 2.0, 3.0, 4.0, 5.0)]
    assert all(np.all(thin < thick) for thin, thick in zip(areas, areas[1:]))
    np.testing.assert_allclose(render(base, 2.5, 240.0), 2 * render(base, 2.5, 120.0), rtol=1e-6)
    full = render(base, 3.0, 255.0, resolution=16)
    assert full.shape == (len(base), 16, 16) and full.min() >= 0 and full.max() <= 255
    # the 16x16 image averaged in 2x2 blocks is the 8x8 one
    coarse = full.reshape(len(base), 8, 2, 8, 2).mean((2, 4))
    np.testing.assert_allclose(coarse, render(base, 3.0, 255.0), rtol=1e-5, atol=1e-4)


def test_the_draws_follow_the_scm():
    # t = 0.5 + Gamma(10, rate 5): mean 2.5, sd sqrt(10) / 5; 4000 draws: within 4 standard
    # errors; intensity in (64, 255), tied to thickness, and independent of it when unconfounded
    n = 4000
    data = morpho_digits(n, seed=0)
    sd = math.sqrt(10) / 5
    assert abs(data["thickness"].mean() - 2.5) < 4 * sd / math.sqrt(n)
    assert abs(data["thickness"].std() - sd) < 4 * sd / math.sqrt(2 * n)
    assert data["intensity"].min() > 64 and data["intensity"].max() < 255
    np.testing.assert_allclose(data["intensity"], intensity_of(data["thickness"], data["noise"]))
    assert np.corrcoef(data["thickness"], data["intensity"])[0, 1] > 0.8
    free = morpho_digits(n, seed=1, confounded=False)
    assert abs(np.corrcoef(free["thickness"], free["intensity"])[0, 1]) < 4 / math.sqrt(n)


def test_train_and_test_draw_from_disjoint_base_digits():
    train, test = morpho_digits(500, seed=0), morpho_digits(500, seed=0, split="test")
    assert not set(train["base"]) & set(test["base"])
    _, labels = base_digits()
    np.testing.assert_array_equal(train["label"], labels[train["base"]])


@pytest.mark.parametrize("call, match", [
    (lambda: render([0], 2.0, 100.0, resolution=12), "resolution must be one of"),
    (lambda: render([0], -1.0, 100.0), "thickness must be positive"),
    (lambda: render([0], 2.0, 300.0), r"intensity must lie in \[0, 255\]"),
    (lambda: morpho_digits(5, split="validation"), "split must be one of \\('train', 'test', 'all'\\)"),
])
def test_bad_inputs_are_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()
