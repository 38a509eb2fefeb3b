"""Estimators are registered objects: VI reads what an estimator says (``scores``,
``baseline``, ``enumerates``, ``relax_model_site``), never its class, so an estimator of
one's own, registered by name, is treated as the built-in one it mirrors."""

import pyro
import pytest
import torch

import ppl
import ppl.distributions as dist
from inference import ELBO, VI, Estimator, register_estimator
from inference.vi import estimators


def model():
    c = ppl.sample("c", dist.Bernoulli(0.3))
    ppl.sample("x", dist.Normal(2.0 * c, 1.0), obs=torch.tensor(1.5))


def guide():
    p = ppl.param("p", torch.tensor(0.5), constraint=dist.constraints.unit_interval)
    ppl.sample("c", dist.Bernoulli(p))


class PlainScore(Estimator):
    """The score-function estimator without a baseline, written by a user."""

    scores = True

    def draw(self, backend, msg, step):
        backend.draw_detached(msg)


class Summed(Estimator):
    """Exact enumeration of the support, written by a user."""

    enumerates = True

    def draw(self, backend, msg, step):
        estimators.Enum().draw(backend, msg, step)


@pytest.fixture
def registered():
    register_estimator("plain_score", PlainScore)
    register_estimator("summed", Summed)
    yield
    for name in ("plain_score", "summed"):
        estimators.ESTIMATORS.pop(name)


def gradient(vi):
    vi.loss()  # set-up
    pyro.set_rng_seed(7)
    with vi.param_scope():
        loss = vi.differentiable_loss()
        (grad,) = torch.autograd.grad(loss, [pyro.param("p").unconstrained()])
    return float(grad)


def test_a_registered_estimator_is_the_built_in_one_it_mirrors(registered):
    # the same draws give the same surrogate gradient as Score(baseline=None), and the
    # enumerating one the exact gradient of Enum (no draws at all)
    built_in = gradient(VI(model, guide, ELBO(num_particles=4), estimators={"c": estimators.Score(None)}))
    mine = gradient(VI(model, guide, ELBO(num_particles=4), estimators={"c": "plain_score"}))
    assert mine == pytest.approx(built_in, rel=1e-6)
    exact = gradient(VI(model, guide, ELBO(), estimators={"c": "enum"}))
    summed = gradient(VI(model, guide, ELBO(), estimators={"c": "summed"}))
    assert summed == pytest.approx(exact, rel=1e-6)
    assert summed != pytest.approx(mine, rel=1e-3)  # the draws matter to the score estimate


def test_registering_refuses_what_is_not_an_estimator():
    with pytest.raises(TypeError, match="expected a subclass of Estimator"):
        register_estimator("bad", object)

    class NoDraw(Estimator):
        pass

    with pytest.raises(TypeError, match="NoDraw does not define draw"):
        register_estimator("bad", NoDraw)
    with pytest.raises(ValueError, match="non-empty string"):
        register_estimator("", PlainScore)
    with pytest.raises(ValueError, match="unknown estimator 'bad'"):
        VI(model, guide, estimators={"c": "bad"}).step()
