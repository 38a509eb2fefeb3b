"""Bad input: every error names the site and says what was expected."""

import math
import re
import warnings

import pytest
import torch

import ppl
import ppl.distributions as dist
from inference import ELBO, IWAE, RWS, VI, VIS, Gumbel, Importance, NonFiniteError, Renyi, Score
from inference.vi.estimators import Enum, Reparam
from ppl.errors import UnsupportedError

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
    with pytest.raises(ValueError, match=re.escape(
            "site 'mu': unknown estimator 'magic'; expected one of ['enum', 'gumbel', 'reparam', 'score'] "
            "or an Estimator instance")):
        VI(model, guide, estimators={"mu": "magic"})


def test_estimator_for_a_site_the_guide_lacks():
    with pytest.raises(ValueError, match="no latent site 'nu'"):
        VI(model, guide, estimators={"nu": "score"}).step(X)


def test_enum_on_continuous_site():
    message = "site 'mu': estimator 'enum' needs a distribution with finite support, but Normal has none"
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
    message = f"IWAE: num_particles must be a positive integer, got {bad!r}"
    with pytest.raises(ValueError, match=re.escape(message)):
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

    message = "site 'penalty' in the model has a non-finite log density under Unit"
    with pytest.raises(NonFiniteError, match=message):
        VI(penalised, guide).step(X)

    def infinite_guide(x):
        ppl.sample("mu", dist.Normal(ppl.param("loc", torch.tensor(float("inf"))), 1.0))

    with pytest.raises(NonFiniteError, match="site 'mu' in the guide has a non-finite value$"):
        VI(model, infinite_guide).step(X)


def test_per_element_weights_for_a_guide_with_no_site_in_the_plate():
    """The model's locals enumerated, the guide only a global factor: the guide's log
    weight has no element to lay the factor on."""
    def enumerated_model(x):
        with ppl.plate("data", 3):
            c = ppl.sample("c", dist.Bernoulli(0.3), infer={"enumerate": "parallel"})
            ppl.sample("x", dist.Normal(2.0 * c, 1.0), obs=x)

    def factor_guide(x):
        ppl.factor("penalty", torch.tensor(-0.5))

    message = ("per-element weights over plates ['data'] for a program with no site in those plates (only "
               "sites outside them); pass independent_plate=None to weight whole traces")
    with pytest.raises(UnsupportedError, match=re.escape(message)):
        VI(enumerated_model, factor_guide, IWAE(3)).loss(X)


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


def test_objectives_defaults_and_reprs():
    """The documented defaults: ELBO one particle, Renyi alpha 0 with 2, IWAE 10, VIS 100,
    RWS 10 with wake_phi 1 and no sleep phase; each repr names its class and arguments."""
    assert [o.num_particles for o in (ELBO(), Renyi(), IWAE(), VIS(), RWS())] == [1, 2, 10, 100, 10]
    assert Renyi().alpha == IWAE().alpha == 0.0
    assert (RWS().wake_phi, RWS().sleep, RWS().sleep_inputs) == (1.0, 0.0, None)
    assert [repr(o) for o in (ELBO(3), VIS(4), IWAE(5), Renyi(0.5, 6))] == [
        "ELBO(num_particles=3)", "VIS(num_particles=4)", "IWAE(num_particles=5)",
        "Renyi(alpha=0.5, num_particles=6)"]


@pytest.mark.parametrize("alpha", [True, False, "0.5", None, math.inf, -math.inf, math.nan])
def test_renyi_alpha_must_be_a_finite_number(alpha):
    with pytest.raises(ValueError, match=re.escape(f"Renyi: alpha must be a finite number, got {alpha!r}")):
        Renyi(alpha, 4)


def test_renyi_alpha_one_is_refused_for_the_elbo():
    message = "Renyi(alpha=1) is the ELBO: use ELBO(num_particles) instead"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        Renyi(1, 4)


@pytest.mark.parametrize("wake_phi, sleep", [(-1.0, 2.0), (1.0, -0.5), (0.0, 0.0), (-1.0, -1.0)])
def test_rws_weights_are_non_negative_and_not_both_zero(wake_phi, sleep):
    with pytest.raises(ValueError, match="^RWS: wake_phi and sleep are non-negative weights, not both zero$"):
        RWS(4, wake_phi=wake_phi, sleep=sleep)


def test_reparam_request_on_a_discrete_site():
    def discrete_model():
        ppl.sample("c", dist.Categorical(torch.ones(3) / 3))

    def discrete_guide():
        ppl.sample("c", dist.Categorical(logits=ppl.param("logits", torch.zeros(3))))

    with pytest.raises(ValueError, match=re.escape(
            "site 'c': estimator 'reparam' needs a reparameterisable distribution, but Categorical has "
            "no rsample; use 'score', 'enum' or 'gumbel'")):
        VI(discrete_model, discrete_guide, estimators={"c": "reparam"}).step()


def test_estimators_defaults_and_reprs():
    assert [repr(e) for e in (Reparam(), Enum(), Score(), Score(None), Gumbel(), Gumbel(0.5, True))] == [
        "Reparam()", "Enum()", "Score(baseline='running')", "Score(baseline=None)",
        "Gumbel(temperature=1.0, straight_through=False)", "Gumbel(temperature=0.5, straight_through=True)"]
    assert Score().decay == 0.9


def test_score_arguments():
    """baseline: 'running', 'learned' or None; decay in [0, 1) (0: the last signal alone)."""
    assert Score("running", decay=0.0).decay == 0.0
    with pytest.raises(ValueError, match=re.escape("Score: baseline must be 'running', 'learned' or None, "
                                                   "got 'mean'")):
        Score("mean")
    for decay in (1.0, 1.5, -0.1):
        with pytest.raises(ValueError, match=re.escape(f"Score: decay must lie in [0, 1), got {decay!r}")):
            Score(decay=decay)


def test_gumbel_temperature_must_be_positive():
    """A number must be positive when given; a schedule, at every step it is read."""
    for tau in (0.0, -1.0, math.nan):
        with pytest.raises(ValueError, match=re.escape(f"Gumbel: temperature must be positive, got {tau!r}")):
            Gumbel(tau)
    assert Gumbel(lambda t: 0.5).temperature_at(3) == 0.5
    for tau in (0.0, -1.0, math.inf, math.nan):
        message = f"Gumbel: temperature at step 3 is {tau!r}; it must be positive"
        with pytest.raises(ValueError, match=re.escape(message)):
            Gumbel(lambda t, tau=tau: tau).temperature_at(3)
