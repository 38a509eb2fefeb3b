# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # GFlowNet-EM: EM with a learned sampler for discrete compositional latents
#
# EM needs the posterior over the latents of each data point. When the latent is a
# combination of discrete choices, exact EM enumerates every combination (exponential in
# their number) and mean-field variational EM factorises the posterior, which loses the
# dependence between the choices. GFlowNet-EM (Hu et al., ICML 2023) trains a sampler that
# builds the latent one choice at a time, conditioned on the data point and on the choices
# made so far, so that it draws whole combinations in proportion to p(x, z); the M-step
# then fits the model to its draws.
#
# Here the model is the paper's hierarchical Gaussian mixture: each point picks one of
# four super-clusters and one of four "petals" around it. The 16 combinations are few
# enough to enumerate, so exact EM is the reference.
#
# Set `PPL_FAST=1` to run it in a few seconds (the test suite does).

# %%
import os
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pyro
import torch

from inference import Adam, GFlowNetEM
from models.hierarchical_mixture import (
    TRUE_MEANS,
    component_means,
    hierarchical_mixture_data,
    hierarchical_mixture_em,
    hierarchical_mixture_model,
    initial_means,
    log_likelihood,
    mean_field_em,
    posterior,
)

FAST = os.environ.get("PPL_FAST") == "1"
OUT_DIR = os.environ.get("PPL_OUTPUT_DIR", "outputs")
os.makedirs(OUT_DIR, exist_ok=True)
torch.manual_seed(0)

# %% [markdown]
# ## The model, written once
# `hierarchical_mixture_model(x)` is an ordinary program: in a plate over the points,
# `super ~ Categorical(1/4)`, `petal ~ Categorical(1/4)`, and
# `x ~ Normal(means[super] + offset[petal], 0.25)`. The four super-cluster means are a
# `ppl.param`; the petal offsets are fixed. Every method starts from the same four
# random data points.

# %%
x = hierarchical_mixture_data(500 if FAST else 4000, seed=0)
init = initial_means(x, seed=1)
print(f"{len(x)} points; log-likelihood per point of the true means: {log_likelihood(x, TRUE_MEANS):.4f}")

# %% [markdown]
# ## Exact EM and mean-field variational EM
# Both have closed-form updates here. Mean-field EM alternates q(super | x) and
# q(petal | x); a point between two super-clusters whose petals line up cannot be
# described by a product of the two, and the means settle in a worse optimum.

# %%
exact_means, exact_history = hierarchical_mixture_em(x, init, iterations=60)
mf_means, mf_history = mean_field_em(x, init, iterations=60)
print(f"exact EM:       {exact_history[-1]:.4f}")
print(f"mean-field EM:  {mf_history[-1]:.4f}")

# %% [markdown]
# ## GFlowNet-EM on the same program
# `GFlowNetEM` finds the discrete latent sites in the program (`super`, then `petal`) and
# builds an autoregressive policy over them, conditioned on each point. Every `step` is
# one trajectory-balance update of the sampler (with 10% uniform exploration, so that no
# combination is starved) and one gradient step on the means with importance-reweighted
# draws of the sampler. Nothing in the model changes.

# %%
pyro.clear_param_store()


def model(data):
    return hierarchical_mixture_model(data, init)


em = GFlowNetEM(model, hidden=32, num_trajectories=4, epsilon=0.1, m_step="reweighted",
                optimizer=Adam(lr=1e-2), model_optimizer=Adam(lr=1e-2))
