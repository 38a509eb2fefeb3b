"""ArviZ's ``InferenceData`` from a strategy's draws, built with ArviZ's own ``from_dict``
(ArviZ 0.2x: its 1.x series, whose ``DataTree`` replaces ``InferenceData``, needs Python
3.12). Groups: ``posterior`` (site -> ``[chain, draw, ...]``), ``sample_stats``,
``log_likelihood`` (each observed site's log density per element and draw: what
``arviz.loo`` and ``arviz.waic`` read) and ``observed_data``.

    >>> import numpy as np
    >>> data = inference_data({"mu": np.zeros((2, 5))}, {"diverging": np.zeros((2, 5), bool)},
    ...                       {"x": np.zeros((2, 5, 3))}, {"x": np.ones(3)})
    >>> sorted(data.groups()), data.posterior["mu"].dims
    (['log_likelihood', 'observed_data', 'posterior', 'sample_stats'], ('chain', 'draw'))
"""

import warnings

import numpy as np

from ppl.errors import UnsupportedError


def arviz():
    """The ``arviz`` module, or an error saying how to install it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # its note on the coming 1.x
            import arviz as az
    except ImportError as error:
        raise UnsupportedError("to_arviz (ArviZ is not installed)",
                               hint="pip install 'arviz>=0.20,<0.24'") from error
    return az


def inference_data(posterior, sample_stats, log_likelihood=None, observed=None):
    """``InferenceData`` from numpy arrays shaped ``[chain, draw, ...]`` (``observed``: the
    data as they are)."""
    az = arviz()
    return az.from_dict(posterior={n: np.asarray(v) for n, v in posterior.items()},
                        sample_stats={n: np.asarray(v) for n, v in sample_stats.items()},
                        log_likelihood=None if not log_likelihood else {
                            n: np.asarray(v) for n, v in log_likelihood.items()},
                        observed_data=None if not observed else {
                            n: np.asarray(v) for n, v in observed.items()})
