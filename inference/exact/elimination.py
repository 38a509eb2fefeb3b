"""Variable elimination over tables: planning the order of elimination and contracting.

A factor is a table whose dimensions are enumeration dims (negative tensor dims, size 1 where
the factor does not span them); its scope is the tuple of dims it spans, ``sizes`` maps each
dim to its size. :func:`plan` (cached :func:`make_plan`) works on scopes and sizes alone;
:func:`contract` and :func:`marginal` multiply the planned tables and sum dims out.

A toy chain ``a -> b``: factor 0 is p(a) on dim -2, factor 1 is p(b | a) on dims (-2, -1);
the marginal of ``b`` sums dim -2 out of their product (the tables are any backend's
arrays; ``ops`` is that backend's ops table):

    >>> import torch
    >>> from ppl.backend import ops_of
    >>> tables = [torch.tensor([[0.3], [0.7]], dtype=torch.float64),
    ...           torch.tensor([[0.9, 0.1], [0.2, 0.8]], dtype=torch.float64)]
    >>> steps = plan(((-2,), (-2, -1)), (-2, -1), {-2: 2, -1: 2}, frozenset({-1}), 100)
    >>> table, total, log_scales, z = marginal(steps, lambda i, rescale: (tables[i], None),
    ...                                        ops_of(tables[0]))
    >>> [round(p, 2) for p in (table / total).reshape(-1).tolist()]
    [0.41, 0.59]
"""

import math

from ppl.errors import UnsupportedError

_PLANS = {}  # structure of a query -> its elimination plan (shapes only, never values)
_MAX_PLANS = 512


class NotEnumerableError(UnsupportedError, ValueError):
    """Exact enumeration cannot sum this program's latent sites out (a continuous site, a
    latent site inside a plate, too large a table); ``method="auto"`` falls back to
    importance sampling on it. Also a ``ValueError``, as it was before it had a name."""


def clear_plans():
    """Forget every cached plan."""
    _PLANS.clear()


def plan(scopes, normalised, sizes, query, max_cells):
    """:func:`make_plan`, cached on the structure of the query.

    >>> plan(((-1,),), (-1,), {-1: 3}, frozenset({-1}), 100) is plan(
    ...     ((-1,),), (-1,), {-1: 3}, frozenset({-1}), 100)
    True
    """
    key = (scopes, normalised, tuple(sizes.items()), query, max_cells)
    found = _PLANS.get(key)
    if found is None:
        found = make_plan(scopes, normalised, sizes, query, max_cells)
        if len(_PLANS) >= _MAX_PLANS:
            _PLANS.clear()
        _PLANS[key] = found
    return found


def make_plan(scopes, normalised, sizes, query, max_cells):
    """(factors to compute, elimination steps ``(factor ids, dim, new id)``, final ids,
    cells of the largest table).

    ``scopes[i]`` is the dims factor ``i`` spans (empty: a constant, left out);
    ``normalised[i]`` is the dim over which factor ``i`` sums to one for any values of its
    other dims (a latent site's own dim), or None. Drops barren latent sites first (their
    own dim in no other factor and not queried), then sums out the remaining non-query dims
    greedily: each time the dim whose factors multiply into the smallest table.

    The chain ``a -> b -> c`` queried for ``b``: ``c`` is barren, ``a`` is summed out.

    >>> scopes = ((-3,), (-3, -2), (-2, -1))
    >>> make_plan(scopes, (-3, -2, -1), {-3: 2, -2: 3, -1: 4}, frozenset({-2}), 100)
    ((0, 1), (((0, 1), -3, 3),), (3,), 6)
    """
    active = {i: frozenset(s) for i, s in enumerate(scopes) if s}
    count = {}
    for scope in active.values():
        for d in scope:
            count[d] = count.get(d, 0) + 1
    changed = True
    while changed:
        changed = False
        for i in list(active):
            d = normalised[i]
            if d is not None and d not in query and count.get(d) == 1 and d in active[i]:
                for e in active.pop(i):
                    count[e] -= 1
                changed = True
    needed = sorted(active)
    eliminate = {d for d, c in count.items() if c > 0} - query
    steps, next_id, largest = [], len(scopes), 1
    while eliminate:
        best = None
        for d in eliminate:
            union = frozenset().union(*(s for s in active.values() if d in s))
            cells = math.prod(sizes[e] for e in union)
            key = (cells, len(union), -d)
            if best is None or key < best[0]:
                best = (key, d, union)
        (cells, _, _), d, union = best
        if cells > max_cells:
            raise NotEnumerableError(
                f"exact enumeration: summing out the latent sites needs a table of {cells} "
                f"cells (more than max_cells={max_cells}); use method='importance'")
        largest = max(largest, cells)
        group = [i for i, s in active.items() if d in s]
        for i in group:
            del active[i]
        active[next_id] = union - {d}
        steps.append((tuple(group), d, next_id))
        next_id += 1
        eliminate.discard(d)
    final = tuple(active)
    cells = math.prod(sizes[e] for e in query) if query else 1
    if cells > max_cells:
        raise NotEnumerableError(f"exact enumeration: the queried marginal has {cells} cells (more "
                         f"than max_cells={max_cells})")
    return tuple(needed), tuple(steps), final, max(largest, cells)


