"""Morpho-digits: scikit-learn's bundled 8x8 digits re-rendered with a known structural
causal model of stroke thickness and intensity (the Morpho-MNIST SCM of Pawlowski, Castro
and Glocker 2020), so that every counterfactual image is known exactly.

The true SCM, per image: thickness ``t = 0.5 + Gamma(10, rate 5)``; intensity
``i = 191 * sigmoid(0.5 * eps + 2 * (t - 2.5)) + 64`` with ``eps ~ N(0, 1)``; the image
``render(base, t, i)``. The renderer upsamples the base digit to a 64x64 canvas,
binarises it, moves its outline in or out by a disk (dilation or erosion, through the
signed Euclidean distance to the outline) so that the stroke is ``t`` pixels thick on
Morpho-MNIST's 28x28 scale, box-averages the canvas to 8x8 or 16x16 and scales it by
``i``: a fully covered pixel is ``i`` (of 0-255). The counterfactual image of a rendered
digit under do(t = t') is ``render(base, t', i)`` (with i's noise held, the intensity
follows the new thickness: :func:`counterfactual_intensity`).

    >>> data = morpho_digits(200, seed=0)
    >>> data["images"].shape, data["images"].dtype.name
    ((200, 8, 8), 'float32')
    >>> again = render(data["base"][:3], data["thickness"][:3], data["intensity"][:3])
    >>> bool(np.array_equal(again, data["images"][:3]))
    True
"""

import functools

import numpy as np

CANVAS = 64  # the 8x8 digit upsampled 8 times
SCALE = CANVAS / 28  # canvas pixels per Morpho-MNIST (28x28) pixel
RESOLUTIONS = (8, 16)
SPLITS = ("train", "test", "all")


@functools.lru_cache(maxsize=1)
def base_digits():
    """(the 1797 bundled 8x8 digits, 0-16, as float64, their labels)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.images, digits.target


@functools.lru_cache(maxsize=1)
def _signed_distances():
    """Each digit's signed distance to its outline on the canvas (positive inside), and
    its own stroke thickness on the 28x28 scale (twice the mean inside distance)."""
    from scipy.ndimage import distance_transform_edt, zoom

    images, _ = base_digits()
    signed = np.empty((len(images), CANVAS, CANVAS), dtype=np.float32)
    thickness = np.empty(len(images))
    for k, image in enumerate(images):
        mask = zoom(image, CANVAS // 8, order=1) > 8.0  # half of the digits' 0-16 range
        inside, outside = distance_transform_edt(mask), distance_transform_edt(~mask)
        signed[k] = np.where(mask, inside, -outside + 1.0)  # outline pixels at +1 and 0
        thickness[k] = 2.0 * inside[mask].mean() / SCALE
    return signed, thickness


def render(base, thickness, intensity, resolution=8):
    """The images of base digits ``base`` (indices into :func:`base_digits`) with stroke
    ``thickness`` (> 0, 28x28 pixels) and ``intensity`` (0-255): ``[n, R, R]`` float32."""
    base = np.atleast_1d(np.asarray(base, dtype=int))
    thickness = np.broadcast_to(np.asarray(thickness, dtype=np.float64), base.shape)
    intensity = np.broadcast_to(np.asarray(intensity, dtype=np.float64), base.shape)
    _check(thickness, intensity, resolution)
    signed, own = _signed_distances()
    offset = (thickness - own[base]) * SCALE / 2  # > 0: dilate by that radius; < 0: erode
    stroke = signed[base] > -offset[:, None, None]
    block = CANVAS // resolution
    coverage = stroke.reshape(len(base), resolution, block, resolution, block).mean((2, 4))
    return (coverage * intensity[:, None, None]).astype(np.float32)


def _check(thickness, intensity, resolution):
    if resolution not in RESOLUTIONS:
        raise ValueError(f"render: resolution must be one of {RESOLUTIONS}, got {resolution!r}")
    if not np.all(np.isfinite(thickness)) or np.any(thickness <= 0):
        raise ValueError(f"render: thickness must be positive (28x28 pixels), got "
                         f"{thickness[~(np.isfinite(thickness) & (thickness > 0))][:3].tolist()}")
    if not np.all((intensity >= 0) & (intensity <= 255)):
        raise ValueError(f"render: intensity must lie in [0, 255], got "
                         f"{intensity[~((intensity >= 0) & (intensity <= 255))][:3].tolist()}")


def intensity_of(thickness, noise):
    """The SCM's intensity mechanism: 191 sigmoid(0.5 noise + 2 (t - 2.5)) + 64."""
    return 191.0 / (1.0 + np.exp(-(0.5 * noise + 2.0 * (np.asarray(thickness) - 2.5)))) + 64.0


