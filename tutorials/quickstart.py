# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Quickstart: one model, three variational objectives, one evidence estimate
#
# We write a Bayesian logistic regression once, as a program with `ppl` primitives,
# fit a mean-field guide to it with three objectives (ELBO, IWAE and VIS), and
# estimate the model's log evidence by importance sampling with each fitted guide as
# the proposal. Nothing in the model changes between strategies.
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

import ppl
import ppl.distributions as dist
from inference import ELBO, IWAE, VI, VIS, Adam, Importance

FAST = os.environ.get("PPL_FAST") == "1"
NUM_STEPS = 150 if FAST else 1000
OUT_DIR = os.environ.get("PPL_OUTPUT_DIR", "outputs")
os.makedirs(OUT_DIR, exist_ok=True)

# %% [markdown]
# ## Data and model
# Two features and a bias; the weights have a standard normal prior.

# %%
torch.manual_seed(0)
N, D = 100, 3
features = torch.cat([torch.randn(N, D - 1), torch.ones(N, 1)], -1)
true_weights = torch.tensor([1.5, -2.0, 0.5])
labels = torch.bernoulli(torch.sigmoid(features @ true_weights))


def model(features, labels):
    w = ppl.sample("w", dist.Normal(torch.zeros(D), 1.0).to_event(1))
    with ppl.plate("data", len(labels)):
        # w may carry particle dimensions on the left ([K, 1, D]): broadcast, do not matmul
        logits = (features * w).sum(-1)
        ppl.sample("y", dist.Bernoulli(logits=logits), obs=labels)


def make_guide(prefix):
    def guide(features, labels):
        loc = ppl.param(f"{prefix}_loc", torch.zeros(D))
        scale = ppl.param(f"{prefix}_scale", 0.5 * torch.ones(D), constraint=dist.constraints.positive)
        ppl.sample("w", dist.Normal(loc, scale).to_event(1))

    return guide


# %% [markdown]
# ## Fit with three objectives
# The objective is the only thing that changes. VIS trains the proposal with the
# forward chi-square (a score-function gradient), so it uses more particles.

# %%
objectives = {"ELBO": ELBO(num_particles=8), "IWAE(32)": IWAE(32), "VIS(64)": VIS(64)}
fits = {}
for name, objective in objectives.items():
    guide = make_guide(name)
    vi = VI(model, guide, objective, Adam(lr=0.02))
    start = time.perf_counter()
    history = vi.run(features, labels, num_steps=NUM_STEPS, progress=not FAST)
    fits[name] = (vi, guide, history, time.perf_counter() - start)

# %% [markdown]
# ## Evidence by importance sampling
# Each fitted guide becomes a proposal; the prior is the baseline proposal.

# %%
num_particles = 2000 if FAST else 20000
rows = []
prior_is = Importance(model, num_particles=num_particles).run(features, labels)
rows.append(("prior (IS only)", float("nan"), prior_is.log_evidence, prior_is.log_evidence_stderr,
             prior_is.effective_sample_size, 0.0))
for name, (vi, guide, history, seconds) in fits.items():
    result = Importance(model, guide, num_particles=num_particles, param_values=vi.params)
    result = result.run(features, labels)
    bound = vi.evaluate(features, labels, num_particles=1000)
    rows.append((name, bound, result.log_evidence, result.log_evidence_stderr,
                 result.effective_sample_size, seconds))

header = f"{'proposal':<16}{'IWAE(1000)':>12}{'log p(x) by IS':>16}{'± s.e.':>9}{'ESS':>10}{'fit s':>8}"
print(header)
print("-" * len(header))
for name, bound, log_z, se, ess, seconds in rows:
    print(f"{name:<16}{bound:>12.3f}{log_z:>16.3f}{se:>9.3f}{ess:>10.0f}{seconds:>8.1f}")

# %% [markdown]
# ## Posterior marginals
# Draws from each guide next to importance-resampled draws from the posterior.

# %%
elbo_vi, elbo_guide = fits["ELBO"][:2]
reference = Importance(model, elbo_guide, num_particles=num_particles,
                       param_values=elbo_vi.params).run(features, labels)
resampled = reference.resample(4000)["w"]
fig, axes = plt.subplots(1, D, figsize=(4 * D, 3))
for d, ax in enumerate(axes):
    ax.hist(resampled[:, d].numpy(), bins=60, density=True, color="0.8", label="IS posterior")
    for name, (vi, *_rest) in fits.items():
        draws = vi.posterior(features, labels, num_samples=4000)["w"][:, d]
        ax.hist(draws.numpy(), bins=60, density=True, histtype="step", label=name)
    ax.axvline(float(true_weights[d]), color="k", ls=":", label="true")
    ax.set_title(f"w[{d}]")
axes[0].legend(fontsize=7)
fig.tight_layout()
path = os.path.join(OUT_DIR, "quickstart.png")
fig.savefig(path, dpi=100)
print(f"plot written to {path}")

# %%
for name, (_, _, history, _) in fits.items():
    print(f"{name}: loss {sum(history[:20]) / 20:.2f} -> {sum(history[-20:]) / 20:.2f}")
pyro.clear_param_store()
