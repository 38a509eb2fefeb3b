"""From traces to per-particle log-weights: the shared reduction used by VI and Importance.

A site's log density is laid out right-aligned as ``[enum dims..., particles, plates...]``.
:class:`WeightLayout` sums the plate dimensions away, except the plates whose elements
carry independent importance weights, and returns arrays of shape ``[K]`` or
``[K, N1, N2, ...]`` (one axis per kept plate, in dimension order).

    >>> import torch, ppl, ppl.distributions as dist
    >>> from ppl.backends.torch import BACKEND
    >>> def model():
    ...     ppl.sample("g", dist.Normal(0.0, 1.0), obs=torch.tensor(1.0))  # outside the plate
    ...     with ppl.plate("data", 3):
    ...         ppl.sample("z", dist.Normal(0.0, 1.0))
    >>> trace = BACKEND.run(model, particles=(2, -2))
    >>> log_w = total_log_weight(BACKEND.ops, WeightLayout(1, True, (("data", -1),)), trace.sites.values())
    >>> tuple(log_w.shape)   # 2 particles x 3 elements; "g" counted once, on element 0
    (2, 3)
"""

from dataclasses import dataclass, field

from ppl.errors import NonFiniteError, SiteError, UnsupportedError  # noqa: F401  (re-exported: NonFiniteError)


@dataclass
class WeightLayout:
    """Where the particle, plate and enumeration dimensions lie.

    ``plate_dims``: the model's plate nesting P (plates use dims -1 .. -P);
    ``vectorised``: whether a particle plate sits at dim -(P + 1);
    ``keep``: ((name, dim), ...) the plates whose elements have independent weights, or None;
    ``enum``: site name -> (dim, probability array) for enumerated guide sites.
    """

    plate_dims: int
    vectorised: bool
    keep: tuple = None
    enum: dict = field(default_factory=dict)

    def reduce(self, ops, site):
        """(the site's log density summed over the plates not kept: ``[K or 1]`` or ``[K or
        1, *kept]``, whether it lies in every kept plate). A site outside a kept plate must
        not vary across particles (the weights would not factorise over that plate); it is
        returned summed to ``[1]``, to be counted once."""
        if not self.vectorised and not self.enum and self.keep is None:
            return ops.sum_log_prob(site), True  # a scalar: total_log_weight lays it out once
        lp = site.log_prob
        if self.enum:
            lp = self._sum_enumerated(ops, lp)
        P = self.plate_dims
        if ops.ndim(lp) <= P:  # one particle, or a site that does not vary over particles
            lp = ops.reshape(lp, (1,) * (P + 1 - ops.ndim(lp)) + tuple(lp.shape))
        kept = () if self.keep is None else tuple(dim for _, dim in self.keep)
        dims = tuple(d for d in range(-P, 0) if d not in kept)
        out = ops.sum(lp, dims) if dims else lp
        if self.keep is None:
            return out, True
        names = {p.name for p in site.plates}
        if all(name in names for name, _ in self.keep):
            return out, True
        if out.shape[0] > 1:
            if not same_in_every_particle(out):
                self._refuse_outside_keep(site)
            out = out[:1]  # the particle plate broadcast it; it reads no particle's value
        return ops.sum(ops.reshape(out, (1, -1)), 1), False

    def _refuse_outside_keep(self, site):
        names = {p.name for p in site.plates}
        outside = [name for name, _ in self.keep if name not in names]
        raise SiteError(  # a model the weights do not fit, not a program that fails to broadcast
            f"site {site.name!r} lies outside plate {outside[0]!r} but its log density varies "
            f"across particles, so the weights do not factorise over {outside[0]!r}; pass "
            "independent_plate=None to weight whole traces", site=site.name)

    def _sum_enumerated(self, ops, lp):
        involved = [name for name, (dim, _) in self.enum.items()
                    if ops.ndim(lp) >= -dim and lp.shape[dim] > 1]
        if not involved:
            return lp
        # a guide site's probabilities may depend on another enumerated site: include it too
        changed = True
        while changed:
            changed = False
            for name, (dim, _) in self.enum.items():
                if name in involved:
                    continue
                for other in list(involved):
                    probs = self.enum[other][1]
                    if ops.ndim(probs) >= -dim and probs.shape[dim] > 1:
                        involved.append(name)
                        changed = True
                        break
        for name in involved:
            lp = lp * self.enum[name][1]
        return ops.sum(lp, tuple(sorted(self.enum[name][0] for name in involved)))


