"""Importance on both backends, where JAX compiles: a chunk size's first run is eager (and
checked), later runs are one compiled call each; the answers, fresh draws and named errors
must not change with that."""

import math

import numpy as np
import pytest

import ppl
from inference import Importance
from models.conjugate import (
    normal_normal_data,
    normal_normal_log_evidence,
    normal_normal_model,
    normal_normal_posterior,
)


def test_repeated_runs_draw_afresh_and_estimate_the_evidence(on_backend):
    # the prior as proposal on 20 points: each estimate within 4 of its own delta-method
    # standard errors of the closed form, and no two runs alike (each compiled run takes
    # a fresh key from the strategy's stream)
    # and the weighted draws' mean within 4 standard errors (sd / sqrt(ESS)) of the exact
    # posterior mean
    x = normal_normal_data(20, true_mu=0.5, seed=2)
    exact = normal_normal_log_evidence(x)
    post_loc, post_scale = normal_normal_posterior(x)
    sampler = Importance(normal_normal_model, num_particles=4000, rng_seed=0, chunk_size=1500)
    estimates = []
    for _ in range(4):
        result = sampler.run(x)
        assert tuple(result.samples["mu"].shape) == (4000,)
        assert abs(result.log_evidence - exact) < 4 * result.log_evidence_stderr, (result.log_evidence, exact)
        mean = float(np.sum(np.asarray(result.normalized_weights) * np.asarray(result.samples["mu"])))
        se = post_scale / math.sqrt(float(result.effective_sample_size))
        assert abs(mean - post_loc) < 4 * se, (mean, post_loc, se)
        estimates.append(result.log_evidence)
    assert len(set(estimates)) == 4


def test_a_nan_reaching_a_compiled_run_is_named(on_backend):
    # the compiled run cannot raise: the weights' check reruns the chunk eagerly to name it
    x = normal_normal_data(5, seed=3)
    sampler = Importance(normal_normal_model, num_particles=100, rng_seed=0)
    sampler.run(x)
    sampler.run(x)  # on JAX: compiled from here on
    ops = ppl.get_backend().ops
    bad = ops.asarray(np.where(np.arange(5) == 2, np.nan, np.asarray(x)).astype(np.float32))
    with pytest.raises(ppl.errors.PPLError, match="site 'x'"):
        sampler.run(bad)


def test_the_first_run_s_trace_and_a_compiled_run_s_samples_agree_in_shape(on_backend):
    x = normal_normal_data(5, seed=4)
    sampler = Importance(normal_normal_model, num_particles=50, rng_seed=1)
    first, second = sampler.run(x), sampler.run(x)
    assert first.trace is not None and sorted(first.samples) == sorted(second.samples) == ["mu"]
    weights = np.asarray(second.normalized_weights)
    assert weights.shape == (50,) and math.isclose(float(weights.sum()), 1.0, rel_tol=1e-5)
