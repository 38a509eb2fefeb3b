# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Counterfactual images from a deep structural causal model
#
# *What would this digit look like had its stroke been thicker?* A deep structural causal
# model answers such questions about images: the image's causes (here stroke thickness `t`
# and intensity `i`, where thicker strokes are brighter) have mechanisms, the image is
# decoded from its causes and a latent `z`, and a counterfactual holds every exogenous noise
# at the value the factual image implies (abduction), changes a cause (action) and decodes
# again (prediction).
#
# Real images have no true counterfactual to check an answer against. Morpho-digits do:
# scikit-learn's bundled digits re-rendered with a known SCM (Morpho-MNIST's), so the exact
# counterfactual of every image is its re-render. This tutorial
#
# 1. trains the deep SCM (one program) with VI, with a Gaussian and a normalising-flow decoder;
# 2. asks counterfactual questions with three abduction strategies (the amortised guide,
#    importance sampling, NUTS), and draws do(t) and do(i) sweeps beside the truth;
# 3. measures the answers: error against the true counterfactual, effectiveness (an oracle
#    network reads the causes back), composition and reversibility.
#
# Set `PPL_FAST=1` to run it in well under a minute (the test suite does).

# %%
import os
import time
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from inference import counterfactual_soundness
from inference.causal.soundness import image_l1
from models.deep_scm import DeepSCM
from models.morpho_digits import morpho_digits, true_counterfactual
from models.morpho_oracle import MorphoOracle

FAST = os.environ.get("PPL_FAST") == "1"
OUT_DIR = os.environ.get("PPL_OUTPUT_DIR", "outputs")
os.makedirs(OUT_DIR, exist_ok=True)

train = morpho_digits(2000 if FAST else 5000, seed=0)
test = morpho_digits(40 if FAST else 100, seed=1, split="test")  # digits the model never saw
print(f"{len(train['images'])} training and {len(test['images'])} test images of 8x8 pixels")
print("thickness: mean %.2f, sd %.2f; corr(t, i) = %.2f" % (
    train["thickness"].mean(), train["thickness"].std(),
    np.corrcoef(train["thickness"], train["intensity"])[0, 1]))

# %% [markdown]
# ## The model: one program
#
# `DeepSCM.model` is an ordinary program (see `models/deep_scm.py`): per image,
#
# ```python
# t = ppl.sample("thickness", 0.5 + LogNormal(a, b))                    # observed
# i = ppl.sample("intensity", 64 + 191 * sigmoid(Normal(c (t - 2.5) + d, e)))  # observed
# z = ppl.sample("z", Normal(0, I))
# ppl.sample("image", decoder(z, t, i), obs=pixels / 255)
# ```
#
# The mechanisms are transformed Normals and the decoder is a Normal, or a Normal pushed
# through a normalising flow whose shift couplings read (z, t, i): the noise registry
# shares every site's noise between the factual and the counterfactual world exactly
# (through the flow's inverse for the second), so nothing about abduction is written in the
# model or its training code, and the same query runs on both decoders. The guide is an
# amortised `q(z | image, t, i)`, trained with the model by the ELBO (on pixels jittered
# by a grey level, so that no density can grow without bound on the background's zeros).

# %%
scms = {}
for family in ("gaussian", "flow"):
    start = time.time()
    scm = DeepSCM(decoder=family, seed=0)
    scm.fit(train, num_epochs=(20 if FAST else 100) if family == "gaussian" else (6 if FAST else 40),
            progress=False)
    scms[family] = scm
    print(f"{family} decoder trained in {time.time() - start:.0f} s")

mechanisms = {k: float(v) for k, v in scms["gaussian"].mechanisms.state_dict().items()}
print("intensity mechanism, learned (true): slope %.3f (2), shift %.3f (0), noise sd %.3f (0.5)" % (
    mechanisms["intensity_slope"], mechanisms["intensity_shift"],
    np.exp(mechanisms["intensity_log_scale"])))

# %% [markdown]
# ## Counterfactual sweeps beside the truth
#
# `scm.counterfactual(data, {"thickness": 3.5})` conditions on each factual (image, t, i),
# abducts `z` and the noises, and returns the counterfactual images' posterior mean and
# spread. Intervening on thickness moves the intensity too (it is caused by thickness,
# with its own noise held); intervening on intensity leaves thickness alone.

# %%
show = {k: v[:4] for k, v in test.items()}
sweeps = [("thickness", [1.5, 2.5, 3.5, 4.5]), ("intensity", [80.0, 140.0, 200.0, 250.0])]
fig, axes = plt.subplots(8, 9, figsize=(9, 8.4))
for a in axes.flat:
    a.axis("off")
