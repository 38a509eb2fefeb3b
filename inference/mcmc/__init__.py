"""Strategies that draw from a posterior by simulation: MCMC on the backends' own kernels,
its convergence diagnostics, and ArviZ export beside them.

    >>> from inference.mcmc import MCMC, MCMCResult, summary
"""

from .diagnostics import summary
from .kernels import MCMC, MCMCResult

__all__ = ["MCMC", "MCMCResult", "summary"]
