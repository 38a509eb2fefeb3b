"""The 'gumbel' estimator on both backends (Bernoulli sites; NumPyro has no
OneHotCategorical): the relaxed ELBO against quadrature, the straight-through ELBO against
the exact discrete one, and JAX's relaxation against torch's density."""

import math

import numpy as np
import pytest
import torch

import ppl
import ppl.distributions as dist
from inference import ELBO, SGD, VI
from inference.vi import Gumbel
from ppl.errors import SiteError

PRIOR_LOGIT, GUIDE_LOGIT, OBSERVED, TAU, K = -0.8, 0.4, 4.0, 0.5, 20_000


def model():
    ops = ppl.get_backend().ops
    c = ppl.sample("c", dist.Bernoulli(logits=ops.asarray(PRIOR_LOGIT)))
    ppl.sample("x", dist.Normal(3.0 * c, 1.0), obs=ops.asarray(OBSERVED))


def guide():
    ops = ppl.get_backend().ops
    ppl.sample("c", dist.Bernoulli(logits=ppl.param("q_logit", ops.asarray(GUIDE_LOGIT))))


def _log_normal(x, loc):
    return -0.5 * (x - loc) ** 2 - 0.5 * math.log(2 * math.pi)


def relaxed_elbo_by_quadrature():
    """Mean and sd of log w under the relaxed guide. y = sigmoid(u) with u = (l + L) / tau,
    L ~ Logistic(0, 1): in u the Jacobians of p and q cancel, and u's density is
    tau * f_L(tau u - l)."""
    u = np.linspace(-120.0, 120.0, 400_001)

    def log_density(logit):
        z = TAU * u - logit
        return math.log(TAU) - z - 2 * np.logaddexp(0.0, -z)

    log_q, log_p = log_density(GUIDE_LOGIT), log_density(PRIOR_LOGIT)
    log_w = log_p + _log_normal(OBSERVED, 3.0 / (1.0 + np.exp(-u))) - log_q
    q = np.exp(log_q)
    mean = np.trapezoid(q * log_w, u)
    return mean, math.sqrt(np.trapezoid(q * (log_w - mean) ** 2, u))


def exact_discrete_elbo():
    total = 0.0
    for c in (0, 1):
        q = 1 / (1 + math.exp(-GUIDE_LOGIT)) if c else 1 / (1 + math.exp(GUIDE_LOGIT))
        p = 1 / (1 + math.exp(-PRIOR_LOGIT)) if c else 1 / (1 + math.exp(PRIOR_LOGIT))
        total += q * (math.log(p) + _log_normal(OBSERVED, 3.0 * c) - math.log(q))
    return total


def test_the_relaxed_elbo_is_its_quadrature(on_backend):
    mean, sd = relaxed_elbo_by_quadrature()
    loss = VI(model, guide, ELBO(K), estimators={"c": Gumbel(TAU)}, rng_seed=0).loss()
    assert abs(-loss - mean) < 5 * sd / math.sqrt(K), (-loss, mean)


def straight_through_gradient_by_quadrature():
    """Mean and sd of d(-log w)/dl at the guide's logit l, with v = h + (y - stop(y)), h =
    1[u > 0], y = sigmoid(u), u = (l + L) / tau: d log w/dl = (l_p + 3 (x - 3 h) - l)
    y (1 - y) / tau - (h - sigmoid(l)) (Bernoulli log densities are linear in v)."""
    u = np.linspace(-120.0, 120.0, 400_001)
    z = TAU * u - GUIDE_LOGIT
    q = np.exp(math.log(TAU) - z - 2 * np.logaddexp(0.0, -z))
    h, y = (u > 0).astype(float), 1 / (1 + np.exp(-u))
    d_log_w = ((PRIOR_LOGIT + 3 * (OBSERVED - 3 * h) - GUIDE_LOGIT) * y * (1 - y) / TAU
               - (h - 1 / (1 + math.exp(-GUIDE_LOGIT))))
    mean = np.trapezoid(q * -d_log_w, u)
    return mean, math.sqrt(np.trapezoid(q * (-d_log_w - mean) ** 2, u))


def test_the_straight_through_value_is_the_discrete_elbo_and_its_gradient_the_relaxed_one(on_backend):
    """Hard values: the bound's value is the exact discrete ELBO's estimate (its sd is that
    of log w over the two outcomes). One SGD step moves the guide's logit by lr times the
    mean of K per-particle gradients, whose expectation and sd are found by quadrature."""
    lr = 0.1
    vi = VI(model, guide, ELBO(K), SGD(lr), estimators={"c": Gumbel(TAU, straight_through=True)},
            rng_seed=0)
    exact = exact_discrete_elbo()
    q1 = 1 / (1 + math.exp(-GUIDE_LOGIT))
    log_w = [math.log(1 - 1 / (1 + math.exp(-PRIOR_LOGIT))) + _log_normal(OBSERVED, 0.0) - math.log(1 - q1),
             math.log(1 / (1 + math.exp(-PRIOR_LOGIT))) + _log_normal(OBSERVED, 3.0) - math.log(q1)]
    sd = math.sqrt(q1 * (1 - q1)) * abs(log_w[1] - log_w[0])
    assert abs(-vi.loss() - exact) < 5 * sd / math.sqrt(K)
    vi.step()
    gradient, gradient_sd = straight_through_gradient_by_quadrature()
    moved = float(vi.params["q_logit"]) - GUIDE_LOGIT
    assert abs(moved + lr * gradient) < 5 * lr * gradient_sd / math.sqrt(K), (moved, -lr * gradient)


def test_jax_relaxation_has_torch_s_density():
    pytest.importorskip("numpyro")
    import jax.numpy as jnp
    import numpyro.distributions as nd

    values = np.linspace(0.02, 0.98, 9)
    for tau, logit in ((0.5, 0.4), (2.0, -1.3)):
        site = nd.Bernoulli(logits=jnp.full(9, logit))
        ours = ppl.get_backend("jax").relaxed("c", site, tau).log_prob(jnp.asarray(values))
        theirs = torch.distributions.RelaxedBernoulli(torch.tensor(tau, dtype=torch.float64),
                                                      logits=torch.tensor(logit, dtype=torch.float64))
        np.testing.assert_allclose(np.asarray(ours), theirs.log_prob(torch.tensor(values)).numpy(), rtol=1e-4)


def test_a_categorical_site_has_no_relaxation_on_jax():
    pytest.importorskip("numpyro")
    import jax.numpy as jnp
    import numpyro.distributions as nd

    with pytest.raises(SiteError, match="site 'c': estimator 'gumbel' relaxes Bernoulli sites on the jax "
                       "backend, not CategoricalProbs"):
        ppl.get_backend("jax").relaxed("c", nd.Categorical(probs=jnp.ones(3) / 3), 0.5)