def counterfactual_intensity(thickness, intensity, new_thickness):
    """The intensity under do(t = new_thickness) with the factual intensity's noise held
    (abducted by inverting the mechanism)."""
    share = (np.asarray(intensity) - 64.0) / 191.0
    noise = (np.log(share / (1 - share)) - 2.0 * (np.asarray(thickness) - 2.5)) / 0.5
    return intensity_of(new_thickness, noise)


def true_counterfactual(data, interventions, resolution=None):
    """The exact counterfactual of rendered ``data`` (a :func:`morpho_digits` dict) under
    ``interventions`` on ``"thickness"`` and/or ``"intensity"`` (values, per-image arrays, or
    functions of the factual value): ``{"images", "thickness", "intensity"}``. The intensity
    follows an intervened thickness with its noise held, unless it is intervened on too."""
    unknown = sorted(set(interventions) - {"thickness", "intensity"})
    if unknown:
        raise ValueError(f"true_counterfactual: the SCM has no site {unknown[0]!r} to intervene on "
                         "(its causes are 'thickness' and 'intensity')")
    resolution = resolution or data["images"].shape[-1]
    t, i = np.asarray(data["thickness"], dtype=np.float64), np.asarray(data["intensity"], dtype=np.float64)

    def value(name, factual):
        action = interventions[name]
        new = action(factual) if callable(action) else action
        return np.broadcast_to(new, factual.shape).astype(np.float64)

    new_t = value("thickness", t) if "thickness" in interventions else t
    new_i = (value("intensity", i) if "intensity" in interventions
             else counterfactual_intensity(t, i, new_t))
    return {"images": render(data["base"], new_t, new_i, resolution), "thickness": new_t,
            "intensity": new_i}


def morpho_digits(num, seed=0, resolution=8, confounded=True, split="train", train_share=0.8):
    """``num`` images drawn from the SCM: a dict of ``images`` ``[num, R, R]``, their
    ``thickness``, ``intensity`` and intensity ``noise``, the ``base`` digit index and its
    ``label``. ``confounded=False`` draws the intensity from an independent thickness (t
    independent of i: the render that oracle networks are trained on). ``split``: base
    digits from the first ``train_share`` of the bundled set (``"train"``), the rest
    (``"test"``) or all of them (``"all"``: an oracle, an instrument rather than a model
    under test, may know every digit)."""
    if split not in SPLITS:
        raise ValueError(f"morpho_digits: split must be one of {SPLITS}, got {split!r}")
    images, labels = base_digits()
    cut = int(round(train_share * len(images)))
    pool = {"train": np.arange(cut), "test": np.arange(cut, len(images)),
            "all": np.arange(len(images))}[split]
    rng = np.random.default_rng(seed)
    base = rng.choice(pool, num)
    thickness = 0.5 + rng.gamma(10.0, 1 / 5.0, num)
    noise = rng.normal(size=num)
    driver = thickness if confounded else 0.5 + rng.gamma(10.0, 1 / 5.0, num)
    intensity = intensity_of(driver, noise)
    return {"images": render(base, thickness, intensity, resolution), "thickness": thickness,
            "intensity": intensity, "noise": noise, "base": base, "label": labels[base]}
