# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # TRICE: training a model's rationales by MCMC-EM
#
# A "chain of thought" is a latent variable: a model writes a rationale `z`, then an
# answer, and only the answer `y` is checked. Training it to answer well means maximising
# log p(y | x) = log sum_z p(z | x) 1[answer(z) = y], whose gradient is the expected score
# of the rationales *given* the right answer. TRICE (Phan, Hoffman et al., NeurIPS 2023)
# estimates it by MCMC: it keeps one rationale per training example (a memory), proposes a
# new one from the current model at each step, keeps it if it reaches the right answer (the
# independence Metropolis-Hastings rule for an answer check), and subtracts a control
# variate built from the other examples' acceptances.
#
# The task here is arithmetic mod 4: for each of 8 inputs, a small autoregressive model
# writes three tokens from {0, 1, 2, 3}, and the answer is their sum mod 4. There are 64
# rationales per input, so the exact log likelihood and its gradient are computable: exact
# gradient ascent is the reference TRICE is measured against.
#
# Set `PPL_FAST=1` to run it in a few seconds (the test suite does).

# %%
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from inference import SGD, TRICE, Adam
from models.rationales import (ANSWERS, RATIONALES, initial_logits, mean_log_likelihood,
                               posterior_rationales, rationale_model, rationale_probabilities,
                               toy_data)

FAST = os.environ.get("PPL_FAST") == "1"
OUT_DIR = os.environ.get("PPL_OUTPUT_DIR", "outputs")
os.makedirs(OUT_DIR, exist_ok=True)
STEPS = 100 if FAST else 300
NAMES = ("first", "second", "third")

x, y = toy_data()
print("answers to reach:", y.tolist())

# %% [markdown]
# ## The model
# `rationale_model(x, y)` draws `z1`, `z2` given `z1`, and `z3` given both, per input in a
# data plate, and checks the answer with a `ppl.factor` (log 1 or log 0). The same program
# runs under every strategy; TRICE only needs every latent and observed site to belong to
# one data-plate element.

# %% [markdown]
# ## Training: TRICE against exact gradient ascent
# Both start from the same small random logits and take Adam(0.05) steps; the exact
# mean log p(y | x) is printed along the way (TRICE itself never computes it).

# %%
trice = TRICE(rationale_model, Adam(0.05), rng_seed=0)
trice_curve = []
for step in range(STEPS):
    trice.step(x, y)
    if step % 10 == 9:
        trice_curve.append(mean_log_likelihood(trice.params, x, y))

theta = {n: torch.tensor(v, dtype=torch.float32, requires_grad=True)
         for n, v in initial_logits(len(x)).items()}
optimizer = torch.optim.Adam(list(theta.values()), lr=0.05)
a, b, c = torch.tensor(RATIONALES).T
wrong = torch.tensor(ANSWERS)[None, :] != y[:, None]
exact_curve = []
for step in range(STEPS):
    first, second, third = (torch.log_softmax(theta[n], -1) for n in NAMES)
    log_p = first[:, a] + second[:, a, b] + third[:, a, b, c]
    loss = -torch.logsumexp(log_p.masked_fill(wrong, -float("inf")), 1).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if step % 10 == 9:
        exact_curve.append(-loss.item())

print(f"after {STEPS} steps, mean log p(y | x): TRICE {trice_curve[-1]:.4f}, exact gradient "
      f"{exact_curve[-1]:.4f} (start {mean_log_likelihood(initial_logits(len(x)), x, y):.4f})")
print(f"examples holding a correct rationale: {int(trice.memory[1].sum())} of {len(x)}")

steps = np.arange(10, STEPS + 1, 10)
plt.figure(figsize=(5, 3.5))
plt.plot(steps, exact_curve, label="exact gradient ascent")
plt.plot(steps, trice_curve, label="TRICE")
plt.xlabel("step")
plt.ylabel("mean log p(y | x)")
plt.legend()
plt.tight_layout()
plt.savefig(os.path.join(OUT_DIR, "trice_training.png"))
plt.close()

# %% [markdown]
# ## What the model learned
# For each input, the most probable rationale under the trained model and its
# probability; its tokens sum to the answer mod 4.

# %%
probs = rationale_probabilities(trice.params, x)
for i in range(len(x)):
    best = probs[i].argmax()
    tokens = RATIONALES[best]
    print(f"input {i}: answer {int(y[i])}, rationale {tokens.tolist()} (sum {tokens.sum()}), "
          f"p = {probs[i, best]:.2f}, p(right answer) = {probs[i][ANSWERS == int(y[i])].sum():.3f}")

# %% [markdown]
# ## The control variate
# At stationarity (the memory drawn from the exact posterior) one TRICE step with SGD at
# learning rate 1 moves the parameters by its gradient estimate. The control variate
# subtracts beta_i times the proposal's score, zero in mean. It pays where proposals are
# accepted often *and* the posterior spreads over several rationales, so that the accepted
# proposal's score cancels much of the memory's: below, a model that leaves the first two
# tokens uniform and all but fixes the third to reach the answer (acceptance 0.98, 16
# rationales each). Where the model has settled on one rationale per input (the trained
# model), the memory hardly changes, its score hardly varies, and the control variate has
# little to cancel.


# %%
def gradient_variance(params, control_variate, repeats):
    rng = np.random.default_rng(1)
    moves = []
    for r in range(repeats):
        step = TRICE(rationale_model, SGD(1.0), control_variate=control_variate, rng_seed=r,
                     params={n: torch.tensor(v, dtype=torch.float32) for n, v in params.items()})
        z = posterior_rationales(params, x, y, rng)
        step.memory = ({f"z{k + 1}": torch.as_tensor(z[:, k]) for k in range(3)},
                       torch.ones(len(x), dtype=torch.bool))
        step.step(x, y)
        moved = step.params
        moves.append(np.concatenate([(moved[n].numpy() - params[n]).ravel() for n in NAMES]))
    return np.array(moves).var(0, ddof=1).sum()


repeats = 50 if FAST else 300
start = initial_logits(len(x))
trained = {n: v.numpy().astype(np.float64) for n, v in trice.params.items()}
spread = {n: np.zeros_like(v) for n, v in start.items()}
for i, answer in enumerate(y.tolist()):
    for t1 in range(4):
        for t2 in range(4):
            spread["third"][i, t1, t2, (answer - t1 - t2) % 4] = np.log(147.0)  # p = 0.98
for name, params in (("start", start), ("trained", trained), ("spread", spread)):
    acceptance = np.exp(mean_log_likelihood(params, x, y))
    ratio = gradient_variance(params, False, repeats) / gradient_variance(params, True, repeats)
    print(f"{name}: acceptance {acceptance:.2f}, variance without / with the control variate {ratio:.2f}")
