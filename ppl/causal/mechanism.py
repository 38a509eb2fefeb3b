"""A site's distribution seen as value = push(parameters, shared noise), by the noise rule
registered for its family (:mod:`ppl.causal.noise`)."""

import torch
from pyro.distributions import Independent
from torch.distributions import constraints

from .noise import noise_model, supported_families
from .worlds import _narrow, _without_world


class _Mechanism:
    """A site's distribution seen as value = push(parameters, shared noise), by the noise
    rule registered for its family (:mod:`ppl.causal.noise`)."""

    def __init__(self, name, fn, dim):
        self.name, self.dim = name, dim
        self.reinterpreted = 0
        base = fn
        while isinstance(base, Independent):
            self.reinterpreted += base.reinterpreted_batch_ndims
            base = base.base_dist
        self.base = base
        # the world dim counted from the right of the base's batch shape, which ends with
        # the dims that Independent reinterprets as the site's event
        self.dim = dim - self.reinterpreted
        self.rule = noise_model(base)
        if self.rule is None:
            raise ValueError(
                f"site {name!r}: {type(base).__name__} has no noise-sharing rule between worlds "
                f"(rules: {', '.join(supported_families())}); write its noise explicitly as a "
                "sample site and the mechanism as a Delta, or register a rule with "
                "ppl.causal.noise.register_noise")
        self.event_dim = len(base.event_shape)
        self._factual_fn = None
        self.noise_shape = _without_world(base.batch_shape, self.dim - self.event_dim) + base.event_shape

    def invariant(self):
        """Whether no parameter varies along the world dimension (broadcast views have
        stride 0 there)."""
        i = len(self.base.batch_shape) + self.dim  # the world dim, from the left
        if i < 0:
            return True
        for t in vars(self.base).values():  # the stored parameters (not lazily derived ones)
            if torch.is_tensor(t) and t.dim() > i and t.shape[i] > 1 and t.stride(i) != 0:
                return False
        return True

    def world0(self, attr):
        """World 0's slice of a parameter, keeping the world dim (size 1)."""
        return _narrow(getattr(self.base, attr), len(self.base.batch_shape) + self.dim)

    def factual(self):
        """The site's distribution in the factual world alone: the evidence may lie outside
        the support of another world's distribution, so it is never scored there. Built
        unvalidated: its parameters are a slice of the site's own (validated by torch when
        the model built them, if validation is on); the evidence's support is checked in
        :meth:`check_evidence`."""
        if self._factual_fn is None:
            params = {a: self.world0(a) for a in self.rule.params}
            self._factual_fn = type(self.base)(**params, validate_args=False)
        return self._factual_fn

    def check_evidence(self, value):
        """A clear error if the evidence lies outside the factual world's support."""
        if not self.rule.params or getattr(type(self.base), "support", None) is constraints.real:
            return
        support = self.factual().support
        if support is constraints.real or constraints.is_dependent(support):
            return
        if not bool(support.check(value).all()):
            raise ValueError(f"site {self.name!r}: the evidence lies outside the support "
                             f"{support} of the site's distribution in the factual world")

    def noise_prior(self):
        return self.rule.prior(self.base, self.noise_shape)

    def push(self, noise):
        """The value in every world."""
        return self.rule.push(self.base, noise)

    def abduct(self, value):
        """(noise distribution or value given the factual observation, is_deterministic)."""
        return self.rule.abduct(self, value)

    def factual_log_prob(self, value):
        """log p_0(value): the evidence's likelihood in the factual world."""
        lp = self.rule.factual_log_prob(self, value)
        return lp.sum(tuple(range(-self.reinterpreted, 0))) if self.reinterpreted else lp
