"""``ppl.module`` on JAX takes an Equinox module: its arrays are parameters of the strategy,
trained exactly as the same parameters written with ``ppl.param`` are."""

import pytest

pytest.importorskip("numpyro")
equinox = pytest.importorskip("equinox")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import ppl  # noqa: E402
import ppl.distributions as dist  # noqa: E402
from inference import ELBO, VI, Adam  # noqa: E402
from ppl.errors import SiteError  # noqa: E402

X = jnp.asarray(1.0)


def model(x):
    z = ppl.sample("z", dist.Normal(0.0, 1.0))
    ppl.sample("x", dist.Normal(z, 1.0), obs=x)


def test_an_equinox_module_trains_as_its_parameters_written_by_hand():
    """Same seed, same draws: 25 Adam steps move the module's weight and bias exactly as
    they move ``ppl.param`` sites holding the same initial values in the same arithmetic."""
    ppl.set_backend("jax")
    linear = equinox.nn.Linear(1, 1, key=jax.random.PRNGKey(0))

    def module_guide(x):
        net = ppl.module("net", linear)
        ppl.sample("z", dist.Normal(net(x[None])[0], 0.7))

    def param_guide(x):
        weight, bias = ppl.param("w", linear.weight), ppl.param("b", linear.bias)
        ppl.sample("z", dist.Normal((weight @ x[None] + bias)[0], 0.7))

    fits = []
    for guide in (module_guide, param_guide):
        vi = VI(model, guide, ELBO(), Adam(0.05), rng_seed=3)
        vi.run(X, num_steps=25, progress=False)
        fits.append(vi.params)
    by_module, by_hand = fits
    assert sorted(by_module) == ["net$$$.bias", "net$$$.weight"]
    assert jnp.allclose(by_module["net$$$.weight"], by_hand["w"], rtol=1e-5)
    assert jnp.allclose(by_module["net$$$.bias"], by_hand["b"], rtol=1e-5)
    assert not jnp.allclose(by_hand["w"], linear.weight, atol=0.1)  # they moved


def test_a_module_that_is_not_an_equinox_module_is_named():
    ppl.set_backend("jax")

    def guide(x):
        ppl.module("net", object())

    with pytest.raises(SiteError, match=r"ppl.module\('net'\): on the jax backend a module is an "
                       "equinox.Module, not object"):
        ppl.trace(guide)(X)
