"""Noise sharing between counterfactual worlds: one small rule per distribution family.

A site's value in world w is ``push(distribution_w, noise)`` with one exogenous ``noise``
shared by every world; counterfactual answers depend on this choice. A rule (a
:class:`NoiseModel`) says, for its family, what the noise's prior is, how a value is
pushed out of it, and what the noise is given the factual world's observation
(abduction). Rules live in a registry keyed by distribution class and are found along
the class's MRO, so a subclass of ``Normal`` shares noise as a Normal does; register a
rule for your own distribution with :func:`register_noise`.

The rules shipped (the documented convention):

- location-scale families (Normal, Laplace, Cauchy, Gumbel): ``x_w = loc_w + scale_w * eps``
  with ``eps`` from the family's standard member; an observation fixes ``eps``;
- families with an inverse CDF (Uniform, Exponential): ``x_w = icdf_w(u)``, ``u ~ U(0, 1)``;
- Bernoulli, by the Gumbel-max trick, which for two outcomes is ``x_w = 1[u > 1 - p_w]``,
  ``u ~ U(0, 1)`` (a monotone coupling); an observation restricts ``u`` to an interval;
- Categorical, by the Gumbel-max trick: ``x_w = argmax(logits_w + g)``, ``g ~ Gumbel(0, 1)^K``;
  an observation leaves ``g`` distributed given its argmax;
- Delta (a mechanism written with explicit noise sample sites): no noise of its own;
- TransformedDistribution (normalising flows, LogNormal, a sigmoid of a Normal):
  ``x_w = T_w(push_base(eps))`` through bijective transforms, whose inverse abducts ``eps``
  (:mod:`ppl.causal.noise_transformed`).

The rules are written once against the array ops of the distribution's backend
(``backend.ops``) and registered for the families of both (Pyro's and NumPyro's classes:
NumPyro's ``Bernoulli`` and ``Categorical`` are the ``...Probs`` / ``...Logits`` classes):

    >>> import torch
    >>> from pyro.distributions import Normal
    >>> rule = noise_model(Normal(torch.tensor([0.0, 10.0]), 2.0))   # two worlds
    >>> rule.push(Normal(torch.tensor([0.0, 10.0]), 2.0), torch.tensor(0.5)).tolist()
    [1.0, 11.0]
"""

import math
import sys

from ..backend import _loaded as _LOADED_BACKENDS, get_backend

_RULES = {}
_DEFAULTS = []  # (rule, family names in a backend's distributions module)
_REGISTERED = set()  # the backends whose families have their default rules


def register_noise(*families):
    """Class decorator: instances of the decorated :class:`NoiseModel` share the noise of
    sites whose distribution is one of ``families`` (or a subclass).

        >>> from pyro.distributions import Normal
        >>> class Shifted(Normal):
        ...     pass
        >>> type(noise_model(Shifted(0.0, 1.0))).__name__
        'LocationScale'
    """
    def register(rule_class):
        rule = rule_class()
        for family in families:
            _RULES[family] = rule
        return rule_class

    return register


def _default_rule(*names):
    """Class decorator: the rule of the families called ``names`` in every backend's
    distributions module (registered when the backend is loaded)."""
    def register(rule_class):
        _DEFAULTS.append((rule_class(), names))
        return rule_class

    return register


_LIBRARIES = {"torch": "pyro.distributions", "jax": "numpyro.distributions"}


def _register_loaded_backends():
    for name, library in _LIBRARIES.items():  # a library in use: its backend's families
        if library in sys.modules and name not in _LOADED_BACKENDS:
            get_backend(name)
    for name, backend in list(_LOADED_BACKENDS.items()):
        if name in _REGISTERED:
            continue
        _REGISTERED.add(name)
        module = backend.distributions
        for rule, names in _DEFAULTS:
            for family in names:
                found = getattr(module, family)
                # NumPyro's Bernoulli and Categorical are factories of two classes each
                classes = [found] if isinstance(found, type) else [
                    getattr(module, family + "Probs"), getattr(module, family + "Logits")]
                for cls in classes:
                    # and the class it wraps (Pyro's TransformedDistribution wraps torch's,
                    # which torch's own LogNormal and Gumbel subclass)
                    for same in cls.__mro__:
                        if same.__name__ == cls.__name__:
                            _RULES.setdefault(same, rule)


def noise_model(base):
    """The rule for ``base``'s family, or None when no rule is registered for it."""
    _register_loaded_backends()
    for cls in type(base).__mro__:
        if cls in _RULES:
            return _RULES[cls]
    return None


