"""``inference.causal.counterfactual_draws`` against a closed form, for each abduction.

x ~ N(0, 1) latent, y ~ N(x, 0.5)^3 observed; under do(x = 2) with y's noise held,
y' = 2 + (y - x): given y = 1, x | y ~ N(12/13, 1/13), so each coordinate of y' has mean
3 - 12/13 and standard deviation 1/sqrt(13). Tolerances are Z standard errors of the
estimates (the mean's: sd / sqrt(ESS); the sd's: sd / sqrt(2 ESS)).
"""

import math

import numpy as np
import pytest

import ppl
from inference.causal import counterfactual_draws

Z = 5.0
MEAN, SD = 3.0 - 12.0 / 13.0, 1.0 / math.sqrt(13.0)


def _scm():
    D, ops = ppl.get_backend().distributions, ppl.get_backend().ops
    zeros = ops.asarray(np.zeros(3, dtype=np.float32))

    def scm():
        x = ppl.sample("x", D.Normal(0.0, 1.0))
        return ppl.sample("y", D.Normal(x[..., None] + zeros, 0.5).to_event(1))
    return scm


def _posterior_guide():
    """The exact posterior of x's noise (x itself: its prior is standard)."""
    D = ppl.get_backend().distributions

    def guide():
        ppl.sample("x__noise", D.Normal(12.0 / 13.0, SD))
    return guide


EVIDENCE = {"y": np.ones(3, dtype=np.float32)}


@pytest.mark.parametrize("abduction", ["guide", "importance"])
def test_draws_match_the_closed_form(on_backend, abduction):
    guide = _posterior_guide() if abduction == "guide" else None
    draws = counterfactual_draws(_scm(), EVIDENCE, {"x": 2.0}, ["y", "x"], abduction=abduction,
                                 guide=guide, num_samples=4000, num_particles=20000, rng_seed=1)
    ess = draws.effective_sample_size
    assert draws.values["y"].shape[1:] == (3,)
    np.testing.assert_allclose(draws.mean("y"), MEAN, atol=Z * SD / math.sqrt(ess))
    np.testing.assert_allclose(draws.sd("y"), SD, atol=Z * SD / math.sqrt(2 * ess))
    assert np.all(draws.values["x"] == 2.0)  # the intervened value in every draw


def test_mcmc_abduction_matches_the_closed_form():
    draws = counterfactual_draws(_scm(), EVIDENCE, {"x": 2.0}, "y", abduction="mcmc",
                                 num_samples=600, num_warmup=200, rng_seed=0)
    ess = 150  # NUTS on a Gaussian: a quarter of the draws is a safe floor
    np.testing.assert_allclose(draws.mean("y"), MEAN, atol=Z * SD / math.sqrt(ess))
    np.testing.assert_allclose(draws.sd("y"), SD, atol=Z * SD / math.sqrt(2 * ess))


def test_multi_worlds_share_one_abduction(on_backend):
    """Worlds do(x = 2) and do(x = 0) from the same draws: y'_2 - y'_0 = 2 in every draw."""
    first, second = counterfactual_draws(_scm(), EVIDENCE, [{"x": 2.0}, {"x": 0.0}], "y",
                                         abduction="importance", worlds="multi", world=[1, 2],
                                         num_particles=500, rng_seed=0)
    np.testing.assert_allclose(first.values["y"] - second.values["y"], 2.0, atol=1e-5)


def test_degenerate_weights_are_warned_of(on_backend):
    """Thirty units in one query: the weights over the whole program collapse."""
    D, ops = ppl.get_backend().distributions, ppl.get_backend().ops

    def batch(y):
        with ppl.plate("units", 30):
            x = ppl.sample("x", D.Normal(0.0, 1.0))
            ppl.sample("y", D.Normal(x, 0.1), obs=y)

    y = ops.asarray(np.linspace(-2, 2, 30).astype(np.float32))
    with pytest.warns(RuntimeWarning, match="effective sample size is .* one query per unit"):
        counterfactual_draws(batch, {}, {"x": 0.0}, "y", y, num_particles=200, rng_seed=0)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="abduction must be one of"):
        counterfactual_draws(_scm(), EVIDENCE, {"x": 2.0}, "y", abduction="vi")
    with pytest.raises(ValueError, match="needs guide="):
        counterfactual_draws(_scm(), EVIDENCE, {"x": 2.0}, "y", abduction="guide")
    with pytest.raises(ValueError, match="world must be an integer from 0"):
        counterfactual_draws(_scm(), EVIDENCE, {"x": 2.0}, "y", world=2)
    with pytest.raises(ValueError, match="has no sample site 'w'"):
        counterfactual_draws(_scm(), EVIDENCE, {"w": 2.0}, "y", num_particles=10)
