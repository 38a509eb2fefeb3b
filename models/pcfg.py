"""A probabilistic context-free grammar (PCFG) in Chomsky normal form, a known synthetic
grammar with a sampled corpus of gold trees, the exact inside algorithm, Viterbi parsing,
exact posterior tree sampling, unlabelled bracketing F1, and a bottom-up tree-construction
action space for a GFlowNet sampler of parse trees (torch).

The grammar (the neural-PCFG split of Kim, Dyer and Rush, 2019): ``NT`` nonterminals, which
expand by binary rules, and ``PT`` preterminals, which emit one word each. Symbols are
numbered ``0 .. NT - 1`` (nonterminals) then ``NT .. NT + PT - 1`` (preterminal ``p`` is
symbol ``NT + p``); ``S = NT + PT``.

* ``root -> A`` for a nonterminal ``A`` (a root distribution over the nonterminals; with
  ``root_logits=None`` the start symbol is nonterminal 0 with probability 1);
* ``A -> B C`` for a nonterminal ``A`` and any two symbols ``B, C`` (``rule_logits [NT, S, S]``,
  normalised jointly over ``(B, C)``);
* ``T -> w`` for a preterminal ``T`` (``emission_logits [PT, V]``).

There are no unary rules, so every sentence has at least 2 words; a sentence of length 1 (or
0) is an error. A tree over ``L`` words is a :class:`Tree`: its ``L - 1`` internal nodes as
``(start, end, label)`` spans (``end`` exclusive, ``label`` a nonterminal, the root
``(0, L, label)`` included) and its ``L`` preterminal tags; ``tree_log_prob`` is
``log p(x, tree)``, and the inside algorithm sums it over all trees.

* grammar: :class:`PCFG`, :func:`true_pcfg` (the known grammar), :func:`pcfg_corpus` (its
  sentences with gold trees);
* exact answers: :func:`inside_log_likelihood` (log p(x), the reference for learning),
  :func:`length_log_probs`, :func:`viterbi_parse`, :func:`sample_posterior_trees` (the exact
  E-step); scores: :func:`tree_log_prob`, :func:`trees_log_prob`, :func:`bracketing_f1`
  (corpus-level unlabelled F1, the grammar-induction convention);
* :class:`TreeActions`: the bottom-up construction of a tree (tag the words, then merge
  adjacent constituents), with masks, parents for a uniform backward policy, and per-step
  log-probabilities.

    >>> grammar = true_pcfg()
    >>> sentences, trees = pcfg_corpus(3, seed=0)
    >>> tree_to_string(trees[0], sentences[0])
    '(S (Name alice) (VP (V chased) (Name bob)))'
    >>> x, gold = sentences[1], trees[1]  # a prepositional phrase attached to the verb phrase
    >>> round(float((tree_log_prob(grammar, x, gold) - inside_log_likelihood(grammar, x)).exp()), 4)
    0.4444
    >>> parses = [viterbi_parse(grammar, x)[0] for x in sentences]  # the second attaches it to NP
    >>> round(bracketing_f1(parses, trees), 4)
    0.9
"""

import bisect
import math
from collections import namedtuple

import torch

# ---------------------------------------------------------------------------- the grammar


