"""What strategies learn about a program from one dry run: its sites, plate nesting and
shapes; and, in that run, the guide checked against the model (the one place for it)."""

import ctypes
import math
import warnings

from ppl.errors import ShapeError, SiteError, user_stacklevel
from ppl.validation import support_problem

from .arguments import is_integer


def dry_run(backend, model, guide, args, kwargs, draw, rng=None, params=None, role="guide"):
    """Run ``guide`` (if any) then ``model`` replaying it, without disturbing the random
    state. Each replayed site is checked as the model meets it (:func:`against_guide`), so
    that a guide that does not fit is named before the model fails on its values."""
    guide_rng, model_rng = (None, None) if rng is None else backend.split_rng(rng)
    with backend.preserved_rng():
        guide_tr = None
        values = None
        if guide is not None:
            guide_tr = backend.run(guide, args, kwargs, draw=draw, params=params, rng=guide_rng)
            values = guide_tr.replay_values()
        model_tr = backend.run(model, args, kwargs, replay=values, draw=draw, params=params,
                               rng=model_rng,
                               adjust=None if guide_tr is None else against_guide(guide_tr, role))
    return guide_tr, model_tr


def against_guide(guide_tr, role="guide"):
    """A recorder's ``adjust`` hook: each model site replayed from the guide (``role``: the
    guide or the proposal) must lie in plates of the same sizes as the guide's, and the
    guide's distribution must not reach outside the model site's support."""
    def check(msg):
        name = msg["name"]
        site = guide_tr.sites.get(name)
        if site is None:
            return
        sizes = {frame.name: frame.size for frame in msg["cond_indep_stack"]}
        for plate in site.plates:
            size = sizes.get(plate.name)
            if size is not None and size != plate.size:
                raise ShapeError(f"site {name!r}: the {role}'s plate {plate.name!r} has size "
                                 f"{plate.size} but the model's has size {size}; give both the "
                                 "same size", site=name)
        check_shape(name, site, msg["fn"], role)
        problem = support_problem(name, site.fn, msg["fn"], site.value, role)
        if problem:
            raise SiteError(problem, site=name)
    return check


def check_shape(name, guide_site, model_fn, role="guide"):
    """The guide's value must have the model site's shape (a guide site of shape [5] for a
    scalar model site would otherwise broadcast and train without a word)."""
    expected = tuple(model_fn.batch_shape) + tuple(model_fn.event_shape)
    actual = tuple(getattr(guide_site.value, "shape", ()))
    guide_event, model_event = len(guide_site.fn.event_shape), len(model_fn.event_shape)
    if guide_event != model_event:
        raise ShapeError(f"site {name!r}: the {role}'s distribution has {guide_event} event dims and "
                         f"the model's {model_event}; use .to_event() so that they agree", site=name)
    if _without_leading_ones(actual) != _without_leading_ones(expected):
        raise ShapeError(f"site {name!r}: the {role}'s value has shape {actual} but the model's site "
                         f"expects {expected} (batch {tuple(model_fn.batch_shape)} + event "
                         f"{tuple(model_fn.event_shape)})", site=name)


def _without_leading_ones(shape):
    """The shape less its leading size-1 dims, which broadcast away (a counterfactual
    program's noise site keeps the world dim as size 1; its guide need not)."""
    while shape and shape[0] == 1:
        shape = shape[1:]
    return shape


def check_proposes_latents(owner, guide_tr, model_tr):
    """A proposal (a guide run as a strategy's proposal) draws every latent site of the model
    and no other: otherwise a SiteError naming the first site that differs."""
    for name in model_tr.latent:
        if name not in guide_tr.latent:
            raise SiteError(f"{owner}: the proposal has no site {name!r}; it must propose every "
                            "latent site of the model", site=name)
    for name in guide_tr.latent:
        if name not in model_tr.latent:
            raise SiteError(f"{owner}: the proposal's site {name!r} is not a latent site of the "
                            f"model (its latent sites: {sorted(model_tr.latent)})", site=name)


def check_nesting_argument(owner, value):
    """``max_plate_nesting`` is None (found by the dry run) or a non-negative integer."""
    if value is not None and (not is_integer(value) or value < 0):
        raise ValueError(f"{owner}: max_plate_nesting must be a non-negative integer or None, "
                         f"got {value!r}")


