"""MCMC on both backends against closed-form posteriors, its diagnostics against known
autocorrelations, and its bad inputs; tolerances from each estimate's standard error."""

import math
import warnings

import numpy as np
import pytest
import torch

import ppl
import ppl.distributions as dist
from inference import MCMC, VI
from inference.mcmc.diagnostics import ess_bulk, ess_tail, r_hat, split_chains
from inference.mcmc.diagnostics import _ess as ess_of_chains

X = [0.9, 1.3, 1.1, 0.7, 2.1, -0.2]
POSTERIOR_MEAN, POSTERIOR_SD = sum(X) / (1 + len(X)), math.sqrt(1 / (1 + len(X)))


def normal_normal(x):
    mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
    ppl.deterministic("twice", 2 * mu)
    with ppl.plate("data", len(X)):
        ppl.sample("x", dist.Normal(mu, 1.0), obs=x)


def test_nuts_draws_the_conjugate_posterior_with_deterministic_sites(on_backend):
    x = ppl.get_backend().ops.asarray(X)
    result = MCMC(normal_normal, num_warmup=300, num_samples=500, num_chains=2,
                  rng_seed=1).run(x, progress=False)
    stats = result.summary()["mu"]
    assert result.by_chain["mu"].shape == (2, 500)
    assert abs(stats["mean"] - POSTERIOR_MEAN) < 4 * result.stderr("mu")
    # the sd's standard error is about sd / sqrt(2 ESS)
    assert abs(stats["sd"] - POSTERIOR_SD) < 4 * POSTERIOR_SD / math.sqrt(2 * stats["ess_bulk"])
    assert stats["r_hat"] < 1.05 and stats["ess_bulk"] > 100
    np.testing.assert_allclose(result.samples["twice"], 2 * result.samples["mu"], rtol=1e-5)
    assert result.diverging.shape == (2, 500) and result.step_size.shape == (2,)


def test_a_discrete_site_marked_for_enumeration_is_summed_out(on_backend):
    # c ~ Bernoulli(0.3), mu ~ N(0, 1), x | mu, c ~ N(mu + 2c, 1), x = 1.5 seen:
    # x | c ~ N(2c, 2), E[mu | x, c] = (x - 2c) / 2
    x = 1.5

    def model():
        c = ppl.sample("c", dist.Bernoulli(0.3), infer={"enumerate": "parallel"})
        mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
        ppl.sample("x", dist.Normal(mu + 2 * c, 1.0), obs=ppl.get_backend().ops.asarray(x))

    def normal(v, mean):
        return math.exp(-(v - mean) ** 2 / 4)  # N(v; mean, 2) up to a constant

    p1 = 0.3 * normal(x, 2) / (0.3 * normal(x, 2) + 0.7 * normal(x, 0))
    exact = (1 - p1) * x / 2 + p1 * (x - 2) / 2
    result = MCMC(model, num_warmup=300, num_samples=600, rng_seed=0).run(progress=False)
    assert abs(result.mean("mu") - exact) < 4 * result.stderr("mu")


def test_divergences_are_counted_and_warned_of(on_backend):
    def funnel():  # Neal's funnel, centred: the neck defeats one step size
        log_scale = ppl.sample("log_scale", dist.Normal(0.0, 3.0))
        ppl.sample("z", dist.Normal(0.0, ppl.get_backend().ops.exp(log_scale / 2)))

    with pytest.warns(RuntimeWarning, match=r"MCMC: \d+ of 400 transitions diverged"):
        result = MCMC(funnel, num_warmup=100, num_samples=400, rng_seed=0).run(progress=False)
    assert result.num_divergences == int(result.diverging.sum()) > 0


@pytest.mark.parametrize("kwargs, match", [
    ({"kernel": "gibbs"}, "kernel must be one of"),
    ({"num_samples": 0}, "num_samples must be a positive integer"),
    ({"num_chains": 0}, "num_chains must be a positive integer"),
    ({"num_warmup": -1}, "num_warmup must be a non-negative integer"),
    ({"num_samples": 10.5}, "num_samples must be a positive integer"),
    ({"target_accept_prob": 1.5}, "target_accept_prob must lie in"),
])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MCMC(normal_normal, **kwargs)


def test_a_discrete_site_not_marked_for_enumeration_is_named(on_backend):
    def model():
        c = ppl.sample("c", dist.Bernoulli(0.3))
        ppl.sample("x", dist.Normal(c * 1.0, 1.0), obs=ppl.get_backend().ops.asarray(0.5))

    with pytest.raises(ppl.errors.SiteError, match="site 'c' .*discrete.*enumerate"):
        MCMC(model).run(progress=False)