for row, (site, values) in enumerate(sweeps):
    for k in range(4):
        r = 4 * row + k
        axes[r, 0].imshow(show["images"][k], cmap="gray", vmin=0, vmax=255)
        if k == 0:
            axes[r, 0].set_title("factual", fontsize=7)
    for col, value in enumerate(values):
        model = scms["gaussian"].counterfactual(show, {site: value})
        truth = true_counterfactual(show, {site: value})
        for k in range(4):
            r = 4 * row + k
            axes[r, 1 + 2 * col].imshow(model.images[k], cmap="gray", vmin=0, vmax=255)
            axes[r, 2 + 2 * col].imshow(truth["images"][k], cmap="gray", vmin=0, vmax=255)
            if k == 0:
                short = "t" if site == "thickness" else "i"
                axes[r, 1 + 2 * col].set_title(f"do({short}={value:g})", fontsize=7)
                axes[r, 2 + 2 * col].set_title("truth", fontsize=7)
fig.tight_layout()
fig.savefig(os.path.join(OUT_DIR, "deep_counterfactual_sweeps.png"), dpi=80)

# %% [markdown]
# The answer is a distribution, not one image: the mean and pixel-wise spread over the
# posterior of `z` (here by importance sampling with the guide as proposal). The spread
# is largest where the stroke's edge moves.

# %%
one = {k: v[:1] for k, v in test.items()}
answer = scms["gaussian"].counterfactual(one, {"thickness": lambda t: t + 1.5}, abduction="importance",
                                         num_particles=512, keep_draws=True)
fig, axes = plt.subplots(1, 4, figsize=(6, 1.8))
for a, image, title in zip(axes, [one["images"][0], answer.images[0], answer.sd[0],
                                  true_counterfactual(one, {"thickness": lambda t: t + 1.5})["images"][0]],
                           ["factual", "do(t + 1.5): mean", "spread (sd)", "truth"]):
    a.imshow(image, cmap="gray")
    a.set_title(title, fontsize=7)
    a.axis("off")
fig.savefig(os.path.join(OUT_DIR, "deep_counterfactual_spread.png"), dpi=80)
print("largest pixel sd: %.1f of 255" % answer.sd.max())

# %% [markdown]
# ## Measuring the answers
#
# `inference.counterfactual_soundness` takes any counterfactual function and reports
#
# - the **ground-truth error**: mean absolute pixel difference (0-255) to the true
#   counterfactual image;
# - **effectiveness**: an oracle network, trained on the unconfounded render (thickness
#   independent of intensity), reads thickness and intensity off the counterfactual image;
#   its mean absolute error against the values the counterfactual claims;
# - **composition**: the null intervention applied m = 1 and 10 times gives the image back;
# - **reversibility**: intervening and then intervening back gives the image back.
#
# Two reference rows frame the table: the true counterfactual (its effectiveness is the
# oracle's own error) and the unchanged factual image.

# %%
oracle = MorphoOracle.fit(num=5000 if FAST else 20_000, num_epochs=10 if FAST else 40)
unconfounded = morpho_digits(1000, seed=2, split="test", confounded=False)
print("oracle R^2 on test digits:", {k: round(v, 3) for k, v in oracle.r2(unconfounded).items()})

interventions = {"do(t + 1)": {"thickness": lambda t: t + 1.0},
                 "do(i = 100)": {"intensity": 100.0},
                 "do(t = 2, i = 220)": {"thickness": 2.0, "intensity": 220.0}}


def unchanged(data, interventions):
    return {"images": data["images"]}


# abduction: (images measured, composition repeats, options); NUTS runs one chain per image
# and query (about 40 ms a step through the Gaussian decoder, 140 ms through the flow), so
# it answers do(t + 1) on a few images, and its composition is not measured
abductions = {"guide": (len(test["images"]), (1, 10), {}),
              "importance": (10 if FAST else 50, (1, 10), {"num_particles": 128 if FAST else 256}),
              "mcmc": (1 if FAST else 3, (), {"num_samples": 10 if FAST else 50,
                                              "num_warmup": 10 if FAST else 50})}
