"""Exact answers by dynamic programming over spans: :func:`inside_log_likelihood` (log p(x),
the reference for learning), :func:`length_log_probs`, :func:`viterbi_parse` and
:func:`sample_posterior_trees` (the exact E-step).

    >>> from models.pcfg import TRUE_VOCAB, true_pcfg
    >>> x = [TRUE_VOCAB.index(w) for w in ("alice", "saw")]
    >>> round(float(inside_log_likelihood(true_pcfg(), x).exp()), 6)  # only tree: S -> Name V
    0.02
"""

import math

import torch

from .trees import Tree, _as_sentence, _check_words


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

        >>> from models.pcfg import TRUE_VOCAB, true_pcfg
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

        >>> from models.pcfg import true_pcfg
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

        >>> from models.pcfg import TRUE_VOCAB, true_pcfg, tree_to_string
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

        >>> from models.pcfg import TRUE_VOCAB, true_pcfg, tree_to_string
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
