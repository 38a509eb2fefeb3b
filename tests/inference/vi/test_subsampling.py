"""Subsampled plates with local latents: the model replays the guide's indices, so each
local latent is scored against its own data point (Pyro's SVI tutorial, part II)."""

import math

import pytest
import torch

import ppl
import ppl.distributions as dist
from inference import ELBO, VI, Adam

N, BATCH = 200, 20
PRIOR_SCALE, LOCAL_SCALE, OBS_SCALE = 10.0, 1.0, 0.5


def data(seed=0):
    g = torch.Generator().manual_seed(seed)
    mu = 2.0
    z = mu + LOCAL_SCALE * torch.randn(N, generator=g)
    return z + OBS_SCALE * torch.randn(N, generator=g)


def model(x, subsample_size=BATCH):
    mu = ppl.sample("mu", dist.Normal(0.0, PRIOR_SCALE))
    with ppl.plate("data", N, subsample_size=subsample_size) as ind:
        z = ppl.sample("z", dist.Normal(mu, LOCAL_SCALE))
        ppl.sample("x", dist.Normal(z, OBS_SCALE), obs=x[ind])


def guide(x, subsample_size=BATCH):
    mu_loc = ppl.param("mu_loc", torch.tensor(0.0))
    mu_scale = ppl.param("mu_scale", torch.tensor(1.0), constraint=dist.constraints.positive)
    ppl.sample("mu", dist.Normal(mu_loc, mu_scale))
    z_loc = ppl.param("z_loc", torch.zeros(N))
    z_scale = ppl.param("z_scale", torch.ones(N), constraint=dist.constraints.positive)
    with ppl.plate("data", N, subsample_size=subsample_size) as ind:
        ppl.sample("z", dist.Normal(z_loc[ind], z_scale[ind]))


def exact_local_means(x):
    """E[z_i | x]: z_i given mu and x_i is Gaussian with a mean linear in mu, so its
    posterior mean shrinks x_i toward E[mu | x] by the ratio of variances (exactly)."""
    var_z, var_x = LOCAL_SCALE ** 2, OBS_SCALE ** 2
    # marginally x_i ~ N(mu, var_z + var_x): mu's posterior mean under the N(0, 10^2) prior
    precision = 1 / PRIOR_SCALE ** 2 + N / (var_z + var_x)
    mu = (x.sum() / (var_z + var_x)) / precision
    return (x / var_x + mu / var_z) / (1 / var_x + 1 / var_z)


def elbo_optimum(x):
    """The ELBO's optimum over this mean-field guide, in closed form: on a Gaussian target
    mean field keeps the exact posterior means and takes scales 1 / sqrt(precision_ii) of
    the joint posterior precision (mu: 1/10^2 + N/1; z_i: 1/1 + 1/0.5^2)."""
    z_loc = exact_local_means(x)
    mu_loc = (z_loc.sum() / LOCAL_SCALE ** 2) / (1 / PRIOR_SCALE ** 2 + N / LOCAL_SCALE ** 2)
    mu_scale = (1 / PRIOR_SCALE ** 2 + N / LOCAL_SCALE ** 2) ** -0.5
    z_scale = (1 / LOCAL_SCALE ** 2 + 1 / OBS_SCALE ** 2) ** -0.5
    return {"mu_loc": mu_loc, "mu_scale": torch.tensor(mu_scale), "z_loc": z_loc,
            "z_scale": torch.full((N,), z_scale)}


def full_data_elbo(x, mu_loc, mu_scale, z_loc, z_scale):
    """E_q[log p(x, mu, z) - log q(mu, z)] over all N points, in closed form (Gaussians)."""
    def expected_log_normal(mean_sq_diff, sd):  # E log N(a; b, sd) given E (a - b)^2
        return -0.5 * math.log(2 * math.pi * sd ** 2) - mean_sq_diff / (2 * sd ** 2)

    def entropy(scale):
        return 0.5 * torch.log(2 * math.pi * math.e * scale ** 2)

    prior = expected_log_normal(mu_loc ** 2 + mu_scale ** 2, PRIOR_SCALE)
    local = expected_log_normal((z_loc - mu_loc) ** 2 + z_scale ** 2 + mu_scale ** 2, LOCAL_SCALE)
    obs = expected_log_normal((x - z_loc) ** 2 + z_scale ** 2, OBS_SCALE)
    return float(prior + local.sum() + obs.sum() + entropy(mu_scale) + entropy(z_scale).sum())