class PCFG:
    """A CNF grammar given by unnormalised logits (each a tensor; make them leaf tensors with
    ``requires_grad`` or ``ppl.param`` sites to learn them by gradient).

    Arguments:
        rule_logits: ``[NT, S, S]``, ``S = NT + PT``: ``A -> B C`` before the softmax over
            ``(B, C)`` (``-inf`` for a rule the grammar never uses).
        emission_logits: ``[PT, V]``: ``T -> w`` before the softmax over ``w``.
        root_logits: ``[NT]`` (softmax: the root's label) or None: the start symbol is
            nonterminal 0.

        >>> g = PCFG(torch.zeros(1, 3, 3), torch.zeros(2, 4))
        >>> g.num_nonterminals, g.num_preterminals, g.vocab_size
        (1, 2, 4)
        >>> round(float(g.rule_log_probs().exp().sum()), 6)
        1.0
    """

    def __init__(self, rule_logits, emission_logits, root_logits=None):
        rule_logits = torch.as_tensor(rule_logits)
        emission_logits = torch.as_tensor(emission_logits)
        if emission_logits.dim() != 2 or min(emission_logits.shape) < 1:
            raise ValueError("PCFG: emission_logits must be [num_preterminals, vocab_size], got shape "
                             f"{tuple(emission_logits.shape)}")
        num_pt = emission_logits.shape[0]
        if (rule_logits.dim() != 3 or rule_logits.shape[0] < 1
                or rule_logits.shape[1:] != (rule_logits.shape[0] + num_pt,) * 2):
            raise ValueError("PCFG: rule_logits must be [NT, NT + PT, NT + PT] with PT = "
                             f"{num_pt} preterminals (from emission_logits), got shape "
                             f"{tuple(rule_logits.shape)}")
        if root_logits is not None:
            root_logits = torch.as_tensor(root_logits)
            if root_logits.shape != rule_logits.shape[:1]:
                raise ValueError(f"PCFG: root_logits must be [{rule_logits.shape[0]}] (one per "
                                 f"nonterminal), got shape {tuple(root_logits.shape)}")
        self.rule_logits, self.emission_logits, self.root_logits = rule_logits, emission_logits, root_logits

    @property
    def num_nonterminals(self):
        return self.rule_logits.shape[0]

    @property
    def num_preterminals(self):
        return self.emission_logits.shape[0]

    @property
    def num_symbols(self):
        return self.rule_logits.shape[1]

    @property
    def vocab_size(self):
        return self.emission_logits.shape[1]

    def rule_log_probs(self):
        """log p(B C | A): ``[NT, S, S]``."""
        flat = self.rule_logits.flatten(1)
        return torch.log_softmax(flat, -1).reshape(self.rule_logits.shape)

    def emission_log_probs(self):
        """log p(w | T): ``[PT, V]``."""
        return torch.log_softmax(self.emission_logits, -1)

    def root_log_probs(self):
        """log p(root label = A): ``[NT]``."""
        if self.root_logits is None:
            start = torch.full((self.num_nonterminals,), -math.inf, dtype=self.rule_logits.dtype,
                               device=self.rule_logits.device)
            start[0] = 0.0
            return start
        return torch.log_softmax(self.root_logits, -1)

    @classmethod
    def random(cls, num_nonterminals, num_preterminals, vocab_size, seed=0, scale=1.0, root=True):
        """Logits drawn N(0, scale^2) (a starting point for learning); ``root=False``: start
        symbol 0 instead of a learnable root distribution."""
        g = torch.Generator().manual_seed(seed)
        s = num_nonterminals + num_preterminals
        return cls(scale * torch.randn(num_nonterminals, s, s, generator=g),
                   scale * torch.randn(num_preterminals, vocab_size, generator=g),
                   scale * torch.randn(num_nonterminals, generator=g) if root else None)


# ---------------------------------------------------------------------------- the true grammar

TRUE_NONTERMINALS = ("S", "NP", "VP", "PP")
TRUE_PRETERMINALS = ("Det", "N", "V", "P", "Name")
TRUE_VOCAB = ("the", "a", "dog", "cat", "park", "ball", "telescope", "saw", "chased", "liked",
              "found", "with", "in", "near", "alice", "bob", "carol")
TRUE_RULES = {  # A: [(B, C, p(B C | A))]
    "S": [("NP", "VP", 0.5), ("Name", "VP", 0.3), ("NP", "V", 0.1), ("Name", "V", 0.1)],
    "NP": [("Det", "N", 0.75), ("NP", "PP", 0.25)],
    "VP": [("V", "NP", 0.5), ("V", "Name", 0.3), ("VP", "PP", 0.2)],
    "PP": [("P", "NP", 0.6), ("P", "Name", 0.4)],
}
TRUE_EMISSIONS = {  # T: {word: p(word | T)}
    "Det": {"the": 0.6, "a": 0.4},
    "N": {"dog": 0.3, "cat": 0.25, "park": 0.2, "ball": 0.15, "telescope": 0.1},
    "V": {"saw": 0.4, "chased": 0.3, "liked": 0.2, "found": 0.1},
    "P": {"with": 0.5, "in": 0.3, "near": 0.2},
    "Name": {"alice": 0.5, "bob": 0.3, "carol": 0.2},
}


def true_pcfg(dtype=torch.float64):
    """The known toy English grammar (4 nonterminals S NP VP PP, 5 preterminals, 17 words,
    start symbol S); zero-probability rules have logit ``-inf``. Its one ambiguity is
    prepositional-phrase attachment (``NP -> NP PP`` against ``VP -> VP PP``), so even the
    true grammar's Viterbi trees miss some gold brackets.

        >>> g = true_pcfg()
        >>> round(float(g.rule_log_probs()[0, 1, 2].exp()), 6)  # S -> NP VP
        0.5
    """
    symbols = {name: i for i, name in enumerate(TRUE_NONTERMINALS + TRUE_PRETERMINALS)}
    nt, s = len(TRUE_NONTERMINALS), len(symbols)
    rules = torch.zeros(nt, s, s, dtype=dtype)
    for a, expansions in TRUE_RULES.items():
        for b, c, p in expansions:
            rules[symbols[a], symbols[b], symbols[c]] = p
    emissions = torch.zeros(len(TRUE_PRETERMINALS), len(TRUE_VOCAB), dtype=dtype)
    for t, words in TRUE_EMISSIONS.items():
        for w, p in words.items():
            emissions[TRUE_PRETERMINALS.index(t), TRUE_VOCAB.index(w)] = p
    return PCFG(rules.log(), emissions.log())


