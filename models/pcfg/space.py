"""The bottom-up construction of parse trees (:class:`models.pcfg.TreeActions`) as a batched
action space for :class:`inference.GFlowNetEM` (the protocol of
:mod:`inference.gflownet.actions`): every operation works on a batch of states of
sentences of different lengths at once, with the same action ids, masks and parents as
``TreeActions``.

A state is a dict of tensors over ``n`` rows (``M = max_length``): ``length [n]``, ``tags
[n, M]`` (-1 while untagged), ``tagged [n]``, ``split [n, M + 1]`` (True at word boundary
k while the top-level constituents are still split there; also True at 0 and from
``length`` on, as sentinels), ``symbol [n, M]`` (the symbol of the top-level constituent
that starts at word i: -1 for an untagged word, ``NT + p`` for a tag, a label),
``internal [n, M]`` (that constituent is an internal node), ``nodes [n, M - 1, 5]`` (the
internal nodes so far as rows ``(start, end, label, left symbol, right symbol)``, -1
rows after them) and ``num_nodes [n]``. A terminal state's value for the tree site is its
``nodes`` in pre-order (the encoding of :class:`models.pcfg.program.TreeDistribution`).

    >>> import torch
    >>> space = TreeActionSpace(num_nonterminals=1, num_preterminals=2, vocab_size=3, max_length=3)
    >>> state = space.start(torch.tensor([3, 2]))
    >>> for a in [[0, 1], [1, 0], [1, space.merge_action(1, 0)], [space.merge_action(2, 0), -1],
    ...           [space.merge_action(1, 0), -1]]:
    ...     state = space.apply(state, torch.tensor(a))
    >>> space.is_terminal(state).tolist(), space.num_parents(state).tolist()
    ([True, True], [1, 1])
    >>> space.values(state)["tree"][0].tolist()  # (0, 3) then (1, 3); tags 0, 1, 1
    [[0, 3, 0, 1, 0], [1, 3, 0, 2, 2]]
"""

import torch

from inference.gflownet.actions import ActionSpace

from . import Tree