@pytest.mark.parametrize("rho", [0.0, 0.5, 0.9])
def test_the_effective_sample_size_of_an_ar1_chain_is_its_known_value(rho):
    """An AR(1) chain x_t = rho x_(t-1) + e_t has ESS = N (1 - rho) / (1 + rho)."""
    rng = np.random.default_rng(0)
    chains, n = 4, 20000
    draws = np.zeros((chains, n))
    noise = rng.normal(size=(chains, n))
    for t in range(1, n):
        draws[:, t] = rho * draws[:, t - 1] + noise[:, t]
    tau = (1 + rho) / (1 - rho)  # the integrated autocorrelation time
    expected = chains * n / tau
    # Bartlett: the estimate of tau summed to lag K has relative sd about
    # sqrt(2 (2K + 1) / N); Geyer's truncation stops near K = 3 tau here
    tolerance = 4 * math.sqrt(2 * (6 * tau + 1) / (chains * n))
    assert ess_of_chains(split_chains(draws)) == pytest.approx(expected, rel=tolerance)
    assert ess_bulk(draws) == pytest.approx(expected, rel=tolerance)  # Gaussian: ranks change little
    assert expected * (1 - tolerance) < ess_tail(draws) <= chains * n * (1 + tolerance)
    assert r_hat(draws) < 1.01


def test_r_hat_sees_chains_that_disagree_or_drift():
    rng = np.random.default_rng(1)
    iid = rng.normal(size=(4, 2000))
    assert r_hat(iid) < 1.01
    assert r_hat(iid + np.array([0.0, 0.0, 0.0, 2.0])[:, None]) > 1.1  # one chain elsewhere
    assert r_hat(iid + np.linspace(0, 2, 2000)) > 1.1  # every chain drifting: the split halves disagree
    wider = iid * np.array([1.0, 1.0, 1.0, 4.0])[:, None]  # one wider chain: the folded tails see it
    assert r_hat(wider) > 1.05