# ---------------------------------------------------------------------------- trees

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


# ---------------------------------------------------------------------------- the corpus


class _Uniforms:
    """Uniform draws from a seeded torch generator, in blocks, inverted through CDFs."""

    def __init__(self, seed):
        self.generator = torch.Generator().manual_seed(seed)
        self.block, self.used = [], 0

    def choose(self, cdf):
        if self.used == len(self.block):
            self.block = torch.rand(4096, generator=self.generator, dtype=torch.float64).tolist()
            self.used = 0
        u = self.block[self.used] * cdf[-1]
        self.used += 1
        return min(bisect.bisect_right(cdf, u), len(cdf) - 1)


def _cdfs(log_probs):
    rows = log_probs.detach().double().reshape(log_probs.shape[0], -1)
    return [torch.cumsum(row.exp(), 0).tolist() for row in rows]


def pcfg_corpus(num_sentences, seed=0, min_length=2, max_length=8, grammar=None, max_tries=None):
    """``num_sentences`` sentences (1-D LongTensors of word ids) and their gold :class:`Tree` s,
    drawn from ``grammar`` (the true grammar by default) conditioned on
    ``min_length <= length <= max_length`` by rejection (a draw is abandoned as soon as it
    must exceed ``max_length``). Raises after ``max_tries`` rejected draws (default
    ``1000 + 100 * num_sentences``).

        >>> sentences, trees = pcfg_corpus(2, seed=1)
        >>> [len(x) for x in sentences], [len(t.spans) for t in trees]
        ([4, 5], [3, 4])
    """
    if not 2 <= min_length <= max_length:
        raise ValueError(f"pcfg_corpus: need 2 <= min_length <= max_length, got {min_length}, {max_length}")
    grammar = true_pcfg() if grammar is None else grammar
    nt, s = grammar.num_nonterminals, grammar.num_symbols
    with torch.no_grad():
        rule_cdf = _cdfs(grammar.rule_log_probs())
        emission_cdf = _cdfs(grammar.emission_log_probs())
        root_cdf = _cdfs(grammar.root_log_probs()[None])[0]
    draw = _Uniforms(seed)
    max_tries = 1000 + 100 * num_sentences if max_tries is None else max_tries

    def expand(symbol, start, pending, spans, tags, words):
        """Expand ``symbol`` at ``start`` (``pending`` symbols wait to its right); returns the
        end or None once the sentence cannot fit in ``max_length``."""
        if start + 1 + pending > max_length:
            return None
        if symbol >= nt:
            tags.append(symbol - nt)
            words.append(draw.choose(emission_cdf[symbol - nt]))
            return start + 1
        node = [start, None, symbol]
        spans.append(node)
        b, c = divmod(draw.choose(rule_cdf[symbol]), s)
        middle = expand(b, start, pending + 1, spans, tags, words)
        end = None if middle is None else expand(c, middle, pending, spans, tags, words)
        node[1] = end
        return end

    sentences, trees, rejected = [], [], 0
    while len(sentences) < num_sentences:
        spans, tags, words = [], [], []
        end = expand(draw.choose(root_cdf), 0, 0, spans, tags, words)
        if end is None or end < min_length:
            rejected += 1
            if rejected > max_tries:
                raise RuntimeError(f"pcfg_corpus: {rejected} draws fell outside lengths "
                                   f"{min_length} .. {max_length}; widen the range")
            continue
        sentences.append(torch.tensor(words, dtype=torch.long))
        trees.append(Tree(tuple(tuple(node) for node in spans), tuple(tags)))
    return sentences, trees


# ---------------------------------------------------------------------------- inside algorithm


def _combine(rules, left, right):
    """log sum over splits t and children (B, C) of rules[A, B, C] + left[t, B] + right[t, C]:
    left ``[N, n, T, Sb]``, right ``[N, n, T, Sc]``, rules ``[NT, Sb, Sc]`` -> ``[N, n, NT]``."""
    pair = torch.logsumexp(left[..., :, None] + right[..., None, :], dim=2)  # [N, n, Sb, Sc]
    return torch.logsumexp((pair[:, :, None] + rules).flatten(-2), -1)


