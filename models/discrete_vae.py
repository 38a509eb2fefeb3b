"""A discrete VAE for binary vectors (e.g. binarised 8x8 digits): a grid of categorical
codes decoded to Bernoulli pixels, torch only.

Generative model, one image per row of the batch in plate "data":

    z_i ~ Categorical(uniform over K)       i = 0 .. num_codes - 1 (sites "z0", "z1", ...)
    x   ~ Bernoulli(logits=decoder(onehot(z_0), ..., onehot(z_{num_codes-1})))

The prior over the codes is fixed and uniform (as in the GFlowNet-EM paper's discrete VAE):
all the learning is in the decoder, so log p(x) compares decoders (and, through the
importance-sampling estimate, their proposals) on an equal footing. The default is the
paper's 4 x 4 grid (``num_codes=16``) with ``K = 4`` values per code.

The codes are scalar ``Categorical`` sites by default, which is what ``GFlowNetEM`` builds
one at a time and what the score-function estimator samples; ``one_hot=True`` writes the
same sites as ``OneHotCategorical`` (the same log-densities), which the Gumbel-softmax
relaxation needs. The decoder takes the concatenated one-hot codes, so a relaxed (soft)
code goes through it unchanged.

``guide`` is a mean-field amortised encoder: an MLP maps x to ``num_codes x K`` logits and
every code is drawn independently given x.

    >>> import pyro, torch
    >>> from inference import VI, IWAE, Adam
    >>> from models.data import load_binarized_digits
    >>> pyro.clear_param_store(); pyro.set_rng_seed(0)
    >>> x = load_binarized_digits("train")[:16]
    >>> vae = DiscreteVAE(num_codes=4, num_values=3, hidden=16)
    >>> vi = VI(vae.model, vae.guide, IWAE(5), Adam(1e-2), estimators=vae.estimators("score"))
    >>> losses = vi.run(x, num_steps=3, progress=False)
    >>> codes = torch.zeros(16, 4, dtype=torch.long)
    >>> tuple(vae.log_joint(x, codes).shape)
    (16,)

The networks' parameters live in Pyro's global param store under "decoder$$$..." and
"encoder$$$..." (``ppl.module``), as in :mod:`models.vae`: call ``pyro.clear_param_store()``
before training a second model from scratch in the same process.
"""

import math

import torch
from torch import nn

import ppl
import ppl.distributions as dist

__all__ = ["DiscreteVAE"]


def _mlp(inputs, hidden, outputs):
    return nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, outputs))


