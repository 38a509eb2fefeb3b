# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # One model, three strategies: eight schools by VI, importance sampling and NUTS
#
# The eight-schools model (Rubin 1981; Gelman et al., *Bayesian Data Analysis*) estimates
# the effect of a coaching programme in eight schools from each school's estimate and its
# standard error. The same program runs under variational inference, importance sampling
# with the fitted guide as proposal, and the No-U-Turn sampler; the answers are printed side
# by side, and the sampler's draws go to ArviZ for its diagnostics and plots.
#
# Set `PPL_FAST=1` to run it in a few seconds (the test suite does).

# %%
import os
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from pyro.infer.autoguide import AutoNormal

import ppl
import ppl.distributions as dist
from inference import MCMC, VI, Adam, Importance

FAST = os.environ.get("PPL_FAST") == "1"
OUT_DIR = os.environ.get("PPL_OUTPUT_DIR", "outputs")
os.makedirs(OUT_DIR, exist_ok=True)

Y = torch.tensor([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
SIGMA = torch.tensor([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])

# %% [markdown]
# ## The model
# Written non-centred: each school's effect is `mu + tau * eta` with `eta ~ N(0, 1)`, which
# spares the sampler the funnel between `tau` and the effects (the centred form diverges;
# `MCMC` counts and reports divergences, it never hides them).


# %%
def eight_schools(sigma, y=None):
    mu = ppl.sample("mu", dist.Normal(0.0, 5.0))
    tau = ppl.sample("tau", dist.HalfCauchy(5.0))
    with ppl.plate("schools", len(sigma)):
        eta = ppl.sample("eta", dist.Normal(0.0, 1.0))
        theta = ppl.deterministic("theta", mu + tau * eta)
        ppl.sample("y", dist.Normal(theta, sigma), obs=y)


# %% [markdown]
# ## Three strategies
# VI fits a mean-field Normal guide (Pyro's `AutoNormal`); importance sampling reweights
# that guide's draws towards the posterior; NUTS draws from the posterior itself.

# %%
vi = VI(eight_schools, AutoNormal(eight_schools), optimizer=Adam(0.05), rng_seed=0)
vi.run(SIGMA, Y, num_steps=200 if FAST else 2000, progress=False)
vi_draws = vi.posterior(SIGMA, Y, num_samples=1000)

weighted = Importance(eight_schools, vi.guide, num_particles=2000 if FAST else 20000,
                      param_values=vi.params, rng_seed=0).run(SIGMA, Y)

mcmc = MCMC(eight_schools, num_warmup=200 if FAST else 1000, num_samples=200 if FAST else 1000,
            num_chains=2, rng_seed=0)
result = mcmc.run(SIGMA, Y, progress=False)

# %%
rows = []
for site in ("mu", "tau"):
    rows.append((site, float(vi_draws[site].mean()), float(weighted.mean(site)), result.mean(site),
                 result.stderr(site)))
print(f"{'site':6} {'VI':>8} {'Importance':>11} {'NUTS':>8} {'NUTS s.e.':>10}")
for site, v, w, m, se in rows:
    print(f"{site:6} {v:8.2f} {w:11.2f} {m:8.2f} {se:10.3f}")
print(f"importance: ESS {weighted.effective_sample_size:.0f} of {weighted.num_particles}; "
      f"NUTS: {result.num_divergences} divergences")

# %% [markdown]
# VI's mean-field guide cannot follow the posterior's dependence between `tau` and the
# effects, so its `tau` differs from NUTS's; importance sampling corrects the guide where
# its effective sample size allows.
#
# ## Diagnostics
# `summary()` gives each site's rank-normalised split R-hat and bulk and tail effective
# sample sizes (Vehtari et al. 2021; the paper trusts draws with R-hat below 1.01).

# %%
for site, stats in result.summary().items():
    if np.ndim(stats["mean"]) == 0:
        print(f"{site:6} mean {stats['mean']:7.2f}  sd {stats['sd']:6.2f}  R-hat {stats['r_hat']:.3f}  "
              f"ESS bulk {stats['ess_bulk']:6.0f}  tail {stats['ess_tail']:6.0f}")

# %% [markdown]
# ## ArviZ
# `to_arviz()` hands the draws to ArviZ (posterior, divergences and step sizes, the
# pointwise log-likelihood, the data): its summary, leave-one-out cross-validation and
# plots work on it as on any ArviZ data.

# %%
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # ArviZ's notes on its coming 1.x and on few draws
    import arviz as az

    data = mcmc.to_arviz()
    print(az.summary(data, var_names=["mu", "tau"]))
    print(az.loo(data))
    az.plot_trace(data, var_names=["mu", "tau"])
    plt.savefig(os.path.join(OUT_DIR, "eight_schools_trace.png"))
    az.plot_forest(data, var_names=["theta"], combined=True)
    plt.savefig(os.path.join(OUT_DIR, "eight_schools_forest.png"))
    plt.close("all")
