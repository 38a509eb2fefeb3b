"""Variational inference: the ``VI`` strategy, its objectives, per-site gradient
estimators and score-function baselines.

    >>> from inference.vi import VI, ELBO, IWAE, Reparam
"""

from .estimators import Enum, Estimator, Gumbel, Reparam, Score, register_estimator
from .objectives import ELBO, IWAE, RWS, VIS, Objective, Renyi
from .variational import VI

__all__ = ["ELBO", "IWAE", "RWS", "VI", "VIS", "Enum", "Estimator", "Gumbel", "Objective",
           "Renyi", "Reparam", "Score", "register_estimator"]