class DiscreteVAE(nn.Module):
    """A uniform prior over ``num_codes`` categorical codes with ``num_values`` values each,
    an MLP decoder (one hidden layer of ``hidden`` ReLU units) to ``x_dim`` Bernoulli logits,
    and an MLP mean-field encoder of the same width.

    ``model(x)`` and ``guide(x)`` take a float tensor ``[B, x_dim]`` of 0s and 1s. Code
    sites are named ``"z0"``, ``"z1"``, ... (:attr:`sites`); ``one_hot`` picks
    ``OneHotCategorical`` sites (needed by the ``"gumbel"`` estimator) over ``Categorical``.
    """

    def __init__(self, num_codes=16, num_values=4, x_dim=64, hidden=200, one_hot=False):
        super().__init__()
        if num_codes < 1 or num_values < 2:
            raise ValueError("DiscreteVAE: num_codes must be >= 1 and num_values >= 2, got "
                             f"{num_codes} and {num_values}")
        self.num_codes, self.num_values, self.x_dim = num_codes, num_values, x_dim
        self.one_hot = one_hot
        self.sites = [f"z{i}" for i in range(num_codes)]
        self.decoder = _mlp(num_codes * num_values, hidden, x_dim)
        self.encoder = _mlp(x_dim, hidden, num_codes * num_values)

    # ------------------------------------------------------------------ pieces
    def _code_distribution(self, logits):
        if self.one_hot:
            return dist.OneHotCategorical(logits=logits)
        return dist.Categorical(logits=logits)

    def _as_one_hot(self, value):
        """A code site's value (index, one-hot or relaxed one-hot) as a float vector [..., K]."""
        if self.one_hot:
            return value
        return nn.functional.one_hot(value.long(), self.num_values).to(self.decoder[0].weight.dtype)

    def decode(self, codes):
        """Bernoulli logits ``[..., x_dim]`` from one-hot codes ``[..., num_codes, K]``."""
        return self.decoder(codes.flatten(-2))

    def encode(self, x):
        """The encoder's logits ``[B, num_codes, K]``."""
        return self.encoder(x).reshape(x.shape[0], self.num_codes, self.num_values)

    # ---------------------------------------------------------------- programs
    def model(self, x):
        self._check(x)
        ppl.module("decoder", self.decoder)
        prior = x.new_zeros(self.num_values)  # uniform logits
        with ppl.plate("data", x.shape[0]):
            codes = [self._as_one_hot(ppl.sample(name, self._code_distribution(prior)))
                     for name in self.sites]
            codes = torch.broadcast_tensors(*codes)
            logits = self.decode(torch.stack(codes, -2))
            ppl.sample("x", dist.Bernoulli(logits=logits).to_event(1), obs=x)
        return logits

    def guide(self, x):
        self._check(x)
        ppl.module("encoder", self.encoder)
        logits = self.encode(x)
        with ppl.plate("data", x.shape[0]):
            return [ppl.sample(name, self._code_distribution(logits[:, i]))
                    for i, name in enumerate(self.sites)]

    def estimators(self, kind, **options):
        """``{site: kind}`` for ``VI(estimators=...)``: ``"score"`` or ``"gumbel"`` (which
        needs ``one_hot=True``); ``options`` go to :class:`inference.Score` / :class:`inference.Gumbel`."""
        from inference import Gumbel, Score

        if kind == "gumbel" and not self.one_hot:
            raise ValueError("DiscreteVAE: the 'gumbel' estimator relaxes OneHotCategorical "
                             "sites; build the model with one_hot=True")
        make = {"score": Score, "gumbel": Gumbel}.get(kind)
        if make is None:
            raise ValueError(f"DiscreteVAE.estimators: kind must be 'score' or 'gumbel', got {kind!r}")
        return {name: make(**options) for name in self.sites}

    # ----------------------------------------------------------- closed forms
    @torch.no_grad()
    def log_joint(self, x, codes):
        """log p(x, z) per image for integer codes ``[B, num_codes]`` (written directly in
        torch, for checking the program)."""
        onehot = nn.functional.one_hot(codes.long(), self.num_values).to(x.dtype)
        logits, x = torch.broadcast_tensors(self.decode(onehot), x)
        log_lik = -nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
        return log_lik - self.num_codes * math.log(self.num_values)

    @torch.no_grad()
    def log_guide(self, x, codes):
        """log q(z | x) of the mean-field encoder per image for integer codes ``[B, num_codes]``."""
        log_probs = self.encode(x).log_softmax(-1)
        return log_probs.gather(-1, codes.long().unsqueeze(-1)).squeeze(-1).sum(-1)

    @torch.no_grad()
    def exact_log_likelihood(self, x, chunk=4096):
        """log p(x) per image by summing over all ``K ** num_codes`` code configurations
        (small grids only)."""
        total = self.num_values ** self.num_codes
        if total > 1_000_000:
            raise ValueError(f"DiscreteVAE.exact_log_likelihood: {total} code configurations "
                             "are too many to enumerate")
        axes = torch.meshgrid(*[torch.arange(self.num_values)] * self.num_codes, indexing="ij")
        grids = torch.stack([a.reshape(-1) for a in axes], -1)  # [total, num_codes]
        parts = []
        for start in range(0, total, chunk):
            block = grids[start:start + chunk]  # [C, num_codes]
            parts.append(self.log_joint(x.unsqueeze(0), block.unsqueeze(1)))  # [C, B]
        return torch.logsumexp(torch.cat(parts), 0)

    def _check(self, x):
        if x.dim() != 2 or x.shape[-1] != self.x_dim:
            raise ValueError(f"DiscreteVAE: x must be [batch, {self.x_dim}], got {tuple(x.shape)}")