def total_log_weight(ops, layout, sites, outside=None):
    """Sum of ``layout.reduce`` over sites, shaped ``[K]`` or ``[K, *kept]`` (K = 1 when the
    run is not vectorised); 0.0 when there are no sites. Sites outside a kept plate (equal
    in every particle) are counted once, on the first element: spread over the elements,
    the bound would count them once per element. ``outside``: a list that receives their
    sum (to check, across runs of one particle each, that it does not vary)."""
    total, once, names = 0.0, 0.0, []
    for site in sites:
        value, inside = layout.reduce(ops, site)
        if inside:
            total = total + value
        else:
            once = once + value
            names.append(site.name)
    if outside is not None and names:
        outside.append((once, names))
    if not layout.vectorised and layout.keep is None and not isinstance(total, float):
        total = ops.reshape(total, (1,))
    if isinstance(once, float):
        return total
    if isinstance(total, float):
        raise UnsupportedError(
            f"per-element weights over plates {[name for name, _ in layout.keep]} for a program "
            "with no site in those plates (only sites outside them)",
            hint="pass independent_plate=None to weight whole traces")
    shape = tuple(total.shape)
    flat = ops.reshape(total, (shape[0], -1))
    flat = ops.concatenate([flat[:, :1] + ops.reshape(once, (1, 1)), flat[:, 1:]], 1)
    return ops.reshape(flat, shape)


def enumerated_score(ops, layout, downstream, costs, guide_sites):
    """Score-function terms for guide sites drawn downstream of enumerated ones (each
    drawn once per enumerated value), as Pyro's Dice estimator takes them (first order,
    no baseline): for each such site s and each cost c whose plates include s's (the
    model's log densities ``costs``, and -log q of the guide's sites), the guide-weighted
    sum of stop_gradient(c) * log q(s). Shaped as :func:`total_log_weight`."""
    products = []
    guide_costs = [(site, -1.0) for site in guide_sites]
    for s in downstream:
        plates = {p.name for p in s.plates}
        # zero in value, so that the enumerated sites' weights multiplying it pass no gradient
        score = s.log_prob - ops.stop_gradient(s.log_prob)
        for c, sign in [(site, 1.0) for site in costs] + guide_costs:
            if plates <= {p.name for p in c.plates}:
                products.append(_Product(s.name, sign * ops.stop_gradient(c.log_prob) * score, c.plates))
    return total_log_weight(ops, layout, products)


@dataclass
class _Product:
    name: str
    log_prob: object
    plates: tuple


def find_non_finite(ops, traces):
    """A sentence naming what is not finite, or None: a NaN parameter first (it makes every
    site it feeds NaN, so it is the cause; an infinite one may be meant, as -inf logits),
    then the first site whose value or log density is not finite, then a parameter."""
    for role, trace in traces:
        for name, value in trace.params.items():
            if ops.isnan(value):
                return f"parameter {name!r} in the {role} is NaN"
    for role, trace in traces:
        for site in trace:
            try:
                if not ops.isfinite(site.value):
                    kind = "observed value" if site.observed else "value"
                    return f"site {site.name!r} in the {role} has a non-finite {kind}"
            except TypeError:
                pass
            if not ops.isfinite(site.log_prob):
                return (f"site {site.name!r} in the {role} has a non-finite log density "
                        f"under {type(site.fn).__name__}")
        for name, value in trace.params.items():
            if not ops.isfinite(value):
                return f"parameter {name!r} in the {role} is not finite"
    return None


def same_in_every_particle(out):
    """Whether a log density the particle plate broadcast is equal across particles (a site
    outside the per-element plate that reads no latent); False when it cannot be read (a
    traced value under jit), which keeps the refusal."""
    try:
        return bool((out == out[:1]).all())
    except Exception:  # noqa: BLE001 -- e.g. jax's TracerBoolConversionError
        return False
