"""Tests of ``models.pcfg``: the inside algorithm, Viterbi and posterior sampling against
brute-force enumeration of every tree, the corpus sampler against exact probabilities, the
bottom-up construction actions against enumeration of every trajectory, and bracketing F1.

Seeds are fixed, so the outcomes are deterministic; statistical tolerances are 4 binomial
standard errors (each check would also pass for nearly every other seed).
"""

import itertools
import math
import random
from collections import Counter

import pytest
import torch

from models.pcfg import (
    PCFG,
    TRUE_NONTERMINALS,
    TRUE_PRETERMINALS,
    TRUE_RULES,
    TRUE_VOCAB,
    Tree,
    TreeActions,
    bracketing_f1,
    inside_log_likelihood,
    length_log_probs,
    pcfg_corpus,
    sample_posterior_trees,
    tree_log_prob,
    trees_log_prob,
    true_pcfg,
    viterbi_parse,
)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def small_grammar(root=True, seed=0, num_nonterminals=2, num_preterminals=2, vocab_size=3):
    g = PCFG.random(num_nonterminals, num_preterminals, vocab_size, seed=seed, root=root)
    return PCFG(g.rule_logits.double(), g.emission_logits.double(),
                None if g.root_logits is None else g.root_logits.double())


def bracketings(i, j):
    """Every binary bracketing of words i .. j-1, as lists of (start, end) internal spans."""
    if j - i == 1:
        yield []
        return
    for k in range(i + 1, j):
        for left in bracketings(i, k):
            for right in bracketings(k, j):
                yield [(i, j)] + left + right


def all_trees(length, num_nonterminals, num_preterminals):
    for spans in bracketings(0, length):
        for labels in itertools.product(range(num_nonterminals), repeat=length - 1):
            for tags in itertools.product(range(num_preterminals), repeat=length):
                yield Tree(tuple((i, j, a) for (i, j), a in zip(spans, labels)), tags)


def brute_force(grammar, sentence):
    trees = list(all_trees(len(sentence), grammar.num_nonterminals, grammar.num_preterminals))
    return trees, torch.stack([tree_log_prob(grammar, sentence, t) for t in trees])


def spans_key(tree):
    return (tuple(sorted(tree.spans)), tuple(tree.tags))


# ----------------------------------------------------------------- inside vs brute force
@pytest.mark.parametrize("root, length", [(True, 2), (True, 3), (True, 4), (True, 5),
                                          (False, 2), (False, 3), (False, 4)])
def test_inside_matches_enumeration(root, length):
    """logsumexp of tree_log_prob over every tree (7168 at length 5) = the inside value."""
    grammar = small_grammar(root=root, seed=length)
    sentence = torch.tensor([(3 * i + length) % 3 for i in range(length)])
    _, scores = brute_force(grammar, sentence)
    exact = torch.logsumexp(scores, 0)
    assert abs(float(inside_log_likelihood(grammar, sentence) - exact)) < 1e-5
    assert torch.isfinite(exact)


def test_inside_gradient_matches_enumeration():
    """The gradient of log p(x) (expected rule counts) equals that of the enumerated sum."""
    grammar = small_grammar(seed=3)
    leaves = [grammar.rule_logits, grammar.emission_logits, grammar.root_logits]
    for leaf in leaves:
        leaf.requires_grad_(True)
    sentence = [2, 0, 1, 1]
    inside = torch.autograd.grad(inside_log_likelihood(grammar, sentence), leaves)
    _, scores = brute_force(grammar, sentence)
    enumerated = torch.autograd.grad(torch.logsumexp(scores, 0), leaves)
    for a, b in zip(inside, enumerated):
        assert torch.allclose(a, b, atol=1e-9)


