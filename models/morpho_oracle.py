"""Oracle networks for Morpho-digits: small MLPs that read an image's thickness and intensity,
trained on the unconfounded render (t independent of i, so that neither is read off the
other) of every bundled digit, torch only. They judge counterfactual images: an effective counterfactual of
do(t = 4) is an image the oracle reads as thickness 4.

    >>> from models.morpho_digits import morpho_digits
    >>> oracle = MorphoOracle.fit(num=500, num_epochs=5, seed=0)
    >>> test = morpho_digits(200, seed=1, split="test", confounded=False)
    >>> sorted(oracle.predict(test["images"]))
    ['intensity', 'thickness']
    >>> scores = oracle.r2(test)
    >>> 0 < scores["intensity"] <= 1
    True
"""

import numpy as np
import torch
from torch import nn

from .morpho_digits import morpho_digits

__all__ = ["MorphoOracle"]

TARGETS = ("thickness", "intensity")


class MorphoOracle(nn.Module):
    """Regress (thickness, intensity) on an image's pixels / 255; ``predict`` and ``r2``."""

    def __init__(self, resolution=8, hidden=256):
        super().__init__()
        self.resolution = resolution
        self.net = nn.Sequential(nn.Linear(resolution ** 2, hidden), nn.ELU(),
                                 nn.Linear(hidden, hidden), nn.ELU(), nn.Linear(hidden, 2))
        self.register_buffer("center", torch.zeros(2))
        self.register_buffer("spread", torch.ones(2))

    @classmethod
    def fit(cls, resolution=8, num=20_000, num_epochs=40, batch_size=100, learning_rate=2e-3,
              seed=0, hidden=256):
        """An oracle fitted by least squares on ``num`` unconfounded training renders."""
        torch.manual_seed(seed)
        data = morpho_digits(num, seed=seed, resolution=resolution, confounded=False, split="all")
        oracle = cls(resolution, hidden)
        x = oracle._inputs(data["images"])
        y = torch.as_tensor(np.stack([data[name] for name in TARGETS], -1), dtype=torch.float32)
        oracle.center, oracle.spread = y.mean(0), y.std(0)
        y = (y - oracle.center) / oracle.spread
        optimizer = torch.optim.Adam(oracle.parameters(), lr=learning_rate)
        generator = torch.Generator().manual_seed(seed)
        for _ in range(num_epochs):
            order = torch.randperm(num, generator=generator)
            for start in range(0, num, batch_size):
                rows = order[start:start + batch_size]
                loss = ((oracle.net(x[rows]) - y[rows]) ** 2).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        return oracle.eval()

    def _inputs(self, images):
        images = np.asarray(images, dtype=np.float32)
        r = self.resolution
        if images.ndim != 3 or images.shape[1:] != (r, r):
            raise ValueError(f"MorphoOracle: expected images of shape [n, {r}, {r}], got {images.shape}")
        return torch.as_tensor(images.reshape(len(images), r * r) / 255.0)

    @torch.no_grad()
    def predict(self, images):
        """{"thickness": [n], "intensity": [n]} read from images (0-255, ``[n, R, R]``)."""
        out = self.net(self._inputs(images)) * self.spread + self.center
        return {name: out[:, k].numpy().astype(np.float64) for k, name in enumerate(TARGETS)}

    def r2(self, data):
        """The coefficient of determination of each target on ``data`` (a morpho_digits dict)."""
        predicted = self.predict(data["images"])
        return {name: float(1 - np.mean((predicted[name] - data[name]) ** 2) / np.var(data[name]))
                for name in TARGETS}
