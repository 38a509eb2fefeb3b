"""Parse trees: the :class:`Tree` representation, its checks, its score
(:func:`tree_log_prob`, :func:`trees_log_prob`), its bracketed form (:func:`tree_to_string`)
and unlabelled bracketing F1 against gold trees (:func:`bracketing_f1`).

    >>> tree = Tree([(0, 2, 0)], (4, 2))  # S -> Name V over "alice saw"
    >>> tree_to_string(tree, [14, 7])
    '(S (Name alice) (V saw))'
"""

from collections import namedtuple

import torch

from .grammar import TRUE_NONTERMINALS, TRUE_PRETERMINALS, TRUE_VOCAB

Tree = namedtuple("Tree", ["spans", "tags"])
Tree.__doc__ = """A binary parse tree over ``len(tags)`` words: ``spans``, the internal nodes as
``(start, end, label)`` (``end`` exclusive, label a nonterminal index, root ``(0, L, label)``
included; :func:`pcfg_corpus` and the parsers list them in pre-order, i.e. sorted by
``(start, -end)``); ``tags``, one preterminal index (``0 .. PT - 1``) per word."""


def _as_sentence(sentence, vocab_size):
    """A 1-D LongTensor of word ids, checked against the vocabulary."""
    x = torch.as_tensor(sentence)
    if x.dim() != 1:
        raise ValueError(f"a sentence must be a 1-D sequence of word ids, got shape {tuple(x.shape)}")
    return _check_words(x, vocab_size)


def _check_words(x, vocab_size):
    if x.shape[-1] < 2:
        raise ValueError(f"a sentence needs at least 2 words (the grammar has no unary rules), "
                         f"got {x.shape[-1]}")
    if x.dtype.is_floating_point or x.dtype == torch.bool:
        raise ValueError(f"a sentence must hold integer word ids, got dtype {x.dtype}")
    bad = (x < 0) | (x >= vocab_size)
    if bad.any():
        raise ValueError(f"word id {int(x[bad][0])} is out of the vocabulary (ids 0 .. {vocab_size - 1})")
    return x.long()


def _tree_rules(tree, num_nonterminals, num_preterminals, length=None):
    """Check ``tree`` and return (root label, [(A, B, C) per internal node, pre-order])."""
    if not isinstance(tree, Tree):
        raise ValueError(f"expected a Tree(spans, tags), got {type(tree).__name__}")
    tags = tuple(int(t) for t in tree.tags)
    n = len(tags)
    if length is not None and n != length:
        raise ValueError(f"the tree has {n} tags for a sentence of {length} words")
    if n < 2:
        raise ValueError(f"a tree needs at least 2 words, got {n} tags")
    if any(not 0 <= t < num_preterminals for t in tags):
        raise ValueError(f"tags {tags} must be preterminals 0 .. {num_preterminals - 1}")
    table = {}
    for span in tree.spans:
        i, j, a = (int(v) for v in span)
        if not (0 <= i and i + 2 <= j <= n and 0 <= a < num_nonterminals):
            raise ValueError(f"span {tuple(span)} is not (start, end, label) with 0 <= start, "
                             f"end - start >= 2, end <= {n} and label < {num_nonterminals}")
        if (i, j) in table:
            raise ValueError(f"span ({i}, {j}) appears twice")
        table[(i, j)] = a
    if (0, n) not in table:
        raise ValueError(f"the tree has no root span (0, {n}, label)")
    if len(table) != n - 1:
        raise ValueError(f"a binary tree over {n} words has {n - 1} internal spans, got {len(table)}")

    def symbol(i, j):
        return table[(i, j)] if j - i >= 2 else num_nonterminals + tags[i]

    rules, stack = [], [(0, n)]
    while stack:
        i, j = stack.pop()
        k = max((e for e in range(i + 2, j) if (i, e) in table), default=i + 1)
        if j - k >= 2 and (k, j) not in table:
            raise ValueError(f"span ({i}, {j}) does not split into two constituents of the tree")
        rules.append((table[(i, j)], symbol(i, k), symbol(k, j)))
        stack.extend(s for s in ((k, j), (i, k)) if s[1] - s[0] >= 2)
    return table[(0, n)], rules


def tree_log_prob(grammar, sentence, tree):
    """log p(x, tree): the root's, the rules' and the emissions' log-probabilities (a
    differentiable scalar tensor).

        >>> from models.pcfg import true_pcfg
        >>> g = true_pcfg()
        >>> x = [TRUE_VOCAB.index(w) for w in ("alice", "saw")]
        >>> round(float(tree_log_prob(g, x, Tree([(0, 2, 0)], (4, 2))).exp()), 6)  # .1 * .5 * .4
        0.02
    """
    x = _as_sentence(sentence, grammar.vocab_size)
    root, rules = _tree_rules(tree, grammar.num_nonterminals, grammar.num_preterminals, len(x))
    a, b, c = torch.tensor(rules).T
    tags = torch.tensor(tuple(tree.tags), dtype=torch.long)
    return (grammar.root_log_probs()[root] + grammar.rule_log_probs()[a, b, c].sum()
            + grammar.emission_log_probs()[tags, x].sum())


