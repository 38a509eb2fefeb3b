"""``models``: example models written once with the ``ppl`` primitives, each with a guide,
a data generator or loader, and where one exists the exact answer to test inference against.

* :mod:`models.conjugate`: Normal-Normal and Beta-Bernoulli (both backends; analytic
  posterior and log evidence).
* :mod:`models.mixture`: 1-D Gaussian mixture with learnable weights (torch; an EM oracle).
* :mod:`models.vae`: a Bernoulli VAE (the IWAE variant is the same class with ``IWAE(K)``).
* :mod:`models.data`: binarised 8x8 digits and a minibatch iterator.
* :mod:`models.hierarchical_mixture`: the GFlowNet-EM paper's 4 x 4 hierarchical 2-D
  Gaussian mixture with exact EM.
* :mod:`models.causal`: structural causal models (front-door, Simpson's paradox,
  linear-Gaussian, a latent confounder) and discrete Bayesian networks as programs.

    >>> from models import normal_normal_posterior
    >>> normal_normal_posterior([2.0], prior_loc=0.0, prior_scale=1.0, obs_scale=1.0)
    (1.0, 0.7071067811865476)
"""

from .causal import (
    DiscreteBayesianNetwork,
    confounded_scm,
    front_door_model,
    linear_gaussian_scm,
    simpson_model,
)
from .conjugate import (
    beta_bernoulli_data,
    beta_bernoulli_guide,
    beta_bernoulli_log_evidence,
    beta_bernoulli_model,
    beta_bernoulli_posterior,
    normal_normal_data,
    normal_normal_guide,
    normal_normal_log_evidence,
    normal_normal_model,
    normal_normal_posterior,
)
from .data import load_binarized_digits, minibatches
from .mixture import (
    MEANS,
    mixture_data,
    mixture_guide,
    mixture_log_likelihood,
    mixture_model,
    mixture_weights_mle,
)
from .vae import VAE

__all__ = [
    "MEANS",
    "VAE",
    "DiscreteBayesianNetwork",
    "beta_bernoulli_data",
    "beta_bernoulli_guide",
    "beta_bernoulli_log_evidence",
    "beta_bernoulli_model",
    "beta_bernoulli_posterior",
    "confounded_scm",
    "front_door_model",
    "linear_gaussian_scm",
    "load_binarized_digits",
    "minibatches",
    "mixture_data",
    "mixture_guide",
    "mixture_log_likelihood",
    "mixture_model",
    "mixture_weights_mle",
    "normal_normal_data",
    "normal_normal_guide",
    "normal_normal_log_evidence",
    "normal_normal_model",
    "normal_normal_posterior",
    "simpson_model",
]
