"""Causal queries: interventional and counterfactual distributions, effects (ATE, PN, PS,
PNS) and adjustment formulas on data, by exact elimination, importance sampling or VI.

    >>> from inference.causal import interventional, counterfactual, average_treatment_effect
"""

from .draws import CounterfactualDraws, counterfactual_draws
from .mediation import natural_direct_effect, natural_indirect_effect
from .soundness import SoundnessReport, counterfactual_soundness
from .queries import (
    METHODS,
    Estimate,
    adjustment_formula,
    average_treatment_effect,
    counterfactual,
    estimate,
    interventional,
    probability_of_necessity,
    probability_of_necessity_and_sufficiency,
    probability_of_sufficiency,
)

__all__ = ["METHODS", "CounterfactualDraws", "Estimate", "SoundnessReport", "adjustment_formula",
           "average_treatment_effect", "counterfactual", "counterfactual_draws",
           "counterfactual_soundness", "estimate", "interventional", "natural_direct_effect",
           "natural_indirect_effect", "probability_of_necessity",
           "probability_of_necessity_and_sufficiency", "probability_of_sufficiency"]
