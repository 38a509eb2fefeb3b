"""The distributions of counterfactual worlds on torch, thin over the algorithms written
once in :mod:`ppl.causal.noise`: a log-density term, and Gumbel noise given its argmax."""

import torch
from pyro.distributions.torch_distribution import TorchDistribution

from ...causal.noise import gumbel_given_argmax_log_prob, gumbel_given_argmax_sample
from ...shapes import broadcast_shape
from .ops import _Ops


class Factor(TorchDistribution):
    """A log-density term: log_prob(anything) is the given tensor."""

    arg_constraints = {}
    support = torch.distributions.constraints.real
    has_rsample = False

    def __init__(self, log_factor):
        self.log_factor = log_factor
        super().__init__(log_factor.shape, torch.Size(), validate_args=False)

    def sample(self, sample_shape=torch.Size()):
        return torch.zeros(())

    def log_prob(self, value):
        return self.log_factor

    def expand(self, batch_shape, _instance=None):
        return Factor(self.log_factor.expand(batch_shape))


class GumbelGivenArgmax(TorchDistribution):
    """Gumbel(0, 1)^K noise conditioned on argmax(logits + g) = k (top-down sampling, see
    :func:`ppl.causal.noise.gumbel_given_argmax_sample`)."""

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
        uniform = _Ops.uniform(torch.Size(sample_shape) + self.logits.shape, self.logits)
        return gumbel_given_argmax_sample(_Ops, self.logits, self.k, uniform)

    def log_prob(self, value):
        return gumbel_given_argmax_log_prob(_Ops, self.logits, self.k, value)