def contract(plan, factor, rescale, ops):
    """The product of the plan's factors with the non-query dims summed out, and the logs of
    the scales divided out on the way.

    ``factor(i, rescale)`` gives factor ``i``'s table and the log of a scale divided out of
    it (or None); with ``rescale`` every intermediate table is divided by its maximum too.

    >>> import torch
    >>> from ppl.backend import ops_of
    >>> tables = [torch.tensor([[2.0], [6.0]], dtype=torch.float64)]
    >>> contract(((0,), (((0,), -2, 1),), (1,), 2), lambda i, rescale: (tables[i], None), True,
    ...          ops_of(tables[0]))
    (tensor([[1.]], dtype=torch.float64), [tensor(2.0794, dtype=torch.float64)])
    """
    needed, steps, final, _ = plan
    tables, log_scale = {}, []
    for i in needed:
        table, top = factor(i, rescale)
        tables[i] = table
        if top is not None:
            log_scale.append(top)
    for group, dim, out in steps:
        table = tables.pop(group[0])
        for g in group[1:]:
            table = table * tables.pop(g)
        table = table.sum(dim, keepdims=True)
        if rescale:
            top = ops.amax(table)
            top = ops.where(top > 0, top, 1.0)  # an all-zero table stays zero
            table = table / top
            log_scale.append(ops.log(top))
        tables[out] = table
    result = None
    for i in final:
        result = tables[i] if result is None else result * tables[i]
    if result is None:
        result = ops.to_wide_float(ops.asarray(1.0))
    return result, log_scale


def marginal(plan, factor, ops):
    """(table, its sum, logs of the scales divided out, the sum as a float) by
    :func:`contract`; again with every step rescaled when the sum underflows.

    >>> import math, torch
    >>> from ppl.backend import ops_of
    >>> def factor(i, rescale):  # 1e-200 in both cells, or 1 and the log of 1e-200
    ...     if rescale:
    ...         return torch.ones(2, 1, dtype=torch.float64), torch.tensor(-200 * math.log(10))
    ...     return torch.full((2, 1), 1e-200, dtype=torch.float64), None
    >>> steps = ((0, 1), (((0, 1), -2, 2),), (2,), 2)
    >>> table, total, log_scales, z = marginal(steps, factor, ops_of(torch.ones(1)))
    >>> z, round(float(sum(log_scales)), 2)
    (1.0, -920.34)
    """
    table, scales = contract(plan, factor, False, ops)
    total = table.sum()
    z = float(total)
    # underflow: rescale every step (no overflow: a probability table's entries are at most
    # 1, and factors of densities or plates come divided by their maximum)
    if not z > 0:
        table, scales = contract(plan, factor, True, ops)
        total = table.sum()
        z = float(total)
    return table, total, scales, z
