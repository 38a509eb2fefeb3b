"""The hierarchical 2-D Gaussian mixture of the GFlowNet-EM paper (Hu et al., 2023): 4
super-clusters x 4 components, standard deviation 0.25, latents (super-cluster, component)
per point, enumerable (16 configurations), so exact EM is the reference.

    >>> x = hierarchical_mixture_data(200, seed=0)
    >>> means, history = hierarchical_mixture_em(x, TRUE_MEANS + 0.1, iterations=20)
    >>> history[-1] >= history[0]
    True
"""

import math

import torch

import ppl
import ppl.distributions as dist

SUPER_CENTRES = torch.tensor([[-2.0, -2.0], [-2.0, 2.0], [2.0, -2.0], [2.0, 2.0]])
OFFSETS = torch.tensor([[-0.5, -0.5], [-0.5, 0.5], [0.5, -0.5], [0.5, 0.5]])
TRUE_MEANS = SUPER_CENTRES[:, None, :] + OFFSETS[None, :, :]  # [super, component, 2]
SD = 0.25


def hierarchical_mixture_model(x, initial_means=None):
    """super ~ Uniform{4}, component ~ Uniform{4}, x ~ Normal(means[super, component], 0.25 I);
    the 16 means are the model's parameter ``component_means``."""
    init = TRUE_MEANS + 0.3 if initial_means is None else initial_means
    means = ppl.param("component_means", init.clone())
    with ppl.plate("data", x.shape[0]):
        s = ppl.sample("super", dist.Categorical(torch.ones(4) / 4))
        c = ppl.sample("component", dist.Categorical(torch.ones(4) / 4))
        ppl.sample("x", dist.Normal(means[s, c], SD).to_event(1), obs=x)


def hierarchical_mixture_data(n, seed=0):
    """``n`` points from the model with the true means, ``[n, 2]``."""
    g = torch.Generator().manual_seed(seed)
    s = torch.randint(4, (n,), generator=g)
    c = torch.randint(4, (n,), generator=g)
    return TRUE_MEANS[s, c] + SD * torch.randn(n, 2, generator=g)


def log_joint(x, means):
    """log p(x_i, super, component): ``[n, 4, 4]``."""
    lik = torch.distributions.Normal(means, SD).log_prob(x[:, None, None, :]).sum(-1)
    return lik - math.log(16.0)


def log_likelihood(x, means):
    """Mean log p(x_i) per point (exact, by enumeration)."""
    return float(torch.logsumexp(log_joint(x, means).reshape(x.shape[0], -1), -1).mean())


def posterior(x, means):
    """p(super, component | x_i): ``[n, 4, 4]``."""
    joint = log_joint(x, means)
    return (joint - torch.logsumexp(joint.reshape(x.shape[0], -1), -1)[:, None, None]).exp()


def hierarchical_mixture_em(x, initial_means, iterations=100):
    """Exact EM on the 16 means (uniform weights, fixed sd); returns (means, per-point
    log-likelihood after each iteration)."""
    means = initial_means.clone()
    history = []
    for _ in range(iterations):
        resp = posterior(x, means)  # [n, 4, 4]
        weight = resp.sum(0)
        means = torch.where(weight[..., None] > 0,
                            torch.einsum("nsc,nd->scd", resp, x) / weight[..., None].clamp(min=1e-12),
                            means)
        history.append(log_likelihood(x, means))
    return means, history
