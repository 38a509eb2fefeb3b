"""The PCFG of :mod:`models.pcfg` as a ``ppl`` program: in a plate over sentences, a latent
``tree`` site (a :class:`TreeDistribution`) and an observed ``words`` site (each word
emitted by its preterminal tag), so that the program's joint is log p(x, tree); the
grammar's logits are ``ppl.param`` s, learnable by any strategy (GFlowNet-EM with
:class:`models.pcfg.space.TreeActionSpace`, or exact EM on :func:`models.pcfg.inside_log_likelihood`).

Sentences of different lengths share one batch by padding: ``words [N, M]`` (word ids, any
valid id after a sentence's end) with ``lengths [N]`` (:func:`pad_sentences`); padded
positions are masked out of the words' log-likelihood.

A tree is encoded as a LongTensor ``[M - 1, 5]``: one row ``(start, end, label, left
symbol, right symbol)`` per internal node (``end`` exclusive; symbols are nonterminals
``0 .. NT - 1`` or preterminals ``NT + p``), in pre-order, then ``-1`` rows up to ``M - 1``.
Its preterminal tags are the preterminal children (:func:`tree_tags`).

    >>> import pyro, torch
    >>> from models.pcfg import pcfg_corpus, trees_log_prob
    >>> pyro.clear_param_store()
    >>> sentences, trees = pcfg_corpus(3, seed=0, max_length=6)
    >>> words, lengths = pad_sentences(sentences, max_length=6)
    >>> model = pcfg_program(4, 5, 17, max_length=6, seed=0)
    >>> value = torch.stack([tree_to_value(t, 4, 6) for t in trees])
    >>> joint = ppl.trace(ppl.condition(model, {"tree": value}))(words, lengths)
    >>> log_p = joint["tree"].log_prob + joint["words"].log_prob  # log p(x_n, tree_n)
    >>> torch.allclose(log_p, trees_log_prob(learned_grammar(), sentences, trees))
    True
"""

import torch
from pyro.distributions import TorchDistribution, constraints

import ppl
import ppl.distributions as dist

from . import PCFG, Tree, sample_posterior_trees  # noqa: F401 (Tree: for the doctests)

COLUMNS = 5  # start, end, label, left symbol, right symbol


def pad_sentences(sentences, max_length=None, pad=0):
    """A list of 1-D word-id sentences -> ``(words [N, M], lengths [N])``, padded with ``pad``.

        >>> pad_sentences([[3, 1], [2, 2, 2]])
        (tensor([[3, 1, 0],
                [2, 2, 2]]), tensor([2, 3]))
    """
    sentences = [torch.as_tensor(x).long() for x in sentences]
    lengths = torch.tensor([len(x) for x in sentences])
    longest = int(lengths.max())
    max_length = longest if max_length is None else max_length
    if longest > max_length:
        raise ValueError(f"pad_sentences: a sentence of {longest} words exceeds max_length = {max_length}")
    words = torch.full((len(sentences), max_length), pad, dtype=torch.long)
    for i, x in enumerate(sentences):
        words[i, :len(x)] = x
    return words, lengths


def tree_to_value(tree, num_nonterminals, max_length):
    """The ``[max_length - 1, 5]`` encoding of a :class:`~models.pcfg.Tree`.

        >>> tree_to_value(Tree([(0, 2, 0)], (1, 0)), 1, 3).tolist()  # NT = 1: tags are 1 + p
        [[0, 2, 0, 2, 1], [-1, -1, -1, -1, -1]]
    """
    table = {(int(i), int(j)): int(a) for i, j, a in tree.spans}
    n = len(tree.tags)
    if n > max_length:
        raise ValueError(f"tree_to_value: a tree over {n} words exceeds max_length = {max_length}")

    def symbol(i, j):
        return table[(i, j)] if j - i >= 2 else num_nonterminals + int(tree.tags[i])

    rows = []
    for i, j in sorted(table, key=lambda s: (s[0], -s[1])):
        k = max((e for e in range(i + 2, j) if (i, e) in table), default=i + 1)
        rows.append((i, j, table[(i, j)], symbol(i, k), symbol(k, j)))
    value = torch.full((max_length - 1, COLUMNS), -1, dtype=torch.long)
    if rows:
        value[:len(rows)] = torch.tensor(rows)
    return value


def tree_tags(value, num_nonterminals):
    """The preterminal tag of each word, ``[..., M]`` (0 after the sentence's end), from tree
    values ``[..., M - 1, 5]``: every word is the left or the right child of one node.

        >>> tree_tags(tree_to_value(Tree([(0, 3, 0), (1, 3, 0)], (1, 0, 1)), 1, 4), 1).tolist()
        [1, 0, 1, 0]
    """
    m = value.shape[-2] + 1
    start, end, left, right = value[..., 0], value[..., 1], value[..., 3], value[..., 4]
    valid = start >= 0
    tags = torch.zeros(value.shape[:-2] + (m + 1,), dtype=torch.long, device=value.device)
    for child, position in ((left, start), (right, end - 1)):
        leaf = valid & (child >= num_nonterminals)
        tags = tags.scatter(-1, torch.where(leaf, position, m),
                            torch.where(leaf, child - num_nonterminals, 0))
    return tags[..., :m]


