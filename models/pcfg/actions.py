"""The bottom-up construction of a parse tree as a sequence of actions (:class:`TreeActions`,
over partial trees :class:`ParseState`): tag the words, then merge adjacent constituents,
with masks, parents for a uniform backward policy, and per-step log-probabilities.

    >>> actions = TreeActions(num_nonterminals=1, num_preterminals=2, max_length=2)
    >>> actions.actions_for_tree(Tree([(0, 2, 0)], (1, 0)))  # tag, tag, merge at boundary 1
    [1, 0, 2]
"""

from collections import namedtuple

import torch

from .trees import Tree, _as_sentence, _tree_rules

ParseState = namedtuple("ParseState", ["tags", "spans", "top"])
ParseState.__doc__ = """A partial tree: ``tags`` (one per word, -1 while untagged), ``spans`` (the
internal nodes built so far, ``(start, end, label)``, sorted by ``(start, -end)``) and ``top``
(the top-level constituents left to right, ``(start, end, symbol)``: symbol -1 for an untagged
word, ``NT + p`` for a word tagged p, the label for an internal node)."""


class TreeActions:
    """The bottom-up construction of a :class:`Tree` as a sequence of actions (for a GFlowNet
    sampler of parse trees; pure lists and tensors, independent of any sampler).

    From ``initial_state(L)`` (the ``L`` untagged words) a trajectory first tags the words
    left to right (``L`` steps; action ``p`` < PT tags the leftmost untagged word with
    preterminal ``p``), then merges two adjacent top-level constituents under a nonterminal
    (``L - 1`` steps; action ``PT + (k - 1) * NT + A`` merges the two constituents that meet
    at word boundary ``k``, 1 <= k < L, under label ``A``) until one constituent spans the
    sentence: ``2 L - 1`` steps, and every tree is reached. Action ids do not depend on the
    state, so a policy has ``num_actions = PT + (max_length - 1) * NT`` outputs and
    :meth:`action_mask` says which are allowed.

    Parents (for a backward policy P_B): the last step into a state with internal nodes was a
    merge, and any top-level internal node can be the one undone; into a state with no
    internal node it was tagging the rightmost tagged word. :meth:`num_parents` is therefore
    the number of top-level internal nodes if there is one, else 1 if some word is tagged,
    else 0 (the initial state); the uniform P_B(s | s') = 1 / num_parents(s') is a
    distribution over the parents of s', so for every complete tree the product of P_B along
    its trajectories sums to 1 over those trajectories (distinct parents need distinct
    actions, so "parents" and "(parent, action) pairs" coincide). Each tree has as many
    trajectories as orders of its merges with every node after its children.

        >>> actions = TreeActions(num_nonterminals=1, num_preterminals=2, max_length=3)
        >>> state = actions.initial_state(3)
        >>> for a in [0, 1, 1, actions.merge_action(2, 0), actions.merge_action(1, 0)]:
        ...     state = actions.apply(state, a)
        >>> actions.is_terminal(state), actions.to_tree(state)
        (True, Tree(spans=((0, 3, 0), (1, 3, 0)), tags=(0, 1, 1)))
        >>> actions.num_parents(state)
        1
    """

    def __init__(self, num_nonterminals, num_preterminals, max_length):
        if min(num_nonterminals, num_preterminals) < 1 or max_length < 2:
            raise ValueError("TreeActions: need num_nonterminals >= 1, num_preterminals >= 1 and "
                             f"max_length >= 2, got {num_nonterminals}, {num_preterminals}, {max_length}")
        self.num_nonterminals, self.num_preterminals = num_nonterminals, num_preterminals
        self.max_length = max_length
        self.num_actions = num_preterminals + (max_length - 1) * num_nonterminals

    # action ids
    def tag_action(self, preterminal):
        if not 0 <= preterminal < self.num_preterminals:
            raise ValueError(f"TreeActions: preterminal {preterminal} is not in "
                             f"0 .. {self.num_preterminals - 1}")
        return preterminal

    def merge_action(self, boundary, label):
        if not (1 <= boundary < self.max_length and 0 <= label < self.num_nonterminals):
            raise ValueError(f"TreeActions: merge at boundary {boundary} under label {label} needs "
                             f"1 <= boundary < {self.max_length} and label < {self.num_nonterminals}")
        return self.num_preterminals + (boundary - 1) * self.num_nonterminals + label

    def decode(self, action):
        """``("tag", p)`` or ``("merge", boundary, label)``."""
        action = int(action)
        if not 0 <= action < self.num_actions:
            raise ValueError(f"TreeActions: action {action} is not in 0 .. {self.num_actions - 1}")
        if action < self.num_preterminals:
            return ("tag", action)
        boundary, label = divmod(action - self.num_preterminals, self.num_nonterminals)
        return ("merge", boundary + 1, label)

    # states
    def initial_state(self, length):
        if not 2 <= length <= self.max_length:
            raise ValueError(f"TreeActions: a sentence of {length} words; need 2 .. {self.max_length}")
        return ParseState((-1,) * length, (), tuple((i, i + 1, -1) for i in range(length)))

    def is_terminal(self, state):
        return len(state.top) == 1

    def _num_tagged(self, state):
        return sum(t >= 0 for t in state.tags)

    def valid_actions(self, state, root_labels=None):
        """The allowed action ids, ascending; ``root_labels`` (nonterminal ids) restricts the
        label of the last merge, e.g. ``[0]`` for a grammar whose start symbol is 0."""
        if self.is_terminal(state):
            return []
        if self._num_tagged(state) < len(state.tags):
            return list(range(self.num_preterminals))
        labels = range(self.num_nonterminals)
        if len(state.top) == 2 and root_labels is not None:
            labels = sorted(int(a) for a in root_labels)
        return [self.merge_action(c[0], a) for c in state.top[1:] for a in labels]

    def action_mask(self, state, root_labels=None):
        """``[num_actions]`` booleans: True where the action is allowed."""
        mask = torch.zeros(self.num_actions, dtype=torch.bool)
        mask[self.valid_actions(state, root_labels)] = True
        return mask

    def apply(self, state, action):
        """The state after ``action`` (a ValueError if it is not allowed there)."""
        kind, *args = self.decode(action)
        tagged = self._num_tagged(state)
        if kind == "tag":
            if tagged == len(state.tags):
                raise ValueError(f"TreeActions: tag action {action} after every word is tagged")
            tags = state.tags[:tagged] + (args[0],) + state.tags[tagged + 1:]
            word = (tagged, tagged + 1, self.num_nonterminals + args[0])
            top = state.top[:tagged] + (word,) + state.top[tagged + 1:]
            return ParseState(tags, state.spans, top)
        boundary, label = args
        if tagged < len(state.tags):
            raise ValueError(f"TreeActions: merge action {action} before every word is tagged")
        m = next((m for m, c in enumerate(state.top) if m > 0 and c[0] == boundary), None)
        if m is None:
            raise ValueError(f"TreeActions: merge action {action}: boundary {boundary} is not between "
                             "two top-level constituents")
        node = (state.top[m - 1][0], state.top[m][1], label)
        spans = tuple(sorted(state.spans + (node,), key=lambda s: (s[0], -s[1])))
        return ParseState(state.tags, spans, state.top[:m - 1] + (node,) + state.top[m + 1:])

    def _children(self, state, node):
        """The two constituents ``node`` (an internal node of ``state``) was merged from."""
        i, j, _ = node
        table = {(s[0], s[1]): s[2] for s in state.spans}
        k = max((e for e in range(i + 2, j) if (i, e) in table), default=i + 1)

        def constituent(a, b):
            return (a, b, table[(a, b)] if b - a >= 2 else self.num_nonterminals + state.tags[a])

        return constituent(i, k), constituent(k, j)

    def parents(self, state):
        """``[(parent state, action)]``: every way to have reached ``state`` in one step."""
        if state.spans:
            out = []
            for m, node in enumerate(state.top):
                if node[1] - node[0] >= 2:
                    left, right = self._children(state, node)
                    spans = tuple(s for s in state.spans if s != node)
                    top = state.top[:m] + (left, right) + state.top[m + 1:]
                    out.append((ParseState(state.tags, spans, top), self.merge_action(right[0], node[2])))
            return out
        tagged = self._num_tagged(state)
        if tagged == 0:
            return []
        u = tagged - 1
        tags = state.tags[:u] + (-1,) + state.tags[u + 1:]
        top = state.top[:u] + ((u, u + 1, -1),) + state.top[u + 1:]
        return [(ParseState(tags, state.spans, top), self.tag_action(state.tags[u]))]

    def num_parents(self, state):
        """The number of parents (see the class docstring), without building them."""
        if state.spans:
            return sum(c[1] - c[0] >= 2 for c in state.top)
        return 1 if self._num_tagged(state) else 0

    # trees
    def to_tree(self, state):
        if not self.is_terminal(state):
            raise ValueError(f"TreeActions: the state has {len(state.top)} top-level constituents, "
                             "not one: no tree yet")
        return Tree(state.spans, state.tags)

    def actions_for_tree(self, tree):
        """One trajectory that builds ``tree``: tags left to right, then the merges bottom-up,
        left subtree before right (post-order)."""
        _tree_rules(tree, self.num_nonterminals, self.num_preterminals)
        table = {(int(i), int(j)): int(a) for i, j, a in tree.spans}
        merges = []

        def visit(i, j):
            if j - i < 2:
                return
            k = max((e for e in range(i + 2, j) if (i, e) in table), default=i + 1)
            visit(i, k)
            visit(k, j)
            merges.append(self.merge_action(k, table[(i, j)]))

        visit(0, len(tree.tags))
        return [self.tag_action(int(t)) for t in tree.tags] + merges

    def step_log_prob(self, grammar, sentence, state, action):
        """The factor of log p(x, tree) that ``action`` adds: log p(word | tag) for a tag step,
        log p(B C | A) for a merge (plus log p(root = A) for the last merge). Summed along a
        trajectory it gives :func:`tree_log_prob` of the tree it builds (an intermediate reward)."""
        x = _as_sentence(sentence, grammar.vocab_size)
        if len(x) != len(state.tags):
            raise ValueError(f"TreeActions: a sentence of {len(x)} words for a state over {len(state.tags)}")
        kind, *args = self.decode(action)
        if kind == "tag":
            return grammar.emission_log_probs()[args[0], x[self._num_tagged(state)]]
        child = self.apply(state, action)
        node = next(c for c in child.top if c[1] - c[0] >= 2 and c not in state.top)
        left, right = self._children(child, node)
        value = grammar.rule_log_probs()[node[2], left[2], right[2]]
        if self.is_terminal(child):
            value = value + grammar.root_log_probs()[node[2]]
        return value
