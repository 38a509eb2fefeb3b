"""Strategies that draw from a posterior by simulation: MCMC on the backends' own
kernels, SMC, TRICE (MCMC-EM), the chains' convergence diagnostics, and ArviZ export.

    >>> from inference.mcmc import MCMC, MCMCResult, SMC, SMCResult, TRICE, summary
"""

from .diagnostics import summary
from .kernels import MCMC, MCMCResult
from .smc import SMC
from .smc_result import SMCResult
from .trice import TRICE

__all__ = ["MCMC", "MCMCResult", "SMC", "SMCResult", "TRICE", "summary"]
