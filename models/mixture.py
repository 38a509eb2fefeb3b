"""A 1-D Gaussian mixture with known component means and unknown mixture weights (torch only).

``weights`` is a model *parameter* (``ppl.param`` on the simplex), each point has a
latent assignment ``c ~ Categorical(weights)`` and ``x ~ Normal(means[c], scale)``.
Fitting model and guide jointly by VI is maximum (marginal) likelihood for the weights,
so :func:`mixture_weights_mle` (exact EM) is the oracle.

The guide has one free categorical per data point (``assignment_logits``, shape
``[N, K]``). It works with every way of treating ``c``: ``estimators={"c": "enum"}``
with the ELBO (an exact sum over the K values, so the objective is deterministic),
score-function gradients (the default for a discrete site), and the importance-weighted
objectives ``IWAE``/``VIS``/``RWS``.

    >>> import pyro, torch
    >>> from inference import VI, ELBO, Adam
    >>> pyro.set_rng_seed(0)
    >>> data = mixture_data(200, weights=[0.2, 0.5, 0.3], seed=0)
    >>> vi = VI(mixture_model, mixture_guide, ELBO(), Adam(lr=0.1), estimators={"c": "enum"})
    >>> _ = vi.run(data, num_steps=200, progress=False)
    >>> mle = mixture_weights_mle(data)
    >>> bool(abs(vi.params["weights"].numpy() - mle).max() < 0.03)
    True
"""

import numpy as np
import torch

import ppl
import ppl.distributions as dist

__all__ = [
    "MEANS",
    "mixture_data",
    "mixture_guide",
    "mixture_log_likelihood",
    "mixture_model",
    "mixture_weights_mle",
]

MEANS = (-4.0, 0.0, 4.0)


def _means(means, like):
    return torch.as_tensor(means, dtype=like.dtype, device=like.device)


def mixture_model(data, means=MEANS, scale=1.0):
    """``c_i ~ Categorical(weights)``, ``data[i] ~ Normal(means[c_i], scale)`` in plate "data".

    ``weights`` is the parameter "weights" (simplex, initialised uniform). ``c`` may carry
    extra leading dimensions (particles, enumeration): ``means[c]`` indexes elementwise.
    """
    mu = _means(means, data)
    K = mu.shape[0]
    weights = ppl.param("weights", torch.full((K,), 1.0 / K, dtype=data.dtype),
                        constraint=dist.constraints.simplex)
    with ppl.plate("data", data.shape[0]):
        c = ppl.sample("c", dist.Categorical(weights))
        ppl.sample("x", dist.Normal(mu[c], scale), obs=data)
    return c


def mixture_guide(data, means=MEANS, scale=1.0):
    """``c_i ~ Categorical(logits=assignment_logits[i])`` with the param "assignment_logits"
    of shape ``[N, K]`` (initialised at zero, i.e. uniform)."""
    K = len(means)
    logits = ppl.param("assignment_logits", torch.zeros(data.shape[0], K, dtype=data.dtype))
    with ppl.plate("data", data.shape[0]):
        return ppl.sample("c", dist.Categorical(logits=logits))


def mixture_data(n, weights=(0.2, 0.5, 0.3), means=MEANS, scale=1.0, seed=0):
    """``n`` points from the mixture (NumPy seeded generator) as a float32 tensor ``[n]``."""
    rng = np.random.default_rng(seed)
    w = np.asarray(weights, dtype=np.float64)
    c = rng.choice(len(w), size=n, p=w / w.sum())
    x = rng.normal(np.asarray(means, dtype=np.float64)[c], scale)
    return torch.as_tensor(x, dtype=torch.float32)


def _component_log_density(data, means, scale):
    x = np.asarray(data.detach().cpu() if hasattr(data, "detach") else data, dtype=np.float64)
    mu = np.asarray(means, dtype=np.float64)
    return -0.5 * ((x[:, None] - mu[None, :]) / scale) ** 2 - np.log(scale * np.sqrt(2 * np.pi))


def mixture_log_likelihood(data, weights, means=MEANS, scale=1.0):
    """``sum_i log sum_k weights[k] N(data[i]; means[k], scale)`` (float)."""
    log_dens = _component_log_density(data, means, scale) + np.log(np.asarray(weights, float))
    top = log_dens.max(1, keepdims=True)
    return float((top[:, 0] + np.log(np.exp(log_dens - top).sum(1))).sum())


def mixture_weights_mle(data, means=MEANS, scale=1.0, iters=500, tol=1e-10):
    """Maximum-likelihood weights by EM with the means and scale fixed (NumPy float64 ``[K]``).

    E-step: responsibilities r_ik proportional to w_k N(x_i; mu_k, scale); M-step:
    w_k = mean_i r_ik. The log likelihood is concave in w, so EM reaches the global optimum.

        >>> x = mixture_data(1000, weights=[0.2, 0.5, 0.3], seed=1)
        >>> w = mixture_weights_mle(x)
        >>> round(float(w.sum()), 6), bool(np.abs(w - [0.2, 0.5, 0.3]).max() < 0.03)
        (1.0, True)
    """
    log_dens = _component_log_density(data, means, scale)
    dens = np.exp(log_dens - log_dens.max(1, keepdims=True))  # rows rescaled: r is unchanged
    K = dens.shape[1]
    w = np.full(K, 1.0 / K)
    for _ in range(iters):
        joint = dens * w
        resp = joint / joint.sum(1, keepdims=True)
        new = resp.mean(0)
        if np.abs(new - w).max() < tol:
            return new
        w = new
    return w
