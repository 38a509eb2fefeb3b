"""What strategies learn about a program from one dry run: its sites, plate nesting and shapes."""

import math
import warnings


def dry_run(backend, model, guide, args, kwargs, draw, rng=None, params=None):
    """Run ``guide`` (if any) then ``model`` replaying it, without disturbing the random state."""
    guide_rng, model_rng = (None, None) if rng is None else backend.split_rng(rng)
    with backend.preserved_rng():
        guide_tr = None
        values = None
        if guide is not None:
            guide_tr = backend.run(guide, args, kwargs, draw=draw, params=params, rng=guide_rng)
            values = guide_tr.replay_values()
        model_tr = backend.run(model, args, kwargs, replay=values, draw=draw, params=params,
                               rng=model_rng)
    return guide_tr, model_tr


def warn_auxiliary(name, site, model_tr):
    """A guide site the model lacks is part of q, as in Pyro's ``Trace_ELBO`` (AutoGuides'
    ``*_unconstrained`` and ``_Auto..._latent`` sites); unless it is marked
    ``infer={"is_auxiliary": True}``, say so: it may be a misspelt model site."""
    if not site.infer.get("is_auxiliary"):
        warnings.warn(
            f"the guide has site {name!r} that the model lacks (model sites: "
            f"{sorted(model_tr.sites)}); it is treated as an auxiliary variable of q; mark it "
            "infer={'is_auxiliary': True} if that is meant", UserWarning, stacklevel=5)


def plate_nesting(traces):
    """How many batch dimensions the programs' plates use (Pyro's max_plate_nesting)."""
    dims = [-p.dim for tr in traces if tr is not None for s in tr for p in s.plates
            if p.dim is not None]
    return max(dims, default=0)


def common_plate(latent_sites):
    """The outermost vectorised plate that every latent site lies in, or None."""
    if not latent_sites:
        return None
    first, *rest = latent_sites
    for plate in first.plates:
        if plate.dim is not None and all(plate in s.plates for s in rest):
            return plate
    return None


def value_shapes(trace):
    """Each site's value shape in a single (unvectorised) run."""
    return {n: tuple(getattr(v, "shape", ())) for n, v in trace.values().items()}


def squeeze_particles(ops, values, shapes, num):
    """Lay vectorised values out as ``[num, *single-run shape]`` where the sizes agree."""
    out = {}
    for name, value in values.items():
        shape = shapes.get(name)
        if shape is not None and ops.numel(value) == num * math.prod(shape):
            value = ops.reshape(value, (num,) + shape)
        out[name] = value
    return out
