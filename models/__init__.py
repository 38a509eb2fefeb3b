"""``models``: example models written once with the ``ppl`` primitives, each with a guide,
a data generator or loader, and where one exists the exact answer to test inference against.

* :mod:`models.conjugate`: Normal-Normal and Beta-Bernoulli (both backends; analytic
  posterior and log evidence).
* :mod:`models.mixture`: 1-D Gaussian mixture with learnable weights (torch; an EM oracle).
* :mod:`models.vae`: a Bernoulli VAE (the IWAE variant is the same class with ``IWAE(K)``).
* :mod:`models.data`: binarised 8x8 digits and a minibatch iterator.
* :mod:`models.hierarchical_mixture`: the GFlowNet-EM paper's hierarchical 2-D Gaussian
  mixture (4 super-clusters x 4 petals) with exact EM and mean-field variational EM.
* :mod:`models.discrete_vae`: a VAE on the digits with a 4 x 4 grid of categorical codes
  and a mean-field encoder.
* :mod:`models.pcfg`: a probabilistic context-free grammar (CNF), a known toy grammar with
  gold trees, the exact inside algorithm, Viterbi, posterior tree sampling, bracketing F1
  and bottom-up tree-construction actions.
* :mod:`models.causal`: structural causal models (front-door, Simpson's paradox,
  linear-Gaussian, a latent confounder) and discrete Bayesian networks as programs.
* :mod:`models.state_space`, :mod:`models.rationales`: a linear-Gaussian chain and an HMM
  with their filters; the 64-rationale toy with its exact posterior.
* :mod:`models.morpho_digits`: the digits re-rendered by a known SCM of stroke thickness
  and intensity (every true counterfactual image is known); :mod:`models.deep_scm`: a deep
  SCM of them (Gaussian or conditional-flow decoder, :mod:`models.conditional_flow`);
  :mod:`models.morpho_oracle`: networks that read the causes off an image.

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
from .discrete_vae import DiscreteVAE
from .hierarchical_mixture import (
    hierarchical_mixture_data,
    hierarchical_mixture_em,
    hierarchical_mixture_model,
    mean_field_em,
)
from .mixture import (
    MEANS,
    mixture_data,
    mixture_guide,
    mixture_log_likelihood,
    mixture_model,
    mixture_weights_mle,
)
from .pcfg import (
    PCFG,
    Tree,
    TreeActions,
    bracketing_f1,
    inside_log_likelihood,
    pcfg_corpus,
    true_pcfg,
    viterbi_parse,
)
from .vae import VAE

__all__ = [
    "DiscreteBayesianNetwork",
    "DiscreteVAE",
    "MEANS",
    "PCFG",
    "Tree",
    "TreeActions",
    "VAE",
    "beta_bernoulli_data",
    "beta_bernoulli_guide",
    "beta_bernoulli_log_evidence",
    "beta_bernoulli_model",
    "beta_bernoulli_posterior",
    "bracketing_f1",
    "confounded_scm",
    "front_door_model",
    "hierarchical_mixture_data",
    "hierarchical_mixture_em",
    "hierarchical_mixture_model",
    "inside_log_likelihood",
    "linear_gaussian_scm",
    "load_binarized_digits",
    "mean_field_em",
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
    "pcfg_corpus",
    "simpson_model",
    "true_pcfg",
    "viterbi_parse",
]
