"""A variational autoencoder for binary vectors (e.g. binarised 8x8 digits), torch only.

``z ~ Normal(0, I)`` (``z_dim``), ``x ~ Bernoulli(logits=decoder(z))`` (``x_dim`` pixels),
one pair per row of the batch in plate "data"; the guide is the amortised
``z ~ Normal(encoder(x))``. Trained with the ELBO it is the VAE of Kingma and Welling
(2014); the same class trained with ``IWAE(K)`` is the IWAE variant of Burda et al.
(2016), a per-datapoint importance-weighted bound (``VI`` weights the "data" plate's
elements independently by default):

    >>> import pyro, torch
    >>> from inference import VI, ELBO, IWAE, Adam
    >>> from models.data import load_binarized_digits
    >>> pyro.set_rng_seed(0)
    >>> x = load_binarized_digits("train")[:32]
    >>> vae = VAE(z_dim=4, hidden=32)
    >>> vi = VI(vae.model, vae.guide, ELBO(), Adam(1e-2))
    >>> losses = vi.run(x, num_steps=20, progress=False)
    >>> iwae = VI(vae.model, vae.guide, IWAE(5), Adam(1e-3))   # the IWAE variant
    >>> loss = iwae.step(x)
    >>> tuple(vae.reconstruct(x).shape)
    (32, 64)

Each call's loss is the negative bound summed over the batch; for a data set, loop over
:func:`models.data.minibatches`, e.g. ``for batch in minibatches(x, 100, seed=epoch):
vi.step(batch)``.

The networks' parameters live in Pyro's global param store under "encoder$$$..." and
"decoder$$$...". As with every Pyro parameter they are global by name: ``ppl.module``
loads stored values into a module registered under a name already in the store (which is
how checkpoints resume), and refuses one whose shapes differ. Call
``pyro.clear_param_store()`` before training a second ``VAE`` from scratch in the same
process, or it starts from (and shares) the first one's weights.
"""

import torch
from torch import nn

import ppl
import ppl.distributions as dist

__all__ = ["VAE"]


def _activation(activation):
    if isinstance(activation, type) and issubclass(activation, nn.Module):
        return activation()
    if isinstance(activation, nn.Module):
        return activation
    if callable(activation):
        return _Lambda(activation)
    raise TypeError(f"activation must be an nn.Module (class) or a callable, got {activation!r}")


class _Lambda(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


class Encoder(nn.Module):
    """x -> (loc, scale) of q(z | x): one hidden layer, softplus scale."""

    def __init__(self, x_dim, hidden, z_dim, activation):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(x_dim, hidden), _activation(activation),
                                 nn.Linear(hidden, 2 * z_dim))

    def forward(self, x):
        loc, raw_scale = self.net(x).chunk(2, dim=-1)
        return loc, nn.functional.softplus(raw_scale) + 1e-4


class Decoder(nn.Module):
    """z -> Bernoulli logits of x: one hidden layer."""

    def __init__(self, x_dim, hidden, z_dim, activation):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(z_dim, hidden), _activation(activation),
                                 nn.Linear(hidden, x_dim))

    def forward(self, z):
        return self.net(z)


class VAE(nn.Module):
    """Bernoulli VAE with one-hidden-layer encoder and decoder.

    ``activation``: an ``nn.Module`` class (default ``nn.Tanh``) or a callable such as
    ``torch.tanh``. ``model(x)`` and ``guide(x)`` take a float tensor ``[B, x_dim]`` of 0s and 1s;
    their parameters are registered as ``ppl.module("decoder")`` / ``ppl.module("encoder")``.
    """

    def __init__(self, x_dim=64, hidden=200, z_dim=8, activation=nn.Tanh):
        super().__init__()
        self.x_dim, self.hidden, self.z_dim = x_dim, hidden, z_dim
        self.encoder = Encoder(x_dim, hidden, z_dim, activation)
        self.decoder = Decoder(x_dim, hidden, z_dim, activation)

    def model(self, x):
        ppl.module("decoder", self.decoder)
        loc = x.new_zeros(self.z_dim)
        scale = x.new_ones(self.z_dim)
        with ppl.plate("data", x.shape[0]):
            z = ppl.sample("z", dist.Normal(loc, scale).to_event(1))
            logits = self.decoder(z)
            ppl.sample("x", dist.Bernoulli(logits=logits).to_event(1), obs=x)
        return logits

    def guide(self, x):
        ppl.module("encoder", self.encoder)
        loc, scale = self.encoder(x)
        with ppl.plate("data", x.shape[0]):
            return ppl.sample("z", dist.Normal(loc, scale).to_event(1))

    @torch.no_grad()
    def reconstruct(self, x):
        """Pixel probabilities decoded from the encoder's mean of z."""
        loc, _ = self.encoder(x)
        return torch.sigmoid(self.decoder(loc))

    @torch.no_grad()
    def sample(self, num_samples, generator=None):
        """Pixel probabilities of ``num_samples`` images decoded from z ~ Normal(0, I)."""
        weight = self.decoder.net[0].weight
        z = torch.randn(num_samples, self.z_dim, generator=generator, dtype=weight.dtype)
        return torch.sigmoid(self.decoder(z.to(weight.device)))
