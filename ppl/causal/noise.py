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
- Delta (a mechanism written with explicit noise sample sites): no noise of its own.

    >>> import torch
    >>> from pyro.distributions import Normal
    >>> rule = noise_model(Normal(torch.tensor([0.0, 10.0]), 2.0))   # two worlds
    >>> rule.push(Normal(torch.tensor([0.0, 10.0]), 2.0), torch.tensor(0.5)).tolist()
    [1.0, 11.0]
"""

import torch
from pyro.distributions import Bernoulli, Categorical, Cauchy, Delta, Exponential, Gumbel, Laplace
from pyro.distributions import Normal, Uniform
from pyro.distributions.torch_distribution import TorchDistribution

from ..shapes import broadcast_shape

_RULES = {}


def register_noise(*families):
    """Class decorator: instances of the decorated :class:`NoiseModel` share the noise of
    sites whose distribution is one of ``families`` (or a subclass).

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


def noise_model(base):
    """The rule for ``base``'s family, or None when no rule is registered for it."""
    for cls in type(base).__mro__:
        if cls in _RULES:
            return _RULES[cls]
    return None


def supported_families():
    return sorted(cls.__name__ for cls in _RULES)


class NoiseModel:
    """A family's noise-sharing rule. ``params``: the distribution's parameter attributes
    (to build the factual world's distribution from world 0's slice of each);
    ``has_noise``: False for a point mass; ``threshold_noise``: the value is
    ``1[u > threshold_w]`` of a uniform ``u``, so that exact inference can enumerate the
    interval between the worlds' thresholds in which ``u`` falls."""

    params = ()
    has_noise = True
    threshold_noise = False

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

    def zeros(self, base, shape):
        """Zeros of ``shape`` in the dtype and on the device of the family's first parameter."""
        like = getattr(base, self.params[0])
        return torch.zeros(shape, dtype=like.dtype, device=like.device)


class LocationScale(NoiseModel):
    """``x = loc + scale * eps``, ``eps`` from the family's standard member."""

    params = ("loc", "scale")

    def prior(self, base, shape):
        zeros = self.zeros(base, shape)
        return type(base)(zeros, torch.ones_like(zeros), validate_args=False)

    def push(self, base, noise):
        return base.loc + base.scale * noise

    def abduct(self, mechanism, value):
        return (value - mechanism.world0("loc")) / mechanism.world0("scale"), True


register_noise(Normal, Laplace, Cauchy, Gumbel)(LocationScale)


class InverseCdf(NoiseModel):
    """``x = icdf(u)``, ``u ~ Uniform(0, 1)``."""

    def prior(self, base, shape):
        zeros = self.zeros(base, shape)
        return Uniform(zeros, torch.ones_like(zeros), validate_args=False)

    def push(self, base, noise):
        return base.icdf(noise)

    def abduct(self, mechanism, value):
        return mechanism.factual().cdf(value), True


@register_noise(Uniform)
class UniformNoise(InverseCdf):
    params = ("low", "high")


@register_noise(Exponential)
class ExponentialNoise(InverseCdf):
    params = ("rate",)


@register_noise(Bernoulli)
class BernoulliNoise(InverseCdf):
    """``x = 1[u > 1 - p]``: the Gumbel-max coupling of two outcomes."""

    params = ("probs",)
    threshold_noise = True

    def push(self, base, noise):
        return (noise > 1 - base.probs).to(base.probs.dtype)

    def abduct(self, mechanism, value):
        threshold = 1 - mechanism.world0("probs")
        low = torch.where(value > 0.5, threshold, torch.zeros_like(threshold))
        high = torch.where(value > 0.5, torch.ones_like(threshold), threshold)
        # tolerate an empty interval (probability-zero evidence)
        return Uniform(low, torch.maximum(high, low + 1e-12), validate_args=False), False


@register_noise(Categorical)
class CategoricalNoise(NoiseModel):
    """``x = argmax(logits + g)``, ``g ~ Gumbel(0, 1)^K``."""

    params = ("logits",)

    def prior(self, base, shape):
        zeros = self.zeros(base, tuple(shape) + base.logits.shape[-1:])
        # the K draws are one event: the site's plates line up with the batch dims left of it
        return Gumbel(zeros, torch.ones_like(zeros), validate_args=False).to_event(1)

    def push(self, base, noise):
        return (base.logits + noise).argmax(-1)

    def abduct(self, mechanism, value):
        return GumbelGivenArgmax(mechanism.world0("logits"), value), False


@register_noise(Delta)
class NoNoise(NoiseModel):
    """A point mass (a mechanism of explicit noise sites): nothing to share."""

    has_noise = False

    def prior(self, base, shape):
        return None

    def push(self, base, noise):
        return base.v

    def factual_log_prob(self, mechanism, value):
        """0 where the evidence equals the factual world's point, -inf elsewhere."""
        point = Delta(mechanism.world0("v"), event_dim=mechanism.event_dim, validate_args=False)
        return point.log_prob(value)


class GumbelGivenArgmax(TorchDistribution):
    """Gumbel(0, 1)^K noise conditioned on argmax(logits + g) = k (top-down sampling)."""

    arg_constraints = {}
    support = torch.distributions.constraints.real_vector
    has_rsample = False

    def __init__(self, logits, k):
        self.logits = logits.log_softmax(-1)
        self.k = k.long()
        shape = broadcast_shape(self.logits.shape[:-1], self.k.shape)
        self.logits = self.logits.expand(shape + self.logits.shape[-1:])
        self.k = self.k.expand(shape)
        super().__init__(shape, self.logits.shape[-1:], validate_args=False)

    def sample(self, sample_shape=torch.Size()):
        """Top-down: the maximum ``M`` of ``logits + g`` is Gumbel(logsumexp(logits)) =
        Gumbel(0) (the logits are normalised), independent of which index attains it; every
        other ``logits_j + g_j`` is Gumbel(logits_j) truncated below ``M``. Each index has
        its own independent draw: the chosen index's serves as ``M``."""
        shape = torch.Size(sample_shape) + self.logits.shape
        tiny = torch.finfo(self.logits.dtype).tiny
        uniform = torch.rand(shape, dtype=self.logits.dtype, device=self.logits.device)
        gumbel = -torch.log(-torch.log(uniform.clamp(min=tiny)))
        chosen = self.k.expand(shape[:-1]).unsqueeze(-1)
        top = gumbel.gather(-1, chosen)
        # noise_j = trunc_j - logits_j = -log(exp(-g_j) + exp(logits_j - M)), which stays
        # finite (and equals g_j) for a category of probability zero
        truncated = -torch.logaddexp(-gumbel, self.logits - top)
        onehot = torch.nn.functional.one_hot(chosen.squeeze(-1), shape[-1]).bool()
        return torch.where(onehot, top - self.logits, truncated)

    def log_prob(self, value):
        gumbel = -(value + torch.exp(-value)).sum(-1)
        argmax = (self.logits + value).argmax(-1)
        chosen = self.logits.gather(-1, self.k.unsqueeze(-1)).squeeze(-1)
        return torch.where(argmax == self.k, gumbel - chosen, torch.full_like(gumbel, -float("inf")))