def test_inside_batches_agree_with_single_sentences():
    grammar = small_grammar(seed=1)
    batch = torch.tensor([[0, 1, 2, 0], [2, 2, 1, 0], [1, 1, 1, 1]])
    single = torch.stack([inside_log_likelihood(grammar, x) for x in batch])
    assert torch.allclose(inside_log_likelihood(grammar, batch), single, atol=1e-12)
    mixed = [[0, 1], batch[0], [2, 1, 0, 0, 1], batch[2].tolist()]
    expected = torch.stack([inside_log_likelihood(grammar, x) for x in mixed])
    assert torch.allclose(inside_log_likelihood(grammar, mixed), expected, atol=1e-12)


@pytest.mark.parametrize("length", [2, 3, 4, 5])
def test_sentences_of_a_length_sum_to_its_probability(length):
    """sum over all V^n sentences of p(x) = P(length = n), two independent routes."""
    grammar = small_grammar(seed=7)
    every = torch.tensor(list(itertools.product(range(grammar.vocab_size), repeat=length)))
    total = torch.logsumexp(inside_log_likelihood(grammar, every), 0)
    assert abs(float(total - length_log_probs(grammar, length)[length])) < 1e-10


def test_true_grammar_is_consistent():
    """Its length law sums to 1 (mass beyond 80 words is below 1e-6)."""
    probs = length_log_probs(true_pcfg(), 80).exp()
    assert probs[:2].sum() == 0
    assert abs(float(probs.sum()) - 1.0) < 1e-6


# ----------------------------------------------------------------- parsing and sampling
@pytest.mark.parametrize("root", [True, False])
def test_viterbi_matches_enumeration(root):
    grammar = small_grammar(root=root, seed=11)
    sentence = [1, 0, 2, 2]
    trees, scores = brute_force(grammar, sentence)
    tree, score = viterbi_parse(grammar, sentence)
    best = int(scores.argmax())
    assert spans_key(tree) == spans_key(trees[best])
    assert abs(score - float(scores[best])) < 1e-10
    assert abs(score - float(tree_log_prob(grammar, sentence, tree))) < 1e-10


def test_posterior_samples_match_enumeration():
    grammar = small_grammar(seed=5)
    sentence = [0, 2, 1, 0]
    trees, scores = brute_force(grammar, sentence)
    posterior = {spans_key(t): float(p) for t, p in zip(trees, torch.softmax(scores, 0))}
    n = 4000
    counts = Counter(spans_key(t) for t in sample_posterior_trees(grammar, sentence, n,
                                                                  torch.Generator().manual_seed(0)))
    assert set(counts) <= set(posterior)
    # trees expected fewer than 20 times are pooled (the normal approximation needs counts)
    common = {key for key, p in posterior.items() if n * p >= 20}
    cells = [(counts[key], posterior[key]) for key in common]
    cells.append((n - sum(c for c, _ in cells), 1 - sum(p for _, p in cells)))
    assert len(cells) > 5
    for count, p in cells:
        assert abs(count / n - p) <= 4 * math.sqrt(p * (1 - p) / n)


# ----------------------------------------------------------------- the corpus
def test_corpus_trees_are_valid_and_finite():
    grammar = true_pcfg()
    sentences, trees = pcfg_corpus(200, seed=3)
    assert all(2 <= len(x) <= 8 for x in sentences)
    scores = torch.stack([tree_log_prob(grammar, x, t) for x, t in zip(sentences, trees)])
    assert torch.isfinite(scores).all()
    assert (scores <= inside_log_likelihood(grammar, sentences) + 1e-12).all()
    assert pcfg_corpus(5, seed=3)[1] == trees[:5]  # same seed, same draws


def test_trees_log_prob_batches_tree_log_prob():
    grammar = small_grammar(seed=4, num_nonterminals=4, num_preterminals=5, vocab_size=17)
    sentences, trees = pcfg_corpus(20, seed=8)
    single = torch.stack([tree_log_prob(grammar, x, t) for x, t in zip(sentences, trees)])
    assert torch.allclose(trees_log_prob(grammar, sentences, trees), single, atol=1e-12)