def _inside_chart(grammar, tag_scores):
    """Inside scores of the nonterminals by span width: ``{w: [N, L - w + 1, NT]}`` for
    ``w >= 2``, from preterminal scores ``tag_scores [N, L, PT]`` (log p(word | T)). Only
    the allowed child blocks are combined (width-1 children are preterminals, wider ones
    nonterminals), so no -inf placeholders enter the sums (finite logits: finite gradients)."""
    rules, nt = grammar.rule_log_probs(), grammar.num_nonterminals
    r_nn, r_np, r_pn, r_pp = rules[:, :nt, :nt], rules[:, :nt, nt:], rules[:, nt:, :nt], rules[:, nt:, nt:]
    length, tag = tag_scores.shape[1], tag_scores
    chart = {}
    for w in range(2, length + 1):
        n = length - w + 1
        if w == 2:
            chart[w] = _combine(r_pp, tag[:, :n, None], tag[:, 1:1 + n, None])
            continue
        terms = [_combine(r_pn, tag[:, :n, None], chart[w - 1][:, 1:1 + n, None]),
                 _combine(r_np, chart[w - 1][:, :n, None], tag[:, w - 1:w - 1 + n, None])]
        if w >= 4:
            left = torch.stack([chart[t][:, :n] for t in range(2, w - 1)], 2)
            right = torch.stack([chart[w - t][:, t:t + n] for t in range(2, w - 1)], 2)
            terms.append(_combine(r_nn, left, right))
        chart[w] = torch.logsumexp(torch.stack(terms), 0)
    return chart


def _inside_batch(grammar, x):
    """log p(x) for ``x [N, L]`` (checked word ids): ``[N]``."""
    tag_scores = grammar.emission_log_probs().T[x]  # [N, L, PT]
    chart = _inside_chart(grammar, tag_scores)
    return torch.logsumexp(grammar.root_log_probs() + chart[x.shape[1]][:, 0], -1)


def inside_log_likelihood(grammar, sentences):
    """The exact log marginal likelihood log p(x) = log sum over trees of p(x, tree), by the
    inside algorithm in log space (differentiable: its gradient gives expected rule counts).

    ``sentences``: one sentence (1-D sequence of word ids) -> a scalar; a ``[N, L]`` tensor
    -> ``[N]`` (batched); a list of sentences of any lengths -> ``[N]`` (batched by length).

        >>> g = true_pcfg()
        >>> x = torch.tensor([TRUE_VOCAB.index(w) for w in ("alice", "saw")])
        >>> round(float(inside_log_likelihood(g, x).exp()), 6)  # only tree: S -> Name V
        0.02
    """
    vocab = grammar.vocab_size
    if torch.is_tensor(sentences) and sentences.dim() == 2:
        return _inside_batch(grammar, _check_words(sentences, vocab))
    if torch.is_tensor(sentences) or (len(sentences) > 0 and torch.as_tensor(sentences[0]).dim() == 0):
        return _inside_batch(grammar, _as_sentence(sentences, vocab)[None])[0]
    if len(sentences) == 0:
        raise ValueError("inside_log_likelihood: no sentences (an empty list; an empty sentence "
                         "has no tree either)")
    xs = [_as_sentence(x, vocab) for x in sentences]
    out = [None] * len(xs)
    for length in sorted({len(x) for x in xs}):
        index = [i for i, x in enumerate(xs) if len(x) == length]
        for i, value in zip(index, _inside_batch(grammar, torch.stack([xs[i] for i in index]))):
            out[i] = value
    return torch.stack(out)


def length_log_probs(grammar, max_length):
    """log P(length = n) for n = 0 .. max_length (``[max_length + 1]``; -inf below 2): the
    inside algorithm with every word summed out. With a consistent grammar the total tends to
    1 as max_length grows; conditioned on a length range it gives the exact law of
    :func:`pcfg_corpus` lengths.

        >>> round(float(length_log_probs(true_pcfg(), 2)[2].exp()), 6)  # S -> Name V
        0.1
    """
    if max_length < 2:
        raise ValueError(f"length_log_probs: max_length must be >= 2, got {max_length}")
    rules = grammar.rule_log_probs()
    tag_scores = rules.new_zeros(1, max_length, grammar.num_preterminals)
    chart = _inside_chart(grammar, tag_scores)
    root = grammar.root_log_probs()
    head = rules.new_full((2,), -math.inf)
    return torch.cat([head] + [torch.logsumexp(root + chart[n][0, 0], -1)[None]
                               for n in range(2, max_length + 1)])


# ---------------------------------------------------------------------------- parsing and sampling


