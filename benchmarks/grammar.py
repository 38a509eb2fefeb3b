"""Grammar induction: GFlowNet-EM (a tree sampler built bottom-up, trajectory balance with a
uniform backward policy) against exact EM (gradient ascent on the exact inside marginal
likelihood), on a corpus from the known toy grammar (``models.pcfg.true_pcfg``).

Both learn the same parameterisation (rule, emission and root logits of a PCFG with the
true grammar's sizes, 4 nonterminals and 5 preterminals) from the same random
initialisation with the same optimiser (Adam) and the same number of model updates.
Reported: the per-sentence log-likelihood log p(x) by the exact inside algorithm on the
training and held-out sentences, the unlabelled bracketing F1 of Viterbi parses against the
gold trees (and, for GFlowNet-EM, of the sampler's greedy trees), with the true grammar,
the initial grammar and right-branching trees as references.
"""

import time

import pyro
import torch

from inference import Adam, GFlowNetEM
from models.pcfg import (
    PCFG,
    Tree,
    bracketing_f1,
    inside_log_likelihood,
    pcfg_corpus,
    true_pcfg,
    viterbi_parse,
)
from models.pcfg.program import learned_grammar, pad_sentences, pcfg_program
from models.pcfg.space import TreeActionSpace

from .common import log, markdown_table

NT, PT, V, MAX_LENGTH = 4, 5, 17, 8


def right_branching(length):
    return Tree(tuple((i, length, 0) for i in range(length - 1)), (0,) * length)


def scores(grammar, sentences, held_out, gold_held_out):
    """(train log p(x) per sentence, held-out log p(x) per sentence, held-out Viterbi F1)."""
    with torch.no_grad():
        train = float(inside_log_likelihood(grammar, sentences).mean())
        test = float(inside_log_likelihood(grammar, held_out).mean())
    parses = [viterbi_parse(grammar, x)[0] for x in held_out]
    return train, test, bracketing_f1(parses, gold_held_out)


def exact_em(init, sentences, steps, lr):
    params = [t.clone().requires_grad_() for t in (init.rule_logits, init.emission_logits, init.root_logits)]
    optimizer = torch.optim.Adam(params, lr=lr)
    for _ in range(steps):
        loss = -inside_log_likelihood(PCFG(*params), sentences).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return PCFG(*[p.detach() for p in params])


def gflownet_em(model, words, lengths, steps, lr, trajectories, hidden, warmup):
    """``warmup`` E-steps alone, then ``steps`` EM steps (one E-step, one M-step)."""
    em = GFlowNetEM(model, action_space=TreeActionSpace(NT, PT, V, MAX_LENGTH), hidden=hidden,
                    num_trajectories=trajectories, m_step="reweighted", optimizer=Adam(lr=3e-3),
                    model_optimizer=Adam(lr=lr))
    for _ in range(warmup):
        em.e_step(words, lengths)
    for _ in range(steps):
        em.step(words, lengths)
    return em


def bench_grammar(quick=False, device="cpu"):
    torch.manual_seed(0)
    pyro.clear_param_store()
    num_train, num_test, steps, warmup, trajectories, hidden = (
        (60, 40, 40, 20, 4, 64) if quick else (200, 100, 300, 100, 4, 128))
    lr = 3e-2
    sentences, _ = pcfg_corpus(num_train, seed=0, max_length=MAX_LENGTH)
    held_out, gold = pcfg_corpus(num_test, seed=1, max_length=MAX_LENGTH)
    words, lengths = pad_sentences(sentences, MAX_LENGTH)
    test_words, test_lengths = pad_sentences(held_out, MAX_LENGTH)
    model = pcfg_program(NT, PT, V, MAX_LENGTH, seed=1)
    rows = []

    def row(name, grammar, seconds, extra=None):
        train, test, f1 = scores(grammar, sentences, held_out, gold)
        rows.append([name, f"{train:.3f}", f"{test:.3f}", f"{f1:.3f}",
                     "-" if extra is None else f"{extra:.3f}",
                     "-" if seconds is None else f"{seconds:.1f}"])

    row("true grammar (reference)", true_pcfg(), None)
    row("initial grammar (random, seed 1)", model.initial_grammar, None)
    t0 = time.perf_counter()
    exact = exact_em(model.initial_grammar, sentences, steps, lr)
    row(f"exact EM: Adam on inside log p(x), {steps} steps", exact, time.perf_counter() - t0)
    log(f"grammar: exact EM done in {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    em = gflownet_em(model, words, lengths, steps, lr, trajectories, hidden, warmup)
    seconds = time.perf_counter() - t0
    log(f"grammar: GFlowNet-EM done in {seconds:.1f} s")
    grammar = learned_grammar(em.params)
    greedy = em.greedy_posterior(test_words, test_lengths)["tree"]
    space = em.action_space
    sampler_f1 = bracketing_f1([space.to_tree(v, int(n)) for v, n in zip(greedy, test_lengths)], gold)
    row(f"GFlowNet-EM: {warmup} E-steps, then {steps} x (E-step, M-step)", grammar, seconds, sampler_f1)
    right_f1 = bracketing_f1([right_branching(len(x)) for x in held_out], gold)
    table = markdown_table(["grammar", "train log p(x)/sentence", "held-out log p(x)/sentence",
                            "held-out Viterbi F1", "sampler greedy F1", "seconds"], rows)
    note = (f"{num_train} training and {num_test} held-out sentences of 2-{MAX_LENGTH} words from the "
            f"true grammar; learned grammars have its sizes ({NT} nonterminals, {PT} preterminals, "
            f"{V} words), the same initialisation and Adam(lr={lr}) for the grammar, {steps} grammar "
            f"updates each (GFlowNet-EM: M-step reweighted over {trajectories} sampler draws per sentence; "
            f"sampler: MLP, {hidden} hidden units, Adam(lr=3e-3), trajectory balance, uniform P_B). "
            f"log p(x) by the exact inside algorithm. Right-branching trees score held-out F1 "
            f"{right_f1:.3f}. The GFlowNet-EM E-step loss at the end: {em.history[-1]:.3f}.")
    return "\n\n".join(["### Grammar induction: GFlowNet-EM vs exact EM", table, note])


BENCHMARKS = {"grammar": bench_grammar}


if __name__ == "__main__":
    import sys

    torch.set_num_threads(1)
    print(bench_grammar(quick="--quick" in sys.argv))
