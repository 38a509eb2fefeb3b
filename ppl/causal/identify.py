"""Is a causal effect identified from observational data? Back-door and front-door
adjustment sets by d-separation (networkx), or an explanation of why not.

    >>> import networkx as nx
    >>> g = nx.DiGraph([("U", "X"), ("U", "Y"), ("X", "M"), ("M", "Y")])
    >>> result = identify(g, "X", "M")       # nothing confounds X -> M
    >>> result.method, result.adjustment_sets, result.minimal
    ('backdoor', [frozenset(), frozenset({'U'})], frozenset())
    >>> front = identify(g, "X", "Y", latent=["U"])
    >>> front.method, front.adjustment_sets
    ('frontdoor', [frozenset({'M'})])
"""

import itertools
from dataclasses import dataclass, field

import networkx as nx

from .interventions import closest_name

MAX_CANDIDATES = 16  # subsets of more candidates than this are not enumerated


@dataclass
class Identification:
    """The outcome of :func:`identify`.

    ``method``: ``"backdoor"``, ``"frontdoor"`` or None (not identified by either);
    ``adjustment_sets``: the valid sets for that method (all of them, or the minimal one);
    ``backdoor_sets`` and ``frontdoor_sets``: every valid set of each kind found;
    ``explanation``: why, in words.
    """

    treatment: str
    outcome: str
    method: str = None
    adjustment_sets: list = field(default_factory=list)
    backdoor_sets: list = field(default_factory=list)
    frontdoor_sets: list = field(default_factory=list)
    explanation: str = ""

    @property
    def identified(self):
        return self.method is not None

    @property
    def minimal(self):
        """The smallest valid set of the chosen method (None if not identified)."""
        return min(self.adjustment_sets, key=lambda s: (len(s), sorted(s))) if self.adjustment_sets else None


def _check_node(g, node, role):
    if node not in g:
        close = closest_name(node, g)
        hint = f"; did you mean {close!r}?" if close is not None else f" (nodes: {sorted(map(str, g))})"
        raise ValueError(f"identify: {role} {node!r} is not a node of the graph{hint}")


def _without_outgoing(g, nodes):
    h = g.copy()
    h.remove_edges_from([(u, v) for u in nodes for v in g.successors(u)])
    return h


def _subsets(candidates, limit):
    candidates = sorted(candidates)
    if len(candidates) > MAX_CANDIDATES:
        raise ValueError(
            f"identify: {len(candidates)} candidate nodes are too many to enumerate every set; "
            "pass which='minimal'")
    for size in range(min(limit, len(candidates)) + 1):
        for subset in itertools.combinations(candidates, size):
            yield frozenset(subset)


def is_backdoor_set(g, treatment, outcome, z):
    """Z has no descendant of X and blocks every back-door path from X to Y."""
    if z & nx.descendants(g, treatment):
        return False
    return nx.is_d_separator(_without_outgoing(g, [treatment]), {treatment}, {outcome}, set(z))


def is_frontdoor_set(g, treatment, outcome, m):
    """M intercepts every directed X -> Y path, X has no open back-door path to M, and X
    blocks every back-door path from M to Y."""
    if not m:
        return False
    cut = g.copy()
    cut.remove_nodes_from(m)
    if nx.has_path(cut, treatment, outcome):
        return False
    if not nx.is_d_separator(_without_outgoing(g, [treatment]), {treatment}, set(m), set()):
        return False
    return nx.is_d_separator(_without_outgoing(g, m), set(m), {outcome}, {treatment})


