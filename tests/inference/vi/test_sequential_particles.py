"""Programs that do not broadcast over a particle dimension run with
``vectorize_particles=False`` (particles one by one, as Pyro does by default)."""

import pyro
import pyro.infer
import pytest
import torch

import ppl
import ppl.distributions as dist
from inference import ELBO, IWAE, VI, Adam, Importance
from ppl.errors import ShapeError

G = torch.Generator().manual_seed(0)
X = torch.randn(30, 3, generator=G)
TRUE_W = torch.tensor([1.0, -2.0, 0.5])
Y = X @ TRUE_W + 0.3 * torch.randn(30, generator=G)


def model(x, y):  # Pyro's Bayesian-regression style: x @ w breaks under a particle plate
    w = ppl.sample("w", dist.Normal(torch.zeros(3), 1.0).to_event(1))
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.Normal(x @ w, 0.3), obs=y)


def guide(x, y):
    loc = ppl.param("w_loc", torch.zeros(3))
    scale = ppl.param("w_scale", 0.1 * torch.ones(3), constraint=dist.constraints.positive)
    ppl.sample("w", dist.Normal(loc, scale).to_event(1))


def test_vectorised_failure_names_the_remedy_or_falls_back():
    with pytest.raises(ShapeError, match="vectorize_particles=False"):
        VI(model, guide, ELBO(8)).step(X, Y)
    vi = VI(model, guide, ELBO(8), vectorize_particles="auto")
    with pytest.warns(UserWarning, match="running the particles one by one"):
        vi.step(X, Y)
    assert vi.vectorize_particles is False and vi.step_count == 1


def test_sequential_particles_equal_pyros_trace_elbo_on_the_same_draws():
    vi = VI(model, guide, ELBO(4), vectorize_particles=False)
    vi.loss(X, Y)  # set-up
    pyro.set_rng_seed(3)
    ours = vi.loss(X, Y)
    pyro.set_rng_seed(3)
    with vi.param_scope():  # Pyro's Trace_ELBO draws the particles in the same order
        theirs = pyro.infer.Trace_ELBO(num_particles=4).loss(model, guide, X, Y)
    assert ours == pytest.approx(theirs, rel=1e-6)


@pytest.mark.parametrize("objective", [ELBO(4), IWAE(4)], ids=["elbo", "iwae"])
def test_sequential_particles_fit_the_regression(objective):
    vi = VI(model, guide, objective, Adam(lr=0.05), vectorize_particles=False, rng_seed=0)
    vi.run(X, Y, num_steps=300, progress=False)
    # the exact posterior mean of w (conjugate: prior N(0, I), noise 0.3)
    precision = torch.eye(3) + X.T @ X / 0.09
    post_mean = torch.linalg.solve(precision, X.T @ Y / 0.09)
    post_sd = torch.linalg.inv(precision).diag().sqrt()
    assert torch.all((vi.params["w_loc"] - post_mean).abs() < 3 * post_sd + 0.02)
    draws = vi.posterior(X, Y, num_samples=50)
    assert draws["w"].shape == (50, 3)
    # one particle at a time as well: the IWAE(200) bound from the fitted guide lies just
    # below the exact log evidence, y ~ N(0, X X^T + 0.09 I) (the guide's family holds
    # the posterior up to its correlations: measured gap about 0.1 nats)
    cov = X @ X.T + 0.09 * torch.eye(len(X))
    exact = float(torch.distributions.MultivariateNormal(torch.zeros(len(X)), cov).log_prob(Y))
    assert exact - 1.0 < vi.evaluate(X, Y, num_particles=200) < exact + 0.05


def test_importance_runs_particles_one_by_one():
    vi = VI(model, guide, ELBO(4), Adam(lr=0.05), vectorize_particles=False, rng_seed=0)
    vi.run(X, Y, num_steps=300, progress=False)
    with pytest.raises(ShapeError, match="vectorize_particles=False"):  # x @ w: no particle plate
        Importance(model, guide, num_particles=50, params=vi.params).run(X, Y)
    result = Importance(model, guide, num_particles=400, params=vi.params, vectorize_particles=False,
                        rng_seed=1).run(X, Y)
    cov = X @ X.T + 0.09 * torch.eye(len(X))
    exact = float(torch.distributions.MultivariateNormal(torch.zeros(len(X)), cov).log_prob(Y))
    assert abs(result.log_evidence - exact) < 4 * result.log_evidence_stderr + 0.02
    assert result.samples["w"].shape == (400, 3)
