"""A corpus from a grammar: :func:`pcfg_corpus` draws sentences with their gold trees
(from the true grammar by default), conditioned on a length range by rejection.

    >>> sentences, trees = pcfg_corpus(2, seed=1)
    >>> [len(x) for x in sentences], [len(t.spans) for t in trees]
    ([4, 5], [3, 4])
"""

import bisect

import torch

from .grammar import true_pcfg
from .trees import Tree


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