class TreeActionSpace(ActionSpace):
    """Bottom-up tree construction over a batch (see the module docstring).

    Arguments:
        num_nonterminals, num_preterminals, vocab_size, max_length: the grammar's sizes and
            the longest sentence;
        site, words_site: the model's tree site (whose distribution holds the sentences'
            ``lengths``) and observed words site (``[N, max_length]`` word ids, padded);
        root_labels: the labels allowed for the last merge (None: any nonterminal).
    """

    def __init__(self, num_nonterminals, num_preterminals, vocab_size, max_length, site="tree",
                 words_site="words", root_labels=None):
        if min(num_nonterminals, num_preterminals, vocab_size) < 1 or max_length < 2:
            raise ValueError("TreeActionSpace: need at least one nonterminal, preterminal and word "
                             f"and max_length >= 2, got {num_nonterminals}, {num_preterminals}, "
                             f"{vocab_size}, {max_length}")
        self.nt, self.pt, self.vocab_size = num_nonterminals, num_preterminals, vocab_size
        self.max_length = max_length
        self.sites = (site,)
        self.site, self.words_site = site, words_site
        self.num_actions = num_preterminals + (max_length - 1) * num_nonterminals
        self.max_steps = 2 * max_length - 1
        labels = torch.zeros(num_nonterminals, dtype=torch.bool)
        labels[list(range(num_nonterminals)) if root_labels is None else list(root_labels)] = True
        self.root_labels = labels

    def __repr__(self):
        return (f"TreeActionSpace(NT={self.nt}, PT={self.pt}, max_length={self.max_length}, "
                f"site={self.site!r})")

    def merge_action(self, boundary, label):
        return self.pt + (boundary - 1) * self.nt + label

    # ----------------------------------------------------------- from the model
    def _lengths(self, trace):
        fn = trace[self.site].fn
        while not hasattr(fn, "lengths") and hasattr(fn, "base_dist"):
            fn = fn.base_dist
        if not hasattr(fn, "lengths"):
            raise ValueError(f"TreeActionSpace: site {self.site!r} has a {type(fn).__name__}, not a "
                             "distribution with sentence lengths (a TreeDistribution)")
        return torch.as_tensor(fn.lengths).reshape(-1)

    def initial_state(self, trace):
        return self.start(self._lengths(trace))

    def features(self, trace):
        """One-hot words (zero on padding) and a one-hot length: ``[N, M * V + M + 1]``."""
        words = torch.as_tensor(trace[self.words_site].value).reshape(-1, self.max_length).long()
        lengths = self._lengths(trace)
        valid = torch.arange(self.max_length) < lengths.unsqueeze(-1)
        onehot = torch.nn.functional.one_hot(words.clamp(0, self.vocab_size - 1), self.vocab_size)
        onehot = onehot * valid.unsqueeze(-1)
        length = torch.nn.functional.one_hot(lengths, self.max_length + 1)
        return torch.cat([onehot.flatten(1), length], -1).to(torch.get_default_dtype())

    # ----------------------------------------------------------- states
    def start(self, lengths):
        """The initial states of sentences of these lengths (untagged words)."""
        lengths = torch.as_tensor(lengths).long()
        if bool(((lengths < 2) | (lengths > self.max_length)).any()):
            raise ValueError(f"TreeActionSpace: sentence lengths {lengths.tolist()} must lie in "
                             f"2 .. {self.max_length}")
        n, m = lengths.shape[0], self.max_length
        return {"length": lengths, "tags": torch.full((n, m), -1), "tagged": torch.zeros(n, dtype=torch.long),
                "split": torch.ones(n, m + 1, dtype=torch.bool), "symbol": torch.full((n, m), -1),
                "internal": torch.zeros(n, m, dtype=torch.bool), "nodes": torch.full((n, m - 1, 5), -1),
                "num_nodes": torch.zeros(n, dtype=torch.long)}

    def is_terminal(self, state):
        return state["num_nodes"] == state["length"] - 1

    def mask(self, state):
        n, m = state["length"].shape[0], self.max_length
        tagging = state["tagged"] < state["length"]
        boundaries = torch.arange(1, m)
        merge = state["split"][:, 1:m] & (boundaries < state["length"].unsqueeze(-1))  # [n, M - 1]
        merge = merge & ~tagging.unsqueeze(-1)
        labels = torch.ones(n, self.nt, dtype=torch.bool)
        last = state["num_nodes"] == state["length"] - 2
        labels = torch.where(last.unsqueeze(-1), self.root_labels.expand(n, -1), labels)
        merges = (merge.unsqueeze(-1) & labels.unsqueeze(1)).flatten(1)
        return torch.cat([tagging.unsqueeze(-1).expand(n, self.pt), merges], -1)

    def apply(self, state, actions):
        state = {k: v.clone() for k, v in state.items()}
        tag_rows = ((actions >= 0) & (actions < self.pt)).nonzero().squeeze(-1)
        if tag_rows.numel():
            position, tag = state["tagged"][tag_rows], actions[tag_rows]
            state["tags"][tag_rows, position] = tag
            state["symbol"][tag_rows, position] = self.nt + tag
            state["tagged"][tag_rows] += 1
        rows = (actions >= self.pt).nonzero().squeeze(-1)
        if rows.numel():
            boundary = (actions[rows] - self.pt) // self.nt + 1
            label = (actions[rows] - self.pt) % self.nt
            split = state["split"][rows]
            positions = torch.arange(self.max_length + 1)
            start = torch.where(split & (positions < boundary.unsqueeze(-1)), positions, -1).max(-1).values
            end = torch.where(split & (positions > boundary.unsqueeze(-1)), positions,
                              self.max_length + 1).min(-1).values
            node = torch.stack([start, end, label, state["symbol"][rows, start],
                                state["symbol"][rows, boundary]], -1)
            state["nodes"][rows, state["num_nodes"][rows]] = node
            state["num_nodes"][rows] += 1
            state["symbol"][rows, start] = label
            state["internal"][rows, start] = True
            state["internal"][rows, boundary] = False
            state["split"][rows, boundary] = False
        return state

    def num_parents(self, state):
        """Top-level internal nodes once one exists (any can be undone), else 1 once a word is
        tagged (untag the last), else 0."""
        return torch.where(state["num_nodes"] > 0, state["internal"].sum(-1), (state["tagged"] > 0).long())

    def encode(self, state):
        """One-hot tags, one-hot symbols of the top-level constituents at their starts, and the
        open word boundaries: ``[n, M * PT + M * S + M - 1]``."""
        m = self.max_length
        tags = torch.nn.functional.one_hot(state["tags"] + 1, self.pt + 1)[..., 1:]
        starts = state["split"][:, :m] & (torch.arange(m) < state["length"].unsqueeze(-1))
        symbols = torch.nn.functional.one_hot(state["symbol"] + 1, self.nt + self.pt + 1)[..., 1:]
        symbols = symbols * starts.unsqueeze(-1)
        open_boundaries = state["split"][:, 1:m] & (torch.arange(1, m) < state["length"].unsqueeze(-1))
        dtype = torch.get_default_dtype()
        return torch.cat([tags.flatten(1), symbols.flatten(1), open_boundaries], -1).to(dtype)

    def values(self, state):
        """``{site: nodes [n, M - 1, 5]}`` in pre-order (sorted by start, then longest first)."""
        nodes = state["nodes"]
        m = self.max_length
        key = torch.where(nodes[..., 0] >= 0, nodes[..., 0] * (m + 2) + (m + 1 - nodes[..., 1]),
                          (m + 2) ** 2)
        order = key.argsort(-1)
        return {self.site: nodes.gather(1, order.unsqueeze(-1).expand(-1, -1, 5))}

    # ----------------------------------------------------------- conversions
    def to_tree(self, value, length):
        """A :class:`Tree` from one site value ``[M - 1, 5]`` over ``length`` words."""
        rows = [tuple(int(v) for v in row) for row in value.tolist() if row[0] >= 0]
        tags = [None] * length
        for start, end, _, left, right in rows:
            if left >= self.nt:
                tags[start] = left - self.nt
            if right >= self.nt:
                tags[end - 1] = right - self.nt
        return Tree(tuple(row[:3] for row in rows), tuple(tags))
