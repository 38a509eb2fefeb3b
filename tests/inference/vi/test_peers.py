"""Pyro's objective and optimiser objects are accepted as they are."""

import functools

import pyro
import pyro.infer
import pyro.optim
import pytest
import torch

import ppl
import ppl.distributions as dist
from inference import ELBO, IWAE, RWS, VI, Renyi
from inference.vi.peers import as_objective
from models import normal_normal_model
from ppl.errors import UnsupportedError

X = torch.tensor([0.8, 1.9, 1.2, 0.4, 1.6])
POST_MEAN = float(X.sum()) / (len(X) + 1)  # N(0, 1) prior, unit noise


model = normal_normal_model  # mu ~ N(0, 1), x_i ~ N(mu, 1)


def guide(x):
    ppl.sample("mu", dist.Normal(ppl.param("loc", torch.tensor(0.0)), 0.4))


@pytest.mark.parametrize("theirs, ours", [
    (pyro.infer.Trace_ELBO(num_particles=3), ELBO(3)),
    (pyro.infer.TraceMeanField_ELBO(), ELBO(1)),
    (pyro.infer.TraceGraph_ELBO(), ELBO(1)),
    (pyro.infer.TraceEnum_ELBO(num_particles=2), ELBO(2)),
    (pyro.infer.RenyiELBO(alpha=0, num_particles=8), IWAE(8)),
    (pyro.infer.RenyiELBO(alpha=0.5, num_particles=4), Renyi(0.5, 4)),
    (pyro.infer.ReweightedWakeSleep(num_particles=5), RWS(5)),
])
def test_pyro_objectives_map_to_the_same_bound(theirs, ours):
    mapped = as_objective(theirs)
    assert type(mapped) is type(ours) and mapped.num_particles == ours.num_particles
    assert getattr(mapped, "alpha", None) == getattr(ours, "alpha", None)


@pytest.mark.parametrize("optimizer", [
    pyro.optim.Adam({"lr": 0.05}),
    functools.partial(torch.optim.Adam, lr=0.05),
    torch.optim.Adadelta,  # a class as it is, with its defaults (lr=1.0)
], ids=["pyro.optim.Adam", "torch factory", "torch class"])
def test_vi_trains_with_pyro_objects(optimizer):
    vi = VI(model, guide, pyro.infer.Trace_ELBO(num_particles=4), optimizer, rng_seed=0)
    vi.run(X, num_steps=400, progress=False)
    # the guide's mean reaches the posterior mean up to SGD noise (the guide scale is fixed)
    assert abs(float(vi.params["loc"]) - POST_MEAN) < 0.15


def test_unsupported_pyro_objects_and_bad_objectives_are_named():
    with pytest.raises(UnsupportedError, match="TraceTailAdaptive_ELBO"):
        VI(model, guide, pyro.infer.TraceTailAdaptive_ELBO())
    with pytest.raises(TypeError, match="objective must be an Objective .* got 'elbo'"):
        VI(model, guide, "elbo")
    vi = VI(model, guide, ELBO(), pyro.optim.Adam(lambda name, param: {"lr": 0.1}))
    with pytest.raises(UnsupportedError, match="per-parameter arguments"):
        vi.step(X)
    built = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    with pytest.raises(TypeError, match="already built over other parameters"):
        VI(model, guide, ELBO(), built).step(X)
