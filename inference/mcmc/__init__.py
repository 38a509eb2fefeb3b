"""Strategies that draw from a posterior by simulation: MCMC on the backends' own kernels, SMC,
its convergence diagnostics, and ArviZ export beside them.

    >>> from inference.mcmc import MCMC, MCMCResult, SMC, SMCResult, summary
"""

from .diagnostics import summary
from .kernels import MCMC, MCMCResult
from .smc import SMC, SMCResult

__all__ = ["MCMC", "MCMCResult", "SMC", "SMCResult", "summary"]
