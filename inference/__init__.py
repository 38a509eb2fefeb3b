"""``inference``: strategies that turn programs into trainable estimators.

    >>> from inference import VI, Importance, ELBO, IWAE, VIS, RWS, Renyi, Adam
"""

from .causal import (
    Estimate,
    adjustment_formula,
    average_treatment_effect,
    counterfactual,
    counterfactual_draws,
    counterfactual_soundness,
    interventional,
    natural_direct_effect,
    natural_indirect_effect,
    probability_of_necessity,
    probability_of_necessity_and_sufficiency,
    probability_of_sufficiency,
)
from .gflownet import ActionMLPPolicy, ActionSpace, GFlowNetEM
from .importance import Importance, ImportanceResult
from .mcmc import MCMC, SMC, TRICE, MCMCResult, SMCResult
from .optim import SGD, Adam, AdamW
from .vi import (ELBO, IWAE, RWS, VI, VIS, Enum, Estimator, Gumbel, Objective, Renyi, Reparam, Score,
                 register_estimator)
from .weights import NonFiniteError

__all__ = [
    "ELBO",
    "IWAE",
    "RWS",
    "SGD",
    "VI",
    "VIS",
    "ActionMLPPolicy",
    "ActionSpace",
    "Adam",
    "AdamW",
    "Enum",
    "Estimate",
    "Estimator",
    "GFlowNetEM",
    "Gumbel",
    "Importance",
    "ImportanceResult",
    "MCMC",
    "MCMCResult",
    "NonFiniteError",
    "Objective",
    "Renyi",
    "SMC",
    "SMCResult",
    "TRICE",
    "Reparam",
    "Score",
    "adjustment_formula",
    "average_treatment_effect",
    "counterfactual",
    "counterfactual_draws",
    "counterfactual_soundness",
    "interventional",
    "natural_direct_effect",
    "natural_indirect_effect",
    "probability_of_necessity",
    "probability_of_necessity_and_sufficiency",
    "probability_of_sufficiency",
    "register_estimator",
]
