# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Causal reasoning on one program: observe, intervene, imagine
#
# The smoking -> tar -> cancer model of Pearl, Glymour and Jewell's *Primer* (Table 3.1),
# with a latent genotype that drives both smoking and cancer. One program answers the
# three rungs of the ladder of causation, and its graph, extracted from the code, says
# which answers the observational data alone could give.
#
# Set `PPL_FAST=1` to run it in a few seconds (the test suite does).

# %%
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import networkx as nx
import torch

import ppl
from inference import (
    Importance,
    adjustment_formula,
    counterfactual,
    interventional,
    probability_of_necessity,
)
from models import front_door_model

FAST = os.environ.get("PPL_FAST") == "1"
OUT_DIR = os.environ.get("PPL_OUTPUT_DIR", "outputs")
os.makedirs(OUT_DIR, exist_ok=True)

# %% [markdown]
# ## The program and its graph
# `ppl.graph` tracks which values each site's distribution was computed from.
# `ppl.identify` then looks for back-door and front-door adjustment sets, treating the
# genotype as unmeasured.

# %%
graph = ppl.graph(front_door_model)
print("edges:", sorted(graph.edges))
identification = ppl.identify(graph, "smoking", "cancer", latent=["genotype"])
print(identification.method, [sorted(s) for s in identification.adjustment_sets])
print(identification.explanation)

fig, ax = plt.subplots(figsize=(5, 3))
layout = {"genotype": (1, 1), "smoking": (0, 0), "tar": (1, 0), "cancer": (2, 0)}
colours = ["0.85" if node == "genotype" else "#9ecae1" for node in graph.nodes]
nx.draw_networkx(graph, layout, ax=ax, node_color=colours, node_size=1800, font_size=9,
                 arrowsize=15)
ax.set_title("front_door_model (grey: latent)")
ax.axis("off")
fig.tight_layout()
path = os.path.join(OUT_DIR, "causal_graph.png")
fig.savefig(path, dpi=100)
print(f"graph written to {path}")

# %% [markdown]
# ## Rung 1, observe: P(cancer | smoking)
# Conditioning: smokers carry the genotype, so seeing smoking says a lot about cancer.

# %%
seen = {s: interventional(front_door_model, {}, "cancer", evidence={"smoking": float(s)})
        for s in (0, 1)}
print(f"P(cancer | smoking = 1) = {seen[1].mean:.4f},  P(cancer | smoking = 0) = {seen[0].mean:.4f}")

# %% [markdown]
# ## Rung 2, intervene: P(cancer | do(smoking))
# Exact enumeration on the full program, then the front-door formula on observational
# samples alone (the genotype column is never used).

# %%
done = {s: interventional(front_door_model, {"smoking": float(s)}, "cancer") for s in (0, 1)}
print(f"P(cancer | do(smoking = 1)) = {done[1].mean:.4f} (Primer: 0.5475)")
print(f"P(cancer | do(smoking = 0)) = {done[0].mean:.4f} (Primer: 0.5025)")

num_rows = 20_000 if FAST else 400_000
samples = Importance(front_door_model, num_particles=num_rows).run().samples
observational = {k: samples[k] for k in ("smoking", "tar", "cancer")}
for s in (1, 0):
    front = adjustment_formula(observational, "smoking", "cancer", ["tar"], s, kind="frontdoor")
    print(f"front-door estimate from {num_rows} rows, do(smoking = {s}): {front.mean:.4f}")

# %% [markdown]
# ## Rung 3, imagine: would this smoker have got cancer without smoking?
# A twin-world program shares each site's noise between the factual world (a smoker with
# cancer) and the world where the same person does not smoke. The probability of
# necessity is the chance the cancer would not have happened.

# %%
would_have = counterfactual(front_door_model, {"smoking": 1.0, "cancer": 1.0},
                            {"smoking": 0.0}, "cancer")
print(f"P(cancer would still occur without smoking | smoked, got cancer) = {would_have.mean:.4f}")
pn = probability_of_necessity(front_door_model, "smoking", "cancer")
print(f"probability of necessity = {pn.mean:.4f}")

# %% [markdown]
# The three numbers differ because they answer different questions: seeing smoking
# (rung 1) mixes in the genotype, doing (rung 2) cuts it off, and imagining (rung 3) keeps
# this person's genotype and noise while changing their smoking.

# %%
summary = torch.tensor([seen[1].mean, done[1].mean, 1 - pn.mean])
print("observe / intervene / imagine:", [round(float(v), 4) for v in summary])
