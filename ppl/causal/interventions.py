"""Interventions and evidence that check their site names: ``do`` and ``condition`` on torch.

``do`` replaces a site's mechanism. The value of an intervention may be

- a number or tensor (hard intervention): the site takes that value, broadcast over its
  plates, and no longer depends on its parents;
- a distribution (stochastic intervention): the site is drawn from it instead;
- a callable (shift intervention): the site takes ``f(natural)``, where the natural
  (pre-intervention) value is drawn from the original mechanism as site
  ``"<name>__natural"``.

A hard or shift-intervened site is recorded as observed under a point mass, so it adds
nothing to the log density and needs no guide. Naming a site the program does not have is
an error that suggests the closest name.

    >>> import torch, ppl, ppl.distributions as dist
    >>> def model():
    ...     x = ppl.sample("x", dist.Normal(0.0, 1.0))
    ...     return ppl.sample("y", dist.Normal(2 * x, 0.1))
    >>> tr = ppl.trace(ppl.do(model, {"x": 1.0}))()
    >>> float(tr["x"].value), tr["x"].observed, tr["x"].infer["do"]
    (1.0, True, 'hard')
    >>> ppl.do(model, {"z": 0.0})()
    Traceback (most recent call last):
    ...
    ValueError: do: the program has no sample site 'z' (its sites: ['x', 'y'])
"""

import difflib

import torch

from ..shapes import broadcast_shape
from ..validation import check_site_values
from pyro.distributions import Delta
from pyro.poutine.messenger import Messenger
from pyro.poutine.runtime import apply_stack

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


class CheckedSites(Messenger):
    """Base for handlers keyed by site name: on leaving, every key must have been visited."""

    kind = "handler"

    def __init__(self, names):
        super().__init__()
        self._names = set(names)
        self._seen = set()

    def __enter__(self):
        self._seen = set()
        return super().__enter__()

    def _pyro_post_sample(self, msg):
        self._seen.add(msg["name"])

    def __exit__(self, exc_type, exc_value, traceback):
        result = super().__exit__(exc_type, exc_value, traceback)
        if exc_type is None:
            for name in sorted(self._names - self._seen):
                raise missing_site_error(self.kind, name, self._seen)
        return result


def fit_to_site(name, value, fn):
    """``value`` as a tensor broadcast to the site's batch + event shape, or a clear error."""
    shape = tuple(fn.batch_shape) + tuple(fn.event_shape)
    if not torch.is_tensor(value):
        integer = isinstance(fn.support, torch.distributions.constraints._IntegerInterval)
        value = torch.as_tensor(value, dtype=torch.long if integer else torch.get_default_dtype(),
                                device=device_of(fn))
    try:
        return torch.broadcast_to(value, broadcast_shape(value.shape, shape))
    except RuntimeError:
        raise ValueError(
            f"site {name!r}: a value of shape {tuple(value.shape)} does not fit the site's "
            f"batch + event shape {shape}") from None


def device_of(fn):
    """The device of a distribution's parameters (None if it has no tensor parameter).

    Reads the instance's attributes rather than ``getattr``, which would compute lazy
    parameters (the ``logits`` of a Categorical built from ``probs``) just to find a device.
    """
    for value in vars(fn).values():
        if torch.is_tensor(value):
            return value.device
        if isinstance(value, torch.distributions.Distribution):
            return device_of(value)
    return None


class DoMessenger(CheckedSites):
    kind = "do"

    def __init__(self, interventions):
        super().__init__(interventions)
        check_site_values("do", interventions)
        self.interventions = dict(interventions)

    def _pyro_sample(self, msg):
        name = msg["name"]
        if name not in self.interventions or msg["infer"].get("do") is not None:
            return
        if msg["infer"].get("evidence"):
            raise ValueError(f"do: site {name!r} is conditioned on, so intervening on it would "
                             "discard the evidence; use ppl.counterfactual for evidence in another "
                             "world")
        action = self.interventions[name]
        fn = msg["fn"]
        if isinstance(action, torch.distributions.Distribution):
            msg["fn"] = _broadcast_distribution(name, action, fn)
            msg["infer"] = {**msg["infer"], "do": "stochastic"}
            return
        if callable(action):
            natural = self._draw_natural(msg)
            value = fit_to_site(name, action(natural), fn)
            kind = "shift"
        else:
            value = fit_to_site(name, action, fn)
            kind = "hard"
        msg["value"] = value
        # the log density is a scalar zero, not one per batch element: the point mass does
        # not depend on the values the original distribution's batch shape came from
        msg["fn"] = Delta(value, log_density=value.new_zeros(()), event_dim=len(fn.event_shape),
                          validate_args=False)
        msg["is_observed"] = True
        msg["infer"] = {**msg["infer"], "do": kind}

    def _draw_natural(self, msg):
        natural = dict(msg)
        natural["name"] = msg["name"] + NATURAL_SUFFIX
        natural["cond_indep_stack"] = ()  # the plates re-enter as the new site passes them
        natural["infer"] = {**msg["infer"], "do": "natural"}
        natural["is_observed"] = False
        natural["value"] = None
        natural["done"] = False
        natural["stop"] = False
        natural["continuation"] = None
        apply_stack(natural)
        return natural["value"]


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
    kind = "condition"

    def __init__(self, data):
        super().__init__(data)
        check_site_values("condition", data)
        self.data = dict(data)

    def _pyro_sample(self, msg):
        name = msg["name"]
        if name not in self.data:
            return
        if msg["infer"].get("do") in ("hard", "shift"):
            raise ValueError(f"condition: site {name!r} is intervened on, so evidence about it "
                             "says nothing; use ppl.causal.counterfactual for evidence in another world")
        msg["value"] = fit_to_site(name, self.data[name], msg["fn"])
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
