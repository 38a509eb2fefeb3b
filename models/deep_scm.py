"""A deep structural causal model of Morpho-digits (:mod:`models.morpho_digits`), torch only:
stroke thickness ``t``, intensity ``i`` caused by ``t``, and the image caused by both and
a latent ``z``, as one program whose counterfactuals any abduction strategy answers.

Per image, in plate ``"digits"``:

- ``thickness``: ``t = 0.5 + exp(a + b eps_t)`` (a LogNormal mechanism, learned ``a, b``);
- ``intensity``: ``i = 64 + 191 sigmoid(c (t - 2.5) + d + e eps_i)`` (the data's range,
  learned ``c, d, e``; the true mechanism is this family with c = 2, d = 0, e = 0.5);
- ``z ~ Normal(0, I)``;
- ``image`` (pixels / 255, flattened): ``decoder="gaussian"``, ``Normal(mu(z, t, i), sigma)``;
  or ``decoder="flow"``, ``mu(z, t, i) + sigma * g(eps; z, t, i)`` with ``g`` a
  normalising flow of shift couplings (:mod:`models.conditional_flow`; :class:`FlowDecoder`
  says why shifts).

Both mechanisms and both decoders are bijective in their noise, so the noise registry
shares it between worlds exactly (``ppl.causal.noise``: location-scale and transformed
distributions): abduction then a null intervention gives back the factual image. The guide
is the amortised ``q(z | image, t, i)``; ``abduction_guide`` is the same network sampling
``"z__noise"``, the counterfactual program's latent (``z``'s noise is ``z`` itself).

    >>> from models.morpho_digits import morpho_digits
    >>> data = morpho_digits(64, seed=0)
    >>> scm = DeepSCM(z_dim=4, hidden=32, seed=0)
    >>> vi = scm.fit(data, num_epochs=2, batch_size=32, progress=False)
    >>> answer = scm.counterfactual(data, {"thickness": 4.0}, abduction="guide", num_samples=8)
    >>> answer.images.shape, answer.sd.shape, round(float(answer.thickness[0]), 1)
    ((64, 8, 8), (64, 8, 8), 4.0)
"""

import functools
import math

import numpy as np
import torch
from torch import nn

import ppl
import ppl.distributions as dist
from inference import ELBO, VI, Adam
from inference.causal.draws import counterfactual_draws
from inference.trainer import run_steps

from .conditional_flow import ConditionalFlow, _broadcast_cat
from .morpho_digits import RESOLUTIONS

__all__ = ["DeepSCM", "CounterfactualImages", "DECODERS"]

DECODERS = ("gaussian", "flow")
INTENSITY_LOW, INTENSITY_RANGE = 64.0, 191.0  # the intensities' range, [64, 255]


def _parents(t, i):
    """Thickness and intensity scaled to about unit spread, as the networks read them."""
    t, i = (t - 2.5) / 0.65, (i - 160.0) / 55.0
    # do(t = 4.0) is a scalar (a CPU one, which arithmetic moves to the other's device)
    return torch.stack([t + torch.zeros_like(i), i + torch.zeros_like(t)], -1)


class Mechanisms(nn.Module):
    """The thickness and intensity mechanisms' five parameters."""

    def __init__(self):
        super().__init__()
        self.thickness_loc = nn.Parameter(torch.tensor(0.6))
        self.thickness_log_scale = nn.Parameter(torch.tensor(math.log(0.3)))
        self.intensity_slope = nn.Parameter(torch.tensor(1.0))
        self.intensity_shift = nn.Parameter(torch.tensor(0.0))
        self.intensity_log_scale = nn.Parameter(torch.tensor(0.0))

    def thickness(self):
        base = dist.Normal(self.thickness_loc, self.thickness_log_scale.exp())
        return dist.TransformedDistribution(base, [dist.transforms.ExpTransform(),
                                                   dist.transforms.AffineTransform(0.5, 1.0)])

    def intensity(self, t):
        loc = self.intensity_slope * (t - 2.5) + self.intensity_shift
        base = dist.Normal(loc, self.intensity_log_scale.exp())
        return dist.TransformedDistribution(base, [
            dist.transforms.SigmoidTransform(),
            dist.transforms.AffineTransform(INTENSITY_LOW, INTENSITY_RANGE)])


