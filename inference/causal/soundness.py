"""Soundness metrics of counterfactual images (the axioms of Monteiro et al. 2023, measured,
plus the error against a known true counterfactual):

- ground-truth error: mean absolute pixel difference (L1 per pixel, in the images' units)
  between the counterfactual and the true counterfactual image;
- effectiveness: an oracle reads the causes off the counterfactual image; its mean
  absolute error against the values the counterfactual claims (the intervened ones, and
  the downstream causes as the model moved them);
- composition: the null intervention applied m times gives back the image (L1 to it);
- reversibility: intervene, then intervene back to the factual values (L1 to the image).

A ``counterfactual`` is any function ``(data, interventions) -> data`` of dicts holding
``"images"`` and the causes (e.g. ``"thickness"``), so the metrics judge any model, or the
true renderer itself (whose errors are 0 but for the oracle's own):

    >>> import numpy as np
    >>> data = {"images": np.zeros((2, 4, 4)), "level": np.array([1.0, 2.0])}
    >>> def paint(data, interventions):   # an exact counterfactual of a toy renderer
    ...     level = np.broadcast_to(interventions.get("level", data["level"]), data["level"].shape)
    ...     return {"images": np.ones((2, 4, 4)) * level[:, None, None], "level": level}
    >>> data = paint(data, {})
    >>> report = counterfactual_soundness(paint, data, {"level": 3.0}, truth=paint)
    >>> report["ground-truth error"], report["composition, m=10"], report["reversibility"]
    (0.0, 0.0, 0.0)
"""

import numpy as np

__all__ = ["SoundnessReport", "composition", "counterfactual_soundness", "effectiveness",
           "ground_truth_error", "image_l1", "reversibility"]


def image_l1(images, other):
    """Each image's mean absolute pixel difference from the other's: ``[n]``."""
    images, other = np.asarray(images, dtype=np.float64), np.asarray(other, dtype=np.float64)
    if images.shape != other.shape:
        raise ValueError(f"image_l1: the images have shapes {images.shape} and {other.shape}")
    return np.abs(images - other).reshape(len(images), -1).mean(1)


def ground_truth_error(images, true_images):
    """The mean L1 per pixel between counterfactual images and the true ones."""
    return float(image_l1(images, true_images).mean())


def effectiveness(oracle, images, targets):
    """``{cause: mean abs(oracle(images)[cause] - targets[cause])}`` for each cause in
    ``targets``."""
    read = oracle(images)
    missing = sorted(set(targets) - set(read))
    if missing:
        raise ValueError(f"effectiveness: the oracle does not read {missing} (it reads {sorted(read)})")
    errors = {}
    for name, value in targets.items():
        found = np.asarray(read[name], dtype=np.float64)
        errors[name] = float(np.mean(np.abs(found - np.broadcast_to(value, found.shape))))
    return errors


def composition(counterfactual, data, repeats=(1, 10)):
    """{m: mean L1 between the images and the null intervention applied m times to them}
    (``repeats=()``: not measured)."""
    out, current, done = {}, data, 0
    for m in sorted(repeats):
        if m < 1:
            raise ValueError(f"composition: repeats must be positive counts, got {m!r}")
        for _ in range(m - done):
            current = _merged(current, counterfactual(current, {}))
        done = m
        out[m] = float(image_l1(current["images"], data["images"]).mean())
    return out


def reversibility(counterfactual, data, interventions):
    """Mean L1 between the images and their counterfactual under ``interventions`` taken
    back (each intervened cause set to its factual value)."""
    moved = _merged(data, counterfactual(data, interventions))
    back = counterfactual(moved, {name: data[name] for name in interventions})
    return float(image_l1(back["images"], data["images"]).mean())


def _merged(data, answer):
    if "images" not in answer:
        raise ValueError("a counterfactual must return a dict holding 'images' (and the causes it moved)")
    return {**data, **answer}


class SoundnessReport(dict):
    """{metric: value}; ``table()`` lays it out, one metric per line."""

    def table(self, title="metric"):
        width = max(len(title), *(len(k) for k in self))
        lines = [f"{title:<{width}}  value", f"{'-' * width}  -----"]
        lines += [f"{name:<{width}}  {value:.3f}" for name, value in self.items()]
        return "\n".join(lines)


def counterfactual_soundness(counterfactual, data, interventions, truth=None, oracle=None,
                             repeats=(1, 10)):
    """Every metric above for one set of ``interventions`` on ``data``: the ground-truth
    error when ``truth`` (a counterfactual function, e.g. the true renderer, or the true
    images) is given, effectiveness when ``oracle`` (images -> {cause: values}) is given,
    composition for each m in ``repeats``, and reversibility. Returns a :class:`SoundnessReport`."""
    report = SoundnessReport()
    answer = _merged(data, counterfactual(data, interventions))
    if truth is not None:
        true_images = truth(data, interventions)["images"] if callable(truth) else truth
        report["ground-truth error"] = ground_truth_error(answer["images"], true_images)
    if oracle is not None:
        causes = [name for name in oracle(answer["images"][:1]) if name in answer]
        scores = effectiveness(oracle, answer["images"], {name: answer[name] for name in causes})
        for name, value in scores.items():
            report[f"effectiveness: {name}"] = value
    for m, value in composition(counterfactual, data, repeats).items():
        report[f"composition, m={m}"] = value
    report["reversibility"] = reversibility(counterfactual, data, interventions)
    return report