def trees_log_prob(grammar, sentences, trees):
    """log p(x_n, tree_n) for paired lists of sentences and trees, ``[N]``, with the
    log-probabilities normalised once and gathered in one go (for an M-step on many trees).

        >>> from models.pcfg import pcfg_corpus, true_pcfg
        >>> sentences, trees = pcfg_corpus(3, seed=0)
        >>> [round(v, 4) for v in trees_log_prob(true_pcfg(), sentences, trees).tolist()]
        [-5.509, -12.6921, -10.5197]
    """
    sentences, trees = list(sentences), list(trees)
    if len(sentences) != len(trees) or not sentences:
        raise ValueError(f"trees_log_prob: {len(sentences)} sentences for {len(trees)} trees "
                         "(need as many, at least one)")
    nt, pt = grammar.num_nonterminals, grammar.num_preterminals
    roots, rules, rule_owner, tags, words, word_owner = [], [], [], [], [], []
    for n, (sentence, tree) in enumerate(zip(sentences, trees)):
        x = _as_sentence(sentence, grammar.vocab_size)
        root, used = _tree_rules(tree, nt, pt, len(x))
        roots.append(root)
        rules.extend(used)
        rule_owner.extend([n] * len(used))
        tags.extend(int(t) for t in tree.tags)
        words.extend(x.tolist())
        word_owner.extend([n] * len(x))
    a, b, c = torch.tensor(rules).T
    rule_lp = grammar.rule_log_probs()[a, b, c]
    emission_lp = grammar.emission_log_probs()[torch.tensor(tags), torch.tensor(words)]
    total = grammar.root_log_probs()[torch.tensor(roots)]
    total = total.index_add(0, torch.tensor(rule_owner, device=total.device), rule_lp)
    return total.index_add(0, torch.tensor(word_owner, device=total.device), emission_lp)


def tree_to_string(tree, sentence, words=TRUE_VOCAB, nonterminals=TRUE_NONTERMINALS,
                   preterminals=TRUE_PRETERMINALS):
    """Bracketed form, e.g. ``(S (Name alice) (V saw))``; names default to the true grammar's.

        >>> tree_to_string(Tree([(0, 2, 0)], (4, 2)), [14, 7])
        '(S (Name alice) (V saw))'
    """
    x = [int(w) for w in sentence]
    table = {(int(i), int(j)): int(a) for i, j, a in tree.spans}

    def show(i, j):
        if j - i == 1:
            return f"({preterminals[int(tree.tags[i])]} {words[x[i]]})"
        k = max((e for e in range(i + 2, j) if (i, e) in table), default=i + 1)
        return f"({nonterminals[table[(i, j)]]} {show(i, k)} {show(k, j)})"

    return show(0, len(x))

def _brackets(tree):
    """(length, set of non-trivial (start, end) spans) of a Tree or a sequence of spans."""
    spans = tree.spans if isinstance(tree, Tree) else tree
    pairs = {(int(s[0]), int(s[1])) for s in spans}
    if not pairs:
        raise ValueError("bracketing_f1: a tree without spans")
    length = len(tree.tags) if isinstance(tree, Tree) else max(j for _, j in pairs)
    return length, {(i, j) for i, j in pairs if j - i >= 2 and (i, j) != (0, length)}


def bracketing_f1(predicted_trees, gold_trees):
    """Corpus-level unlabelled bracketing F1: spans of width >= 2 other than the whole
    sentence, pooled over the corpus (labels and tags ignored). Trees are :class:`Tree` s or
    sequences of ``(start, end, ...)`` spans. Binary trees over the same sentence have equally
    many such spans, so precision = recall = F1 there. A corpus with no such span at all
    (only 2-word sentences) scores 1.0.

        >>> gold = Tree([(0, 4, 0), (0, 2, 1), (2, 4, 2)], (0, 1, 2, 3))
        >>> right_branching = [(0, 4, 0), (1, 4, 0), (2, 4, 0)]
        >>> bracketing_f1([right_branching], [gold])  # matches (2, 4) of (0, 2), (2, 4)
        0.5
    """
    predicted_trees, gold_trees = list(predicted_trees), list(gold_trees)
    if len(predicted_trees) != len(gold_trees):
        raise ValueError(f"bracketing_f1: {len(predicted_trees)} predicted trees for "
                         f"{len(gold_trees)} gold trees")
    matched = num_predicted = num_gold = 0
    for index, (p, g) in enumerate(zip(predicted_trees, gold_trees)):
        (lp, sp), (lg, sg) = _brackets(p), _brackets(g)
        if lp != lg:
            raise ValueError(f"bracketing_f1: tree {index} spans {lp} words predicted, {lg} gold")
        matched, num_predicted, num_gold = matched + len(sp & sg), num_predicted + len(sp), num_gold + len(sg)
    if num_predicted == 0 and num_gold == 0:
        return 1.0
    if matched == 0:
        return 0.0
    precision, recall = matched / num_predicted, matched / num_gold
    return 2 * precision * recall / (precision + recall)
