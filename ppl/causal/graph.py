"""The causal graph of a program, found by tracking which values each site's distribution
was computed from (through arbitrary tensor code); ``deterministic`` sites (mechanisms of
explicit noise) are nodes too.

    >>> import torch, ppl, ppl.distributions as dist
    >>> def model():
    ...     a = ppl.sample("a", dist.Normal(0.0, 1.0))
    ...     d = ppl.deterministic("d", a ** 2 + 1)
    ...     b = ppl.sample("b", dist.Normal(torch.sin(d), 1.0))
    ...     return ppl.sample("c", dist.Normal(a + b, 1.0))
    >>> sorted(ppl.graph(model).edges)
    [('a', 'c'), ('a', 'd'), ('b', 'c'), ('d', 'b')]
    >>> sorted(ppl.graph(ppl.do(model, {"b": 0.0})).edges)   # do cuts the edges into b
    [('a', 'c'), ('a', 'd'), ('b', 'c')]
"""

import networkx as nx

from ..backend import backend_of


def graph(model, *args, **kwargs):
    """A ``networkx.DiGraph`` of the program's sample sites.

    Node attributes: ``observed`` (bool), ``plates`` (names, outermost first),
    ``distribution`` (class name; ``"Deterministic"`` for a ``deterministic`` site, a
    mechanism of explicit noise sites) and ``intervention`` (``"hard"``, ``"shift"``,
    ``"stochastic"`` or None). An edge ``u -> v`` means v's distribution (or a
    deterministic v's value) was computed from u's value. Hard interventions have no
    parents; a shift keeps its natural value (``"<name>__natural"``) as parent.
    """
    backend = backend_of(model)
    dependencies = backend.dependencies(model, args, kwargs)
    trace = backend.run(model, args, kwargs)
    g = nx.DiGraph()
    for name, site in trace.sites.items():
        g.add_node(
            name,
            observed=site.observed,
            plates=tuple(p.name for p in site.plates if not p.name.startswith("_")),
            distribution=type(site.fn).__name__,
            intervention=site.infer.get("do"),
        )
    for name in trace.deterministics:
        if name not in g:
            g.add_node(name, observed=False, plates=(), distribution="Deterministic", intervention=None)
    for name, parents in dependencies.items():
        if name not in g:
            continue
        if g.nodes[name]["intervention"] == "hard":
            continue  # the intervened value is a constant: nothing upstream reaches it
        for parent in parents:
            if parent != name and parent in g:
                g.add_edge(parent, name)
    return g
