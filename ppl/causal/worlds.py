"""The world plate of counterfactual programs and what reads it: world values, references
to another world's value (``ppl.world``), side sites outside the worlds, shape helpers.

    >>> world_dim(2)   # the world plate's dim left of a model with two plates
    -3
"""

WORLD_PLATE = "_worlds"
SHARED = "_shared_across_worlds"


def shared_infer(infer=None):
    """A site's ``infer`` that keeps it outside the world plate (noise, evidence): both
    backends' plates skip a site whose ``infer["block_plates"]`` names them (NumPyro's
    convention, which the torch backend's plate follows)."""
    return {**(infer or {}), SHARED: True, "block_plates": (WORLD_PLATE,)}


def world_dim(trace_or_nesting):
    """The batch dimension of the world plate (from a trace, or from the model's nesting)."""
    if isinstance(trace_or_nesting, int):
        return -(trace_or_nesting + 1)
    for site in trace_or_nesting:
        for plate in site.plates:
            if plate.name == WORLD_PLATE:
                return plate.dim
    raise ValueError("this trace has no world plate: run a ppl.causal.counterfactual_worlds program")


def world_value(trace, name, world):
    """Site ``name``'s value in ``world`` (0 factual, 1.. counterfactual), world dim dropped.

    When the value has batch dimensions left of the world plate (enumerated latent sites
    of exact inference, vectorised particles), the world dimension is kept with size 1
    instead, so that the result stays aligned with the trace's other values.
    """
    ops = trace.backend.ops
    if name in trace.deterministics and name not in trace.sites:  # a mechanism's value
        dim, value = world_dim(trace), trace.deterministics[name]
    else:
        site = trace[name]
        dim = world_dim(trace) - len(site.fn.event_shape)
        value = site.value
    ndim = ops.ndim(value)
    if ndim < -dim or value.shape[dim] == 1:
        return value  # the same in every world
    if ndim > -dim:
        return ops.narrow(value, dim, world, 1)
    return ops.select(value, dim, world)


class WorldValue:
    """An intervention's value: the site's value in another world (see :func:`world`)."""

    def __init__(self, world):
        self.world = world

    def __repr__(self):
        return f"world({self.world})"


def world(index):
    """In a counterfactual's interventions, the site's value in world ``index``: nested
    counterfactuals such as the natural direct effect's ``Y(X=1, M=M(X=0))`` are
    ``ppl.counterfactual_worlds(model, {}, [{"X": 0.0}, {"X": 1.0, "M": ppl.world(1)}],
    worlds="multi")``. Worlds are resolved in order, so world ``index`` has its own
    interventions applied when it comes before the world that reads it."""
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise ValueError(f"world(index): index must be a non-negative integer, got {index!r}")
    return WorldValue(index)


def _side_site(backend, name, fn, value=None, observed=False):
    """A sample site outside the world plate (noise, evidence), through the whole stack."""
    return backend.primitives.sample(name, fn, obs=value if observed else None,
                                     infer=shared_infer())


def _narrow(ops, array, index):
    """World 0's slice of a parameter whose world dim is at ``index`` from the left (its
    leading dims are the batch shape; a Categorical's logits have one more after them),
    keeping the world dim (size 1)."""
    if index < 0 or ops.ndim(array) <= index or array.shape[index] == 1:
        return array
    return ops.narrow(array, index, 0, 1)


def _without_world(shape, dim):
    shape = list(shape)
    if len(shape) >= -dim:
        shape[dim] = 1
    return tuple(shape)


def _factual_fn(fn, dim):
    """A distribution with the site's shapes less the world dimension (to fit values to)."""
    batch = _without_world(fn.batch_shape, dim)
    return _Shape(batch, tuple(fn.event_shape), fn.support)


class _Shape:
    def __init__(self, batch_shape, event_shape, support):
        self.batch_shape, self.event_shape, self.support = batch_shape, event_shape, support
