"""Programs that do not broadcast over a particle dimension run with
``vectorize_particles=False`` (particles one by one, as Pyro does by default)."""

import numpy as np
import pyro
import pyro.infer
import pytest
import torch
from pyro.infer.autoguide import AutoNormal
from pyro.nn import PyroModule, PyroSample

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
        VI(model, guide, ELBO(8), vectorize_particles=True).step(X, Y)
    vi = VI(model, guide, ELBO(8))  # "auto", the default
    with pytest.warns(UserWarning, match="do not broadcast over 8 particles .* running the particles one "
                                         "by one from now on: 8 runs of the programs per step"):
        vi.step(X, Y)
    assert vi.vectorize_particles is False and vi.step_count == 1


class BayesianRegression(PyroModule):
    """Pyro's Bayesian-regression tutorial model (``PyroModule[nn.Linear]``, so ``x @ w``),
    with the noise known so that the evidence has a closed form."""

    def __init__(self):
        super().__init__()
        self.linear = PyroModule[torch.nn.Linear](3, 1)
        self.linear.weight = PyroSample(dist.Normal(0.0, 1.0).expand([1, 3]).to_event(2))
        self.linear.bias = PyroSample(dist.Normal(0.0, 10.0).expand([1]).to_event(1))

    def forward(self, x, y=None):
        mean = self.linear(x).squeeze(-1)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("obs", dist.Normal(mean, 0.3), obs=y)
        return mean


# today: ShapeError "... runs with Importance(..., vectorize_particles=False) ..."
def test_the_bayesian_regression_tutorial_s_fit_is_a_proposal_as_written():
    pyro.set_rng_seed(0)
    model = BayesianRegression()
    guide = AutoNormal(model)
    vi = VI(model, guide, optimizer=Adam(0.05))
    vi.run(X, Y, num_steps=300, progress=False)
    with pytest.warns(UserWarning, match="after site 'linear.bias', .* running the particles one by one "
                                         "from now on: 500 runs of the programs per step") as caught:
        result = Importance(model, guide, num_particles=500, param_values=vi.params).run(X, Y, progress=False)
    assert len([w for w in caught if "broadcast" in str(w.message)]) == 1
    # y ~ N(0, 0.3^2 I + X X^T + 10^2 1 1^T) with w and b integrated out
    cov = 0.09 * torch.eye(len(X)) + X @ X.T + 100.0 * torch.ones(len(X), len(X))
    exact = torch.distributions.MultivariateNormal(torch.zeros(len(X)), cov).log_prob(Y).item()
    assert abs(result.log_evidence - exact) < 5 * result.log_evidence_stderr + 1e-3


@pytest.mark.parametrize("objective, peer", [
    (ELBO(4), pyro.infer.Trace_ELBO(num_particles=4)),
    (IWAE(4), pyro.infer.RenyiELBO(alpha=0, num_particles=4)),
], ids=["elbo", "iwae"])
def test_sequential_particles_equal_pyros_objectives_on_the_same_draws(objective, peer):
    """Pyro runs particles one by one too (guide, then model, per particle), so on the same
    seed both draw the same values: the bound and its gradient are equal up to float32
    rounding (an exact oracle for how the runs' log-weights are stacked, which the IWAE's
    log-mean-exp, unlike the ELBO's mean, does not forgive when particles are mismatched)."""
    vi = VI(model, guide, objective, vectorize_particles=False)
    vi.loss(X, Y)  # set-up
    with vi.param_scope():  # off the initial point, so that no gradient vanishes by symmetry
        pyro.param("w_loc").data.copy_(torch.tensor([0.8, -1.7, 0.4]))
        leaves = [pyro.param(name).unconstrained() for name in ("w_loc", "w_scale")]
    pyro.set_rng_seed(3)
    ours = vi.differentiable_loss(X, Y)
    ours_grads = torch.autograd.grad(ours, leaves)
    pyro.set_rng_seed(3)
    with vi.param_scope():
        theirs = peer.loss_and_grads(model, guide, X, Y)
    assert ours.item() == pytest.approx(theirs, rel=1e-6)
    for mine, leaf in zip(ours_grads, leaves):
        torch.testing.assert_close(mine, leaf.grad, rtol=1e-5, atol=1e-4)


def test_sequential_evaluate_equals_pyros_iwae_on_the_same_draws():
    """``evaluate`` without a particle plate runs its 200 particles one at a time (chunks of
    one) and pools them: log (1/K) sum_k w_k, which is Pyro's RenyiELBO(alpha=0) on the same
    draws. (Against the exact log evidence it could only be checked loosely: the weights of
    a mean-field guide narrower than this correlated posterior have infinite variance.)"""
    vi = VI(model, guide, ELBO(4), vectorize_particles=False)
    vi.loss(X, Y)  # set-up
    pyro.set_rng_seed(5)
    ours = vi.evaluate(X, Y, num_particles=200)
    pyro.set_rng_seed(5)
    with vi.param_scope():
        theirs = -pyro.infer.RenyiELBO(alpha=0, num_particles=200).loss(model, guide, X, Y)
    assert ours == pytest.approx(theirs, rel=1e-6)


