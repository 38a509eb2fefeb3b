"""Resampling schemes: K ancestor indices drawn from K normalised weights, sorted.

``systematic`` (one uniform offset for all K strata: the lowest variance of the three),
``stratified`` (an offset per stratum) and ``multinomial`` (independent draws). Each keeps
E[number of copies of particle k] = K w_k. The indices come back sorted, so that the
copies of one ancestor are neighbours (:func:`copy_ranks` numbers them).

    >>> import torch
    >>> from ppl.backends.torch import BACKEND
    >>> w = torch.tensor([0.0, 0.5, 0.25, 0.25])
    >>> ancestors(BACKEND.ops, w, "systematic").tolist()   # one point in each quarter
    [1, 1, 2, 3]
"""

SCHEMES = ("systematic", "stratified", "multinomial")


def check_scheme(owner, scheme):
    if scheme not in SCHEMES:
        raise ValueError(f"{owner}: resampling must be one of {SCHEMES}, got {scheme!r}")
    return scheme


def ancestors(ops, weights, scheme, key=None):
    """K sorted ancestor indices for the normalised ``weights [K]`` (``key``: JAX's)."""
    K = weights.shape[0]
    if scheme == "multinomial":
        return ops.sort(ops.categorical(weights, K, key), 0)
    offsets = ops.uniform((1,) if scheme == "systematic" else (K,), weights, key)
    cumulative = ops.cumsum(weights, 0)
    # points in [0, total): scaled by the float sum, the last stratum cannot overshoot it
    points = (ops.astype(ops.arange(K), weights) + offsets) * (cumulative[-1] / K)
    # the first index whose cumulative weight exceeds the point: a weight of 0 is never chosen
    return ops.searchsorted(cumulative, points)


def copy_ranks(ops, sorted_ancestors):
    """For each new particle, how many earlier ones share its (sorted) ancestor: 0, 1, 2..."""
    first = ops.searchsorted(sorted_ancestors, sorted_ancestors - 1)  # where each run starts
    return ops.astype(ops.arange(sorted_ancestors.shape[0]), first) - first


def taken(ops, value, index, axis):
    """``value``'s entries at ``index`` along ``axis`` (its particles at their ancestors)."""
    return ops.moveaxis(ops.moveaxis(value, axis, 0)[index], 0, axis)