def supported_families():
    _register_loaded_backends()
    return sorted({cls.__name__ for cls in _RULES})


def backend_of_distribution(fn):
    """The loaded backend whose distribution ``fn`` is (the active backend if none is)."""
    _register_loaded_backends()
    for backend in list(_LOADED_BACKENDS.values()):
        if backend.ops.is_distribution(fn):
            return backend
    return get_backend()


class NoiseModel:
    """A family's noise-sharing rule. ``params``: the distribution's parameter attributes
    (to build the factual world's distribution from world 0's slice of each);
    ``has_noise``: False for a point mass; ``fixed_by_value``: an observed value fixes the
    noise (its ``abduct`` returns a value); ``threshold_noise``: the value is
    ``1[u > threshold_w]`` of a uniform ``u``, so that exact inference can enumerate the
    interval between the worlds' thresholds in which ``u`` falls. ``self.ops(base)`` and
    ``self.distributions(base)`` are the array ops and distributions of ``base``'s backend."""

    params = ()
    has_noise = True
    threshold_noise = False
    fixed_by_value = False

    def prior(self, base, shape):
        """The noise's distribution, of shape ``shape`` (the site's, less the world dim)."""
        raise NotImplementedError

    def push(self, base, noise):
        """The value in every world (``base`` carries the world dimension)."""
        raise NotImplementedError

    def abduct(self, mechanism, value):
        """(the noise, or its distribution, given the factual observation ``value``;
        whether that is a fixed value). ``mechanism.world0(attr)`` and
        ``mechanism.factual()`` give the factual world's parameters and distribution."""
        raise NotImplementedError

    def factual_log_prob(self, mechanism, value):
        """log p_0(value) in the factual world."""
        return mechanism.factual().log_prob(value)

    def outside(self, mechanism, value):
        """What ``value`` lies outside of, where the factual world cannot take it (its
        distribution's support); None where it can, or where that is not known here."""
        constraints = mechanism.distributions.constraints
        if not self.params or getattr(type(mechanism.base), "support", None) is constraints.real:
            return None
        support = mechanism.factual().support
        if support is constraints.real or constraints.is_dependent(support):
            return None
        if not bool(mechanism.ops.all(support.check(value))):
            return f"the support {support} of the site's distribution in the factual world"
        return None

    def rebuild(self, base, params):
        """A distribution of ``base``'s family with the given parameters (unvalidated)."""
        return type(base)(**params, validate_args=False)

    def ops(self, base):
        return backend_of_distribution(base).ops

    def distributions(self, base):
        return backend_of_distribution(base).distributions

    def zeros(self, base, shape):
        """Zeros of ``shape`` in the dtype and on the device of the family's first parameter."""
        return self.ops(base).zeros(shape, getattr(base, self.params[0]))


@_default_rule("Normal", "Laplace", "Cauchy", "Gumbel")
class LocationScale(NoiseModel):
    """``x = loc + scale * eps``, ``eps`` from the family's standard member."""

    params = ("loc", "scale")
    fixed_by_value = True

    def prior(self, base, shape):
        zeros = self.zeros(base, shape)
        return type(base)(zeros, zeros + 1, validate_args=False)

    def push(self, base, noise):
        return base.loc + base.scale * noise

    def abduct(self, mechanism, value):
        return (value - mechanism.world0("loc")) / mechanism.world0("scale"), True


class InverseCdf(NoiseModel):
    """``x = icdf(u)``, ``u ~ Uniform(0, 1)``."""

    fixed_by_value = True

    def prior(self, base, shape):
        zeros = self.zeros(base, shape)
        return self.distributions(base).Uniform(zeros, zeros + 1, validate_args=False)

    def push(self, base, noise):
        return base.icdf(noise)

    def abduct(self, mechanism, value):
        return mechanism.factual().cdf(value), True


@_default_rule("Uniform")
class UniformNoise(InverseCdf):
    params = ("low", "high")


@_default_rule("Exponential")
class ExponentialNoise(InverseCdf):
    params = ("rate",)