def test_sequential_particles_fit_the_regression():
    """The ELBO's optimum in this guide's family is closed form on this conjugate model: the
    exact posterior mean, and scales 1 / sqrt(diag(precision)) (mean field on a Gaussian).
    Adam's iterates at lr 0.05 scatter around it by about half a posterior sd, so the
    parameters are averaged over the last 150 of 300 steps (log scales for the scales).
    Measured over seeds 0-9: the averaged loc lay within sd (0.032, 0.037, 0.029) posterior
    sds of the exact mean (means within 0.013), the averaged log scales within sd 0.025 of
    the optimum's (means within 0.035, not yet converged); the tolerances are five of those
    sds (plus that 0.035 for the scales)."""
    vi = VI(model, guide, ELBO(4), Adam(lr=0.05), vectorize_particles=False, rng_seed=0)
    vi.run(X, Y, num_steps=150, progress=False)
    locs, log_scales = [], []
    for _ in range(150):
        vi.step(X, Y)
        params = vi.params
        locs.append(params["w_loc"])
        log_scales.append(params["w_scale"].log())
    loc, log_scale = torch.stack(locs).mean(0), torch.stack(log_scales).mean(0)
    precision = torch.eye(3) + X.T @ X / 0.09  # conjugate: prior N(0, I), noise sd 0.3
    post_mean = torch.linalg.solve(precision, X.T @ Y / 0.09)
    post_sd = torch.linalg.inv(precision).diag().sqrt()
    assert torch.all((loc - post_mean).abs() < 5 * 0.037 * post_sd), (loc, post_mean)
    assert torch.all((log_scale + 0.5 * precision.diag().log()).abs() < 0.035 + 5 * 0.025), log_scale.exp()
    draws = vi.posterior(X, Y, num_samples=50)
    assert draws["w"].shape == (50, 3)


def test_importance_runs_particles_one_by_one():
    vi = VI(model, guide, ELBO(4), Adam(lr=0.05), vectorize_particles=False, rng_seed=0)
    vi.run(X, Y, num_steps=300, progress=False)
    with pytest.raises(ShapeError, match="vectorize_particles=False"):  # x @ w: no particle plate
        Importance(model, guide, num_particles=50, param_values=vi.params, vectorize_particles=True).run(X, Y)
    result = Importance(model, guide, num_particles=400, param_values=vi.params, vectorize_particles=False,
                        rng_seed=1).run(X, Y)
    cov = X @ X.T + 0.09 * torch.eye(len(X))
    exact = float(torch.distributions.MultivariateNormal(torch.zeros(len(X)), cov).log_prob(Y))
    assert abs(result.log_evidence - exact) < 4 * result.log_evidence_stderr + 0.02
    assert result.samples["w"].shape == (400, 3)


# today (JAX): ShapeError from the first compiled step, naming vectorize_particles=False
def test_the_default_maps_particles_on_jax_where_the_plate_fails():
    pytest.importorskip("numpyro")
    import jax.numpy as jnp

    x, y = jnp.asarray(X.numpy()), jnp.asarray(Y.numpy())
    with ppl.backend("jax"):
        def jax_model(x, y):
            w = ppl.sample("w", dist.Normal(jnp.zeros(3), 1.0).to_event(1))
            with ppl.plate("data", len(x)):
                ppl.sample("y", dist.Normal(x @ w, 0.3), obs=y)

        def jax_guide(x, y):
            ppl.sample("w", dist.Normal(ppl.param("loc", jnp.zeros(3)), 0.05).to_event(1))

        vi = VI(jax_model, jax_guide, IWAE(8), Adam(0.05), rng_seed=0)
        with pytest.warns(UserWarning, match="mapped with jax.vmap from now on"):
            vi.run(x, y, num_steps=300, progress=False)
    assert vi.vectorize_particles == "vmap" and vi.step_count == 300
    # w | x, y ~ N(mean, cov) with cov = (X^T X / 0.09 + I)^-1, mean = cov X^T y / 0.09; a
    # Gaussian guide's best location is the mean (ELBO and IWAE alike, by symmetry): within
    # a posterior standard deviation (about 0.05), which Adam's last steps wander inside
    cov = torch.linalg.inv(X.T @ X / 0.09 + torch.eye(3))
    mean = cov @ X.T @ Y / 0.09
    sd = cov.diagonal().sqrt()
    assert (torch.as_tensor(np.asarray(vi.params["loc"])) - mean).abs().le(sd).all()
