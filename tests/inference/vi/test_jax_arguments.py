"""On JAX, non-array arguments (ints, bools, strings, callables) are static in compiled
steps and arrays are traced: NumPyro's eight-schools example runs verbatim."""

import numpy as np
import pytest

import ppl
from inference import ELBO, VI, Adam

numpyro = pytest.importorskip("numpyro")
jax = pytest.importorskip("jax")

J = 8
Y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
SIGMA = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])


def eight_schools(J, sigma, y=None):  # NumPyro's example, unchanged
    import numpyro.distributions as dist

    mu = numpyro.sample("mu", dist.Normal(0, 5))
    tau = numpyro.sample("tau", dist.HalfCauchy(5))
    with numpyro.plate("J", J):
        theta = numpyro.sample("theta", dist.Normal(mu, tau))
        numpyro.sample("obs", dist.Normal(theta, sigma), obs=y)


def test_eight_schools_matches_numpyro_svi():
    import optax
    from numpyro.infer import SVI, Trace_ELBO
    from numpyro.infer.autoguide import AutoNormal

    steps = 2000
    with ppl.backend("jax"):
        vi = VI(eight_schools, AutoNormal(eight_schools), ELBO(), Adam(0.05), rng_seed=0)
        ours = vi.run(J, SIGMA, Y, num_steps=steps, progress=False)
        our_mu = float(vi.params["mu_auto_loc"])
    svi = SVI(eight_schools, AutoNormal(eight_schools), optax.adam(0.05), Trace_ELBO())
    theirs = svi.run(jax.random.PRNGKey(0), steps, J, SIGMA, Y, progress_bar=False)
    # the same fit: the final losses (means of 300 single-particle steps, whose spread is
    # about 2 nats, so a standard error near 0.1) within half a nat, mu's location within
    # the optimiser's wander (about one posterior sd of mu is 3; 1.0 allowed)
    assert abs(np.mean(ours[-300:]) - float(np.mean(theirs.losses[-300:]))) < 0.5
    assert abs(our_mu - float(theirs.params["mu_auto_loc"])) < 1.0


def test_static_python_arguments_steer_control_flow():
    import jax.numpy as jnp
    import numpyro.distributions as dist

    def model(x, centred, link):
        mu = numpyro.sample("mu", dist.Normal(0.0, 1.0))
        loc = mu if centred else mu + 1.0  # Python control flow on a bool argument
        with numpyro.plate("data", x.shape[0]):
            numpyro.sample("x", dist.Normal(link(loc), 1.0), obs=x)

    def guide(x, centred, link):
        numpyro.sample("mu", dist.Normal(numpyro.param("loc", 0.0), 0.5))

    x = jnp.full((20,), 2.0)
    with ppl.backend("jax"):
        for centred, expected in ((True, 2.0 * 20 / 21), (False, 1.0 * 20 / 21)):
            vi = VI(model, guide, ELBO(4), Adam(0.05), rng_seed=0)
            vi.run(x, centred, jnp.asarray, num_steps=400, progress=False)  # a callable too
            # the posterior mean of mu: sum(x - shift) / (n + 1)
            assert abs(float(vi.params["loc"]) - expected) < 0.15, (centred, vi.params)
