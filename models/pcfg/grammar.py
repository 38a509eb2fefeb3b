"""The grammar: :class:`PCFG` (a CNF grammar given by logits, and its normalised
log-probabilities) and :func:`true_pcfg`, the known toy English grammar, with its names
(``TRUE_NONTERMINALS``, ``TRUE_PRETERMINALS``, ``TRUE_VOCAB``) and probabilities
(``TRUE_RULES``, ``TRUE_EMISSIONS``).

    >>> g = true_pcfg()
    >>> g.num_nonterminals, g.num_preterminals, g.vocab_size
    (4, 5, 17)
"""

import math

import torch


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
