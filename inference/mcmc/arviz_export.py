"""ArviZ's data objects from a strategy's draws, built with ArviZ's own ``from_dict``:
``InferenceData`` (``kind="InferenceData"``, ArviZ 0.2x's ``arviz.from_dict``; ``arviz.loo``
and ``arviz.summary`` read it) or xarray's ``DataTree`` (``kind="DataTree"``, the object
of ArviZ 1.x, by ``arviz_base.from_dict``; ``arviz_stats.loo`` and ``arviz_stats.summary``
read it, as ``arviz.loo`` does in ArviZ 1.x). Groups: ``posterior`` (site -> ``[chain,
draw, ...]``), ``sample_stats``, ``log_likelihood`` (each observed site's log density per
element and draw: what the LOO and WAIC functions read) and ``observed_data``.

    >>> import numpy as np
    >>> data = inference_data({"mu": np.zeros((2, 5))}, {"diverging": np.zeros((2, 5), bool)},
    ...                       {"x": np.zeros((2, 5, 3))}, {"x": np.ones(3)})
    >>> sorted(data.groups()), data.posterior["mu"].dims
    (['log_likelihood', 'observed_data', 'posterior', 'sample_stats'], ('chain', 'draw'))
    >>> tree = inference_data({"mu": np.zeros((2, 5))}, {}, kind="DataTree")
    >>> type(tree).__name__, tree["posterior"]["mu"].dims
    ('DataTree', ('chain', 'draw'))
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


KINDS = ("InferenceData", "DataTree")


def check_kind(owner, kind):
    if kind not in KINDS:
        raise ValueError(f"{owner}: kind must be one of {KINDS}, got {kind!r}")
    return kind


def inference_data(posterior, sample_stats, log_likelihood=None, observed=None, kind="InferenceData"):
    """``InferenceData`` or ``DataTree`` (``kind``) from numpy arrays shaped ``[chain, draw,
    ...]`` (``observed``: the data as they are)."""
    if kind == "DataTree":
        return _data_tree(posterior, sample_stats, log_likelihood, observed)
    az = arviz()
    return az.from_dict(posterior={n: np.asarray(v) for n, v in posterior.items()},
                        sample_stats={n: np.asarray(v) for n, v in sample_stats.items()},
                        log_likelihood=None if not log_likelihood else {
                            n: np.asarray(v) for n, v in log_likelihood.items()},
                        observed_data=None if not observed else {
                            n: np.asarray(v) for n, v in observed.items()})


def _data_tree(posterior, sample_stats, log_likelihood, observed):
    try:
        import arviz_base
    except ImportError as error:
        raise UnsupportedError("to_arviz(kind='DataTree') (arviz-base is not installed)",
                               hint="pip install 'arviz-base>=0.8' 'arviz-stats>=0.8'") from error
    groups = {"posterior": posterior, "sample_stats": sample_stats,
              "log_likelihood": log_likelihood, "observed_data": observed}
    return arviz_base.from_dict({name: {n: np.asarray(v) for n, v in group.items()}
                                 for name, group in groups.items() if group})


def replayed_log_likelihood(strategy, args, kwargs, by_chain):
    """(observed site -> its data, observed site -> log density per element ``[chain, draw,
    ...]``): each draw of ``by_chain`` replayed through the strategy's model. None for the
    second where a latent site has no draws (summed out by enumeration, or not in a guide's
    draws): a replay would draw it at random, so it is left out with a warning naming it."""
    backend, ops, model = strategy.backend, strategy.ops, strategy.model
    with backend.preserved_rng(), backend.no_grad():
        trace = backend.run(model, args, kwargs)
        observed = {n: ops.to_numpy(s.value) for n, s in trace.sites.items() if s.observed}
        missing = sorted(n for n in trace.latent if n not in by_chain)
        if missing:
            warnings.warn(f"{type(strategy).__name__}.to_arviz: latent sites {missing} have no "
                          "draws (summed out by enumeration, or not in the guide's draws), so the "
                          "pointwise log-likelihood (for arviz.loo) is left out", RuntimeWarning,
                          stacklevel=4)
            return observed, None
        chains, draws = next(iter(by_chain.values())).shape[:2]
        log_lik = {n: [] for n in observed}
        for c in range(chains):
            for d in range(draws):
                values = {n: ops.asarray(by_chain[n][c, d]) for n in trace.latent}
                replayed = backend.run(model, args, kwargs, replay=values)
                for n in observed:
                    log_lik[n].append(ops.to_numpy(replayed[n].log_prob))
    return observed, {n: np.stack(v).reshape((chains, draws) + v[0].shape)
                      for n, v in log_lik.items()}

