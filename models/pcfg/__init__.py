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

* :mod:`models.pcfg.grammar`: :class:`PCFG`, :func:`true_pcfg` (the known grammar);
* :mod:`models.pcfg.corpus`: :func:`pcfg_corpus` (its sentences with gold trees);
* :mod:`models.pcfg.inside`, exact answers: :func:`inside_log_likelihood` (log p(x), the
  reference for learning), :func:`length_log_probs`, :func:`viterbi_parse`,
  :func:`sample_posterior_trees` (the exact E-step);
* :mod:`models.pcfg.trees`, scores: :class:`Tree`, :func:`tree_log_prob`,
  :func:`trees_log_prob`, :func:`tree_to_string`, :func:`bracketing_f1` (corpus-level
  unlabelled F1, the grammar-induction convention);
* :mod:`models.pcfg.actions`: :class:`TreeActions`, the bottom-up construction of a tree (tag
  the words, then merge adjacent constituents), with masks, parents for a uniform backward
  policy, and per-step log-probabilities.

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

from .actions import ParseState, TreeActions
from .corpus import pcfg_corpus
from .grammar import (
    PCFG,
    TRUE_EMISSIONS,
    TRUE_NONTERMINALS,
    TRUE_PRETERMINALS,
    TRUE_RULES,
    TRUE_VOCAB,
    true_pcfg,
)
from .inside import inside_log_likelihood, length_log_probs, sample_posterior_trees, viterbi_parse
from .trees import Tree, bracketing_f1, tree_log_prob, tree_to_string, trees_log_prob

__all__ = [
    "PCFG",
    "ParseState",
    "TRUE_EMISSIONS",
    "TRUE_NONTERMINALS",
    "TRUE_PRETERMINALS",
    "TRUE_RULES",
    "TRUE_VOCAB",
    "Tree",
    "TreeActions",
    "bracketing_f1",
    "inside_log_likelihood",
    "length_log_probs",
    "pcfg_corpus",
    "sample_posterior_trees",
    "tree_log_prob",
    "tree_to_string",
    "trees_log_prob",
    "true_pcfg",
    "viterbi_parse",
]