def checked_nesting(owner, given, traces):
    """The plate nesting to use: ``given``, which must reach every plate the dry run met
    (a particle plate would otherwise collide with the innermost one), or the one found."""
    found = plate_nesting(traces)
    if given is None:
        return found
    if given < found:
        plate = next(p for tr in traces if tr is not None for s in tr for p in s.plates
                     if p.dim is not None and -p.dim == found)
        raise ValueError(f"{owner}: max_plate_nesting={given}, but plate {plate.name!r} uses dim "
                         f"{plate.dim}; it must be at least {found}")
    return int(given)


def bytes_per_particle(traces):
    """A generous estimate of one particle's memory in a vectorised run: every site's value
    and log density, times 4 for the expanded parameters and intermediates, in float32."""
    elements = 0
    for trace in traces:
        if trace is None:
            continue
        for site in trace:
            elements += (math.prod(getattr(site.value, "shape", ()))
                         + math.prod(trace.backend.ops.log_prob_shape(site)))
    return max(1, 16 * elements)


def release_freed_memory():
    """Hand memory that chunks freed back to the operating system (glibc's ``malloc_trim``;
    nothing elsewhere). Without it, glibc keeps the freed heap of each chunk's tensors and a
    run of many chunks grows its resident memory by about 10 MB a chunk (measured: 10^7
    particles on 1,000 observations peaked at 6-14 GB instead of about 0.4 GB)."""
    if _TRIM[0] is None:
        try:
            _TRIM[0] = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _TRIM[0] = False
    if _TRIM[0]:
        _TRIM[0](0)


_TRIM = [None]


def warn_auxiliary(name, site, model_tr):
    """A guide site the model lacks is part of q, as in Pyro's ``Trace_ELBO`` (AutoGuides'
    ``*_unconstrained`` and ``_Auto..._latent`` sites); unless it is marked
    ``infer={"is_auxiliary": True}``, say so: it may be a misspelt model site."""
    if not site.infer.get("is_auxiliary"):
        warnings.warn(
            f"the guide has site {name!r} that the model lacks (model sites: "
            f"{sorted(model_tr.sites)}); it is treated as an auxiliary variable of q; mark it "
            "infer={'is_auxiliary': True} if that is meant", UserWarning, stacklevel=user_stacklevel())


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


def independent_plates(latent_sites, all_sites):
    """The plates whose elements get their own importance weights, by dimension: the
    outermost plate every latent site lies in (a site outside it must then not vary across
    particles; it is counted once) and every other plate that all sites lie in (Pyro's
    ``RenyiELBO`` keeps those); empty when the latent sites share no plate."""
    outermost = common_plate(latent_sites)
    if outermost is None:
        return ()
    shared = {(outermost.name, outermost.dim)}
    first, *rest = all_sites
    for plate in first.plates:
        if plate.dim is not None and all(plate in s.plates for s in rest):
            shared.add((plate.name, plate.dim))
    return tuple(sorted(shared, key=lambda plate: plate[1]))


def log_density_shapes(traces):
    """Each site's log-density shape in a run of one particle, by (role, name)."""
    return {(role, site.name): trace.backend.ops.log_prob_shape(site)
            for role, trace in traces if trace is not None for site in trace}


def particle_broadcast_problem(single_shapes, traces, plate_dims):
    """A sentence naming the first site whose log density, with the particles vectorised,
    has a dimension among the plates' (-P .. -1) that its one-particle run did not have:
    the particle dimension moved there (the program reduced a batch dimension, as
    ``z.sum(-1)`` over a plate does), and the weights would mix particles. None if none."""
    for role, trace in traces:
        for site in trace:
            single = single_shapes.get((role, site.name))
            if single is None:  # a site the dry run did not meet
                continue
            shape = tuple(site.log_prob.shape)
            for dim in range(-min(plate_dims, len(shape)), 0):
                before = single[dim] if len(single) >= -dim else 1
                if shape[dim] > 1 and before == 1:
                    return (f"site {site.name!r} in the {role}: its log density has size {shape[dim]} "
                            f"at dim {dim}, which is 1 in a run of one particle; the program reduces "
                            "or reshapes a batch dimension (e.g. z.sum(-1) over a plate), so the "
                            "particles land among the plates")
    return None


def point_masses(guide_tr, model_tr):
    """The guide's latent sites that are point masses (``Delta``, as ``AutoDelta`` draws)
    in a guide with no auxiliary site to give them a density: a MAP guide."""
    if any(name not in model_tr.sites for name in guide_tr.latent):
        return []  # an AutoGuide's Delta sites push an auxiliary density forward
    return [name for name, site in guide_tr.latent.items() if _base(site.fn).__class__.__name__ == "Delta"]


def _base(fn):
    while hasattr(fn, "base_dist"):  # Independent, Expanded, Masked wrappers
        fn = fn.base_dist
    return fn


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