def test_corpus_lengths_follow_the_inside_length_law():
    n, lo, hi = 10000, 2, 8
    sentences, _ = pcfg_corpus(n, seed=0, min_length=lo, max_length=hi)
    law = length_log_probs(true_pcfg(), hi)[lo:].exp()
    law = law / law.sum()
    counts = Counter(len(x) for x in sentences)
    for length, p in zip(range(lo, hi + 1), law.tolist()):
        assert abs(counts[length] / n - p) <= 4 * math.sqrt(p * (1 - p) / n), length


def test_corpus_sentence_frequencies_match_inside():
    """Each 2-word sentence's frequency is p(x) / P(2 <= length <= 8)."""
    n, grammar = 10000, true_pcfg()
    sentences, _ = pcfg_corpus(n, seed=1)
    z = float(length_log_probs(grammar, 8).exp().sum())
    counts = Counter(tuple(x.tolist()) for x in sentences if len(x) == 2)
    names = [TRUE_VOCAB.index(w) for w in ("alice", "bob", "carol")]
    verbs = [TRUE_VOCAB.index(w) for w in ("saw", "chased", "liked", "found")]
    for x in itertools.product(names, verbs):
        p = float(inside_log_likelihood(grammar, list(x)).exp()) / z
        assert abs(counts[x] / n - p) <= 4 * math.sqrt(p * (1 - p) / n), x
    assert sum(counts.values()) == sum(counts[x] for x in itertools.product(names, verbs))


def test_corpus_rule_frequencies_match_rule_probabilities():
    """With lengths up to 60 (mass beyond: < 1e-5) each nonterminal's expansions are draws
    from its rule distribution."""
    sentences, trees = pcfg_corpus(4000, seed=2, max_length=60)
    symbols = TRUE_NONTERMINALS + TRUE_PRETERMINALS
    counts = {a: Counter() for a in TRUE_NONTERMINALS}
    for tree in trees:
        table = {(i, j): a for i, j, a in tree.spans}
        for i, j, a in tree.spans:
            k = max((e for e in range(i + 2, j) if (i, e) in table), default=i + 1)
            left = symbols[table[(i, k)]] if k - i >= 2 else TRUE_PRETERMINALS[tree.tags[i]]
            right = symbols[table[(k, j)]] if j - k >= 2 else TRUE_PRETERMINALS[tree.tags[k]]
            counts[TRUE_NONTERMINALS[a]][(left, right)] += 1
    for a, expansions in TRUE_RULES.items():
        total = sum(counts[a].values())
        assert total > 500
        assert set(counts[a]) <= {(b, c) for b, c, _ in expansions}
        for b, c, p in expansions:
            assert abs(counts[a][(b, c)] / total - p) <= 4 * math.sqrt(p * (1 - p) / total), (a, b, c)


# ----------------------------------------------------------------- construction actions
def enumerate_trajectories(actions, length):
    """Every (trajectory actions, states) from the initial state to a terminal state."""
    out = []

    def walk(state, taken, states):
        if actions.is_terminal(state):
            out.append((list(taken), list(states)))
            return
        for a in actions.valid_actions(state):
            child = actions.apply(state, a)
            walk(child, taken + [a], states + [child])

    start = actions.initial_state(length)
    walk(start, [], [start])
    return out


def test_uniform_backward_policy_sums_to_one_per_tree():
    """sum over the trajectories into each tree of prod P_B = 1, every tree is reached, and
    each tree has as many trajectories as orders of its merges."""
    actions = TreeActions(2, 2, max_length=4)
    per_tree, count = Counter(), Counter()
    for _, states in enumerate_trajectories(actions, 4):
        p_b = math.prod(1 / actions.num_parents(s) for s in states[1:])
        key = spans_key(actions.to_tree(states[-1]))
        per_tree[key] += p_b
        count[key] += 1
    trees = {spans_key(t) for t in all_trees(4, 2, 2)}
    assert set(per_tree) == trees and len(trees) == 5 * 2 ** 3 * 2 ** 4
    assert all(abs(v - 1) < 1e-12 for v in per_tree.values())
    balanced = {k for k in trees if {(s[0], s[1]) for s in k[0]} == {(0, 4), (0, 2), (2, 4)}}
    assert all(count[k] == (2 if k in balanced else 1) for k in trees)


