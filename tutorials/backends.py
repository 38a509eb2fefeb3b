# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # One program, two backends
#
# Every `ppl` program runs on PyTorch (through Pyro, the default) and on JAX (through
# NumPyro, inside `with ppl.backend("jax"):`), with the same strategies and queries. Here a
# causal model and a latent-variable model run on both, and the answers and times are
# printed side by side.
#
# Set `PPL_FAST=1` to run it in a few seconds (the test suite does).

# %%
import os
import statistics
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

import ppl
import ppl.distributions as dist
from inference import ELBO, VI, Adam, average_treatment_effect, interventional
from models import normal_normal_data, normal_normal_guide, normal_normal_model, normal_normal_posterior

FAST = os.environ.get("PPL_FAST") == "1"
OUT_DIR = os.environ.get("PPL_OUTPUT_DIR", "outputs")
os.makedirs(OUT_DIR, exist_ok=True)
BACKENDS = ("torch", "jax")

# %% [markdown]
# ## A causal model
# Stress raises both smoking and cancer; smoking adds a little to cancer. The program uses
# only the `ppl` primitives and arithmetic, so it is the same code on both backends.


# %%
def smoking_scm():
    stress = ppl.sample("stress", dist.Bernoulli(0.5))
    smoking = ppl.sample("smoking", dist.Bernoulli(0.2 + 0.6 * stress))
    return ppl.sample("cancer", dist.Bernoulli(0.1 + 0.05 * smoking + 0.7 * stress))


rows = []
for name in BACKENDS:
    with ppl.backend(name):
        graph = ppl.graph(smoking_scm)
        adjustment = ppl.identify(graph, "smoking", "cancer").adjustment_sets
        exact_times = []
        for _ in range(6):  # the first call imports and builds what later calls reuse
            start = time.perf_counter()
            doing = interventional(smoking_scm, {"smoking": 1.0}, "cancer")
            exact_times.append(time.perf_counter() - start)
        seeing = interventional(smoking_scm, {}, "cancer", evidence={"smoking": 1.0})
        sampled = interventional(smoking_scm, {"smoking": 1.0}, "cancer", method="importance",
                                 num_particles=2000 if FAST else 20000)
        ate = average_treatment_effect(smoking_scm, "smoking", "cancer")
    rows.append((name, sorted(graph.edges), [sorted(s) for s in adjustment], doing.mean, seeing.mean,
                 sampled, ate.mean, exact_times))

print(f"{'backend':8} {'P(c | do(s=1))':>15} {'P(c | s=1)':>11} {'importance':>18} {'ATE':>7} "
      f"{'exact query: first, then median':>32}")
for name, edges, adjustment, doing, seeing, sampled, ate, seconds in rows:
    print(f"{name:8} {doing:15.4f} {seeing:11.4f} {sampled.mean:10.4f} ± {sampled.stderr:.4f} "
          f"{ate:7.4f} {seconds[0] * 1e3:14.1f} ms, {statistics.median(seconds[1:]) * 1e3:.1f} ms")
print("graph (both):", rows[0][1], "| adjustment sets:", rows[0][2])
assert rows[0][1] == rows[1][1] and rows[0][2] == rows[1][2]
# by hand: do(smoking = 1) gives 0.5 * 0.15 + 0.5 * 0.85 = 0.5; the effect is 0.05
assert all(abs(r[3] - 0.5) < 1e-6 and abs(r[6] - 0.05) < 1e-6 for r in rows)

# %% [markdown]
# ## A latent-variable model
# The Normal-Normal model's posterior is known in closed form. VI fits the same guide on
# both backends: the first JAX step compiles the whole training step (`jax.jit`); the
# later ones reuse it.

# %%
steps = 60 if FAST else 600
fits = {}
for name in BACKENDS:
    with ppl.backend(name):
        data = normal_normal_data(50, true_mu=1.0, obs_scale=1.0, seed=0)
        vi = VI(normal_normal_model, normal_normal_guide, ELBO(), Adam(lr=0.05), rng_seed=0)
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            vi.step(data)
            times.append(time.perf_counter() - start)
        fits[name] = (float(vi.params["loc"]), times, normal_normal_posterior(data)[0])

# the first step includes the set-up (a dry run of guide and model) and, on JAX, compiling
print(f"{'backend':8} {'fitted loc':>10} {'exact':>8} {'first step':>11} {'median step':>12}")
for name, (loc, times, exact) in fits.items():
    median = statistics.median(times[1:])
    print(f"{name:8} {loc:10.4f} {exact:8.4f} {times[0] * 1e3:8.1f} ms {median * 1e3:9.3f} ms")

# %%
fig, ax = plt.subplots(figsize=(5, 3))
for name, (_, times, _) in fits.items():
    ax.plot([t * 1e3 for t in times[1:]], label=name, lw=1)
ax.set_yscale("log")
ax.set_xlabel("step")
ax.set_ylabel("time per step (ms)")
ax.legend()
fig.tight_layout()
fig.savefig(os.path.join(OUT_DIR, "backends_step_times.png"), dpi=120)
