"""Moved to :mod:`inference.mcmc.arviz_export` (this name is kept for one release)."""

from .mcmc.arviz_export import inference_data, replayed_log_likelihood  # noqa: F401
