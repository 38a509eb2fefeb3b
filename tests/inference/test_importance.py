"""Importance sampling: weights, ESS, resampling and expectations against closed forms."""

import math
import warnings

import pytest
import torch

import ppl
import ppl.distributions as dist
from inference import ELBO, VI, Adam, Importance
from ppl.errors import ShapeError
from models.conjugate import normal_normal_log_evidence, normal_normal_model, normal_normal_posterior

X = torch.tensor([0.8, 1.9, 1.2, 0.4, 1.6])
POST_MEAN = float(X.sum()) / (len(X) + 1)
POST_SD = (len(X) + 1) ** -0.5


def model(x):
    mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
    ppl.deterministic("mu_squared", mu * mu)
    with ppl.plate("data", len(x)):
        ppl.sample("x", dist.Normal(mu, 1.0), obs=x)


def test_weights_ess_and_expectations():
    result = Importance(model, num_particles=40_000).run(X)
    w = result.normalized_weights
    assert w.shape == (40_000,) and torch.isclose(w.sum(), torch.tensor(1.0))
    ess = result.effective_sample_size
    assert 1 < ess < 40_000
    assert math.isclose(ess, float(1.0 / (w ** 2).sum()), rel_tol=1e-4)
    _check_posterior_moments(result)


def _check_posterior_moments(result, z=5.0):
    """Self-normalised estimates against the closed form: each standard error is the
    posterior sd of the quantity over sqrt(ESS) (mu ~ N(m, s^2): sd(mu^2) = sqrt(4 m^2 s^2 +
    2 s^4); the sample variance's sd is s^2 sqrt(2))."""
    root_ess = math.sqrt(result.effective_sample_size)
    m, s = POST_MEAN, POST_SD
    assert abs(result.mean("mu") - m) < z * s / root_ess
    second_moment = s ** 2 + m ** 2
    sd_square = math.sqrt(4 * m * m * s * s + 2 * s ** 4)
    assert abs(result.mean("mu_squared") - second_moment) < z * sd_square / root_ess
    assert abs(result.variance("mu") - s ** 2) < z * s * s * math.sqrt(2) / root_ess


def test_a_hundred_million_particles_give_the_closed_form_moments():
    # float32 normalised weights of 10^8 particles summed to 1.0046 and put the mean 60
    # standard errors off (0.98791 for 0.98333); the estimators now sum chunks in log space
    result = Importance(model, num_particles=10**8, rng_seed=0).run(X)
    _check_posterior_moments(result)
    assert abs(float(result.normalized_weights.double().sum()) - 1) < 1e-5
    exact = normal_normal_log_evidence(X)
    assert abs(result.log_evidence - exact) < 5 * result.log_evidence_stderr


def test_resampling_gives_posterior_draws():
    result = Importance(model, num_particles=40_000).run(X, num_steps=2)
    assert result.num_particles == 80_000
    draws = result.resample(20_000)["mu"]
    assert draws.shape == (20_000,)
    # resampled draws: the mean's error combines the weights' ESS and the resample size
    se = POST_SD * math.sqrt(1 / result.effective_sample_size + 1 / 20_000)
    assert abs(float(draws.mean()) - POST_MEAN) < 4 * se
    posterior = Importance(model, num_particles=20_000).posterior(X, num_samples=500)
    assert posterior["mu"].shape == (500,)


def test_missing_site_in_proposal():
    def partial_guide(x):
        pass

    with pytest.raises(ValueError, match="proposal is missing latent site 'mu'"):
        Importance(model, partial_guide, num_particles=10).run(X)