@pytest.mark.parametrize("length", [2, 3, 4])
def test_parents_invert_apply(length):
    """For every reachable state, parents() is exactly the set of (state, action) that lead
    there, and num_parents is its size."""
    actions = TreeActions(2, 2, max_length=5)
    inverse, frontier, seen = {}, [actions.initial_state(length)], set()
    while frontier:
        state = frontier.pop()
        if state in seen:
            continue
        seen.add(state)
        for a in actions.valid_actions(state):
            child = actions.apply(state, a)
            inverse.setdefault(child, set()).add((state, a))
            frontier.append(child)
    for state in seen:
        parents = actions.parents(state)
        assert set(parents) == inverse.get(state, set())
        assert len(parents) == len(set(parents)) == actions.num_parents(state)


def test_random_trajectories_build_trees_scored_step_by_step():
    grammar = small_grammar(seed=2, num_nonterminals=4, num_preterminals=5, vocab_size=6)
    actions = TreeActions(4, 5, max_length=8)
    rng = random.Random(0)
    for trial in range(30):
        length = rng.randint(2, 8)
        sentence = [rng.randrange(6) for _ in range(length)]
        state, total, steps = actions.initial_state(length), 0.0, 0
        while not actions.is_terminal(state):
            mask = actions.action_mask(state)
            valid = actions.valid_actions(state)
            assert mask.nonzero().flatten().tolist() == valid
            a = rng.choice(valid)
            total = total + actions.step_log_prob(grammar, sentence, state, a)
            child = actions.apply(state, a)
            assert (state, a) in actions.parents(child)
            state, steps = child, steps + 1
        tree = actions.to_tree(state)
        assert steps == 2 * length - 1
        assert abs(float(total - tree_log_prob(grammar, sentence, tree))) < 1e-10
        replay = actions.initial_state(length)
        for a in actions.actions_for_tree(tree):
            replay = actions.apply(replay, a)
        assert replay == state


def test_action_ids_and_root_labels():
    actions = TreeActions(3, 2, max_length=4)
    assert actions.num_actions == 2 + 3 * 3
    assert actions.decode(actions.merge_action(3, 2)) == ("merge", 3, 2)
    assert actions.decode(1) == ("tag", 1)
    state = actions.initial_state(3)
    for a in (0, 1, 1):
        state = actions.apply(state, a)
    assert actions.num_parents(state) == 1  # undo the last tag
    assert len(actions.valid_actions(state)) == 2 * 3
    state = actions.apply(state, actions.merge_action(1, 1))
    assert actions.valid_actions(state, root_labels=[0]) == [actions.merge_action(2, 0)]
    with pytest.raises(ValueError, match="not between"):
        actions.apply(state, actions.merge_action(1, 0))
    with pytest.raises(ValueError, match="every word is tagged"):
        actions.apply(state, 0)
    with pytest.raises(ValueError, match="before every word"):
        actions.apply(actions.initial_state(3), actions.merge_action(1, 0))
    with pytest.raises(ValueError, match="no tree yet"):
        actions.to_tree(state)


# ----------------------------------------------------------------- bracketing F1
def test_f1_gold_against_gold_is_one():
    _, trees = pcfg_corpus(50, seed=4)
    assert bracketing_f1(trees, trees) == 1.0


