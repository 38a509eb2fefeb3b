"""SMC's proposals from a guide: the guide's sites drawn for every particle at once, each
particle's weight corrected by log p - log q site by site.

Drawing the guide before the sweep, not step by step beside it, is exact when the guide's
sites do not depend on one another (a mean-field guide such as ``AutoNormal``, or one
amortised on the data only): after a resampling, the particles then need fresh proposals
only, and those are the ones already drawn for their slots. A guide whose site reads
another of its sites is refused by name. At a resampling point the model's distribution
belongs to the ancestors: its log density at each new particle's proposal is the
ancestor's (:func:`ancestral_log_prob`).

    >>> import ppl, ppl.distributions as dist
    >>> from inference import SMC
    >>> from models.state_space import kalman_filter, linear_gaussian_data, linear_gaussian_model
    >>> def near_the_data(ys):   # each state near its observation, independently
    ...     for t in range(len(ys)):
    ...         ppl.sample(f"z_{t}", dist.Normal(0.8 * ys[t], 0.7))
    >>> ys = linear_gaussian_data(10, seed=1)
    >>> result = SMC(linear_gaussian_model, 2000, proposal=near_the_data, rng_seed=0).run(ys)
    >>> abs(result.log_evidence - kalman_filter(ys)[0]) < 4 * result.log_evidence_stderr
    True
"""

from ppl.errors import SiteError

from ..program import check_proposes_latents
from ..weights import WeightLayout, total_log_weight
from .resampling import copy_ranks


def check_proposal(backend, proposal, args, kwargs, params, rng, model_trace):
    """The guide must propose every latent site of the model and no other, each site from
    the data alone (no other guide site among its parents)."""
    guide = backend.run(proposal, args, kwargs, params=params, rng=rng)
    check_proposes_latents("SMC", guide, model_trace)
    parents = backend.dependencies(proposal, args, kwargs)
    for name in guide.latent:
        drawn = sorted(p for p in parents.get(name, ()) if p in guide.latent)
        if drawn:
            raise SiteError(
                f"SMC: the proposal's site {name!r} depends on its site {drawn[0]!r}; SMC draws the "
                "proposal for every particle before the sweep, which is exact only where each "
                "proposal site reads the data alone (a mean-field guide, e.g. AutoNormal)", site=name)


def draw_proposal(backend, ops, proposal, args, kwargs, num, plates, params, rng):
    """site -> (the guide's values for ``num`` particles, their log q ``[num]``)."""
    trace = backend.run(proposal, args, kwargs, particles=(num, -(plates + 1)), params=params, rng=rng)
    layout = WeightLayout(plates, True)
    return {name: (site.value, ops.broadcast_to(total_log_weight(ops, layout, [site]), (num,)))
            for name, site in trace.latent.items()}


def ancestral_log_prob(ops, msg, value, index, axis, indexed):
    """Each new particle j's log density of ``value``'s row j under its ancestor ``index[j]``'s
    distribution (``msg["fn"]``, a batch over the old particles), summed over the plates:
    ``[K]``. ``indexed``: the distribution taken at the ancestors, when the backend can take
    it; otherwise, for each copy rank r, the rank-r copies' values are placed at their
    ancestors' rows, scored by the whole batch, and read back."""
    fn = msg["fn"]
    if indexed is not None:
        log_p = ops.moveaxis(indexed.log_prob(value), axis, 0)
    else:
        rows = ops.moveaxis(value, axis, 0)
        K = rows.shape[0]
        ranks = copy_ranks(ops, index)
        old = ops.arange(K)
        first = ops.searchsorted(index, old - 1)  # where each old particle's copies start
        copies = ops.searchsorted(index, old) - first
        log_p = None
        for r in range(int(ops.item(ops.amax(ranks))) + 1):
            chosen = ops.where(copies > r, first + r, 0)  # old row i: its rank-r copy's value
            scored = ops.moveaxis(fn.log_prob(ops.moveaxis(rows[chosen], 0, axis)), axis, 0)[index]
            log_p = (scored if log_p is None else
                     ops.where(_rows_like(ops, ranks == r, scored), scored, log_p))
    batch = tuple(fn.batch_shape)
    scale, mask = msg.get("scale"), msg.get("mask")
    if scale is not None and not (isinstance(scale, (int, float)) and scale == 1):
        if ops.is_array(scale):
            scale = ops.moveaxis(ops.broadcast_to(scale, batch), axis, 0)
        log_p = log_p * scale
    if mask is not None and mask is not True:
        keep = ops.moveaxis(ops.broadcast_to(ops.asarray(mask), batch), axis, 0)
        log_p = ops.where(keep, log_p, 0.0)
    return ops.sum(ops.reshape(log_p, (log_p.shape[0], -1)), 1) if ops.ndim(log_p) > 1 else log_p


def _rows_like(ops, flags, array):
    return ops.reshape(flags, tuple(flags.shape) + (1,) * (ops.ndim(array) - 1))
