"""GFlowNet-EM: EM with a GFlowNet sampler as the E-step, over a program's discrete latent
sites (assigned in a fixed order) or over a user-defined action space.

``em.py`` is the EM loop, written against the sampler protocol of ``sampler.py``;
``fixed_order.py`` and ``action_sampler.py`` are the two samplers, ``replay.py`` their
replay buffer, ``policies.py`` their default policies, ``losses.py`` the balance losses and
``actions.py`` the action-space protocol.

    >>> from inference.gflownet import GFlowNetEM, ActionSpace, ActionMLPPolicy
"""

from .actions import ActionSpace
from .em import GFlowNetEM
from .policies import ActionMLPPolicy, MLPPolicy

__all__ = ["ActionMLPPolicy", "ActionSpace", "GFlowNetEM", "MLPPolicy"]
