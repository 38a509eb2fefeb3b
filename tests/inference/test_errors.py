"""Bad input: every error names the site and says what was expected."""

import warnings

import pytest
import torch

import ppl
import ppl.distributions as dist
from inference import IWAE, VI, VIS, Importance, NonFiniteError

X = torch.tensor([0.5, 1.0, 1.5])


def model(x):
    mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
    with ppl.plate("data", 3):
        ppl.sample("x", dist.Normal(mu, 1.0), obs=x)


def guide(x):
    ppl.sample("mu", dist.Normal(ppl.param("loc", torch.tensor(0.0)), 1.0))


def test_guide_missing_latent_site():
    def empty_guide(x):
        pass

    with pytest.raises(ValueError, match="guide is missing latent site 'mu'"):
        VI(model, empty_guide).step(X)


def test_guide_with_site_the_model_lacks_is_auxiliary_with_a_warning():
    # as in Pyro's Trace_ELBO, a guide-only site is part of q; unmarked, it may be a typo
    def extra_guide(x):
        guide(x)
        ppl.sample("sigma", dist.LogNormal(0.0, 1.0))

    with pytest.warns(UserWarning, match="guide has site 'sigma' that the model lacks"):
        VI(model, extra_guide).step(X)

    def marked_guide(x):
        guide(x)
        ppl.sample("sigma", dist.LogNormal(0.0, 1.0), infer={"is_auxiliary": True})

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        VI(model, marked_guide).step(X)


def test_observation_that_does_not_broadcast_with_its_plate():
    with pytest.raises(ValueError, match="site 'x'.*plates: 'data'"):
        VI(model, guide).step(torch.zeros(4))


def test_unknown_estimator_name():
    with pytest.raises(ValueError, match="site 'mu': unknown estimator 'magic'"):
        VI(model, guide, estimators={"mu": "magic"})


def test_estimator_for_a_site_the_guide_lacks():
    with pytest.raises(ValueError, match="no latent site 'nu'"):
        VI(model, guide, estimators={"nu": "score"}).step(X)


def test_enum_on_continuous_site():
    message = "site 'mu': estimator 'enum' needs a distribution with finite support"
    with pytest.raises(ValueError, match=message):
        VI(model, guide, estimators={"mu": "enum"}).step(X)


def test_enum_with_nonlinear_objective():
    with pytest.raises(ValueError, match="site 'mu': estimator 'enum' needs an objective linear"):
        VI(model, guide, IWAE(4), estimators={"mu": "enum"}).step(X)


def test_reparam_request_under_vis():
    with pytest.raises(ValueError, match="site 'mu': VIS samples the guide without reparameterisation"):
        VI(model, guide, VIS(4), estimators={"mu": "reparam"}).step(X)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_non_positive_particle_count(bad):
    with pytest.raises(ValueError, match="num_particles must be a positive integer"):
        IWAE(bad)
    with pytest.raises(ValueError, match="num_particles must be a positive integer"):
        Importance(model, num_particles=bad)


def test_non_finite_loss_names_the_site():
    bad = torch.tensor([0.5, float("inf"), 1.5])
    with pytest.raises(NonFiniteError, match="site 'x' in the model has a non-finite observed value"):
        VI(model, guide).step(bad)

    def penalised(x):
        model(x)
        ppl.factor("penalty", torch.tensor(float("-inf")))

    with pytest.raises(NonFiniteError, match="site 'penalty' in the model has a non-finite log density"):
        VI(penalised, guide).step(X)


def test_duplicate_site_name():
    def twice():
        ppl.sample("a", dist.Normal(0.0, 1.0))
        ppl.sample("a", dist.Normal(0.0, 1.0))

    with pytest.raises(ValueError, match="site 'a' appears twice"):
        ppl.trace(twice)()


def test_unknown_backend_and_trace_lookup():
    with pytest.raises(ValueError, match="unknown backend 'tensorflow'"):
        ppl.set_backend("tensorflow")
    tr = ppl.trace(model)(X)
    with pytest.raises(KeyError, match="no sample site 'y'"):
        tr["y"]


def test_independent_plate_must_exist():
    with pytest.raises(ValueError, match="independent_plate='batch'"):
        VI(model, guide, IWAE(4), independent_plate="batch").step(X)