def _mlp(inputs, hidden, outputs):
    return nn.Sequential(nn.Linear(inputs, hidden), nn.ELU(), nn.Linear(hidden, hidden), nn.ELU(),
                         nn.Linear(hidden, outputs))


class GaussianDecoder(nn.Module):
    """image | z, t, i ~ Normal(mu(z, t, i), sigma), one learned sigma for every pixel."""

    def __init__(self, pixels, z_dim, hidden):
        super().__init__()
        self.mean = _mlp(z_dim + 2, hidden, pixels)
        self.log_sigma = nn.Parameter(torch.tensor(math.log(0.1)))

    def context(self, z, t, i):
        return _broadcast_cat(z, _parents(t, i))

    def forward(self, z, t, i):
        mu = torch.sigmoid(self.mean(self.context(z, t, i)))
        return dist.Normal(mu, self.log_sigma.exp()).to_event(1)


class FlowDecoder(GaussianDecoder):
    """image = mu(z, t, i) + sigma * g(eps; z, t, i), ``g`` a normalising flow of shift
    couplings (volume-preserving) conditioned on z and the causes: correlated, non-Gaussian
    pixel noise whose transport between worlds depends on the intervened causes.

    Shift-only, as measured on this data: with affine couplings (a scale per layer read
    from the context) the flow maps the held noise through a context it was never trained
    on and amplifies it (pixels beyond 1000 of 255 after do(i = 100), a ground-truth error
    of 26 to 57 against the Gaussian decoder's 5 to 12); with a flow that reads z alone, or
    nothing, the flow explains the digit and leaves the causes' effect to a weak mean (an
    effectiveness error on intensity of 27 to 47 against 7 to 10). Shifts cannot amplify."""

    def __init__(self, pixels, z_dim, hidden):
        super().__init__(pixels, z_dim, hidden)
        self.flow = ConditionalFlow(pixels, z_dim + 2, hidden, shift_only=True)

    def forward(self, z, t, i):
        context = self.context(z, t, i)
        mu = torch.sigmoid(self.mean(context))
        base = dist.Normal(torch.zeros_like(mu), 1.0).to_event(1)
        scale = dist.transforms.AffineTransform(mu, self.log_sigma.exp(), event_dim=1)
        return dist.TransformedDistribution(base, self.flow(context) + [scale])


class CounterfactualImages:
    """A counterfactual answer per image: the ``images``' posterior mean and ``sd`` (0-255,
    ``[n, R, R]``), the counterfactual ``thickness`` and ``intensity`` (means), the
    ``draws`` ``[n, S, R, R]`` when kept, the abduction used, and each image's
    ``effective_sample_size`` (of the draws: its query's, one for every image with the guide)."""

    def __init__(self, images, sd, thickness, intensity, abduction, draws=None,
                 effective_sample_size=None):
        self.images, self.sd = images, sd
        self.thickness, self.intensity = thickness, intensity
        self.abduction, self.draws = abduction, draws
        self.effective_sample_size = effective_sample_size

    def __repr__(self):
        return f"CounterfactualImages({self.images.shape[0]} images, abduction={self.abduction!r})"


