"""Small offline data sets: binarised 8x8 digits (scikit-learn's bundled ``load_digits``).

    >>> x = load_binarized_digits("train")
    >>> tuple(x.shape), x.dtype, sorted(x.unique().tolist())
    ((1438, 64), torch.float32, [0.0, 1.0])
    >>> len(load_binarized_digits("test"))
    359
    >>> [tuple(b.shape) for b in minibatches(x[:10], batch_size=4, seed=0)]
    [(4, 64), (4, 64), (2, 64)]
"""

import functools

import numpy as np
import torch

__all__ = ["load_binarized_digits", "minibatches"]

_NUM_DIGITS = 1797  # images in scikit-learn's copy of the UCI optical digits test set


@functools.lru_cache(maxsize=1)
def _raw_digits():
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:  # the "data" extra is optional
        raise ImportError("load_binarized_digits needs scikit-learn: pip install "
                          "'ppl-extension[data]'") from error
    images = load_digits().data.astype(np.float64)  # [1797, 64], integers 0..16
    images.setflags(write=False)
    return images


def _split_indices(split, test_fraction, split_seed):
    order = np.random.default_rng(split_seed).permutation(_NUM_DIGITS)
    num_test = round(test_fraction * _NUM_DIGITS)
    if split == "train":
        return np.sort(order[num_test:])
    if split == "test":
        return np.sort(order[:num_test])
    if split == "all":
        return np.arange(_NUM_DIGITS)
    raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")


def load_binarized_digits(split="train", threshold=8.0, seed=0, test_fraction=0.2,
                          split_seed=0):
    """Binarised 8x8 digits as a float32 tensor ``[N, 64]`` of 0s and 1s.

    ``split``: ``"train"`` (1438 images), ``"test"`` (359) or ``"all"`` (1797); the split is
    a fixed permutation (``split_seed``), the same on every call and machine.
    ``threshold``: pixel intensities (0..16) above it become 1. ``threshold=None`` binarises
    stochastically instead, each pixel ~ Bernoulli(intensity / 16), with NumPy seed ``seed``
    (drawn over the whole set before splitting, so train and test use disjoint draws).
    """
    images = _raw_digits()
    if threshold is None:
        rng = np.random.default_rng(seed)
        binary = rng.random(images.shape) < images / 16.0
    else:
        binary = images > threshold
    index = _split_indices(split, test_fraction, split_seed)
    return torch.as_tensor(binary[index].astype(np.float32))


def minibatches(data, batch_size, seed=0, drop_last=False):
    """One epoch of shuffled minibatches of ``data`` (first axis), in a seeded order."""
    n = data.shape[0]
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=generator)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        yield data[order[start:start + batch_size].to(data.device)]
