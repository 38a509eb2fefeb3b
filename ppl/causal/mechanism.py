"""A site's distribution seen as value = push(parameters, shared noise), by the noise rule
registered for its family (:mod:`ppl.causal.noise`); written once for both backends."""

from .noise import backend_of_distribution, noise_model, supported_families
from .worlds import _narrow, _without_world


class _Mechanism:
    """A site's distribution seen as value = push(parameters, shared noise), by the noise
    rule registered for its family (:mod:`ppl.causal.noise`).

    The family's distribution is found under the wrappers that reinterpret batch dims as
    event dims (``Independent``) or broadcast it over plates (``ExpandedDistribution``:
    NumPyro's plates expand a distribution that way; it is rebuilt with its parameters
    broadcast, so that every plate element and world has its own)."""

    def __init__(self, name, fn, dim):
        self.name = name
        backend = backend_of_distribution(fn)
        self.ops, self.distributions = backend.ops, backend.distributions
        wrappers = tuple(getattr(self.distributions, w) for w in ("Independent", "ExpandedDistribution")
                         if hasattr(self.distributions, w))
        base, expanded = fn, False
        while isinstance(base, wrappers):
            expanded = expanded or type(base).__name__ == "ExpandedDistribution"
            base = base.base_dist
        self.rule = noise_model(base)
        if self.rule is None:
            raise ValueError(
                f"site {name!r}: {type(base).__name__} has no noise-sharing rule between worlds "
                f"(rules: {', '.join(supported_families())}); write its noise explicitly as a "
                "sample site and the mechanism as a Delta, or register a rule with "
                "ppl.causal.noise.register_noise")
        # the dims reinterpreted as the site's event, and the batch shape of the family's
        # distribution once every wrapper's dims are its own
        self.reinterpreted = len(fn.event_shape) - len(base.event_shape)
        site = tuple(fn.batch_shape) + tuple(fn.event_shape)
        batch = site[:len(site) - len(base.event_shape)]
        if expanded and self.rule.params and tuple(base.batch_shape) != batch:
            own, params = len(base.batch_shape), {}
            for a in self.rule.params:
                param = self.ops.asarray(getattr(base, a))
                params[a] = self.ops.broadcast_to(param, batch + tuple(param.shape[own:]))
            base = self.rule.rebuild(base, params)
        self.base = base
        # the world dim counted from the right of the base's batch shape, which ends with
        # the dims that Independent reinterprets as the site's event
        self.dim = dim - self.reinterpreted
        self.event_dim = len(base.event_shape)
        self._factual_fn = None
        self.noise_shape = _without_world(batch, self.dim - self.event_dim) + tuple(base.event_shape)

    def invariant(self):
        """Whether no parameter varies along the world dimension (broadcast there)."""
        i = len(self.base.batch_shape) + self.dim  # the world dim, from the left
        if i < 0:
            return True
        ops = self.ops
        for t in vars(self.base).values():  # the stored parameters (not lazily derived ones)
            if (ops.is_array(t) and ops.ndim(t) > i and t.shape[i] > 1
                    and not ops.is_broadcast_along(t, i)):
                return False
        return True

    def world0(self, attr):
        """World 0's slice of a parameter, keeping the world dim (size 1)."""
        return _narrow(self.ops, getattr(self.base, attr), len(self.base.batch_shape) + self.dim)

    def factual(self):
        """The site's distribution in the factual world alone: the evidence may lie outside
        the support of another world's distribution, so it is never scored there. Built
        unvalidated: its parameters are a slice of the site's own (validated by the library
        when the model built them, if validation is on); the evidence's support is checked
        in :meth:`check_evidence`."""
        if self._factual_fn is None:
            params = {a: self.world0(a) for a in self.rule.params}
            self._factual_fn = self.rule.rebuild(self.base, params)
        return self._factual_fn

    def check_evidence(self, value, what="evidence"):
        """A clear error if ``value`` (the evidence, or an intervention's value: ``what``)
        lies outside the values the site takes in the factual world."""
        outside = self.rule.outside(self, value)
        if outside:
            raise ValueError(f"site {self.name!r}: the {what} lies outside {outside}")

    def noise_prior(self):
        return self.as_site_event(self.rule.prior(self.base, self.noise_shape))

    def as_site_event(self, noise):
        """The noise's distribution with the dims the site reinterprets as its event (a
        vector-valued site ``Normal(...).to_event(1)`` in a plate has vector-valued noise)."""
        return noise.to_event(self.reinterpreted) if self.reinterpreted else noise

    def push(self, noise):
        """The value in every world."""
        return self.rule.push(self.base, noise)

    def abduct(self, value):
        """(noise distribution or value given the factual observation, is_deterministic)."""
        noise, deterministic = self.rule.abduct(self, value)
        return (noise, True) if deterministic else (self.as_site_event(noise), False)

    def factual_log_prob(self, value):
        """log p_0(value): the evidence's likelihood in the factual world."""
        lp = self.rule.factual_log_prob(self, value)
        return self.ops.sum(lp, tuple(range(-self.reinterpreted, 0))) if self.reinterpreted else lp
