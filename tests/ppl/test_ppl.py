"""The language core: primitives, handlers (transform, decorator, context manager), trace view."""

import pyro
import pytest
import torch
from pyro import poutine

import ppl
import ppl.distributions as dist


def model(data):
    mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
    shift = ppl.deterministic("shift", mu + 1.0)
    with ppl.plate("data", len(data), subsample_size=2) as idx:
        ppl.sample("x", dist.Normal(shift, 1.0), obs=data[idx])
    return mu


DATA = torch.tensor([0.1, 0.2, 0.3, 0.4])


def test_trace_view_fields():
    tr = ppl.trace(model)(DATA)
    assert list(tr.sites) == ["mu", "x"]
    x = tr["x"]
    assert x.observed and not tr["mu"].observed
    assert [(p.name, p.dim, p.size) for p in x.plates] == [("data", -1, 2)]
    # subsampling 2 of 4 scales the log density by 2
    expected = 2.0 * torch.distributions.Normal(tr["mu"].value + 1.0, 1.0).log_prob(x.value)
    assert torch.allclose(x.log_prob, expected)
    assert torch.equal(tr.deterministics["shift"], tr["mu"].value + 1.0)
    assert tr.return_value is tr["mu"].value
    assert torch.allclose(tr.log_joint(), tr["mu"].log_prob + expected.sum())
    assert set(tr.latent) == {"mu"} and set(tr.observed) == {"x"}


def test_full_plate_returns_indices_and_needs_no_subsample_site():
    def m():
        with ppl.plate("p", 3) as idx:
            return idx

    assert torch.equal(m(), torch.arange(3))
    tr = poutine.trace(m).get_trace()
    assert "p" not in tr.nodes  # pyro.plate would record a subsample site here

    def sub():
        with ppl.plate("p", 10, subsample_size=3) as idx:
            return idx

    assert len(sub()) == 3 and "p" in poutine.trace(sub).get_trace().nodes


def test_trace_as_context_manager_and_decorator():
    with ppl.trace() as tr:
        model(DATA)
    assert set(tr.sites) == {"mu", "x"}

    @ppl.trace
    def traced(data):
        return model(data)

    assert set(traced(DATA).sites) == {"mu", "x"}


def test_condition_replay_block_scale_mask_seed():
    conditioned = ppl.condition(model, data={"mu": torch.tensor(3.0)})
    tr = ppl.trace(conditioned)(DATA)
    assert tr["mu"].observed and float(tr["mu"].value) == 3.0

    first = ppl.trace(model)(DATA)
    replayed = ppl.trace(ppl.replay(model, trace=first))(DATA)
    assert torch.equal(replayed["mu"].value, first["mu"].value)

    with ppl.trace() as outer:
        ppl.block(model, hide=["x"])(DATA)
    assert set(outer.sites) == {"mu"}

    with ppl.trace() as scaled, ppl.scale(scale=0.5):
        model(DATA)
    assert float(scaled["mu"].scale) == 0.5

    def masked():
        with ppl.plate("p", 3), ppl.mask(mask=torch.tensor([True, False, True])):
            ppl.sample("y", dist.Normal(0.0, 1.0), obs=torch.zeros(3))

    lp = ppl.trace(masked)()["y"].log_prob
    assert lp[1] == 0 and lp[0] != 0

    a = ppl.trace(ppl.seed(model, rng_seed=7))(DATA)["mu"].value
    b = ppl.trace(ppl.seed(model, rng_seed=7))(DATA)["mu"].value
    assert torch.equal(a, b)


def test_handlers_stack_with_pyro_poutine():
    """Our trace sees what pyro.poutine.condition did, and poutine.trace sees our sites."""
    tr = ppl.trace(poutine.condition(model, data={"mu": torch.tensor(1.0)}))(DATA)
    assert tr["mu"].observed
    pyro_tr = poutine.trace(ppl.condition(model, data={"mu": torch.tensor(2.0)})).get_trace(DATA)
    assert float(pyro_tr.nodes["mu"]["value"]) == 2.0


def test_module_registers_parameters_in_param_store():
    net = torch.nn.Linear(2, 1)

    def m():
        ppl.module("net", net)
        return net(torch.ones(2))

    tr = ppl.trace(m)()
    assert set(tr.params) == {"net$$$weight", "net$$$bias"}
    again = ppl.trace(m)()  # the cached fast path reports the same parameters
    assert set(again.params) == set(tr.params)
    assert pyro.get_param_store()["net$$$weight"] is net.weight


def test_jax_backend_primitives_and_trace():
    pytest.importorskip("numpyro")
    import jax.numpy as jnp

    with ppl.backend("jax"):
        assert ppl.get_backend().name == "jax"
        assert type(dist.Normal(0.0, 1.0)).__module__.startswith("numpyro")

        def jmodel(data):
            mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
            with ppl.plate("data", data.shape[0]):
                ppl.sample("x", dist.Normal(mu, 1.0), obs=data)

        tr = ppl.trace(ppl.seed(jmodel, rng_seed=0))(jnp.zeros(3))
        assert list(tr.sites) == ["mu", "x"] and tr["x"].observed
        assert tr["x"].log_prob.shape == (3,)
        assert [p.name for p in tr["x"].plates] == ["data"]
    assert ppl.get_backend().name == "torch"