class AmortisedGuide(torch.nn.Module):
    """A guide that is itself a torch.nn.Module: VI finds its parameters without ppl.module."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(1, 2)

    def forward(self, x):
        out = self.net(x.mean().reshape(1))
        ppl.sample("mu", dist.Normal(out[0], out[1].exp()))


def test_module_guide_is_trained_and_used_as_proposal():
    guide = AmortisedGuide()
    before = [p.detach().clone() for p in guide.parameters()]
    vi = VI(model, guide, ELBO(8), Adam(lr=0.05))
    vi.run(X, num_steps=400, progress=False)
    assert all(not torch.equal(a, b) for a, b in zip(before, guide.parameters()))
    result = Importance(model, guide, num_particles=5000).run(X)
    assert result.effective_sample_size > 0.8 * 5000


def test_a_million_particles_on_a_thousand_observations_run_in_chunks_exactly():
    # without chunks this asks for one [10^6, 1000] allocation (4 GB of float32 per tensor);
    # measured: 10^7 particles in 18 s at a 1.5 GB peak, within 5e-5 of the exact value
    x = 0.5 + torch.randn(1000, generator=torch.Generator().manual_seed(0))
    loc, scale = normal_normal_posterior(x)

    def exact_posterior(x):  # every weight is then p(x): the estimate is exact up to rounding
        ppl.sample("mu", dist.Normal(loc, scale))

    exact = normal_normal_log_evidence(x)
    imp = Importance(normal_normal_model, exact_posterior, num_particles=10**6, max_memory=2**25,
                     rng_seed=0)
    result = imp.run(x)
    assert imp.chunk_size < 10**6 and result.log_weights.shape == (10**6,)
    assert result.log_evidence == pytest.approx(exact, abs=1e-3)
    assert result.samples["mu"].shape == (10**6,)


# --------------------------------------- vector sites, large offsets, shifted and enumerated sites
XV = torch.tensor([[0.8, -1.2, 2.0], [1.4, -0.6, 1.1]])  # two observations of a 3-vector


def vector_model(x):
    z = ppl.sample("z", dist.Normal(torch.zeros(3), 1.0).to_event(1))
    with ppl.plate("obs", len(x)):
        ppl.sample("x", dist.Normal(z, 1.0).to_event(1), obs=x)


def test_a_vector_site_has_a_vector_mean_and_variance_and_a_scalar_one_floats():
    """Per component, prior N(0, 1) and two observations of sd 1: N(sum x / 3, 1 / 3). The
    mean's standard error is sqrt(1/3 / ESS); the variance's (1/3) sqrt(2 / ESS)."""
    result = Importance(vector_model, num_particles=40_000, rng_seed=0).run(XV)
    root_ess = math.sqrt(result.effective_sample_size)
    mean, variance = result.mean("z"), result.variance("z")
    assert tuple(mean.shape) == (3,) and tuple(variance.shape) == (3,)
    assert torch.all((mean - XV.sum(0) / 3).abs() < 5 * math.sqrt(1 / 3) / root_ess), mean
    assert torch.all((variance - 1 / 3).abs() < 5 * math.sqrt(2) / 3 / root_ess), variance
    scalar = Importance(model, num_particles=1000, rng_seed=0).run(X)
    assert isinstance(scalar.mean("mu"), float) and isinstance(scalar.variance("mu"), float)


def test_the_variance_of_a_site_far_from_zero_is_not_lost_to_cancellation():
    # z ~ N(1e5, 1) from its prior, no evidence (equal weights): in float32 v^2 - mean^2
    # (or (v + mean)(v - mean)) loses the variance of 1 to rounding at 1e5; the sample
    # variance's standard error is sqrt(2 / K)
    def far():
        ppl.sample("z", dist.Normal(torch.tensor(1e5), 1.0))

    K = 20_000
    result = Importance(far, num_particles=K, rng_seed=0).run()
    assert abs(result.variance("z") - 1.0) < 5 * math.sqrt(2 / K)


def test_a_shifted_site_is_a_sample_and_a_hard_intervened_one_is_not():
    """do(z = 1, w -> w + 10) on z ~ N(0, 1), w ~ N(z, 1) (a 2-vector in a plate of 3): w's
    values vary over particles (a sample, of the plate's and the event's shape), z's do not.
    E[w] = 1 + 10, sd 1."""
    def chain():
        z = ppl.sample("z", dist.Normal(0.0, 1.0))
        with ppl.plate("p", 3):
            ppl.sample("w", dist.Normal(z * torch.ones(2), 1.0).to_event(1))

    K = 10_000
    result = Importance(ppl.do(chain, {"z": 1.0, "w": lambda v: v + 10.0}), num_particles=K,
                        rng_seed=0).run()
    assert "z" not in result.samples and tuple(result.samples["w"].shape) == (K, 3, 2)
    assert torch.all((result.mean("w") - 11.0).abs() < 5 / math.sqrt(K))


MEANS = torch.tensor([-1.0, 2.0])


def mixture(x):
    c = ppl.sample("c", dist.Categorical(torch.tensor([0.3, 0.7])), infer={"enumerate": "parallel"})
    with ppl.plate("data", len(x)):
        ppl.sample("x", dist.Normal(MEANS[c], 1.0), obs=x)


def test_an_enumerated_site_is_summed_out_so_every_weight_is_the_evidence():
    normal = torch.distributions.Normal
    exact = torch.logsumexp(torch.stack([math.log(p) + normal(m, 1.0).log_prob(X).sum()
                                         for p, m in zip((0.3, 0.7), MEANS)]), 0)
    result = Importance(mixture, num_particles=50, rng_seed=0).run(X)
    assert result.log_evidence == pytest.approx(float(exact), abs=1e-5)
    assert result.effective_sample_size == pytest.approx(50, rel=1e-5)


def scaled_model(x, obs_scale=1.0):
    mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
    with ppl.plate("data", len(x)):
        ppl.sample("x", dist.Normal(mu, obs_scale), obs=x)


def _scaled_log_evidence(obs_scale, prior_loc=0.0):
    """log N(X; prior_loc, obs_scale^2 I + 11^T): mu ~ N(prior_loc, 1), x_i ~ N(mu, obs_scale)."""
    covariance = obs_scale ** 2 * torch.eye(len(X)) + torch.ones(len(X), len(X))
    loc = torch.full((len(X),), float(prior_loc))
    return float(torch.distributions.MultivariateNormal(loc, covariance).log_prob(X))


def _scaled_posterior(obs_scale):
    precision = 1 + len(X) / obs_scale ** 2
    return float(X.sum()) / obs_scale ** 2 / precision, precision ** -0.5


def test_posterior_draws_take_the_model_s_keyword_arguments_and_a_default_count():
    mean, sd = _scaled_posterior(0.3)  # 1.158 (0.983 with the default obs_scale)
    draws = Importance(scaled_model, num_particles=20_000, rng_seed=0).posterior(X, obs_scale=0.3)["mu"]
    assert tuple(draws.shape) == (1000,)  # the default num_samples
    assert abs(float(draws.mean()) - mean) < 5 * sd * math.sqrt(1 / 1000 + 1 / 2000)  # ESS > 2000 here


def test_particles_one_at_a_time_give_the_same_estimates():
    mean, sd = _scaled_posterior(0.5)
    K = 400
    result = Importance(scaled_model, num_particles=K, rng_seed=0, vectorize_particles=False).run(
        X, obs_scale=0.5)
    assert tuple(result.log_weights.shape) == (K,) and tuple(result.samples["mu"].shape) == (K,)
    assert abs(result.mean("mu") - mean) < 5 * sd / math.sqrt(result.effective_sample_size)
    assert abs(result.log_evidence - _scaled_log_evidence(0.5)) < 5 * result.log_evidence_stderr


def test_an_untrained_proposal_warns_at_the_user_s_call_and_a_fitted_one_does_not():
    linear = torch.nn.Linear(1, 1)

    def guide(x):
        ppl.module("net", linear)  # a module's weights live in the module: never listed
        loc = ppl.param("guide_loc", torch.tensor(0.0))
        ppl.sample("mu", dist.Normal(loc, 1.0))

    with pytest.warns(UserWarning) as caught:
        Importance(model, guide, num_particles=10, rng_seed=0).step(X)
    message = str(caught[0].message)
    assert message == ("Importance: the proposal's parameters ['guide_loc'] take their initial values; "
                       "to use a fitted guide pass its parameters, e.g. Importance(model, guide, "
                       "param_values=vi.params)")
    assert caught[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fitted = {"guide_loc": torch.tensor(1.0)}
        Importance(model, guide, num_particles=10, rng_seed=0, param_values=fitted).step(X)


# ------------------------------------------------------------------ refusals and fallbacks
def test_a_proposal_site_the_model_observes_is_refused_and_zero_steps_draw_nothing():
    def guide(x):
        ppl.sample("mu", dist.Normal(0.0, 1.0))
        ppl.sample("x", dist.Normal(0.0, 1.0))

    with pytest.raises(ValueError, match=r"the proposal has site 'x' that the model lacks as a latent "
                       r"site \(model sites: \['mu', 'x'\]\)"):
        Importance(model, guide, num_particles=10).run(X)
    with pytest.raises(ValueError, match="^Importance.run: num_steps must be at least 1"):
        Importance(model, num_particles=10).run(X, num_steps=0)


def test_nan_weights_name_the_site_that_made_them():
    def nan_factor(x):
        mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
        ppl.factor("penalty", torch.where(mu > 0, mu * float("nan"), mu))

    with pytest.raises(FloatingPointError, match=r"site 'penalty' \(a factor\) has a NaN log density"):
        Importance(nan_factor, num_particles=200, rng_seed=0).run(X)


def test_auto_falls_back_to_one_particle_at_a_time_for_a_program_that_does_not_broadcast():
    """x @ w: a particle dimension breaks the matrix product; "auto" falls back (with a
    warning) and the evidence is the closed form N(y; 0, I + X X^T) within 5 standard errors.
    Without "auto" the error names the count of particles and the remedy."""
    design = torch.tensor([[1.0, 0.5], [-0.3, 2.0], [0.7, -1.1]])
    y = torch.tensor([0.9, 1.7, -0.4])

    def regression(design, *, obs):
        w = ppl.sample("w", dist.Normal(torch.zeros(2), 1.0).to_event(1))
        ppl.sample("y", dist.Normal(design @ w, 1.0).to_event(1), obs=obs)

    with pytest.raises(ValueError, match=r"the programs failed with their 30 particles vectorised.*"
                       r"Importance\(\.\.\., vectorize_particles=False\)"):
        Importance(regression, num_particles=30, vectorize_particles=True).run(design, obs=y)
    with pytest.warns(UserWarning, match="Importance: the programs do not broadcast over 3000 particles"):
        result = Importance(regression, num_particles=3000, rng_seed=0, vectorize_particles="auto").run(
            design, obs=y)
    # a program that broadcasts stays on the plate: the probe runs it as the call does
    def plated(x, *, obs_scale):
        scaled_model(x, obs_scale=obs_scale)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kept = Importance(plated, num_particles=100, rng_seed=0, vectorize_particles="auto").run(
            X, obs_scale=0.5)
    assert kept.trace is not None  # particles ran at once
    covariance = torch.eye(3) + design @ design.T
    exact = torch.distributions.MultivariateNormal(torch.zeros(3), covariance).log_prob(y)
    assert abs(result.log_evidence - float(exact)) < 5 * result.log_evidence_stderr


def test_chunks_pool_their_samples_and_a_pooled_result_has_no_trace():
    K = 600  # two chunks
    result = Importance(model, num_particles=K, rng_seed=0, chunk_size=300).run(X)
    assert tuple(result.samples["mu"].shape) == (K,) and tuple(result.log_weights.shape) == (K,)
    assert result.trace is None
    assert abs(result.mean("mu") - POST_MEAN) < 5 * POST_SD / math.sqrt(result.effective_sample_size)
    assert Importance(model, num_particles=K, rng_seed=0).run(X).trace is not None
    # every chunk runs the program with the call's keyword arguments
    chunked = Importance(scaled_model, num_particles=4000, rng_seed=0, chunk_size=2000).run(X, obs_scale=0.3)
    assert abs(chunked.log_evidence - _scaled_log_evidence(0.3)) < 5 * chunked.log_evidence_stderr


def test_the_exact_posterior_as_proposal_weights_every_particle_alike():
    """A proposal that is the posterior (its parameters given as fitted, its scale from the
    program's keyword argument) makes every weight the evidence: ESS = K."""
    mean, sd = _scaled_posterior(0.3)

    def posterior_guide(x, obs_scale=1.0):
        loc = ppl.param("loc", torch.tensor(0.0))
        ppl.sample("mu", dist.Normal(loc, (1 + len(x) / obs_scale ** 2) ** -0.5))

    K = 500
    result = Importance(scaled_model, posterior_guide, num_particles=K, rng_seed=0,
                        param_values={"loc": torch.tensor(mean)}).run(X, obs_scale=0.3)
    assert result.effective_sample_size > K * (1 - 1e-3)


def test_one_particle_at_a_time_with_a_single_particle_and_evidence_that_no_particle_meets():
    result = Importance(scaled_model, num_particles=1, rng_seed=0, vectorize_particles=False).run(X)
    assert tuple(result.log_weights.shape) == (1,)

    def impossible():
        ppl.sample("c", dist.Bernoulli(0.5))
        ppl.sample("x", dist.Bernoulli(torch.tensor(0.0)), obs=torch.tensor(1.0))

    with pytest.raises(FloatingPointError, match="every one of the 10 importance weights is zero or one is "
                       "infinite: .*"):
        Importance(impossible, num_particles=10, rng_seed=0).run()


def test_the_model_s_parameters_are_the_given_ones():
    """mu ~ N(m, 1) with m a model parameter, given as 2: the evidence is N(x; 2, I + 11^T)."""
    def centred(x):
        mu = ppl.sample("mu", dist.Normal(ppl.param("m", torch.tensor(0.0)), 1.0))
        with ppl.plate("data", len(x)):
            ppl.sample("x", dist.Normal(mu, 1.0), obs=x)

    result = Importance(centred, num_particles=20_000, rng_seed=0,
                        param_values={"m": torch.tensor(2.0)}).run(X)
    exact = _scaled_log_evidence(1.0, prior_loc=2.0)
    assert abs(result.log_evidence - exact) < 5 * result.log_evidence_stderr


def test_a_non_finite_proposal_site_is_named_as_the_proposal_s():
    def guide(x):
        ppl.sample("mu", dist.Normal(0.0, 1.0))
        ppl.sample("aux", dist.Normal(torch.tensor(float("inf")), 1.0), infer={"is_auxiliary": True})

    with pytest.raises(FloatingPointError, match="importance weights are NaN: site 'aux' in the proposal "
                       "has a non-finite value"):
        Importance(model, guide, num_particles=5, rng_seed=0).run(X)


def test_a_proposal_for_a_site_the_model_would_enumerate_is_used_and_sampled():
    def proposal(x):
        ppl.sample("c", dist.Categorical(torch.tensor([0.5, 0.5])))

    result = Importance(mixture, proposal, num_particles=20_000, rng_seed=0).run(X)
    normal = torch.distributions.Normal
    joint = torch.stack([math.log(p) + normal(m, 1.0).log_prob(X).sum() for p, m in zip((0.3, 0.7), MEANS)])
    assert tuple(result.samples["c"].shape) == (20_000,)  # drawn by the proposal, not summed out
    posterior_c1 = float(torch.softmax(joint, 0)[1])
    assert abs(result.mean("c") - posterior_c1) < 5 * math.sqrt(posterior_c1 * (1 - posterior_c1) / 5000)


def test_a_proposal_site_the_model_lacks_is_named_in_a_warning():
    def proposal(x):
        ppl.sample("mu", dist.Normal(0.0, 1.0))
        ppl.sample("nu", dist.Normal(0.0, 1.0))

    with pytest.warns(UserWarning, match=r"the guide has site 'nu' that the model lacks \(model sites: "
                      r"\['mu', 'x'\]\); it is treated as an auxiliary variable"):
        Importance(model, proposal, num_particles=10, rng_seed=0).run(X)


def test_a_proposal_that_moves_the_particle_dimension_is_named():
    def proposal(x):
        with ppl.plate("data", len(x)):
            local = ppl.sample("local", dist.Normal(0.0, 1.0))
        ppl.sample("mu", dist.Normal(local.sum(-1), 1.0))  # sums the particles' dim too when vectorised

    def with_locals(x):
        with ppl.plate("data", len(x)):
            ppl.sample("local", dist.Normal(0.0, 1.0))
        model(x)

    # three particles on three elements: the moved dimension fits the plate, silently but for the check
    with pytest.raises(ShapeError, match="site 'mu' in the proposal: its log density has size 3 at dim -1"):
        Importance(with_locals, proposal, num_particles=3, rng_seed=0, vectorize_particles=True).run(X[:3])
    # the default runs such a proposal one particle at a time, where it sums what it means to
    with pytest.warns(UserWarning, match="site 'mu' in the proposal: .* running the particles one by one"):
        result = Importance(with_locals, proposal, num_particles=3, rng_seed=0).run(X[:3])
    assert tuple(result.samples["mu"].shape) == (3,)


def test_no_memory_budget_runs_every_particle_at_once():
    result = Importance(model, num_particles=200, rng_seed=0, max_memory=None).run(X)
    assert result.trace is not None and tuple(result.log_weights.shape) == (200,)


def test_bad_arguments_are_named_and_steps_are_counted():
    with pytest.raises(ValueError, match=r"^Importance: num_particles must be a positive integer, got 0$"):
        Importance(model, num_particles=0)
    with pytest.raises(ValueError, match=r"^Importance: max_plate_nesting must be a non-negative integer "
                       r"or None, got -1$"):
        Importance(model, max_plate_nesting=-1)
    for option, message in (
            ({"vectorize_particles": "yes"}, "vectorize_particles must be True, False, 'auto' or 'vmap', "
             "got 'yes'"),
            ({"max_memory": 0}, "max_memory must be a positive integer, got 0"),
            ({"chunk_size": -5}, "chunk_size must be a positive integer, got -5")):
        with pytest.raises(ValueError, match=f"^Importance: {message}$"):
            Importance(model, **option)
    # a seed makes a run reproducible; another seed draws other particles
    first, again, other = (Importance(model, num_particles=50, rng_seed=seed).run(X).log_weights
                           for seed in (3, 3, 4))
    assert torch.equal(first, again) and not torch.equal(first, other)
    sampler = Importance(model, num_particles=10, rng_seed=0)
    sampler.run(X, num_steps=3)
    sampler.step(X)
    assert sampler.step_count == 4


def test_evaluate_is_the_log_evidence_of_one_batch_and_the_default_is_a_thousand_particles():
    evaluated = Importance(scaled_model, num_particles=200, rng_seed=1).evaluate(X, obs_scale=0.3)
    ran = Importance(scaled_model, num_particles=200, rng_seed=1).run(X, obs_scale=0.3)
    assert evaluated == ran.log_evidence
    assert tuple(Importance(model, rng_seed=0).run(X).log_weights.shape) == (1000,)
