"""Compiling a function of a call's arguments with ``jax.jit``: the arguments are split into
a traced part (arrays, and containers holding them) and a static part (hashable Python
values, compiled in as constants, one compilation each); ``compiled`` wraps a function of
(key, args, kwargs) so, as NumPyro's ``SVI`` compiles its update.

    >>> import jax.numpy as jnp
    >>> traced, static = split((jnp.ones(2), 3), {"scale": 2.0})
    >>> merge(traced, static)[1], static
    ({'scale': 2.0}, (((1, 3),), (('scale', 2.0),)))
"""

import jax
import numpy as np


def is_static(value):
    """Python values without arrays (ints, bools, strings, callables, tuples of them) are
    compiled in as constants; arrays, and containers holding them, are traced."""
    if any(isinstance(leaf, (jax.Array, np.ndarray)) for leaf in jax.tree_util.tree_leaves(value)):
        return False
    try:
        hash(value)
    except TypeError:
        return False
    return True


def split(args, kwargs):
    """(traced part, static part) of a call's arguments: the static part is hashable, the
    key of a compilation; each part holds None where the other has the value."""
    flags = [is_static(a) for a in args]
    names = sorted(kwargs)
    kflags = [is_static(kwargs[k]) for k in names]
    traced = (tuple(None if f else a for a, f in zip(args, flags)),
              {k: kwargs[k] for k, f in zip(names, kflags) if not f})
    static = (tuple((i, a) for i, (a, f) in enumerate(zip(args, flags)) if f),
              tuple((k, kwargs[k]) for k, f in zip(names, kflags) if f))
    return traced, static


def merge(traced, static):
    args, kwargs = list(traced[0]), dict(traced[1])
    for i, value in static[0]:
        args[i] = value
    kwargs.update(static[1])
    return tuple(args), kwargs


def compiled(fn):
    """``fn(key, args, kwargs)`` compiled once per static part of the arguments (and per
    shape of the traced part), called as ``compiled(fn)(state, args, kwargs)``: the key is
    split off the strategy's stream ``state.rng`` inside the compiled call (as
    ``state.next_key()`` would outside it: the same keys, without a dispatch)."""
    def advanced(stream, traced, static):
        stream, key = jax.random.split(stream)
        return stream, fn(key, *merge(traced, static))

    jitted = jax.jit(advanced, static_argnums=2)

    def call(state, args, kwargs):
        traced, static = split(args, kwargs)
        state.rng, out = jitted(state.rng, traced, static)
        return out

    return call
