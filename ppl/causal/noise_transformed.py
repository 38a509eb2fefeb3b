"""Noise sharing for transformed distributions: normalising flows, LogNormal, a sigmoid of a
Normal. ``x = T(push_base(eps))`` with ``T`` the distribution's bijective transforms
(which may differ between worlds, e.g. a flow conditioned on a site's parents) and ``eps``
the base's own noise; an observation fixes ``eps = abduct_base(T^-1(x))``.

    >>> import torch
    >>> from pyro.distributions import LogNormal
    >>> worlds = LogNormal(torch.tensor([0.0, 1.0]), 1.0)   # two worlds, loc 0 and 1
    >>> rule = noise_model(worlds)
    >>> [round(v, 4) for v in rule.push(worlds, torch.tensor(0.5)).tolist()]  # exp(loc + 0.5)
    [1.6487, 4.4817]
"""

from .noise import NoiseModel, _default_rule, noise_model
from .worlds import _narrow


class _AllWorlds:
    """The base distribution seen by its rule's ``abduct`` with every world's parameters:
    the noise comes out per world, and world 0's slice is taken afterwards (a transform's
    parameters, unlike a family's, cannot be sliced to one world)."""

    def __init__(self, base):
        self.base = base

    def world0(self, attr):
        return getattr(self.base, attr)

    def factual(self):
        return self.base


@_default_rule("TransformedDistribution")
class Transformed(NoiseModel):
    """``x = T(push_base(eps))``: bijective transforms of a base whose noise its value
    fixes (location-scale or inverse-CDF families)."""

    fixed_by_value = True

    def parts(self, base):
        """(the base's family distribution under Independent and ExpandedDistribution
        wrappers (NumPyro's plates expand it), its rule); a clear error where the noise
        cannot be shared. Its parameters broadcast against the noise as they are."""
        inner = base.base_dist
        while type(inner).__name__ in ("Independent", "ExpandedDistribution"):
            inner = inner.base_dist
        rule = noise_model(inner)
        if rule is None or not rule.fixed_by_value:
            raise ValueError(f"a {type(base).__name__} shares its noise between worlds through "
                             "its base distribution, whose value must fix its noise (a "
                             "location-scale or inverse-CDF family); its base is a "
                             f"{type(inner).__name__}")
        folded = [type(t).__name__ for t in base.transforms
                  if not getattr(t, "bijective", True)]  # NumPyro's transforms all are
        if folded:
            raise ValueError(f"a {type(base).__name__} shares its noise between worlds only "
                             f"through bijective transforms; {', '.join(folded)} is not")
        return inner, rule

    def prior(self, base, shape):
        inner, rule = self.parts(base)
        noise = rule.prior(inner, shape)
        extra = len(base.event_shape) - len(noise.event_shape)  # the transforms' event dims
        return noise.to_event(extra) if extra else noise

    def push(self, base, noise):
        inner, rule = self.parts(base)
        value = rule.push(inner, noise)
        for transform in base.transforms:
            value = transform(value)
        return value

    def abduct(self, mechanism, value):
        base = mechanism.base
        inner, rule = self.parts(base)
        for transform in reversed(base.transforms):
            value = transform.inv(value)
        noise, _ = rule.abduct(_AllWorlds(inner), value)
        ops = self.ops(base)
        return _narrow(ops, noise, ops.ndim(noise) - len(base.event_shape) + mechanism.dim), True

    def outside(self, mechanism, value):
        """Where a transform's inverse meets a value outside its codomain (a sigmoid's at
        1.2: torch clamps it), or the base's noise comes out non-finite."""
        base, ops = mechanism.base, self.ops(mechanism.base)
        try:
            for transform in reversed(base.transforms):
                if not bool(ops.all(transform.codomain.check(value))):
                    return (f"the values its {type(base).__name__} takes (outside the codomain "
                            f"{transform.codomain} of its {type(transform).__name__})")
                value = transform.inv(value)
            inner, rule = self.parts(base)
            finite = ops.isfinite(rule.abduct(_AllWorlds(inner), value)[0])
        except TypeError:  # a traced value inside jax.jit: checked on the eager run
            return None
        return None if finite else f"the values its {type(base).__name__} takes (non-finite noise)"

    def factual_log_prob(self, mechanism, value):
        log_prob = mechanism.base.log_prob(value)  # every world's: world 0's slice is kept
        ops = self.ops(mechanism.base)
        return _narrow(ops, log_prob, ops.ndim(log_prob) + mechanism.dim)
