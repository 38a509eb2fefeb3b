"""Conjugate models with exact answers: Normal-Normal and Beta-Bernoulli.

Each model is written once with the ``ppl`` primitives, so it runs on PyTorch (Pyro) and,
inside ``with ppl.backend("jax"):``, on JAX (NumPyro). For each there is a model, a
mean-field guide, a data generator, the analytic posterior and the analytic log marginal
likelihood (a Python float, computed with NumPy/``math`` from either backend's arrays).

Normal-Normal: ``mu ~ Normal(prior_loc, prior_scale)``, ``x_i ~ Normal(mu, obs_scale)``.

    >>> import pyro
    >>> import ppl
    >>> from inference import VI, ELBO, Adam, Importance
    >>> pyro.set_rng_seed(0)
    >>> data = normal_normal_data(10, true_mu=1.0, obs_scale=1.0, seed=0)
    >>> post_loc, post_scale = normal_normal_posterior(data)
    >>> round(post_scale, 4)   # 1 / sqrt(1 + 10)
    0.3015
    >>> vi = VI(normal_normal_model, normal_normal_guide, ELBO(), Adam(lr=0.05))
    >>> _ = vi.run(data, num_steps=500, progress=False)
    >>> abs(vi.params["loc"].item() - post_loc) < 0.15
    True
    >>> result = Importance(normal_normal_model, num_particles=5000).run(data)
    >>> abs(result.log_evidence - normal_normal_log_evidence(data)) < 0.05
    True

The same model on JAX (``ppl.param`` values are then JAX arrays held by the VI engine):

    >>> with ppl.backend("jax"):
    ...     data_j = normal_normal_data(10, true_mu=1.0, obs_scale=1.0, seed=0)
    ...     result_j = Importance(normal_normal_model, num_particles=5000).run(data_j)
    >>> abs(result_j.log_evidence - normal_normal_log_evidence(data_j)) < 0.05
    True

Beta-Bernoulli: ``p ~ Beta(a, b)``, ``x_i ~ Bernoulli(p)``.

    >>> flips = beta_bernoulli_data(20, true_p=0.7, seed=0)
    >>> a_post, b_post = beta_bernoulli_posterior(flips, a=1.0, b=1.0)
    >>> a_post + b_post   # a + b + n
    22.0
    >>> result = Importance(beta_bernoulli_model, num_particles=5000).run(flips)
    >>> abs(result.log_evidence - beta_bernoulli_log_evidence(flips)) < 0.05
    True
"""

import math

import numpy as np

import ppl
import ppl.distributions as dist

from ._arrays import asarray, to_numpy

__all__ = [
    "beta_bernoulli_data",
    "beta_bernoulli_guide",
    "beta_bernoulli_log_evidence",
    "beta_bernoulli_model",
    "beta_bernoulli_posterior",
    "normal_normal_data",
    "normal_normal_guide",
    "normal_normal_log_evidence",
    "normal_normal_model",
    "normal_normal_posterior",
]


# ---------------------------------------------------------------------------- Normal-Normal
def normal_normal_model(data, prior_loc=0.0, prior_scale=1.0, obs_scale=1.0):
    """``mu ~ Normal(prior_loc, prior_scale)``; ``data[i] ~ Normal(mu, obs_scale)`` in plate "data".

    ``data``: a 1-D array of the active backend. Returns ``mu``.
    """
    mu = ppl.sample("mu", dist.Normal(prior_loc, prior_scale))
    with ppl.plate("data", data.shape[0]):
        ppl.sample("x", dist.Normal(mu, obs_scale), obs=data)
    return mu


def normal_normal_guide(data, prior_loc=0.0, prior_scale=1.0, obs_scale=1.0):
    """Mean-field guide ``mu ~ Normal(loc, scale)`` with params "loc" and "scale" (positive).

    The family contains the exact posterior, so the ELBO optimum is
    :func:`normal_normal_posterior`. Initialised at the prior.
    """
    loc = ppl.param("loc", asarray(prior_loc))
    scale = ppl.param("scale", asarray(prior_scale), constraint=dist.constraints.positive)
    return ppl.sample("mu", dist.Normal(loc, scale))