def test_f1_hand_made_example():
    # sentence 1 (5 words): gold non-trivial {(0,2), (2,5), (3,5)}, predicted {(0,2), (1,5)...}
    gold = [Tree(((0, 5, 0), (0, 2, 1), (2, 5, 2), (3, 5, 1)), (0, 1, 2, 0, 1)),
            Tree(((0, 3, 0), (1, 3, 2)), (4, 2, 4)),
            Tree(((0, 2, 0),), (4, 2))]
    predicted = [[(0, 5), (0, 2), (2, 5), (2, 4)],   # matches (0,2), (2,5) of 3
                 [(0, 3), (0, 2)],                   # matches nothing of 1
                 [(0, 2)]]                           # no non-trivial span
    assert bracketing_f1(predicted, gold) == pytest.approx(2 / 4)  # P = R = 2/4
    assert bracketing_f1(predicted[2:], gold[2:]) == 1.0
    assert bracketing_f1(predicted[1:2], gold[1:2]) == 0.0
    with pytest.raises(ValueError, match="predicted trees"):
        bracketing_f1(predicted[:2], gold)
    with pytest.raises(ValueError, match="words predicted"):
        bracketing_f1([[(0, 4), (0, 2), (2, 4)]], gold[:1])


def test_true_grammar_viterbi_recovers_most_brackets():
    """The true grammar's parses differ from gold only by attachment ambiguity."""
    sentences, trees = pcfg_corpus(100, seed=6)
    f1 = bracketing_f1([viterbi_parse(true_pcfg(), x)[0] for x in sentences], trees)
    assert 0.9 < f1 < 1.0


# ----------------------------------------------------------------- errors
def test_bad_inputs_raise_clear_errors():
    grammar = true_pcfg()
    with pytest.raises(ValueError, match="out of the vocabulary"):
        inside_log_likelihood(grammar, [0, 17])
    with pytest.raises(ValueError, match="out of the vocabulary"):
        inside_log_likelihood(grammar, [-1, 2])
    with pytest.raises(ValueError, match="at least 2 words"):
        inside_log_likelihood(grammar, torch.tensor([], dtype=torch.long))
    with pytest.raises(ValueError, match="at least 2 words"):
        inside_log_likelihood(grammar, [[0, 2], []])
    with pytest.raises(ValueError, match="at least 2 words"):
        inside_log_likelihood(grammar, [3])
    with pytest.raises(ValueError, match="integer word ids"):
        inside_log_likelihood(grammar, torch.tensor([0.0, 2.0]))
    with pytest.raises(ValueError, match="no sentences"):
        inside_log_likelihood(grammar, [])
    with pytest.raises(ValueError, match="rule_logits must be"):
        PCFG(torch.zeros(2, 3, 3), torch.zeros(2, 5))
    with pytest.raises(ValueError, match="emission_logits must be"):
        PCFG(torch.zeros(2, 4, 4), torch.zeros(10))
    with pytest.raises(ValueError, match="root_logits must be"):
        PCFG(torch.zeros(2, 4, 4), torch.zeros(2, 5), torch.zeros(3))
    sentence = [14, 7, 15]
    with pytest.raises(ValueError, match="3 tags"):
        tree_log_prob(grammar, sentence[:2], Tree(((0, 3, 0), (1, 3, 2)), (4, 2, 4)))
    with pytest.raises(ValueError, match="does not split"):
        tree_log_prob(grammar, [0, 1, 2, 3], Tree(((0, 4, 0), (0, 2, 1), (1, 3, 1)), (0, 1, 2, 3)))
    with pytest.raises(ValueError, match="no root span"):
        tree_log_prob(grammar, sentence, Tree(((0, 2, 0), (1, 3, 2)), (4, 2, 4)))
    with pytest.raises(ValueError, match="preterminals"):
        tree_log_prob(grammar, sentence, Tree(((0, 3, 0), (1, 3, 2)), (4, 2, 5)))
    with pytest.raises(ValueError, match="probability 0"):
        viterbi_parse(grammar, [0, 0])  # "the the"
    with pytest.raises(ValueError, match="min_length"):
        pcfg_corpus(3, min_length=1)
    with pytest.raises(ValueError, match="2 .. 4"):
        TreeActions(2, 2, max_length=4).initial_state(5)
