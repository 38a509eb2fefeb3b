"""One run of guide and model as log-weights, and runs of one particle each stacked as a
vectorised run would lay them out (:class:`~inference.vi.variational.VI`'s bookkeeping).

    >>> from ppl.backends.torch import BACKEND
    >>> log_p, log_q = as_arrays(BACKEND.ops, 0.0, 0.0, 3)  # a program with no site, 3 particles
    >>> log_p.tolist(), log_q.tolist()
    ([0.0, 0.0, 0.0], [0.0, 0.0, 0.0])
"""

from typing import Any, NamedTuple

from ppl.trace_view import Trace

from ..weights import same_in_every_particle


class LogWeights(NamedTuple):
    """One run of guide and model as log-weights: log p and log q per particle (and element), the
    score-function sites' log q, the score terms of sites drawn downstream of enumerated
    ones (or None), and the traces."""

    log_p: Any
    log_q: Any
    score_log_q: dict
    enum_score: Any
    guide_tr: Trace
    model_tr: Trace
    outside: list = None


def stacked(ops, runs):
    """Runs of one particle each, laid out as one vectorised run (the last run's traces)."""
    def concatenate(arrays):
        return ops.concatenate(arrays, 0)
    names = dict.fromkeys(n for r in runs for n in r.score_log_q)  # sites may differ per particle
    score_log_q = {n: concatenate([r.score_log_q[n] if n in r.score_log_q else 0.0 * r.log_q for r in runs])
                   for n in names}
    check_outside_equal(ops, [r.outside for r in runs])
    enum_score = None
    if any(r.enum_score is not None for r in runs):
        enum_score = concatenate([0.0 * r.log_q if r.enum_score is None else r.enum_score for r in runs])
    return LogWeights(concatenate([r.log_p for r in runs]), concatenate([r.log_q for r in runs]), score_log_q,
               enum_score, runs[-1].guide_tr, runs[-1].model_tr)


def check_outside_equal(ops, outsides):
    """Sites outside the plate of per-element weights are counted once: in runs of one
    particle each (``outsides``: each run's ``outside`` list), they must have the same log
    density in every run."""
    first = outsides[0] or []
    for outside in outsides[1:]:
        outside = outside or []
        if [names for _, names in outside] != [names for _, names in first] or any(
                not same_in_every_particle(ops.concatenate([a, b], 0))
                for (a, _), (b, _) in zip(first, outside)):
            names = [n for _, group in (first or outside) for n in group]
            raise ValueError(
                f"sites {names} lie outside the plate of per-element weights but their log "
                "density differs between particles, so the weights do not factorise over that "
                "plate; pass independent_plate=None to weight whole traces")


def as_arrays(ops, log_p, log_q, num):
    """log p and log q as arrays laid out per particle (``num`` of them in this run): a
    program with no site (an empty guide) sums to the number 0."""
    if isinstance(log_p, float) and isinstance(log_q, float):
        log_p = ops.asarray([log_p] * num)  # one weight per particle: log mean exp is then 0
    if isinstance(log_p, float):
        log_p = log_q * 0.0 + log_p
    if isinstance(log_q, float):
        log_q = log_p * 0.0 + log_q
    return log_p, log_q