updates, every = (300, 25) if FAST else (3000, 50)
gfn_history, start = [], time.perf_counter()
for chunk in range(updates // every):
    em.run(x, num_steps=every, progress=False)
    gfn_history.append(log_likelihood(x, em.params["super_means"]))
gfn_means = em.params["super_means"]
print(f"GFlowNet-EM:    {gfn_history[-1]:.4f} after {updates} updates "
      f"({time.perf_counter() - start:.0f} s)")

# %% [markdown]
# The trained sampler is an amortised posterior: its distribution over the 16
# combinations, computed exactly by enumerating its trajectories, against the exact
# posterior under the learned means.

# %%
sample = x[:200]
sampler = em.trajectory_log_probs(sample).exp()
exact_posterior = posterior(sample, gfn_means)
tv = 0.5 * (sampler - exact_posterior).abs().sum((-1, -2))
print(f"total variation, sampler vs exact posterior: median {tv.median():.4f}, "
      f"90% quantile {tv.quantile(0.9):.4f}")

# %% [markdown]
# ## Log-likelihood over training, and the means each method found

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
left.plot(range(1, len(exact_history) + 1), exact_history, label="exact EM (per iteration)")
left.plot(range(1, len(mf_history) + 1), mf_history, label="mean-field EM (per iteration)")
left.plot(range(1, len(gfn_history) + 1), gfn_history, label=f"GFlowNet-EM (per {every} updates)")
left.axhline(log_likelihood(x, TRUE_MEANS), color="grey", ls=":", label="true means")
left.set_ylim(min(mf_history[-1], exact_history[0]) - 0.5, exact_history[-1] + 0.3)
left.set_xlabel("iteration")
left.set_ylabel("log-likelihood per point")
left.legend(fontsize=8)
right.scatter(*x.T, s=1, alpha=0.3, color="grey")
for means, marker, name in [(exact_means, "o", "exact EM"), (mf_means, "s", "mean-field EM"),
                            (gfn_means, "x", "GFlowNet-EM")]:
    petals = component_means(means).reshape(-1, 2)
    right.scatter(*petals.T, marker=marker, s=40, label=name)
right.set_aspect("equal")
right.legend(fontsize=8)
right.set_title("component means found")
fig.tight_layout()
fig.savefig(os.path.join(OUT_DIR, "gflownet_em_mixture.png"), dpi=120)
print("figure written to", os.path.join(OUT_DIR, "gflownet_em_mixture.png"))

# %% [markdown]
# ## A structured latent: grammar induction
# In a probabilistic context-free grammar the latent of a sentence is its parse tree,
# a structure whose shape depends on the sentence, so "one site per step in program
# order" no longer describes its construction. `pcfg_program` writes the grammar as a
# program with a `tree` site and an observed `words` site, and `TreeActionSpace` tells
# `GFlowNetEM` how to build a tree bottom-up: first tag every word with a preterminal,
# then repeatedly merge two adjacent constituents under a nonterminal. Several merge
# orders give the same tree, so trajectory balance includes a backward policy (uniform
# over the constituents that could have been merged last).
#
# Exact EM is available here too: the inside algorithm sums over all trees in
# O(length^3), and gradient ascent on it is the reference. (Mean-field EM has no natural
# counterpart for a tree.) The sentences come from a known grammar, so the parses can be
# scored against the gold trees (unlabelled bracketing F1).

# %%
from models.pcfg import (
    PCFG,
    bracketing_f1,
    inside_log_likelihood,
    pcfg_corpus,
    true_pcfg,
    viterbi_parse,
)
from models.pcfg.program import learned_grammar, pad_sentences, pcfg_program
from models.pcfg.space import TreeActionSpace

NT, PT, V, MAX_LENGTH = 4, 5, 17, (5 if FAST else 8)
sentences, gold = pcfg_corpus(30 if FAST else 200, seed=0, max_length=MAX_LENGTH)
words, lengths = pad_sentences(sentences, MAX_LENGTH)
pyro.clear_param_store()
grammar_model = pcfg_program(NT, PT, V, MAX_LENGTH, seed=1)
steps, every = (30, 10) if FAST else (300, 25)


def corpus_log_likelihood(grammar):
    with torch.no_grad():
        return float(inside_log_likelihood(grammar, sentences).mean())


# exact EM: Adam on the exact marginal likelihood (the same parameterisation and steps)
init = grammar_model.initial_grammar
params = [t.clone().requires_grad_() for t in (init.rule_logits, init.emission_logits, init.root_logits)]
optimizer = torch.optim.Adam(params, lr=3e-2)
exact_curve = [corpus_log_likelihood(init)]
for step in range(steps):
    loss = -inside_log_likelihood(PCFG(*params), sentences).sum()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if (step + 1) % every == 0:
        exact_curve.append(corpus_log_likelihood(PCFG(*[p.detach() for p in params])))
exact_grammar = PCFG(*[p.detach() for p in params])

# GFlowNet-EM: the sampler first learns the posterior under the initial grammar, then EM
tree_em = GFlowNetEM(grammar_model, action_space=TreeActionSpace(NT, PT, V, MAX_LENGTH),
                     hidden=64 if FAST else 128, num_trajectories=4, m_step="reweighted",
                     optimizer=Adam(lr=3e-3), model_optimizer=Adam(lr=3e-2))
for _ in range(10 if FAST else 100):
    tree_em.e_step(words, lengths)
gfn_curve = [corpus_log_likelihood(init)]
for chunk in range(steps // every):
    tree_em.run(words, lengths, num_steps=every, progress=False)
    gfn_curve.append(corpus_log_likelihood(learned_grammar(tree_em.params)))


def viterbi_f1(grammar):
    return bracketing_f1([viterbi_parse(grammar, x)[0] for x in sentences], gold)


truth = true_pcfg()
print(f"log p(x) per sentence: initial {exact_curve[0]:.3f}, exact EM {exact_curve[-1]:.3f}, "
      f"GFlowNet-EM {gfn_curve[-1]:.3f}, true grammar {corpus_log_likelihood(truth):.3f}")
print(f"bracketing F1 of Viterbi parses: exact EM {viterbi_f1(exact_grammar):.3f}, "
      f"GFlowNet-EM {viterbi_f1(learned_grammar(tree_em.params)):.3f}, true grammar {viterbi_f1(truth):.3f}")

# %% [markdown]
# Maximum likelihood does not pin down the gold bracketing: grammars learned from a random
# start can explain the words as well with other trees, so F1 is reported beside the
# likelihood rather than expected to reach the true grammar's.

# %%
fig, ax = plt.subplots(figsize=(5.5, 4))
ax.plot([i * every for i in range(len(exact_curve))], exact_curve, label="exact EM (inside algorithm)")
ax.plot([i * every for i in range(len(gfn_curve))], gfn_curve, label="GFlowNet-EM")
ax.axhline(corpus_log_likelihood(truth), color="grey", ls=":", label="true grammar")
ax.set_xlabel("grammar updates")
ax.set_ylabel("log p(x) per sentence (exact)")
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(os.path.join(OUT_DIR, "gflownet_em_grammar.png"), dpi=120)
print("figure written to", os.path.join(OUT_DIR, "gflownet_em_grammar.png"))