class _TreeValues(constraints.Constraint):
    """Tree encodings with entries in range and ``length - 1`` node rows."""

    is_discrete = True
    event_dim = 2

    def __init__(self, num_nonterminals, num_symbols, lengths):
        self.nt, self.s, self.lengths = num_nonterminals, num_symbols, lengths
        super().__init__()

    def check(self, value):
        valid = value[..., 0] >= 0
        ends_ok = value[..., 1] <= self.lengths.unsqueeze(-1)
        rows_ok = ~valid | ((value[..., 0] < value[..., 1] - 1) & ends_ok
                            & (value[..., 2] < self.nt) & (value[..., 2] >= 0)
                            & (value[..., 3:] >= 0).all(-1) & (value[..., 3:] < self.s).all(-1))
        return rows_ok.all(-1) & (valid.sum(-1) == self.lengths - 1)


class TreeDistribution(TorchDistribution):
    """The PCFG's distribution of a tree over a sentence of a given length, unnormalised:
    ``log_prob`` is log p(root label) + sum of log p(B C | A) over the internal nodes (the
    emissions belong to the words site), which sums to P(length) over the trees of that
    length. ``sample`` draws exactly from p(tree | length) (the inside algorithm with the
    words summed out).

    Arguments: ``grammar`` (a :class:`~models.pcfg.PCFG`), ``lengths [N]`` (the batch shape)
    and ``max_length`` M (the event shape is ``[M - 1, 5]``).

        >>> from models.pcfg import true_pcfg
        >>> d = TreeDistribution(true_pcfg(), torch.tensor([2]), max_length=3)
        >>> value = tree_to_value(Tree([(0, 2, 0)], (4, 2)), 4, 3)  # S -> Name V: 0.1
        >>> round(float(d.log_prob(value[None]).exp()), 6)
        0.1
    """

    arg_constraints = {}

    def __init__(self, grammar, lengths, max_length, validate_args=None):
        self.grammar = grammar
        self.rule_log_probs = grammar.rule_log_probs()
        self.root_log_probs = grammar.root_log_probs()
        self.lengths = torch.as_tensor(lengths).long()
        self.max_length = max_length
        if bool(((self.lengths < 2) | (self.lengths > max_length)).any()):
            raise ValueError(f"TreeDistribution: sentence lengths {self.lengths.tolist()} must lie in "
                             f"2 .. max_length = {max_length}")
        super().__init__(self.lengths.shape, torch.Size([max_length - 1, COLUMNS]), validate_args)

    @property
    def support(self):
        return _TreeValues(self.grammar.num_nonterminals, self.grammar.num_symbols, self.lengths)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        valid = value[..., 0] >= 0
        a, b, c = (value[..., i].clamp(min=0) for i in (2, 3, 4))
        zero = torch.zeros((), dtype=self.rule_log_probs.dtype)
        rules = torch.where(valid, self.rule_log_probs[a, b, c], zero).sum(-1)
        width = torch.where(valid, value[..., 1] - value[..., 0], -1)
        root = a.gather(-1, width.argmax(-1, keepdim=True)).squeeze(-1)
        return rules + self.root_log_probs[root]

    def sample(self, sample_shape=torch.Size()):
        sample_shape = torch.Size(sample_shape)
        g = self.grammar
        blind = PCFG(g.rule_logits.detach(), torch.zeros(g.num_preterminals, 1, dtype=g.rule_logits.dtype),
                     None if g.root_logits is None else g.root_logits.detach())
        lengths = self.lengths.expand(sample_shape + self.lengths.shape).reshape(-1)
        out = torch.empty((lengths.shape[0], self.max_length - 1, COLUMNS), dtype=torch.long)
        for length in lengths.unique().tolist():
            where = (lengths == length).nonzero().squeeze(-1)
            trees = sample_posterior_trees(blind, [0] * length, len(where))
            for i, tree in zip(where.tolist(), trees):
                out[i] = tree_to_value(tree, g.num_nonterminals, self.max_length)
        return out.reshape(sample_shape + self.batch_shape + self.event_shape)


def learned_grammar(params=None):
    """The grammar (``rule_logits``, ``emission_logits``, ``root_logits``), detached, from
    ``params`` (a strategy's fitted parameters, e.g. ``em.params``) or, when None, from the
    parameters ``ppl.param`` sees here."""
    def read(name):
        return (ppl.param(name) if params is None else params[name]).detach()

    return PCFG(read("rule_logits"), read("emission_logits"), read("root_logits"))


def pcfg_program(num_nonterminals, num_preterminals, vocab_size, max_length, seed=0, scale=1.0):
    """The program ``model(words, lengths)`` of a PCFG with learnable logits, initialised as
    ``PCFG.random(..., seed, scale)`` (also at ``model.initial_grammar``)."""
    init = PCFG.random(num_nonterminals, num_preterminals, vocab_size, seed=seed, scale=scale)

    def pcfg_model(words, lengths):
        grammar = PCFG(ppl.param("rule_logits", init.rule_logits.clone()),
                       ppl.param("emission_logits", init.emission_logits.clone()),
                       ppl.param("root_logits", init.root_logits.clone()))
        lengths = torch.as_tensor(lengths)
        valid = torch.arange(max_length) < lengths.unsqueeze(-1)
        with ppl.plate("sentences", len(lengths)):
            tree = ppl.sample("tree", TreeDistribution(grammar, lengths, max_length))
            tags = tree_tags(tree, num_nonterminals)
            emissions = dist.Categorical(logits=grammar.emission_log_probs()[tags])
            ppl.sample("words", emissions.mask(valid).to_event(1), obs=words)

    pcfg_model.initial_grammar = init
    return pcfg_model