@_default_rule("Bernoulli")
class BernoulliNoise(InverseCdf):
    """``x = 1[u > 1 - p]``: the Gumbel-max coupling of two outcomes."""

    params = ("probs",)
    threshold_noise = True
    fixed_by_value = False

    def push(self, base, noise):
        return self.ops(base).astype(noise > 1 - base.probs, base.probs)

    def abduct(self, mechanism, value):
        ops = self.ops(mechanism.base)
        threshold = 1 - mechanism.world0("probs")
        low = ops.where(value > 0.5, threshold, threshold * 0)
        high = ops.where(value > 0.5, threshold * 0 + 1, threshold)
        # tolerate an empty interval (probability-zero evidence)
        uniform = self.distributions(mechanism.base).Uniform
        return uniform(low, ops.maximum(high, low + 1e-12), validate_args=False), False

    def rebuild(self, base, params):
        return self.distributions(base).Bernoulli(**params, validate_args=False)


@_default_rule("Categorical")
class CategoricalNoise(NoiseModel):
    """``x = argmax(logits + g)``, ``g ~ Gumbel(0, 1)^K``."""

    params = ("logits",)

    def prior(self, base, shape):
        zeros = self.zeros(base, tuple(shape) + tuple(base.logits.shape[-1:]))
        # the K draws are one event: the site's plates line up with the batch dims left of it
        gumbel = self.distributions(base).Gumbel
        return gumbel(zeros, zeros + 1, validate_args=False).to_event(1)

    def push(self, base, noise):
        return self.ops(base).argmax(base.logits + noise, -1)

    def abduct(self, mechanism, value):
        return self.ops(mechanism.base).gumbel_given_argmax(mechanism.world0("logits"), value), False

    def rebuild(self, base, params):
        return self.distributions(base).Categorical(**params, validate_args=False)


@_default_rule("Delta")
class NoNoise(NoiseModel):
    """A point mass (a mechanism of explicit noise sites): nothing to share."""

    has_noise = False

    def prior(self, base, shape):
        return None

    def push(self, base, noise):
        return base.v

    def factual_log_prob(self, mechanism, value):
        """0 where the evidence equals the factual world's point, -inf elsewhere."""
        delta = self.distributions(mechanism.base).Delta
        point = delta(mechanism.world0("v"), event_dim=mechanism.event_dim, validate_args=False)
        return point.log_prob(value)


def GumbelGivenArgmax(logits, k):  # noqa: N802 (a distribution's constructor)
    """Gumbel(0, 1)^K noise conditioned on argmax(logits + g) = k, as a distribution of
    ``logits``' backend (the active backend's classes, ``backend.ops.gumbel_given_argmax``)."""
    _register_loaded_backends()
    for backend in list(_LOADED_BACKENDS.values()):
        if backend.ops.is_array(logits):
            return backend.ops.gumbel_given_argmax(logits, k)
    return get_backend().ops.gumbel_given_argmax(logits, k)


def gumbel_given_argmax_sample(ops, logits, k, uniform):
    """Draws of Gumbel(0, 1)^K noise given argmax(logits + g) = k, from ``uniform`` (U(0, 1)
    draws of shape sample shape + logits' shape; ``logits`` normalised).

    Top-down: the maximum ``M`` of ``logits + g`` is Gumbel(logsumexp(logits)) = Gumbel(0)
    (the logits are normalised), independent of which index attains it; every other
    ``logits_j + g_j`` is Gumbel(logits_j) truncated below ``M``. Each index has its own
    independent draw: the chosen index's serves as ``M``."""
    shape = tuple(uniform.shape)
    gumbel = -ops.log(-ops.log(ops.maximum(uniform, ops.tiny(uniform))))
    chosen = ops.expand_dims(ops.broadcast_to(k, shape[:-1]), -1)
    top = ops.take_last(gumbel, chosen)
    # noise_j = trunc_j - logits_j = -log(exp(-g_j) + exp(logits_j - M)), which stays
    # finite (and equals g_j) for a category of probability zero
    truncated = -ops.logaddexp(-gumbel, logits - top)
    onehot = ops.one_hot(ops.squeeze(chosen, -1), shape[-1])
    return ops.where(onehot, top - logits, truncated)


def gumbel_given_argmax_log_prob(ops, logits, k, value):
    """log p(value | argmax(logits + value) = k) = log p(value) - log softmax(logits)_k where
    the argmax is k, -inf elsewhere."""
    gumbel = -ops.sum(value + ops.exp(-value), -1)
    argmax = ops.argmax(logits + value, -1)
    chosen = ops.squeeze(ops.take_last(logits, ops.expand_dims(k, -1)), -1)
    return ops.where(argmax == k, gumbel - chosen, -math.inf)


from . import noise_transformed  # noqa: E402,F401 (registers the TransformedDistribution rule)