def _span_chart(grammar, x, reduce):
    """Per-sentence chart over all symbols, ``{(i, j): [S]}`` (-inf where a symbol cannot
    span (i, j)), with ``reduce`` = "max" (Viterbi) or "sum" (inside), and per span the
    candidate scores ``[NT, T * S * S]`` over (split, B, C) for back-tracking."""
    rules = grammar.rule_log_probs().detach()
    emissions = grammar.emission_log_probs().detach()
    nt, n = grammar.num_nonterminals, len(x)
    blank_nt = rules.new_full((nt,), -math.inf)
    blank_pt = rules.new_full((grammar.num_preterminals,), -math.inf)
    chart, candidates = {}, {}
    for i in range(n):
        chart[(i, i + 1)] = torch.cat([blank_nt, emissions[:, x[i]]])
    for w in range(2, n + 1):
        for i in range(n - w + 1):
            j = i + w
            cand = torch.stack([rules + chart[(i, k)][:, None] + chart[(k, j)][None, :]
                                for k in range(i + 1, j)], 1).reshape(nt, -1)
            candidates[(i, j)] = cand
            best = cand.max(-1).values if reduce == "max" else torch.logsumexp(cand, -1)
            chart[(i, j)] = torch.cat([best, blank_pt])
    return chart, candidates


def _read_tree(grammar, x, candidates, root_scores, pick):
    """Top-down: ``pick(key, scores)`` chooses an index at the root (key None) and at each
    span (key ``(i, j, label)``)."""
    nt, s = grammar.num_nonterminals, grammar.num_symbols
    spans, tags = [], [None] * len(x)
    stack = [(0, len(x), pick(None, root_scores))]
    while stack:
        i, j, a = stack.pop()
        spans.append((i, j, a))
        split, rest = divmod(pick((i, j, a), candidates[(i, j)][a]), s * s)
        b, c = divmod(rest, s)
        k = i + 1 + split
        for start, end, symbol in ((k, j, c), (i, k, b)):
            if end - start == 1:
                tags[start] = symbol - nt
            else:
                stack.append((start, end, symbol))
    return Tree(tuple(spans), tuple(tags))


def viterbi_parse(grammar, sentence):
    """The most probable tree and its log p(x, tree) (a float); ties go to the lowest index.

        >>> g = true_pcfg()
        >>> tree, score = viterbi_parse(g, [TRUE_VOCAB.index(w) for w in ("the", "dog", "saw")])
        >>> tree_to_string(tree, [0, 2, 7]), round(score, 4)  # log(.1 * .75 * .6 * .3 * .4)
        ('(S (NP (Det the) (N dog)) (V saw))', -5.2214)
    """
    x = _as_sentence(sentence, grammar.vocab_size).tolist()
    with torch.no_grad():
        chart, candidates = _span_chart(grammar, x, "max")
        root = grammar.root_log_probs().detach() + chart[(0, len(x))][:grammar.num_nonterminals]
        if not torch.isfinite(root.max()):
            raise ValueError(f"viterbi_parse: the grammar gives sentence {x} probability 0")
        tree = _read_tree(grammar, x, candidates, root, lambda key, v: int(v.argmax()))
        return tree, float(root.max())


def sample_posterior_trees(grammar, sentence, num_samples=1, generator=None):
    """``num_samples`` trees drawn exactly and independently from p(tree | x) (inside chart,
    then top-down sampling): the exact E-step that a GFlowNet sampler approximates.

        >>> g = true_pcfg()
        >>> x = [TRUE_VOCAB.index(w) for w in ("bob", "saw", "alice")]
        >>> [tree_to_string(t, x) for t in sample_posterior_trees(g, x, 1, torch.Generator().manual_seed(0))]
        ['(S (Name bob) (VP (V saw) (Name alice)))']
    """
    x = _as_sentence(sentence, grammar.vocab_size).tolist()
    with torch.no_grad():
        chart, candidates = _span_chart(grammar, x, "sum")
        root = grammar.root_log_probs().detach() + chart[(0, len(x))][:grammar.num_nonterminals]
        if not torch.isfinite(torch.logsumexp(root, -1)):
            raise ValueError(f"sample_posterior_trees: the grammar gives sentence {x} probability 0")
        probs = {}

        def pick(key, scores):
            if key not in probs:
                probs[key] = torch.softmax(scores.double(), -1)
            return int(torch.multinomial(probs[key], 1, generator=generator))

        return [_read_tree(grammar, x, candidates, root, pick) for _ in range(num_samples)]


# ---------------------------------------------------------------------------- evaluation


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


# ---------------------------------------------------------------------------- tree construction

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
