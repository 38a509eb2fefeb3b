"""Interventions and evidence that check their site names: ``do`` and ``condition``, written
once for both backends.

``do`` replaces a site's mechanism. The value of an intervention may be

- a number or array (hard intervention): the site takes that value, broadcast over its
  plates, and no longer depends on its parents;
- a distribution (stochastic intervention): the site is drawn from it instead;
- a callable (shift intervention): the site takes ``f(natural)``, where the natural
  (pre-intervention) value is drawn from the original mechanism as site
  ``"<name>__natural"``.

A hard or shift-intervened site is recorded as observed under a point mass, so it adds
nothing to the log density and needs no guide. Naming a site the program does not have is
an error that suggests the closest name. Both backends give the same trace:

    >>> import ppl, ppl.distributions as dist
    >>> def model():
    ...     x = ppl.sample("x", dist.Normal(0.0, 1.0))
    ...     return ppl.sample("y", dist.Normal(2 * x, 0.1))
    >>> for name in ("torch", "jax"):
    ...     with ppl.backend(name):
    ...         tr = ppl.trace(ppl.do(model, {"x": 1.0}))()
    ...         print(name, float(tr["x"].value), tr["x"].observed, tr["x"].infer["do"])
    torch 1.0 True hard
    jax 1.0 True hard
    >>> ppl.do(model, {"z": 0.0})()
    Traceback (most recent call last):
    ...
    ValueError: do: the program has no sample site 'z' (its sites: ['x', 'y'])
"""

import difflib

from ..backend import get_backend
from ..shapes import broadcast_shape
from ..site_handler import SiteHandler
from ..validation import check_site_values

NATURAL_SUFFIX = "__natural"


def closest_name(name, candidates):
    """The candidate most like ``name`` (ignoring case), or None."""
    by_lower = {str(c).lower(): c for c in candidates}
    close = difflib.get_close_matches(str(name).lower(), list(by_lower), n=1)
    return by_lower[close[0]] if close else None


def missing_site_error(kind, name, seen):
    close = closest_name(name, seen)
    hint = f"; did you mean {close!r}?" if close is not None else f" (its sites: {sorted(seen)})"
    return ValueError(f"{kind}: the program has no sample site {name!r}{hint}")


class CheckedSites(SiteHandler):
    """Base for handlers keyed by site name: on leaving, every key must have been visited."""

    kind = "handler"

    def __init__(self, names):
        self._names = set(names)
        self._seen = set()

    def enter(self):
        self._seen = set()

    def postprocess_sample(self, msg):
        self._seen.add(msg["name"])

    def exit(self, exc_type):
        if exc_type is None:
            for name in sorted(self._names - self._seen):
                raise missing_site_error(self.kind, name, self._seen)


def fit_to_site(name, value, fn, ops=None):
    """``value`` as an array broadcast to the site's batch + event shape, or a clear error
    (``ops``: the backend's array ops; the active backend's by default)."""
    ops = ops or get_backend().ops
    shape = tuple(fn.batch_shape) + tuple(fn.event_shape)
    value = ops.site_value(value, fn)
    try:
        return ops.broadcast_to(value, broadcast_shape(tuple(value.shape), shape))
    except (RuntimeError, ValueError):
        raise ValueError(
            f"site {name!r}: a value of shape {tuple(value.shape)} does not fit the site's "
            f"batch + event shape {shape}") from None


class DoMessenger(CheckedSites):
    """``ppl.do``'s handler (one implementation for both backends)."""

    kind = "do"

    def __init__(self, interventions):
        super().__init__(interventions)
        check_site_values("do", interventions)
        self.interventions = dict(interventions)

    def process_sample(self, msg):
        name = msg["name"]
        if name not in self.interventions or msg["infer"].get("do") is not None:
            return
        if msg["infer"].get("evidence"):
            raise ValueError(f"do: site {name!r} is conditioned on, so intervening on it would "
                             "discard the evidence; use ppl.counterfactual_worlds for evidence in another "
                             "world")
        action = self.interventions[name]
        fn, ops = msg["fn"], self.backend.ops
        if ops.is_distribution(action):
            msg["fn"] = _broadcast_distribution(name, action, fn)
            msg["infer"] = {**msg["infer"], "do": "stochastic"}
            return
        if callable(action):
            natural = self._draw_natural(msg)
            value = fit_to_site(name, action(natural), fn, ops)
            kind = "shift"
        else:
            value = fit_to_site(name, action, fn, ops)
            kind = "hard"
        msg["value"] = value
        # the log density is a scalar zero, not one per batch element: the point mass does
        # not depend on the values the original distribution's batch shape came from
        msg["fn"] = self.backend.distributions.Delta(
            value, log_density=ops.asarray(0.0, like=value), event_dim=len(fn.event_shape),
            validate_args=False)
        msg["is_observed"] = True
        msg["infer"] = {**msg["infer"], "do": kind}

    def _draw_natural(self, msg):
        """The pre-intervention value, a site of its own drawn through every handler (the
        plates re-enter as it passes them)."""
        return self.backend.primitives.sample(msg["name"] + NATURAL_SUFFIX, msg["fn"],
                                              infer={**msg["infer"], "do": "natural"})


def _broadcast_distribution(name, action, fn):
    try:
        shape = broadcast_shape(tuple(action.batch_shape), tuple(fn.batch_shape))
    except RuntimeError:
        raise ValueError(
            f"site {name!r}: the intervention's batch shape {tuple(action.batch_shape)} does not "
            f"fit the site's {tuple(fn.batch_shape)}") from None
    if tuple(action.event_shape) != tuple(fn.event_shape):
        raise ValueError(
            f"site {name!r}: the intervention's event shape {tuple(action.event_shape)} differs "
            f"from the site's {tuple(fn.event_shape)}")
    return action.expand(shape) if tuple(action.batch_shape) != shape else action


class ConditionMessenger(CheckedSites):
    """``ppl.condition``'s handler (one implementation for both backends)."""

    kind = "condition"

    def __init__(self, data):
        super().__init__(data)
        check_site_values("condition", data)
        self.data = dict(data)

    def process_sample(self, msg):
        name = msg["name"]
        if name not in self.data:
            return
        if msg["infer"].get("do") in ("hard", "shift"):
            raise ValueError(f"condition: site {name!r} is intervened on, so evidence about it "
                             "says nothing; use ppl.counterfactual_worlds for evidence in another world")
        msg["value"] = fit_to_site(name, self.data[name], msg["fn"], self.backend.ops)
        msg["is_observed"] = True
        msg["infer"] = {**msg["infer"], "evidence": True}


def do(fn=None, interventions=None):
    """Intervene on sites: see the module docstring for the kinds of intervention."""
    if interventions is None:
        raise ValueError("do needs interventions=: a dict of site name -> value")
    handler = DoMessenger(interventions)
    return handler(fn) if fn is not None else handler


def condition(fn=None, data=None):
    """Observe sites at the given values; unknown site names are errors."""
    handler = ConditionMessenger(data)
    return handler(fn) if fn is not None else handler


__all__ = ["NATURAL_SUFFIX", "ConditionMessenger", "DoMessenger", "condition", "do"]
