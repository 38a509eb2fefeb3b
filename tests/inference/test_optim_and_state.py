"""Optimisers, the fault barrier on JAX and checkpoint refusals, against oracles.

- ``inference.optim`` specs on JAX: a VI run equals the same steps done by hand with optax
  on the same loss, the first step equals the analytic SGD / Adam update, and the same spec
  takes the same steps on torch (the specs are "named once for both backends").
- NumPyro's handler stack after a model raises inside a JAX strategy call.
- A checkpoint of another backend or another optimiser is refused by name and changes nothing.

The optimisers' program is deterministic (a point-mass guide: the ELBO is log p(x, loc), with
no random draw), so their comparisons are exact up to float32 rounding. (The GFlowNet
policy's optimiser is checked in ``gflownet/test_gflownet.py``.)
"""

import math

import numpy as np
import pytest
import torch

import ppl
import ppl.distributions as dist
from inference import ELBO, SGD, VI, Adam, AdamW, Importance
from inference.optim import OptimizerSpec
from models import normal_normal_guide, normal_normal_model
from ppl.errors import CheckpointError

jax = pytest.importorskip("jax")
numpyro = pytest.importorskip("numpyro")
optax = pytest.importorskip("optax")
jnp = jax.numpy

X = np.array([0.8, 1.9, 1.2, 2.6, 0.4], dtype=np.float32)
LOC0, NOISE0 = 0.3, 1.5


def point_model(x):
    """mu ~ Normal(0, 1); x_i ~ Normal(mu, noise) with ``noise`` a positive model parameter."""
    mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
    noise = ppl.param("noise", _array(x, NOISE0), constraint=dist.constraints.positive)
    with ppl.plate("data", x.shape[0]):
        ppl.sample("x", dist.Normal(mu, noise), obs=x)


def point_guide(x):
    """A point mass at ``loc``: the ELBO is log p(x, mu = loc), deterministic."""
    ppl.sample("mu", dist.Delta(ppl.param("loc", _array(x, LOC0))))


def _array(like, value):
    return torch.tensor(value) if torch.is_tensor(like) else jnp.asarray(value, dtype=jnp.float32)


def negative_log_joint(params, x=jnp.asarray(X)):
    """-log p(x, mu = loc) in the optimiser's coordinates: loc and u = log(noise) (the
    positive parameter is optimised unconstrained)."""
    loc, noise = params["loc"], jnp.exp(params["noise"])
    prior = jax.scipy.stats.norm.logpdf(loc, 0.0, 1.0)
    return -(prior + jax.scipy.stats.norm.logpdf(x, loc, noise).sum())


def analytic_gradient(loc, noise):
    """d(-log p(x, loc)) / d(loc, log noise), by hand: loc - sum(x - loc) / s^2 and
    sum(1 - (x - loc)^2 / s^2)."""
    r = X.astype(np.float64) - loc
    return loc - r.sum() / noise ** 2, (1 - r ** 2 / noise ** 2).sum()


# (spec, the optax transformation it means, the update of the first step by hand or None)
SPECS = {
    "SGD": (SGD(0.05), optax.sgd(0.05), lambda g: -0.05 * g),
    "SGD momentum": (SGD(0.05, momentum=0.9), optax.sgd(0.05, momentum=0.9), lambda g: -0.05 * g),
    # Adam's first step: m_hat = g, v_hat = g^2, so -lr g / (|g| + eps)
    "Adam": (Adam(0.05), optax.adam(0.05), lambda g: -0.05 * g / (abs(g) + 1e-8)),
    "Adam betas": (Adam(0.05, betas=(0.5, 0.8)), optax.adam(0.05, b1=0.5, b2=0.8),
                   lambda g: -0.05 * g / (abs(g) + 1e-8)),
    # torch.optim.AdamW's default weight decay, 0.01 (optax.adamw's own default is 1e-4)
    "AdamW": (AdamW(0.05), optax.adamw(0.05, weight_decay=0.01), None),
    "optax chain": (optax.chain(optax.clip(0.5), optax.sgd(0.05)), None, None),
}


@pytest.mark.parametrize("name", list(SPECS))
def test_vi_on_jax_takes_the_optax_steps_done_by_hand_and_those_of_torch(name):
    spec, transformation, first_update = SPECS[name]
    transformation = transformation or spec  # a transformation passed as it is
    steps = 6
    with ppl.backend("jax"):
        vi = VI(point_model, point_guide, ELBO(), spec, rng_seed=0)
        losses = vi.run(jnp.asarray(X), num_steps=steps, progress=False)
        fitted = [float(vi.params["loc"]), float(vi.params["noise"])]
    # by hand: the same loss, jax.grad, optax's update and apply_updates
    params = {"loc": jnp.asarray(LOC0), "noise": jnp.log(jnp.asarray(NOISE0))}
    state = transformation.init(params)
    expected = []
    for step in range(steps):
        value, grads = jax.value_and_grad(negative_log_joint)(params)
        expected.append(float(value))
        updates, state = transformation.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        if step == 0 and first_update is not None:  # the first update by hand, without optax
            g_loc, g_u = analytic_gradient(LOC0, NOISE0)
            np.testing.assert_allclose([float(params["loc"]), float(params["noise"])],
                                       [LOC0 + first_update(g_loc), math.log(NOISE0) + first_update(g_u)],
                                       rtol=1e-5)
    np.testing.assert_allclose(losses, expected, rtol=1e-5)
    np.testing.assert_allclose(fitted, [float(params["loc"]), float(jnp.exp(params["noise"]))], rtol=1e-5)
    if isinstance(spec, OptimizerSpec):
        # a spec is named once for both backends: torch takes the same steps (float32 on
        # both; the fused torch Adam included)
        torch_vi = VI(point_model, point_guide, ELBO(), spec, rng_seed=0)
        np.testing.assert_allclose(torch_vi.run(torch.tensor(X), num_steps=steps, progress=False),
                                   losses, rtol=1e-5)
        np.testing.assert_allclose([float(torch_vi.params["loc"]), float(torch_vi.params["noise"])],
                                   fitted, rtol=1e-5)


