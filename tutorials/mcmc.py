# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # One model, four strategies: eight schools by VI, importance sampling, NUTS and SMC
#
# The eight-schools model (Rubin 1981; Gelman et al., *Bayesian Data Analysis*) estimates
# the effect of a coaching programme in eight schools from each school's estimate and its
# standard error. The same program runs under variational inference, importance sampling
# with the fitted guide as proposal, the No-U-Turn sampler and sequential Monte Carlo; the
# answers are printed side by side, and the sampler's draws go to ArviZ for its diagnostics
# and plots. A last section shows SMC where it earns its keep, on a hidden Markov model.
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
from inference import MCMC, SMC, VI, Adam, Importance
from models.state_space import forward_algorithm, hmm_data, hmm_model

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
# ## Four strategies
# VI fits a mean-field Normal guide (Pyro's `AutoNormal`); importance sampling reweights
# that guide's draws towards the posterior; NUTS draws from the posterior itself; SMC
# propagates particles from the prior through the program, resampling as evidence comes in.

# %%
vi = VI(eight_schools, AutoNormal(eight_schools), optimizer=Adam(0.05), rng_seed=0)
vi.run(SIGMA, Y, num_steps=200 if FAST else 2000, progress=False)
vi_draws = vi.posterior(SIGMA, Y, num_samples=1000)

weighted = Importance(eight_schools, vi.guide, num_particles=2000 if FAST else 20000,
                      param_values=vi.params, rng_seed=0).run(SIGMA, Y)

mcmc = MCMC(eight_schools, num_warmup=200 if FAST else 1000, num_samples=200 if FAST else 1000,
            num_chains=2, rng_seed=0)
result = mcmc.run(SIGMA, Y, progress=False)

smc = SMC(eight_schools, num_particles=2000 if FAST else 50000, rng_seed=0).run(SIGMA, Y)

# %%
rows = []
for site in ("mu", "tau"):
    rows.append((site, float(vi_draws[site].mean()), float(weighted.mean(site)), result.mean(site),
                 result.stderr(site), float(smc.mean(site))))
print(f"{'site':6} {'VI':>8} {'Importance':>11} {'NUTS':>8} {'NUTS s.e.':>10} {'SMC':>8}")
for site, v, w, m, se, s in rows:
    print(f"{site:6} {v:8.2f} {w:11.2f} {m:8.2f} {se:10.3f} {s:8.2f}")
print(f"importance: ESS {weighted.effective_sample_size:.0f} of {weighted.num_particles}; "
      f"NUTS: {result.num_divergences} divergences; SMC: ESS {smc.effective_sample_size:.0f} "
      f"of {smc.num_particles}")
print(f"log p(y): importance {weighted.log_evidence:.3f} +- {weighted.log_evidence_stderr:.3f}, "
      f"SMC {smc.log_evidence:.3f} +- {smc.log_evidence_stderr:.3f}")

# %% [markdown]
# VI's mean-field guide cannot follow the posterior's dependence between `tau` and the
# effects, so its `tau` differs from NUTS's; importance sampling corrects the guide where
# its effective sample size allows. All eight observations arrive in one vectorised site at
# the end of the program, so SMC has nothing to resample on here: it is importance
# sampling from the prior (hence its smaller effective sample size). Compare the two
# evidence estimates all the same: a mean-field guide has lighter tails than the
# posterior, so importance sampling from it tends to underestimate the evidence, and its
# delta-method standard error cannot see the tails it misses; the prior covers them.
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
    az.plot_rank(data, var_names=["mu", "tau"])
    plt.savefig(os.path.join(OUT_DIR, "eight_schools_rank.png"))
    az.plot_forest(data, var_names=["theta"], combined=True)
    plt.savefig(os.path.join(OUT_DIR, "eight_schools_forest.png"))
    plt.close("all")

# %% [markdown]
# ## Where SMC earns its keep: evidence arriving step by step
# A hidden Markov model observes one noisy reading per step. SMC weighs the particles at
# each observation and resamples when their effective sample size falls below half, so the
# particles follow the evidence; the forward algorithm gives the exact log evidence and
# filtering distribution to compare with. The same `to_arviz()` works on SMC's draws.

# %%
ys = hmm_data(50, seed=0)
exact_log_z, exact_filtered = forward_algorithm(ys)
hmm_smc = SMC(hmm_model, num_particles=1000 if FAST else 20000, rng_seed=0)
hmm = hmm_smc.run(ys)
weights = hmm.normalized_weights.numpy()
last = hmm.samples["z_49"].numpy()
print(f"log p(y): SMC {hmm.log_evidence:.3f} +- {hmm.log_evidence_stderr:.3f}, exact {exact_log_z:.3f}; "
      f"resampled at {len(hmm.resampled_at)} of 50 steps")
print("p(z_49 | y): SMC", np.round([weights[last == k].sum() for k in range(3)], 3),
      "exact", np.round(exact_filtered, 3))
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    hmm_data_set = hmm_smc.to_arviz(ys, num_samples=100 if FAST else 1000)
    print(az.summary(hmm_data_set, var_names=["z_0", "z_25", "z_49"], kind="stats"))
