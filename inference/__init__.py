"""``inference``: strategies that turn programs into trainable estimators.

    >>> from inference import VI, Importance, ELBO, IWAE, VIS, RWS, Renyi, Adam
"""

from .causal import (
    Estimate,
    adjustment_formula,
    average_treatment_effect,
    counterfactual,
    interventional,
    probability_of_necessity,
    probability_of_necessity_and_sufficiency,
    probability_of_sufficiency,
)
from .estimators import Enum, Estimator, Gumbel, Reparam, Score
from .gflownet import GFlowNetEM
from .gflownet_actions import ActionMLPPolicy, ActionSpace
from .importance import Importance, ImportanceResult
from .objectives import ELBO, IWAE, RWS, VIS, Objective, Renyi
from .optim import SGD, Adam, AdamW
from .vi import VI
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
    "NonFiniteError",
    "Objective",
    "Renyi",
    "Reparam",
    "Score",
    "adjustment_formula",
    "average_treatment_effect",
    "counterfactual",
    "interventional",
    "probability_of_necessity",
    "probability_of_necessity_and_sufficiency",
    "probability_of_sufficiency",
]