# ----------------------------------------------------------- the fault barrier on JAX
def _unrelated_jax_runs(x):
    """A VI loss, a VI evidence estimate and an importance estimate, each seeded: the
    numbers a fault must not change (uncompiled calls: a new compilation per call would
    cost seconds)."""
    vi = VI(normal_normal_model, normal_normal_guide, ELBO(), Adam(0.05), rng_seed=3)
    evidence = Importance(normal_normal_model, num_particles=100, rng_seed=4).run(x).log_evidence
    return vi.loss(x), vi.evaluate(x, num_particles=20), evidence


def test_a_jax_model_raising_midway_leaves_numpyros_stack_and_later_numbers_alone():
    # The JAX counterpart of test_contract.py's torch test. NumPyro's Messenger.__exit__
    # unwinds its own handlers on an exception, so the barrier (ppl/backends/jax.py,
    # JaxBackend.entered) must leave the stack exactly at its depth on entry: a handler the
    # caller holds (here a block()) stays, nothing else does. A compiled step reruns the
    # model only when it retraces, so the failing step gets data of another length.
    from numpyro.primitives import _PYRO_STACK

    failing = []

    def flaky(x):
        mu = ppl.sample("mu", dist.Normal(0.0, 10.0))
        with ppl.plate("data", x.shape[0]):
            if failing:
                raise RuntimeError("boom")
            ppl.sample("x", dist.Normal(mu, 1.0), obs=x)

    x = jnp.asarray(X)
    assert not _PYRO_STACK
    with ppl.backend("jax"):
        before = _unrelated_jax_runs(x)
        outer = numpyro.handlers.block()
        with outer:
            vi = VI(flaky, normal_normal_guide, ELBO(), Adam(0.05), rng_seed=1)
            importance = Importance(flaky, num_particles=10, rng_seed=2)
            vi.step(x)  # set up, compiled and stepped once: the fault comes in a real call
            importance.run(x)
            failing.append(True)
            for call in (lambda: vi.step(x[:3]), lambda: vi.evaluate(x, num_particles=5),
                         lambda: importance.run(x)):
                with pytest.raises(RuntimeError, match="boom"):
                    call()
                assert _PYRO_STACK == [outer]
        assert not _PYRO_STACK
        assert _unrelated_jax_runs(x) == before
    assert ppl.get_backend().name == "torch"  # the strategy's activated backend left too


# ------------------------------------------------------------- checkpoint refusals
def _fit(backend, optimizer, steps=3):
    """A short seeded Normal-Normal fit on ``backend`` with ``optimizer``."""
    with ppl.backend(backend):
        x = jnp.asarray(X) if backend == "jax" else torch.tensor(X)
        vi = VI(normal_normal_model, normal_normal_guide, ELBO(), optimizer, rng_seed=0)
        vi.run(x, num_steps=steps, progress=False)
    return vi


def _state(strategy):
    """What a refused load must leave alone: parameters, step count, history."""
    return ({n: np.asarray(v).tolist() for n, v in strategy.params.items()}, strategy.step_count,
            list(strategy.history))


@pytest.mark.parametrize("saved_on,loaded_on", [("torch", "jax"), ("jax", "torch")])
def test_a_checkpoint_of_the_other_backend_is_refused_by_name(tmp_path, saved_on, loaded_on):
    _fit(saved_on, Adam(0.05)).save(tmp_path / "ckpt")
    vi = _fit(loaded_on, Adam(0.05), steps=2)
    before = _state(vi)
    message = f"written on the {saved_on} backend; this VI runs on {loaded_on}"
    with pytest.raises(CheckpointError, match=message):
        vi.load(tmp_path / "ckpt")
    assert _state(vi) == before


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_a_checkpoint_of_another_optimiser_is_refused_and_changes_nothing(tmp_path, backend):
    # on torch, Optimizer.load_state_dict took another optimiser's state without a word
    # (Adam's groups into SGD: the next step failed with KeyError 'momentum'), and on JAX
    # AdamW took Adam's state (the same leaves); the engines now record the optimiser's name
    _fit(backend, Adam(0.05)).save(tmp_path / "adam")
    message = "the checkpoint's optimiser is Adam and this strategy's is SGD"
    vi = _fit(backend, SGD(0.05), steps=2)
    before = _state(vi)
    with pytest.raises(CheckpointError, match=message):
        vi.load(tmp_path / "adam")
    assert _state(vi) == before
    # and the strategy goes on as one that was never offered the checkpoint
    twin = _fit(backend, SGD(0.05), steps=2)
    with ppl.backend(backend):
        x = jnp.asarray(X) if backend == "jax" else torch.tensor(X)
        assert vi.step(x) == twin.step(x)
    with ppl.backend(backend):  # refused at load time by a strategy that has not run yet
        fresh = VI(normal_normal_model, normal_normal_guide, ELBO(), AdamW(0.05), rng_seed=0)
        with pytest.raises(CheckpointError, match="optimiser is Adam and this strategy's is AdamW"):
            fresh.load(tmp_path / "adam")
    assert fresh.step_count == 0 and not fresh.history