class DeepSCM(nn.Module):
    """The deep SCM of thickness, intensity and image (see the module docstring);
    ``device="cuda"`` keeps its networks and the program's arrays on a GPU (answers come
    back as numpy arrays)."""

    def __init__(self, resolution=8, z_dim=8, hidden=128, decoder="gaussian", seed=0, device="cpu"):
        super().__init__()
        if resolution not in RESOLUTIONS:
            raise ValueError(f"DeepSCM: resolution must be one of {RESOLUTIONS}, got {resolution!r}")
        if decoder not in DECODERS:
            raise ValueError(f"DeepSCM: decoder must be one of {DECODERS}, got {decoder!r}")
        self.resolution, self.z_dim, self.decoder_family = resolution, z_dim, decoder
        pixels = resolution * resolution
        with torch.random.fork_rng(devices=[]):  # seeded weights, the global stream untouched
            torch.manual_seed(seed)
            self.mechanisms = Mechanisms()
            self.decoder = (GaussianDecoder if decoder == "gaussian" else FlowDecoder)(pixels, z_dim, hidden)
            self.encoder = _mlp(pixels + 2, hidden, 2 * z_dim)
        self.to(device)

    @property
    def device(self):
        return self.mechanisms.thickness_loc.device

    def model(self, images=None, thickness=None, intensity=None, num=None):
        """The program; ``images`` (0-255 ``[n, R, R]``), ``thickness``, ``intensity``: what is
        observed (``num`` images when nothing is)."""
        ppl.module("mechanisms", self.mechanisms)
        ppl.module("decoder", self.decoder)
        x, t, i, n = self._data(images, thickness, intensity, num)
        with ppl.plate("digits", n):
            t = ppl.sample("thickness", self.mechanisms.thickness(), obs=t)
            i = ppl.sample("intensity", self.mechanisms.intensity(t), obs=i)
            z = ppl.sample("z", dist.Normal(torch.zeros(self.z_dim, device=self.device), 1.0).to_event(1))
            return ppl.sample("image", self.decoder(z, t, i), obs=x)

    def guide(self, images=None, thickness=None, intensity=None, num=None, site="z"):
        """The amortised q(z | image, t, i) (``site``: the name it samples)."""
        ppl.module("encoder", self.encoder)
        x, t, i, n = self._data(images, thickness, intensity, num)
        if x is None or t is None or i is None:
            raise ValueError("DeepSCM.guide reads the image, thickness and intensity: give all three")
        loc, raw = self.encoder(torch.cat([x, _parents(t, i)], -1)).chunk(2, -1)
        with ppl.plate("digits", n):
            return ppl.sample(site, dist.Normal(loc, nn.functional.softplus(raw) + 1e-3).to_event(1))

    @property
    def abduction_guide(self):
        """The guide of the counterfactual program: q(z | image, t, i) sampling ``"z__noise"``."""
        return functools.partial(self.guide, site="z__noise")

    def _data(self, images, thickness, intensity, num):
        """(flattened pixels / 255, thickness, intensity, their number), checked."""
        x = None if images is None else self.pixels(images)
        t = None if thickness is None else torch.as_tensor(thickness, dtype=torch.float32, device=self.device)
        i = None if intensity is None else torch.as_tensor(intensity, dtype=torch.float32, device=self.device)
        sizes = {name: int(v.shape[0]) for name, v in (("images", x), ("thickness", t), ("intensity", i))
                 if v is not None}
        if num is not None:
            sizes["num"] = num
        if len(set(sizes.values())) > 1:
            raise ValueError(f"DeepSCM: the observations hold different numbers of images: {sizes}")
        if not sizes:
            raise ValueError("DeepSCM.model: give images, thickness, intensity or num")
        return x, t, i, next(iter(sizes.values()))

    def pixels(self, images):
        """Images (0-255, ``[n, R, R]``) as the model's flattened ``[n, R * R]`` pixels / 255."""
        if not isinstance(images, torch.Tensor):
            images = np.asarray(images, dtype=np.float32)
        x = torch.as_tensor(images, dtype=torch.float32, device=self.device)
        r = self.resolution
        if x.dim() != 3 or tuple(x.shape[1:]) != (r, r):
            raise ValueError(f"site 'image': expected images of shape [n, {r}, {r}] (this model's "
                             f"resolution), got {tuple(x.shape)}")
        # a counterfactual image may leave the range (the decoder's residual is held while
        # the strokes move) and is read back by composition and reversibility, so only the
        # common mistake is refused: images scaled to [0, 1]
        low, high = (float(x.min()), float(x.max())) if x.numel() else (0.0, 0.0)
        if not bool(torch.isfinite(x).all()) or 0 < high <= 1:
            raise ValueError("site 'image': expected finite pixel values on the 0-255 scale "
                             f"(Morpho-digits'), got values in [{low}, {high}]")
        return x.reshape(x.shape[0], r * r) / 255.0

    def fit(self, data, num_epochs=30, batch_size=100, learning_rate=3e-3, objective=None,
            seed=0, progress=True, dequantize=1.0):
        """Train on ``data`` (a :func:`~models.morpho_digits.morpho_digits` dict) with VI
        (``objective``: ELBO by default) over shuffled minibatches; returns the :class:`VI`.
        ``self.epoch_losses`` holds each epoch's mean loss. ``dequantize``: each batch's
        pixels get uniform noise of this width (0-255 scale), so that a density cannot
        grow without bound on the exact zeros of the background (a flow would squeeze them,
        and its counterfactuals would then amplify any change of context)."""
        vi = VI(self.model, self.guide, objective or ELBO(), Adam(learning_rate), rng_seed=seed)
        images, t, i = data["images"], data["thickness"], data["intensity"]
        order = np.random.default_rng(seed)

        def step(rows):
            batch = images[rows]
            return vi.step(batch + order.uniform(0, dequantize, batch.shape).astype(np.float32),
                           t[rows], i[rows])

        def epoch():
            batches = np.array_split(order.permutation(len(images)), max(1, len(images) // batch_size))
            return float(np.mean([step(rows) for rows in batches]))

        self.epoch_losses = run_steps(epoch, (), {}, num_epochs, progress, label="DeepSCM.fit (epochs)")
        return vi

    def counterfactual(self, data, interventions, abduction="guide", num_samples=32,
                       num_particles=256, num_warmup=100, keep_draws=False, seed=0):
        """Counterfactual images of ``data`` (a dict of ``images``, ``thickness`` and
        ``intensity``) under ``interventions`` (``{"thickness": value, array or
        function of the factual value, "intensity": ...}``; a list of such dicts for
        several worlds sharing one abduction, answered by a list), abducting z by
        ``abduction`` (``"guide"``: the amortised guide, all images at once;
        ``"importance"`` with the guide as proposal, or ``"mcmc"``: one query per image).
        See :mod:`inference.causal.draws`."""
        images, t, i = data["images"], np.asarray(data["thickness"]), np.asarray(data["intensity"])
        self.pixels(images)  # checked before any query runs
        multi = isinstance(interventions, (list, tuple))
        sets = list(interventions) if multi else [interventions]
        units = [slice(None)] if abduction == "guide" else [slice(k, k + 1) for k in range(len(images))]
        parts = []
        for k, unit in enumerate(units):
            local = [{name: _rows(value, unit, self.device) for name, value in s.items()} for s in sets]
            draws = counterfactual_draws(
                self.model, {}, local if multi else local[0], ["image", "thickness", "intensity"],
                images=images[unit], thickness=t[unit], intensity=i[unit], abduction=abduction,
                guide=self.abduction_guide, num_samples=num_samples, num_particles=num_particles,
                num_warmup=num_warmup, rng_seed=seed + k, worlds="multi" if multi else "twin",
                world=list(range(1, len(sets) + 1)) if multi else 1)
            parts.append(draws if multi else [draws])
        answers = [self._answer([p[w] for p in parts], abduction, keep_draws) for w in range(len(sets))]
        return answers if multi else answers[0]

    def counterfactual_fn(self, abduction="guide", **options):
        """``(data, interventions) -> {"images", "thickness", "intensity"}``: this model's
        counterfactual (posterior means) as the soundness metrics take it
        (:func:`inference.causal.counterfactual_soundness`); ``options`` go to
        :meth:`counterfactual`."""
        def answer(data, interventions):
            found = self.counterfactual(data, interventions, abduction=abduction, **options)
            return {"images": found.images, "thickness": found.thickness, "intensity": found.intensity}
        return answer

    def _answer(self, parts, abduction, keep_draws):
        r = self.resolution
        image = lambda a: 255.0 * a.reshape(a.shape[:-1] + (r, r))  # noqa: E731
        mean = np.concatenate([image(d.mean("image")) for d in parts])
        sd = np.concatenate([image(d.sd("image")) for d in parts])
        per_part = [d.mean("thickness") for d in parts]
        thickness = np.concatenate(per_part)
        intensity = np.concatenate([d.mean("intensity") for d in parts])
        draws = None
        if keep_draws:
            draws = np.concatenate([np.moveaxis(image(d.values["image"]), 0, 1) for d in parts])
        ess = np.concatenate([np.full(len(t), d.effective_sample_size) for t, d in zip(per_part, parts)])
        return CounterfactualImages(mean, sd, thickness, intensity, abduction, draws, ess)


def _rows(value, unit, device):
    """An intervention's value for these rows: a per-image array sliced, else as given."""
    if callable(value) or np.ndim(value) == 0:
        return value
    return torch.as_tensor(np.asarray(value, dtype=np.float32)[unit], device=device)