# short NUTS chains: their warm-up may diverge now and then; importance sampling's effective
# sample sizes are printed after the table rather than warned of image by image
warnings.filterwarnings("ignore", message="MCMC: .* diverged")
warnings.filterwarnings("ignore", message="counterfactual_draws: the importance weights")
rows = []
for name, iv in interventions.items():
    references = [("truth", "-", true_counterfactual), ("unchanged image", "-", unchanged)]
    candidates = [(f"{family} decoder", abduction, scm.counterfactual_fn(abduction, **options))
                  for family, scm in scms.items()
                  for abduction, (_, _, options) in abductions.items()
                  if abduction != "mcmc" or (name == "do(t + 1)" and not (FAST and family == "flow"))]
    for label, abduction, fn in references + candidates:
        count, repeats, _ = abductions.get(abduction, (len(test["images"]), (1, 10), None))
        data = {k: v[:count] for k, v in test.items()}
        start = time.time()
        report = counterfactual_soundness(fn, data, iv, truth=true_counterfactual,
                                          oracle=oracle.predict, repeats=repeats)
        rows.append((name, label, abduction, count, report, time.time() - start))

header = (f"{'intervention':<18} {'counterfactual':<16} {'abduction':<10} {'n':>4} {'GT L1':>6} "
          f"{'eff t':>6} {'eff i':>6} {'comp 1':>6} {'comp 10':>7} {'rev':>6} {'s':>5}")
print(header)
print("-" * len(header))
for name, label, abduction, count, r, seconds in rows:
    comp1, comp10 = (r.get(f"composition, m={m}", float("nan")) for m in (1, 10))
    print(f"{name:<18} {label:<16} {abduction:<10} {count:>4} {r['ground-truth error']:>6.2f} "
          f"{r['effectiveness: thickness']:>6.3f} {r['effectiveness: intensity']:>6.2f} "
          f"{comp1:>6.3f} {comp10:>7.3f} {r['reversibility']:>6.2f} {seconds:>5.1f}")

# %% [markdown]
# How many particles did importance sampling's answers rest on? Its effective sample size
# per image (the guide as proposal):

# %%
count, _, options = abductions["importance"]
for family, scm in scms.items():
    found = scm.counterfactual({k: v[:count] for k, v in test.items()}, interventions["do(t + 1)"],
                               abduction="importance", **options)
    ess = found.effective_sample_size
    print(f"{family} decoder: effective sample size median {np.median(ess):.1f}, "
          f"min {ess.min():.1f} of {options['num_particles']} particles")

# %% [markdown]
# Reading the table (the full run's figures are in `benchmarks/RESULTS.md`): with the
# Gaussian decoder the ground-truth error is a third of what answering with the factual
# image costs, and far below the distance between two random digits (about 51);
# effectiveness is close to the oracle's own error on the true counterfactuals; composition
# is exact (the noise registry gives the factual image back by construction, whatever z
# is), and reversibility is close. The flow decoder answers the same queries with the same
# code and worse answers: its flow models part of the digit, so less of the causes' effect
# goes through the decoded mean; there importance sampling and NUTS improve on its guide,
# which the guide's own draws cannot show. The effective sample sizes tell the two apart
# again: the Gaussian decoder's likelihood is sharp (64 pixels of noise sd about 15 grey
# levels) and the amortised guide is not, so importance sampling's answer rests on a
# handful of its particles (NUTS is the better abduction there); under the flow, z matters
# less to the likelihood and the guide's particles keep far more even weights (in the full
# run, about 250 of 256). The joint intervention do(t = 2, i = 220) asks for thin and
# bright strokes, a combination the confounded training data barely holds: every model is
# worse there, which the ground truth shows and a qualitative grid would not.
#
# The checks below are the thresholds `make test` holds the tutorial to.

# %%
random_pairs = image_l1(test["images"], test["images"][::-1]).mean()
by = {(n, label, abduction): r for n, label, abduction, _, r, _ in rows}
for name in interventions:
    unmoved = by[(name, "unchanged image", "-")]["ground-truth error"]
    own = by[(name, "truth", "-")]
    for family in scms:
        for abduction in abductions:
            r = by.get((name, f"{family} decoder", abduction))
            if r is None:
                continue
            assert r["ground-truth error"] < random_pairs / 2, (name, family, abduction)
            assert r.get("composition, m=1", 0.0) < 0.01, (name, family, abduction)
            # going there and back errs by much less than the change itself
            assert r["reversibility"] < 0.5 * unmoved, (name, family, abduction)
        r = by[(name, f"{family} decoder", "guide")]  # on every test image
        assert r["ground-truth error"] < unmoved, (name, family)
        if family == "gaussian" and name != "do(t = 2, i = 220)":
            assert r["ground-truth error"] < 0.6 * unmoved, name
            assert r["effectiveness: thickness"] < own["effectiveness: thickness"] + 0.35, name
            assert r["effectiveness: intensity"] < own["effectiveness: intensity"] + 10, name
print(f"random pairs of digits differ by {random_pairs:.1f}; every check holds")