def identify(graph, treatment, outcome, latent=(), which="all", max_size=None):
    """Find back-door, then front-door, adjustment sets among observed nodes.

    ``latent``: nodes not measured in the data (never adjusted for). ``which``: ``"all"``
    valid sets or only the ``"minimal"`` one (found without enumeration for back-door).
    """
    if which not in ("all", "minimal"):
        raise ValueError(f"identify: which must be 'all' or 'minimal', got {which!r}")
    if callable(graph) and not isinstance(graph, nx.Graph):
        name = getattr(graph, "__name__", type(graph).__name__)
        raise TypeError(f"identify: expected a causal graph, got the program {name!r}; pass "
                        f"ppl.graph({name}, *args) (a networkx DiGraph of its sites)")
    g = nx.DiGraph(graph)
    _check_node(g, treatment, "treatment")
    _check_node(g, outcome, "outcome")
    if treatment == outcome:
        raise ValueError(f"identify: treatment and outcome are the same node {treatment!r}")
    latent = set(latent)
    for node in latent:
        _check_node(g, node, "latent node")
    for role, node in (("treatment", treatment), ("outcome", outcome)):
        if node in latent:
            raise ValueError(f"identify: the {role} {node!r} is listed as latent; an effect is "
                             "identified from data in which treatment and outcome are measured")
    if not nx.is_directed_acyclic_graph(g):
        raise ValueError("identify: the graph has a cycle; causal graphs must be acyclic")
    result = Identification(treatment, outcome)
    if not nx.has_path(g, treatment, outcome):
        result.method = "backdoor"
        result.adjustment_sets = result.backdoor_sets = [frozenset()]
        result.explanation = f"no directed path from {treatment!r} to {outcome!r}: the effect is nil"
        return result
    observed = set(g) - latent - {treatment, outcome}
    limit = len(observed) if max_size is None else max_size

    candidates = observed - nx.descendants(g, treatment)
    if which == "minimal":
        z = nx.find_minimal_d_separator(_without_outgoing(g, [treatment]), {treatment}, {outcome},
                                        restricted=candidates)
        result.backdoor_sets = [] if z is None else [frozenset(z)]
    else:
        result.backdoor_sets = [z for z in _subsets(candidates, limit)
                                if is_backdoor_set(g, treatment, outcome, z)]
    if result.backdoor_sets:
        result.method = "backdoor"
        result.adjustment_sets = result.backdoor_sets
        result.explanation = (f"{len(result.backdoor_sets)} back-door adjustment set(s) block every "
                              f"path into {treatment!r} that reaches {outcome!r}")
        return result

    mediators = observed & nx.descendants(g, treatment) & nx.ancestors(g, outcome)
    result.frontdoor_sets = [m for m in _subsets(mediators, limit)
                             if is_frontdoor_set(g, treatment, outcome, m)]
    if which == "minimal" and result.frontdoor_sets:
        result.frontdoor_sets = [min(result.frontdoor_sets, key=lambda s: (len(s), sorted(s)))]
    if result.frontdoor_sets:
        result.method = "frontdoor"
        result.adjustment_sets = result.frontdoor_sets
        result.explanation = ("no back-door set exists, but the mediators "
                              f"{sorted(result.frontdoor_sets[0])} satisfy the front-door criterion")
        return result
    result.explanation = _why_not(g, treatment, outcome, candidates, mediators, latent)
    return result


def _why_not(g, treatment, outcome, candidates, mediators, latent):
    open_path = _open_backdoor_path(g, treatment, outcome, candidates)
    parts = [f"not identified by the back-door or front-door criterion: adjusting for every "
             f"observed non-descendant of {treatment!r} ({sorted(candidates)}) leaves the "
             f"back-door path {' - '.join(open_path) if open_path else '(none found)'} open"]
    if latent:
        parts.append(f"through latent node(s) {sorted(set(open_path or []) & latent) or sorted(latent)}")
    if mediators:
        parts.append(f"and no subset of the observed mediators {sorted(mediators)} meets the "
                     "front-door conditions (it must intercept every directed path, with no "
                     f"open back-door path from {treatment!r} to it, and {treatment!r} blocking "
                     "its back-door paths to the outcome)")
    else:
        parts.append("and there are no observed mediators for a front-door adjustment")
    return " ".join(parts)


def _open_backdoor_path(g, treatment, outcome, z):
    """A path starting with an edge into ``treatment`` that ``z`` does not block."""
    undirected = g.to_undirected(as_view=True)
    ancestors_of_z = set(z).union(*(nx.ancestors(g, n) for n in z)) if z else set()
    for path in nx.shortest_simple_paths(nx.Graph(undirected), treatment, outcome):
        if not g.has_edge(path[1], path[0]):
            continue  # not a back-door path
        blocked = False
        for a, b, c in zip(path, path[1:], path[2:]):
            collider = g.has_edge(a, b) and g.has_edge(c, b)
            if (collider and b not in ancestors_of_z) or (not collider and b in z):
                blocked = True
                break
        if not blocked:
            return [str(n) for n in path]
    return None