def test_the_subsampled_elbo_is_unbiased_for_the_full_data_elbo():
    """Each step scores BATCH of the N points, scaled by N / BATCH, so its expectation over
    the subsample (and the guide's draws) is the full-data ELBO, known in closed form here.
    At the optimum's parameters one step's estimate has sd about 27 nats, mostly from the
    choice of points, so the mean of 400 steps has a standard error of about 1.4 nats
    (taken from the sample itself); we allow five. (Over 4000 steps the mean lay 0.5 se
    from the closed form.)"""
    x = data()
    params = elbo_optimum(x)
    vi = VI(model, guide, ELBO(), rng_seed=0, params=params)
    losses = torch.tensor([vi.loss(x) for _ in range(400)], dtype=torch.float64)
    se = float(losses.std() / math.sqrt(len(losses)))
    assert se < 2.0  # informative: the estimate is this precise
    assert abs(float(losses.mean()) + full_data_elbo(x, **params)) < 5 * se, (
        float(losses.mean()), -full_data_elbo(x, **params), se)


def test_local_latents_fit_their_own_points_with_subsampling():
    """The subsampled fit reaches the full-data ELBO's optimum (closed form, elbo_optimum):
    every point is visited about 200 times in 2000 steps. Adam's iterates scatter around it
    (a single point's z_loc by about 0.2), so the parameters are averaged over the last
    1000 steps (the scales' logs). Over seeds 0-9 the averages gave (mean, sd over seeds):
    z_loc's root-mean-square distance from the exact means, in units of the optimal
    z_scale, (0.105, 0.004); mu_loc's distance in units of the optimal mu_scale (0.02,
    0.14); the mean over points of log z_scale less its optimum (-0.037, 0.006) and log
    mu_scale less its optimum (0.010, 0.041). Each tolerance is |mean| plus five sds.
    Unlike a correlation with the exact means, these see a shift or a rescaling of the
    fitted values, and the scales see how much each term weighs."""
    x = data()
    best = elbo_optimum(x)
    vi = VI(model, guide, ELBO(), Adam(lr=0.05), rng_seed=0)
    vi.run(x, num_steps=1000, progress=False)
    sums = {name: 0.0 for name in best}
    for _ in range(1000):
        vi.step(x)
        params = vi.params
        for name in sums:
            value = params[name]
            sums[name] = sums[name] + (value.log() if name.endswith("scale") else value)
    fit = {name: total / 1000 for name, total in sums.items()}
    z_sd, mu_sd = float(best["z_scale"][0]), float(best["mu_scale"])
    z_rms = float(((fit["z_loc"] - best["z_loc"]) / z_sd).pow(2).mean().sqrt())
    assert z_rms < 0.105 + 5 * 0.004, z_rms
    assert abs(float(fit["mu_loc"] - best["mu_loc"]) / mu_sd) < 0.02 + 5 * 0.14, fit["mu_loc"]
    assert abs(float((fit["z_scale"] - best["z_scale"].log()).mean())) < 0.037 + 5 * 0.006, (
        fit["z_scale"].exp())
    assert abs(float(fit["mu_scale"] - best["mu_scale"].log())) < 0.010 + 5 * 0.041, fit["mu_scale"].exp()


def test_a_subsampled_step_replays_the_guides_indices():
    x = data()
    vi = VI(model, guide, ELBO(), rng_seed=1)
    vi.loss(x)  # set-up
    guide_tr, model_tr = vi._traces((x,), {})
    assert torch.equal(guide_tr.subsamples["data"], model_tr.subsamples["data"])
    # the observed values scored are the subsampled points, scaled by N / BATCH
    ind = guide_tr.subsamples["data"]
    assert torch.equal(model_tr["x"].value, x[ind])
    assert model_tr["x"].scale == pytest.approx(N / BATCH)


def test_jax_model_replays_the_guides_indices():
    pytest.importorskip("numpyro")
    import jax.numpy as jnp

    with ppl.backend("jax"):
        x = jnp.asarray(data().numpy())

        def jax_guide(x, subsample_size=BATCH):
            z_loc = ppl.param("z_loc", jnp.zeros(N))
            with ppl.plate("data", N, subsample_size=subsample_size) as ind:
                ppl.sample("z", dist.Normal(z_loc[ind], 1.0))

        def jax_model(x, subsample_size=BATCH):
            with ppl.plate("data", N, subsample_size=subsample_size) as ind:
                z = ppl.sample("z", dist.Normal(0.0, 1.0))
                ppl.sample("x", dist.Normal(z, OBS_SCALE), obs=x[ind])

        vi = VI(jax_model, jax_guide, ELBO(), rng_seed=0)
        vi.loss(x)
        guide_tr, model_tr = vi._traces((x,), {}, *vi.engine.loss_inputs())
        ind = guide_tr.subsamples["data"]
        assert ind.shape == (BATCH,) and bool((model_tr.subsamples["data"] == ind).all())
        assert bool((model_tr["x"].value == x[ind]).all())
