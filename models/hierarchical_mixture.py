"""The hierarchical 2-D Gaussian mixture of the GFlowNet-EM paper (Hu et al., 2023).

Four super-clusters, each with four "petals" at fixed offsets (unit distance, on the
diagonals) from its mean; a point picks a super-cluster and a petal uniformly and is drawn
from Normal(super mean + petal offset, 0.25 I). Only the four super-cluster means are
learned. The latents (super-cluster, petal) of a point take 16 values, so the exact
posterior, exact EM and mean-field variational EM (posterior q(super) q(petal)) are
computable; they are the references for GFlowNet-EM.

    >>> x = hierarchical_mixture_data(400, seed=0)
    >>> init = initial_means(x, seed=0)
    >>> _, exact = hierarchical_mixture_em(x, init, iterations=30)
    >>> _, mean_field = mean_field_em(x, init, iterations=30)
    >>> exact[-1] >= exact[0], exact[-1] > mean_field[-1]
    (True, True)
"""

import math

import torch

import ppl
import ppl.distributions as dist

ROOT2 = math.sqrt(2.0)
TRUE_MEANS = torch.tensor([[-ROOT2, -ROOT2], [ROOT2, ROOT2], [ROOT2, -ROOT2], [-ROOT2, ROOT2]])
_ANGLES = (torch.arange(4, dtype=torch.float64) + 0.5) * math.pi / 2
PETAL_OFFSETS = torch.stack([_ANGLES.cos(), _ANGLES.sin()], -1).float()  # [petal, 2]
SD = 0.25
NUM_SUPER, NUM_PETALS = 4, 4


def component_means(means):
    """Super-cluster means ``[4, 2]`` -> the 16 component means ``[super, petal, 2]``."""
    return means[:, None, :] + PETAL_OFFSETS.to(means)[None, :, :]


def hierarchical_mixture_model(x, initial_means=None):
    """super ~ Uniform{4}, petal ~ Uniform{4}, x ~ Normal(means[super] + offset[petal], 0.25 I);
    the learned parameter is ``super_means`` ``[4, 2]`` (initialised to ``initial_means``)."""
    init = TRUE_MEANS if initial_means is None else initial_means
    means = component_means(ppl.param("super_means", init.clone()))
    with ppl.plate("data", x.shape[0]):
        s = ppl.sample("super", dist.Categorical(torch.ones(NUM_SUPER) / NUM_SUPER))
        p = ppl.sample("petal", dist.Categorical(torch.ones(NUM_PETALS) / NUM_PETALS))
        ppl.sample("x", dist.Normal(means[s, p], SD).to_event(1), obs=x)


def hierarchical_mixture_data(n, seed=0):
    """``n`` points from the model with the true means, ``[n, 2]``."""
    g = torch.Generator().manual_seed(seed)
    s = torch.randint(NUM_SUPER, (n,), generator=g)
    p = torch.randint(NUM_PETALS, (n,), generator=g)
    return component_means(TRUE_MEANS)[s, p] + SD * torch.randn(n, 2, generator=g)


def initial_means(x, seed=0):
    """The paper's initialisation: four data points drawn at random, ``[4, 2]``."""
    g = torch.Generator().manual_seed(seed)
    return x[torch.randint(x.shape[0], (NUM_SUPER,), generator=g)].clone()


def log_joint(x, means):
    """log p(x_i, super, petal): ``[n, 4, 4]``."""
    lik = torch.distributions.Normal(component_means(means), SD).log_prob(x[:, None, None, :]).sum(-1)
    return lik - math.log(NUM_SUPER * NUM_PETALS)


def log_likelihood(x, means):
    """Mean log p(x_i) per point (exact, by enumeration)."""
    return float(torch.logsumexp(log_joint(x, means).reshape(x.shape[0], -1), -1).mean())


def posterior(x, means):
    """p(super, petal | x_i): ``[n, 4, 4]``."""
    joint = log_joint(x, means)
    return (joint - torch.logsumexp(joint.reshape(x.shape[0], -1), -1)[:, None, None]).exp()


def _m_step(x, responsibilities, means):
    """Closed-form maximiser of E_q log p(x, z) over the super means: the q-weighted mean
    of x - offset[petal]; a super-cluster with no weight keeps its mean."""
    shifted = x[:, None, :] - PETAL_OFFSETS[None, :, :]  # [n, petal, 2]
    total = torch.einsum("nsp,npd->sd", responsibilities, shifted)
    weight = responsibilities.sum((0, 2))[:, None]
    return torch.where(weight > 1e-12, total / weight.clamp(min=1e-12), means)


def hierarchical_mixture_em(x, initial_means, iterations=100):
    """Exact EM on the super-cluster means; returns (means, per-point log-likelihood after
    each iteration)."""
    means = initial_means.clone()
    history = []
    for _ in range(iterations):
        means = _m_step(x, posterior(x, means), means)
        history.append(log_likelihood(x, means))
    return means, history


def mean_field_em(x, initial_means, iterations=100, seed=0):
    """Mean-field variational EM: the E-step updates q(super | x_i) and q(petal | x_i) in
    turn (coordinate ascent on the ELBO, from a random start), the M-step maximises the
    ELBO over the means in closed form. Returns (means, exact per-point log-likelihood
    after each iteration)."""
    g = torch.Generator().manual_seed(seed)
    means = initial_means.clone()
    q_petal = torch.softmax(torch.rand(x.shape[0], NUM_PETALS, generator=g), -1)
    history = []
    for _ in range(iterations):
        joint = log_joint(x, means)
        q_super = torch.softmax(torch.einsum("nsp,np->ns", joint, q_petal), -1)
        q_petal = torch.softmax(torch.einsum("nsp,ns->np", joint, q_super), -1)
        means = _m_step(x, q_super[:, :, None] * q_petal[:, None, :], means)
        history.append(log_likelihood(x, means))
    return means, history
