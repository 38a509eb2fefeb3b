"""Moved to :mod:`inference.mcmc.diagnostics` (this name is kept for one release)."""

from .mcmc.diagnostics import ess_bulk, ess_tail, r_hat, split_chains, summary  # noqa: F401
