"""A small conditional normalising flow over vectors, torch only: affine coupling layers
whose scale and shift networks read the other half of the vector and a context.

``ConditionalFlow(dim, context_dim)(context)`` is the list of bijective transforms of a
``TransformedDistribution`` for that context; the context may carry more batch dimensions
than the vector (a counterfactual's world dimension), they broadcast:

    >>> import torch
    >>> flow = ConditionalFlow(dim=4, context_dim=2, hidden=8)
    >>> transforms = flow(torch.zeros(3, 2))
    >>> x = torch.randn(3, 4)
    >>> y = x
    >>> for t in transforms:
    ...     y = t(y)
    >>> for t in reversed(transforms):
    ...     y = t.inv(y)
    >>> bool(torch.allclose(x, y, atol=1e-5))
    True
"""

import torch
from torch import nn
from torch.distributions import constraints
from torch.distributions.transforms import Transform

__all__ = ["ConditionalFlow", "AffineCoupling"]

_MAX_LOG_SCALE = 2.0  # tanh-bounded log scales keep each layer's Jacobian within e^±2


def _broadcast_cat(*parts):
    """Concatenate along the last dim after broadcasting the leading (batch) dims."""
    batch = torch.broadcast_shapes(*(p.shape[:-1] for p in parts))
    return torch.cat([p.expand(batch + p.shape[-1:]) for p in parts], -1)


class AffineCoupling(Transform):
    """``y = x * exp(s) + m`` on the unmasked half, with ``(s, m) = net(masked half,
    context)``; the masked half passes through, so the inverse is exact."""

    bijective = True
    domain = constraints.independent(constraints.real, 1)
    codomain = constraints.independent(constraints.real, 1)

    def __init__(self, net, mask, context, shift_only=False):
        super().__init__(cache_size=0)
        self.net, self.mask, self.context, self.shift_only = net, mask, context, shift_only

    def _shift_scale(self, x):
        log_scale, shift = self.net(_broadcast_cat(x * self.mask, self.context)).chunk(2, -1)
        if self.shift_only:
            log_scale = torch.zeros_like(log_scale)
        log_scale = _MAX_LOG_SCALE * torch.tanh(log_scale / _MAX_LOG_SCALE)
        free = 1 - self.mask
        return log_scale * free, shift * free

    def _call(self, x):
        log_scale, shift = self._shift_scale(x)
        return x * log_scale.exp() + shift

    def _inverse(self, y):
        log_scale, shift = self._shift_scale(y)  # the masked half is the same in x and y
        return (y - shift) * (-log_scale).exp()

    def log_abs_det_jacobian(self, x, y):
        return self._shift_scale(x)[0].sum(-1)


class ConditionalFlow(nn.Module):
    """``layers`` affine couplings on ``dim``-vectors, alternating between the even and the
    odd coordinates, each with a two-layer network of ``hidden`` units reading the fixed
    half and a ``context_dim`` context."""

    def __init__(self, dim, context_dim, hidden=64, layers=4, shift_only=False):
        super().__init__()
        self.shift_only = shift_only
        even = (torch.arange(dim) % 2 == 0).float()
        self.register_buffer("masks", torch.stack([even if k % 2 == 0 else 1 - even
                                                   for k in range(layers)]))
        self.nets = nn.ModuleList(
            nn.Sequential(nn.Linear(dim + context_dim, hidden), nn.ELU(),
                          nn.Linear(hidden, 2 * dim)) for _ in range(layers))
        for net in self.nets:  # start at the identity
            nn.init.zeros_(net[-1].weight)
            nn.init.zeros_(net[-1].bias)

    def forward(self, context):
        return [AffineCoupling(net, mask, context, self.shift_only)
                for net, mask in zip(self.nets, self.masks)]
