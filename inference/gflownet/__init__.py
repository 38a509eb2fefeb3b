"""GFlowNet-EM: EM with a GFlowNet sampler as the E-step, over a program's discrete latent
sites (assigned in a fixed order) or over a user-defined action space.

    >>> from inference.gflownet import GFlowNetEM, ActionSpace, ActionMLPPolicy
"""

from .actions import ActionMLPPolicy, ActionSpace
from .em import GFlowNetEM, MLPPolicy

__all__ = ["ActionMLPPolicy", "ActionSpace", "GFlowNetEM", "MLPPolicy"]