def normal_normal_posterior(data, prior_loc=0.0, prior_scale=1.0, obs_scale=1.0):
    """The exact posterior of ``mu``: ``(post_loc, post_scale)`` as Python floats.

    precision = 1 / prior_scale^2 + n / obs_scale^2,
    post_loc = (prior_loc / prior_scale^2 + sum(x) / obs_scale^2) / precision.

        >>> normal_normal_posterior([1.0, 2.0, 0.5])
        (0.875, 0.5)
    """
    x = to_numpy(data).reshape(-1)
    precision = 1.0 / prior_scale ** 2 + x.size / obs_scale ** 2
    post_loc = (prior_loc / prior_scale ** 2 + x.sum() / obs_scale ** 2) / precision
    return float(post_loc), float(precision ** -0.5)


def normal_normal_log_evidence(data, prior_loc=0.0, prior_scale=1.0, obs_scale=1.0):
    """``log p(data)`` in closed form (a Python float).

    Marginally ``data ~ MVN(prior_loc * 1, obs_scale^2 I + prior_scale^2 1 1^T)``; the
    inverse and determinant of that rank-one update follow from Sherman-Morrison and the
    matrix determinant lemma, so this costs O(n).

        >>> round(normal_normal_log_evidence([0.0]), 6)   # log N(0; 0, 2)
        -1.265512
    """
    x = to_numpy(data).reshape(-1)
    n = x.size
    if n == 0:
        return 0.0
    s2, t2 = float(obs_scale) ** 2, float(prior_scale) ** 2
    r = x - prior_loc
    denom = s2 + n * t2
    log_det = (n - 1) * math.log(s2) + math.log(denom)
    quad = (r @ r - t2 * r.sum() ** 2 / denom) / s2
    return float(-0.5 * (n * math.log(2 * math.pi) + log_det + quad))


def normal_normal_data(n, true_mu=0.0, obs_scale=1.0, seed=0, backend=None):
    """``n`` draws from ``Normal(true_mu, obs_scale)`` (NumPy seeded generator) as a float32
    array of ``backend`` (default: the active one)."""
    rng = np.random.default_rng(seed)
    return asarray(rng.normal(true_mu, obs_scale, size=n), backend)


# --------------------------------------------------------------------------- Beta-Bernoulli
def beta_bernoulli_model(data, a=1.0, b=1.0):
    """``p ~ Beta(a, b)``; ``data[i] ~ Bernoulli(p)`` in plate "data" (data: 0./1. floats)."""
    p = ppl.sample("p", dist.Beta(a, b))
    with ppl.plate("data", data.shape[0]):
        ppl.sample("x", dist.Bernoulli(p), obs=data)
    return p


def beta_bernoulli_guide(data, a=1.0, b=1.0):
    """Guide ``p ~ Beta(alpha_q, beta_q)`` with positive params "alpha_q", "beta_q"
    (initialised at the prior); the exact posterior is in the family."""
    alpha_q = ppl.param("alpha_q", asarray(a), constraint=dist.constraints.positive)
    beta_q = ppl.param("beta_q", asarray(b), constraint=dist.constraints.positive)
    return ppl.sample("p", dist.Beta(alpha_q, beta_q))


def beta_bernoulli_posterior(data, a=1.0, b=1.0):
    """The exact posterior ``Beta(a + k, b + n - k)`` (k = number of ones): ``(alpha, beta)``.

        >>> beta_bernoulli_posterior([1.0, 0.0, 1.0], a=2.0, b=2.0)
        (4.0, 3.0)
    """
    x = to_numpy(data).reshape(-1)
    k = float(x.sum())
    return float(a + k), float(b + x.size - k)


def _log_beta(a, b):
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def beta_bernoulli_log_evidence(data, a=1.0, b=1.0):
    """``log p(data) = log B(a + k, b + n - k) - log B(a, b)`` (a Python float).

        >>> round(beta_bernoulli_log_evidence([1.0]), 6)   # log 1/2
        -0.693147
    """
    a_post, b_post = beta_bernoulli_posterior(data, a, b)
    return float(_log_beta(a_post, b_post) - _log_beta(a, b))


def beta_bernoulli_data(n, true_p=0.5, seed=0, backend=None):
    """``n`` Bernoulli(true_p) draws as a float32 0./1. array of ``backend`` (default: active)."""
    rng = np.random.default_rng(seed)
    return asarray((rng.random(n) < true_p).astype(np.float32), backend)