def test_to_arviz_gives_draws_statistics_and_the_pointwise_log_likelihood(on_backend):
    az = pytest.importorskip("arviz")
    x = ppl.get_backend().ops.asarray(X)
    mcmc = MCMC(normal_normal, num_warmup=100, num_samples=50, num_chains=2, rng_seed=0)
    result = mcmc.run(x, progress=False)
    data = mcmc.to_arviz()
    assert data.posterior["mu"].shape == (2, 50) and data.sample_stats["diverging"].shape == (2, 50)
    np.testing.assert_allclose(data.observed_data["x"], X, rtol=1e-6)
    # each draw's log-likelihood: log N(x_i; mu, 1), element by element
    mu = result.by_chain["mu"][1, 7]
    expected = -0.5 * (np.asarray(X) - mu) ** 2 - 0.5 * math.log(2 * math.pi)
    np.testing.assert_allclose(data.log_likelihood["x"].values[1, 7], expected, rtol=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few draws: ArviZ warns about its Pareto k
        assert np.isfinite(az.loo(data).elpd_loo)
    assert set(az.summary(data, var_names=["mu"]).columns) >= {"mean", "r_hat", "ess_bulk"}


def test_to_arviz_gives_arviz_1_s_data_tree(on_backend):
    # kind="DataTree": the same groups and values as xarray's DataTree (ArviZ 1.x's object),
    # read by arviz_stats' loo and summary (arviz.loo and arviz.summary in ArviZ 1.x)
    azs = pytest.importorskip("arviz_stats")
    x = ppl.get_backend().ops.asarray(X)
    mcmc = MCMC(normal_normal, num_warmup=100, num_samples=50, num_chains=2, rng_seed=0)
    result = mcmc.run(x, progress=False)
    tree = mcmc.to_arviz(kind="DataTree")
    assert type(tree).__name__ == "DataTree"
    assert set(tree.children) == {"posterior", "sample_stats", "log_likelihood", "observed_data"}
    assert tree["posterior"]["mu"].dims[:2] == ("chain", "draw")
    np.testing.assert_allclose(tree["posterior"]["mu"].values, result.by_chain["mu"])
    mu = result.by_chain["mu"][0, 3]
    expected = -0.5 * (np.asarray(X) - mu) ** 2 - 0.5 * math.log(2 * math.pi)
    np.testing.assert_allclose(tree["log_likelihood"]["x"].values[0, 3], expected, rtol=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.isfinite(azs.loo(tree).elpd)
    assert "r_hat" in azs.summary(tree, var_names=["mu"]).columns
    with pytest.raises(ValueError, match="kind must be one of"):
        mcmc.to_arviz(kind="dict")


def test_the_diagnostics_agree_with_arviz_s_on_the_same_draws():
    """The same estimators as ArviZ's (Vehtari et al. 2021), written independently: on the
    same chains they agree to float rounding (measured: 4e-7 relative at most)."""
    az = pytest.importorskip("arviz")
    rng = np.random.default_rng(3)
    draws = np.zeros((4, 1000))
    noise = rng.normal(size=draws.shape)
    for t in range(1, 1000):
        draws[:, t] = 0.7 * draws[:, t - 1] + noise[:, t]
    draws[3] += 0.3  # one chain a little off
    assert r_hat(draws) == pytest.approx(float(az.rhat(draws)), rel=1e-6)
    assert ess_bulk(draws) == pytest.approx(float(az.ess(draws, method="bulk")), rel=1e-5)
    assert ess_tail(draws) == pytest.approx(float(az.ess(draws, method="tail")), rel=1e-5)


@pytest.mark.parametrize("strategy", ["VI", "Importance"])
def test_every_strategy_with_draws_exports_them_to_arviz(on_backend, strategy):
    az = pytest.importorskip("arviz")
    from inference import VI, Adam, Importance

    ops = ppl.get_backend().ops
    x = ops.asarray(X)

    def guide(x):
        loc = ppl.param("loc", ops.asarray(0.0))
        ppl.sample("mu", dist.Normal(loc, 0.4))

    if strategy == "VI":
        fitted = VI(normal_normal, guide, optimizer=Adam(0.05), rng_seed=0)
        fitted.run(x, num_steps=100, progress=False)
    else:
        fitted = Importance(normal_normal, num_particles=2000, rng_seed=0)
    data = fitted.to_arviz(x, num_samples=60)
    assert data.posterior["mu"].shape == (1, 60)
    mu = float(data.posterior["mu"].values[0, 11])
    expected = -0.5 * (np.asarray(X) - mu) ** 2 - 0.5 * math.log(2 * math.pi)
    np.testing.assert_allclose(data.log_likelihood["x"].values[0, 11], expected, rtol=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.isfinite(az.loo(data).elpd_loo)


def _stretched(x):
    # the posterior's scales differ by 10^4: a from the data (sd 0.01), b from the prior (sd 100)
    a = ppl.sample("a", dist.Normal(0.0, 100.0))
    ppl.sample("b", dist.Normal(0.0, 100.0))
    ppl.sample("x", dist.Normal(a, 0.01), obs=x)


def _fitted(x, sites=("a", "b")):
    ops = ppl.get_backend().ops
    fit = {"a": (0.5, 0.01), "b": (0.0, 100.0)}  # the exact posterior, as a fit would find it
    for name in sites:
        loc, scale = fit[name]
        ppl.sample(name, dist.Normal(ppl.param(f"{name}_loc", ops.asarray(loc)),
                                     ppl.param(f"{name}_scale", ops.asarray(scale),
                                               constraint=dist.constraints.positive)))


def test_a_warm_start_from_vi_scales_the_sampler_to_the_posterior(on_backend):
    # started at the fit's draws with its variances as the mass matrix, a 100-step warm-up
    # samples both scales: b's sd within 4 of its standard errors (sd / sqrt(2 ESS)) of 100
    # and a's mean within 4 of its own; the identity's start leaves b's ESS far lower
    x = ppl.get_backend().ops.asarray(0.5)
    vi = VI(_stretched, _fitted, rng_seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        warm = MCMC(_stretched, num_warmup=100, num_samples=300, rng_seed=0).run(
            x, init_from=vi, progress=False)
    stats = warm.summary()
    assert stats["b"]["ess_bulk"] > 100, stats["b"]
    assert abs(stats["b"]["sd"] - 100.0) < 4 * 100.0 / np.sqrt(2 * stats["b"]["ess_bulk"]), stats["b"]
    assert abs(warm.mean("a") - 0.5) < 4 * warm.stderr("a")
    if ppl.get_backend().name == "jax":  # (torch's cold run takes 25 s: its first step size below)
        cold = MCMC(_stretched, num_warmup=100, num_samples=300, rng_seed=0).run(x, progress=False)
        assert cold.summary()["b"]["ess_bulk"] < stats["b"]["ess_bulk"] / 2
    else:  # the first step size, found with the start's mass matrix: about 1, not a's 0.01
        first = [MCMC(_stretched, num_warmup=0, num_samples=4, rng_seed=0, jit_compile=False).run(
            x, init_from=start, progress=False).step_size[0] for start in (vi, None)]
        assert first[0] > 10 * first[1], first


def test_a_warm_start_missing_a_site_or_not_a_fit_is_named():
    x = torch.tensor(0.5)
    def only_a(x):  # another model's fit: its draws have no b
        a = ppl.sample("a", dist.Normal(0.0, 100.0))
        ppl.sample("x", dist.Normal(a, 0.01), obs=x)
    other = VI(only_a, lambda x: _fitted(x, sites=("a",)), rng_seed=0)
    with pytest.raises(ppl.errors.SiteError, match="lack latent site 'b'"):
        MCMC(_stretched, num_warmup=5, num_samples=5).run(x, init_from=other, progress=False)
    with pytest.raises(TypeError, match="init_from must be a fitted strategy"):
        MCMC(_stretched, num_warmup=5, num_samples=5).run(x, init_from={"a": 0.5}, progress=False)


def test_a_saved_run_resumes_its_chains_in_another_strategy(on_backend, tmp_path):
    # 100 draws per chain, saved; a fresh MCMC loads them and continues 300 more from each
    # chain's last draw with the adapted step size and mass matrix (no warm-up): the 400
    # draws describe the conjugate posterior (mean and sd within 4 standard errors)
    x = ppl.get_backend().ops.asarray(X)
    first = MCMC(normal_normal, num_warmup=200, num_samples=100, num_chains=2, rng_seed=0)
    saved = first.run(x, progress=False)
    first.save(tmp_path / "mcmc.ckpt")
    second = MCMC(normal_normal, num_warmup=200, num_samples=100, num_chains=2, rng_seed=1)
    second.load(tmp_path / "mcmc.ckpt")
    result = second.resume(x, num_samples=300, progress=False)
    assert result.by_chain["mu"].shape == (2, 400) and result.diverging.shape == (2, 400)
    np.testing.assert_array_equal(result.by_chain["mu"][:, :100], saved.by_chain["mu"])
    np.testing.assert_allclose(result.step_size, saved.step_size)  # not adapted again
    stats = result.summary()["mu"]
    assert abs(stats["mean"] - POSTERIOR_MEAN) < 4 * result.stderr("mu")
    assert abs(stats["sd"] - POSTERIOR_SD) < 4 * POSTERIOR_SD / math.sqrt(2 * stats["ess_bulk"])
    np.testing.assert_allclose(result.samples["twice"], 2 * result.samples["mu"], rtol=1e-5)
    assert second.to_arviz().posterior["mu"].shape == (2, 400)


def test_resuming_needs_a_run_and_a_checkpoint_of_as_many_chains(tmp_path):
    x = torch.tensor(X)
    with pytest.raises(RuntimeError, match="nothing to continue"):
        MCMC(normal_normal).resume(x)
    one = MCMC(normal_normal, num_warmup=20, num_samples=10, rng_seed=0)
    one.run(x, progress=False)
    one.save(tmp_path / "one.ckpt")
    with pytest.raises(ppl.errors.CheckpointError, match="1 chains, this MCMC runs 2"):
        MCMC(normal_normal, num_chains=2).load(tmp_path / "one.ckpt")


def test_nuts_reports_each_transition_s_tree_depth(on_backend):
    # the number of doublings per draw (Stan's and ArviZ's tree depth), at most 10: on the
    # stretched posterior after 30 warm-up steps from the identity mass matrix the
    # trajectories run long (mean depth about 4 to 5), started from the fit's scales they stay
    # short (about 1.5 to 2); JAX's depth follows from its steps: a tree of j doublings
    # takes 2^(j-1) to 2^j - 1 leapfrog steps
    x = ppl.get_backend().ops.asarray(0.5)
    vi = VI(_stretched, _fitted, rng_seed=0)
    runs = [MCMC(_stretched, num_warmup=30, num_samples=8, rng_seed=0).run(
        x, init_from=start, progress=False) for start in (None, vi)]
    depths = [run.extra["tree_depth"] for run in runs]
    assert depths[0].shape == (1, 8) and min(d.min() for d in depths) >= 1
    assert max(d.max() for d in depths) <= 10
    assert depths[0].mean() > 2 * depths[1].mean(), depths
    if ppl.get_backend().name == "jax":
        steps, depth = runs[0].extra["num_steps"], depths[0]
        assert np.all((2 ** (depth - 1) <= steps) & (steps <= 2 ** depth - 1))
