# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # For Pyro users: three of Pyro's tutorial models, unchanged, under three strategies
#
# A Pyro program runs here as it is: plain `pyro.sample`, `pyro.param` and `pyro.plate`,
# Pyro's AutoGuides, `config_enumerate`, and even Pyro's own objective and optimiser
# objects (`Trace_ELBO`, `TraceEnum_ELBO`, `RenyiELBO`, `pyro.optim.Adam`). What you get is
# the same program under several inference strategies. Each model below is fitted
#
# 1. by `inference.VI` with an ELBO (Pyro's own objective object),
# 2. by `inference.VI` with an importance-weighted bound (`IWAE(K)`, or Pyro's
#    `RenyiELBO(alpha=0)`, which maps to it), and
# 3. by `inference.Importance`, with the fitted guide as the proposal,
#
# and each is checked against an answer known in closed form where there is one.
#
# **How `VI` differs from Pyro's `SVI`.** Pyro keeps every `pyro.param` in one global
# store: after `svi.step(...)`, `pyro.param("z_loc")` reads the fit, and two `SVI`s on the
# same guide train the same tensors. Here each strategy owns its parameters, optimiser
# state and (with `rng_seed=`) its random stream:
#
# ```python
# vi = VI(model, guide, pyro.infer.Trace_ELBO(), pyro.optim.Adam({"lr": 0.05}))
# vi.run(data, num_steps=1000)
# vi.params                      # the fit: constrained values by name
# with vi.param_scope():         # run any Pyro code with this fit's parameters
#     guide.median()
# Importance(model, guide, param_values=vi.params)   # the fitted guide as a proposal
# VI(model, guide, IWAE(8), params=vi.params)   # continue from this fit
# ```
#
# Pyro's global store is never written, so the three strategies below cannot disturb one
# another. The other difference: `VI` draws its `K` particles at once on an extra batch
# dimension (Pyro's `vectorize_particles=True`); a program that does not broadcast over
# it (`x @ w`, `locs[assignment]`) is run one particle at a time after one warning (the
# default `vectorize_particles="auto"`), or without the warning with
# `VI(..., vectorize_particles=False)`.
#
# Set `PPL_FAST=1` to run it in a few seconds (the test suite does).

# %%
import math
import os
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pyro
import pyro.distributions as dist
import pyro.optim
import torch
from pyro import poutine
from pyro.infer import RenyiELBO, Trace_ELBO, TraceEnum_ELBO, config_enumerate
from pyro.infer.autoguide import AutoDelta, AutoMultivariateNormal, AutoNormal
from pyro.infer.autoguide.initialization import init_to_value

from inference import IWAE, VI, Adam, Importance

FAST = os.environ.get("PPL_FAST") == "1"
OUT_DIR = os.environ.get("PPL_OUTPUT_DIR", "outputs")
os.makedirs(OUT_DIR, exist_ok=True)
# the tensors here are small: one intra-op thread avoids waiting on a spinning worker
torch.set_num_threads(1)
pyro.clear_param_store()
T0 = time.perf_counter()


def print_table(title, header, rows):
    """A fixed-width table: header is a list of (name, width[, float format]), rows a list
    of tuples; NaN prints as "-"."""
    print(f"\n{title}")
    header = [(column + (".3f",))[:3] for column in header]
    line = "".join(f"{name:>{width}}" if i else f"{name:<{width}}"
                   for i, (name, width, _) in enumerate(header))
    print(line)
    print("-" * len(line))
    for row in rows:
        cells = []
        for i, ((_, width, fmt), value) in enumerate(zip(header, row)):
            if isinstance(value, float):
                text = "-" if math.isnan(value) else f"{value:{fmt}}"
            else:
                text = str(value)
            cells.append(f"{text:>{width}}" if i else f"{text:<{width}}")
        print("".join(cells))


# %% [markdown]
# ## 1. Pyro's SVI tutorial, part II: subsampling with local latent variables
#
# A global mean `mu`, one latent `z_i` per data point, and a guide with one `(loc, scale)`
# pair per point. Each step sees a mini-batch of `BATCH` points: the guide's
# `pyro.plate(..., subsample_size=...)` draws the indices, the model's plate replays the
# same ones, and its log-likelihood is scaled by `N / BATCH`, as in Pyro.
#
# Everything is Gaussian, so the answers are exact: `mu | x` is normal, each `E[z_i | x]`
# shrinks `x_i` toward `E[mu | x]`, and `x ~ N(0, 10^2 11^T + (1 + 0.5^2) I)` gives log p(x).

# %%
N1, BATCH = 200, 20
torch.manual_seed(0)
data1 = 2.0 + torch.randn(N1) + 0.5 * torch.randn(N1)  # z_i ~ N(2, 1), x_i ~ N(z_i, 0.5)


def model(data, batch_size=BATCH):
    mu = pyro.sample("mu", dist.Normal(0.0, 10.0))
    with pyro.plate("data", len(data), subsample_size=batch_size) as ind:
        z = pyro.sample("z", dist.Normal(mu, 1.0))
        pyro.sample("obs", dist.Normal(z, 0.5), obs=data.index_select(0, ind))


def guide(data, batch_size=BATCH):
    mu_loc = pyro.param("mu_loc", torch.tensor(0.0))
    mu_scale = pyro.param("mu_scale", torch.tensor(1.0), constraint=dist.constraints.positive)
    pyro.sample("mu", dist.Normal(mu_loc, mu_scale))
    z_loc = pyro.param("z_loc", torch.zeros(len(data)))
    z_scale = pyro.param("z_scale", torch.ones(len(data)), constraint=dist.constraints.positive)
    with pyro.plate("data", len(data), subsample_size=batch_size) as ind:
        pyro.sample("z", dist.Normal(z_loc[ind], z_scale[ind]))


# exact answers (float64)
x64 = data1.double()
mu_precision = 1 / 10.0**2 + N1 / (1.0 + 0.25)
mu_mean = float(x64.sum() / 1.25 / mu_precision)
mu_sd = mu_precision**-0.5
z_exact = (x64 / 0.25 + mu_mean / 1.0) / (1 / 0.25 + 1 / 1.0)
marginal_cov = 100.0 * torch.ones(N1, N1, dtype=torch.float64) + 1.25 * torch.eye(N1, dtype=torch.float64)
log_evidence1 = float(torch.distributions.MultivariateNormal(torch.zeros(N1, dtype=torch.float64),
                                                             marginal_cov).log_prob(x64))

# %% [markdown]
# **Strategy 1, `VI` with Pyro's `Trace_ELBO` on mini-batches.** Pyro's objective and
# optimiser objects are accepted as they are (`ClippedAdam` with its learning-rate decay).

# %%
steps = 1000 if FAST else 3000
start = time.perf_counter()
vi_elbo1 = VI(model, guide, Trace_ELBO(), pyro.optim.ClippedAdam({"lr": 0.1, "lrd": 0.02 ** (1 / steps)}),
              rng_seed=0)
vi_elbo1.run(data1, num_steps=steps, progress=False)
seconds_elbo1 = time.perf_counter() - start
print("fitted z_loc[:5]:", vi_elbo1.params["z_loc"][:5].numpy().round(3))
print("exact E[z|x][:5]:", z_exact[:5].numpy().round(3))
print("Pyro's global param store holds", list(pyro.get_param_store().keys()))  # nothing

# %% [markdown]
# **Strategy 2, `VI` with `IWAE(8)` on the full data.** The same program, called with
# `batch_size=N` (a plate whose subsample is the whole range). Why not mini-batches? `mu`
# is global, so the importance weights are over whole mini-batch traces, and their log
# likelihoods are scaled by `N / BATCH = 10`: the weights degenerate (such a fit comes out
# worse than the ELBO's) and the objective no longer bounds log p(x). IWAE wants either
# the full data or latents that are all local (then `VI` weights each data point
# separately, as in the IWAE paper).

# %%
start = time.perf_counter()
vi_iwae1 = VI(model, guide, IWAE(8), pyro.optim.ClippedAdam({"lr": 0.1, "lrd": 0.02 ** (1 / steps)}),
              rng_seed=0)
vi_iwae1.run(data1, N1, num_steps=steps // 2, progress=False)
seconds_iwae1 = time.perf_counter() - start

# %% [markdown]
# **Strategy 3, `Importance` with each fitted guide as the proposal,** on the full data
# (a subsampled plate would make each batch of particles an estimate for a random
# mini-batch, scaled up, not log p(x)). The proposal lives in 201 dimensions, so small
# per-point mismatches multiply: the guide fitted on mini-batches, whose per-point scales
# are still converging (each point is seen in one step out of ten), gives an effective
# sample size of one or two, and an estimate several nats low (its delta-method standard
# error means nothing at such an ESS); the IWAE guide, fitted on all the data, gives an
# estimate within a few standard errors of the exact log p(x).

# %%
num_is = 2000 if FAST else 20000
rows = [("exact", 1.0, 0.0, mu_mean, mu_sd, log_evidence1, float("nan"), float("nan"), "")]
for name, vi, seconds in [("VI Trace_ELBO, batch 20", vi_elbo1, seconds_elbo1),
                          ("VI IWAE(8), full data", vi_iwae1, seconds_iwae1)]:
    fitted = vi.params
    z_loc = fitted["z_loc"].double()
    bound = vi.evaluate(data1, N1, num_particles=1000)  # IWAE(1000) bound on the full data
    rows.append((name, float(np.corrcoef(z_loc, z_exact)[0, 1]), float((z_loc - z_exact).abs().max()),
                 float(fitted["mu_loc"]), float(fitted["mu_scale"]), bound, float("nan"),
                 float("nan"), f"{seconds:.1f}"))
    start = time.perf_counter()
    result = Importance(model, guide, num_particles=num_is, param_values=fitted, rng_seed=1).run(data1, N1)
    z_is = result.mean("z").double()
    rows.append(("  Importance, its guide", float(np.corrcoef(z_is, z_exact)[0, 1]),
                 float((z_is - z_exact).abs().max()), result.mean("mu"), result.variance("mu") ** 0.5,
                 result.log_evidence, result.log_evidence_stderr, result.effective_sample_size,
                 f"{time.perf_counter() - start:.1f}"))
print_table(f"Model 1 (N = {N1}): VI rows give the guide and its IWAE(1000) bound; "
            f"Importance rows use {num_is} particles",
            [("strategy", 26), ("corr z", 8), ("max|dz|", 9), ("E mu", 8), ("sd mu", 8),
             ("log p(x)", 11), ("± s.e.", 8), ("ESS", 9, ".1f"), ("s", 6)], rows)

# %% [markdown]
# ## 2. Pyro's Gaussian mixture tutorial: enumeration and a MAP guide
#
# The model is the tutorial's, word for word, with `config_enumerate` marking the
# assignments for exact summation; the guide is `AutoDelta` on the global sites, with the
# tutorial's initialisation and its choice of the best of several random starts (here by
# `VI.loss`, each candidate with its own `rng_seed`). `TraceEnum_ELBO` is Pyro's
# object, used as it is.
#
# The reference is the maximum-likelihood fit by EM, computed in closed form below; the
# `AutoDelta` fit is a MAP estimate (the priors are weak, so the two nearly agree).

# %%
K = 2
N2 = 200
torch.manual_seed(1)
true_assignment = torch.bernoulli(torch.full((N2,), 0.35)).long()
data = torch.tensor([-1.0, 3.0])[true_assignment] + 1.0 * torch.randn(N2)


@config_enumerate
def model(data):
    # Global variables.
    weights = pyro.sample("weights", dist.Dirichlet(0.5 * torch.ones(K)))
    scale = pyro.sample("scale", dist.LogNormal(0.0, 2.0))
    with pyro.plate("components", K):
        locs = pyro.sample("locs", dist.Normal(0.0, 10.0))

    with pyro.plate("data", len(data)):
        # Local variables.
        assignment = pyro.sample("assignment", dist.Categorical(weights))
        pyro.sample("obs", dist.Normal(locs[assignment], scale), obs=data)


def init_loc_fn(site):
    if site["name"] == "weights":
        # Initialize weights to uniform.
        return torch.ones(K) / K
    if site["name"] == "scale":
        return (data.var() / 2).sqrt()
    if site["name"] == "locs":
        return data[torch.multinomial(torch.ones(len(data)) / len(data), K)]
    raise ValueError(site["name"])


def em_mle(x, iterations=500):
    """Maximum likelihood for a K-component mixture with one shared scale, by EM."""
    x = x.double()
    weights = torch.ones(K, dtype=torch.float64) / K
    locs = torch.quantile(x, torch.linspace(0.25, 0.75, K, dtype=torch.float64))
    scale = x.std()
    for _ in range(iterations):
        log_r = weights.log() + torch.distributions.Normal(locs, scale).log_prob(x[:, None])
        r = torch.softmax(log_r, -1)
        counts = r.sum(0)
        weights, locs = counts / len(x), (r * x[:, None]).sum(0) / counts
        scale = ((r * (x[:, None] - locs) ** 2).sum() / len(x)).sqrt()
    return weights, locs, scale


def mixture_log_likelihood(x, weights, locs, scale):
    log_p = torch.log(weights) + torch.distributions.Normal(locs, scale).log_prob(x.double()[:, None])
    return float(torch.logsumexp(log_p, -1).sum())


def sorted_by_loc(weights, locs):
    order = torch.argsort(locs)
    return weights[order], locs[order]


mle_weights, mle_locs, mle_scale = em_mle(data)
mle_weights, mle_locs = sorted_by_loc(mle_weights, mle_locs)

# %% [markdown]
# **Strategy 1, `VI` with `TraceEnum_ELBO` and `AutoDelta`** (the tutorial's optimiser,
# `pyro.optim.Adam({"lr": 0.1, "betas": [0.8, 0.99]})`, and its 200 steps).

# %%
optim = pyro.optim.Adam({"lr": 0.1, "betas": [0.8, 0.99]})
elbo = TraceEnum_ELBO(max_plate_nesting=1)
start = time.perf_counter()
candidates = []
for seed in range(4 if FAST else 10):
    candidate_guide = AutoDelta(poutine.block(model, expose=["weights", "locs", "scale"]),
                                init_loc_fn=init_loc_fn)
    candidate = VI(model, candidate_guide, elbo, optim, rng_seed=seed)
    candidates.append((candidate.loss(data), seed, candidate, candidate_guide))
loss, seed, vi_map, map_guide = min(candidates, key=lambda c: c[0])
print(f"seed = {seed}, initial loss = {loss:.1f}")
vi_map.run(data, num_steps=200, progress=False)
seconds_map = time.perf_counter() - start
with vi_map.param_scope():  # Pyro's own AutoDelta.median, with this fit's parameters
    map_values = {name: value.detach() for name, value in map_guide.median(data).items()}
print("MAP:", {name: np.round(value.double().numpy(), 3).tolist() for name, value in map_values.items()})

# %% [markdown]
# **Strategy 2, `VI` with `IWAE(8)` and `AutoNormal`.** With a point-mass guide all `K`
# particles coincide and the importance-weighted bound is the ELBO, so this strategy fits
# a Gaussian over the globals instead (in the unconstrained space), started at the MAP with
# Pyro's `init_to_value`. The assignments are still summed out exactly in every particle.
# `locs[assignment]` indexes the first dimension of `locs`, which under vectorised
# particles is the particle dimension: the program runs with
# `vectorize_particles=False` (the default, `"auto"`, would try the vectorised run first,
# warn, and switch).
#
# A caution about the `.clone()` below. Values read inside `param_scope` are the strategy's
# live parameters, as in Pyro (`vi.params` gives copies), and an AutoGuide makes an
# unconstrained site's initial value the parameter tensor itself: without the copies,
# training this guide would move `vi_map`'s MAP `locs` along with it.

# %%
# copies, so that this guide's parameters do not share memory with vi_map's (see above)
iwae_guide = AutoNormal(poutine.block(model, expose=["weights", "locs", "scale"]),
                        init_loc_fn=init_to_value(values={k: v.clone() for k, v in map_values.items()}))
start = time.perf_counter()
vi_iwae2 = VI(model, iwae_guide, IWAE(8), Adam(lr=0.02), vectorize_particles=False, rng_seed=0)
vi_iwae2.run(data, num_steps=60 if FAST else 400, progress=False)
seconds_iwae2 = time.perf_counter() - start
with vi_iwae2.param_scope():
    iwae_median = {name: value.detach() for name, value in iwae_guide.median(data).items()}

# %% [markdown]
# **Strategy 3, `Importance` with the `AutoNormal` guide as the proposal.** As in `VI`,
# `locs[assignment]` does not broadcast over a particle plate, so the particles are drawn
# one at a time (`vectorize_particles=False`); the assignments are summed out in each.
#
# The posterior has two mirror-image modes (swap the labels of the two components), and
# a proposal fitted to one of them sees half the mass: the estimate is of log (p(x) / 2).

# %%
num_is2 = 200 if FAST else 2000
start = time.perf_counter()
result2 = Importance(model, iwae_guide, num_particles=num_is2, param_values=vi_iwae2.params,
                     vectorize_particles=False, rng_seed=1).run(data)
is2 = (result2.log_evidence, result2.log_evidence_stderr, result2.effective_sample_size)
seconds_is2 = time.perf_counter() - start
iwae_bound2 = vi_iwae2.evaluate(data, num_particles=200)

rows = []
for name, w, locs, scale, log_p, seconds in [
        ("EM, maximum likelihood", mle_weights, mle_locs, mle_scale, float("nan"), float("nan")),
        ("VI TraceEnum_ELBO, MAP", *sorted_by_loc(map_values["weights"], map_values["locs"]),
         map_values["scale"], float("nan"), seconds_map),
        ("VI IWAE(8), median", *sorted_by_loc(iwae_median["weights"], iwae_median["locs"]),
         iwae_median["scale"], iwae_bound2, seconds_iwae2)]:
    rows.append((name, float(w[0]), float(locs[0]), float(locs[1]), float(scale),
                 mixture_log_likelihood(data, w.double(), locs.double(), scale.double()), log_p,
                 float("nan"), "-" if math.isnan(seconds) else f"{seconds:.1f}"))
rows.append((f"Importance ({num_is2})", float("nan"), float("nan"), float("nan"), float("nan"),
             float("nan"), is2[0], is2[2], f"{seconds_is2:.1f}"))
print_table(f"Model 2 (N = {N2}): components sorted by location; log p(x|θ) at each estimate; "
            "log p(x) over one labelling: the IWAE(200) bound, then importance sampling",
            [("strategy", 24), ("weight0", 9), ("loc0", 8), ("loc1", 8), ("scale", 8),
             ("log p(x|θ)", 12), ("log p(x)/2", 12), ("ESS", 7, ".0f"), ("s", 6)], rows)
print(f"log p(x) over both labellings: {is2[0]:.3f} + log 2 = {is2[0] + math.log(2):.3f}")
print("true: weight0 = 0.65, locs = (-1, 3), scale = 1")

# %% [markdown]
# ## 3. Bayesian linear regression, as in Pyro's regression tutorials
#
# Pyro's regression tutorial (part II) writes the model with plain sample statements; here
# the coefficients are one vector and the mean is `b + x @ w`, with three features shaped
# like the tutorial's (in Africa, ruggedness, their product) on generated data. We fix the
# noise scale (the tutorial gives it a prior) so that the posterior and the evidence are
# exact: `(b, w)` given `y` is Gaussian, and `y ~ N(0, X diag(10^2, 1, 1, 1) X^T + sigma^2 I)`
# with `X = [1, x]`.
#
# The guide is `AutoMultivariateNormal`, whose family holds the exact posterior: a good
# fit reaches the exact log evidence. `x @ w` does not broadcast over a particle
# dimension, so both `VI`s run with `vectorize_particles=False` (`"auto"` would try the
# vectorised run first, warn, and switch).

# %%
N3, SIGMA = 170, 0.95
torch.manual_seed(2)
in_africa = torch.bernoulli(torch.full((N3,), 0.3))
ruggedness = 6 * torch.rand(N3) ** 2
x = torch.stack([in_africa, ruggedness, in_africa * ruggedness], -1)
y = 9.2 - 1.9 * in_africa - 0.2 * ruggedness + 0.4 * in_africa * ruggedness + SIGMA * torch.randn(N3)


def model(x, y=None):
    b = pyro.sample("b", dist.Normal(0.0, 10.0))
    w = pyro.sample("w", dist.Normal(torch.zeros(x.shape[-1]), 1.0).to_event(1))
    mean = b + x @ w
    with pyro.plate("data", x.shape[0]):
        return pyro.sample("obs", dist.Normal(mean, SIGMA), obs=y)


# exact posterior of (b, w) and log evidence (float64)
X = torch.cat([torch.ones(N3, 1), x], -1).double()
prior_var = torch.tensor([100.0, 1.0, 1.0, 1.0], dtype=torch.float64)
post_precision = torch.diag(1 / prior_var) + X.T @ X / SIGMA**2
post_cov = torch.linalg.inv(post_precision)
post_mean = post_cov @ X.T @ y.double() / SIGMA**2
post_sd = post_cov.diag().sqrt()
log_evidence3 = float(torch.distributions.MultivariateNormal(
    torch.zeros(N3, dtype=torch.float64), X @ torch.diag(prior_var) @ X.T
    + SIGMA**2 * torch.eye(N3, dtype=torch.float64)).log_prob(y.double()))
names3 = ["b", "w[africa]", "w[rugged]", "w[both]"]

# %% [markdown]
# **Strategy 1, `VI` with `Trace_ELBO(num_particles=4)`;** the guide's `median` and
# `quantiles` (Pyro's methods) are read inside `param_scope`.
#
# **Strategy 2, `VI` with Pyro's `RenyiELBO(alpha=0, num_particles=8)`** (the IWAE bound),
# started from the ELBO fit with `params=` (copied: the two fits stay separate). From the
# guide's initial values IWAE is slow here: `b` has to travel from 0 to about 9 along a
# ridge of strongly correlated coefficients, and IWAE's gradient for the guide gets
# noisier as its bound tightens (Rainforth et al., 2018).


# %%
def guide_summary(vi, guide):
    """The guide's median and (from its 16% and 84% quantiles) sd, ordered as names3."""
    with vi.param_scope():
        median = guide.median(x, y)
        quantiles = guide.quantiles([0.1587, 0.8413], x, y)
    mean = torch.cat([median["b"].reshape(1), median["w"]]).detach().double()
    lo, hi = torch.cat([quantiles["b"].reshape(2, 1), quantiles["w"]], -1).detach().double()
    return mean, (hi - lo) / 2


fits3 = {}
guide3 = AutoMultivariateNormal(model)
start = time.perf_counter()
vi_elbo3 = VI(model, guide3, Trace_ELBO(num_particles=4), Adam(lr=0.1), vectorize_particles=False,
              rng_seed=0)
vi_elbo3.run(x, y, num_steps=600 if FAST else 1500, progress=False)
fits3["VI Trace_ELBO(4)"] = (vi_elbo3, guide3, *guide_summary(vi_elbo3, guide3), time.perf_counter() - start)

guide3 = AutoMultivariateNormal(model)
start = time.perf_counter()
vi_iwae3 = VI(model, guide3, RenyiELBO(alpha=0, num_particles=8), Adam(lr=0.02),
              vectorize_particles=False, rng_seed=0, params=vi_elbo3.params)
vi_iwae3.run(x, y, num_steps=150 if FAST else 600, progress=False)
fits3["VI RenyiELBO(0, 8), from it"] = (vi_iwae3, guide3, *guide_summary(vi_iwae3, guide3),
                                   time.perf_counter() - start)

# %% [markdown]
# **Strategy 3, `Importance` with each fitted guide as the proposal**, one particle at a
# time as well (`x @ w`). For comparison, Pyro's own `pyro.infer.Importance` runs the same
# guide inside `vi.param_scope()`, so that it proposes with this fit's values.

# %%
num_is3 = 500 if FAST else 5000
rows = [("exact", *post_mean.tolist(), log_evidence3, float("nan"), float("nan"), "")]
is3 = {}
for name, (vi3, guide3, mean, sd, seconds) in fits3.items():
    bound = vi3.evaluate(x, y, num_particles=1000)
    rows.append((name, *mean.tolist(), bound, float("nan"), float("nan"), f"{seconds:.1f}"))
    start = time.perf_counter()
    result3 = Importance(model, guide3, num_particles=num_is3, param_values=vi3.params,
                         vectorize_particles=False, rng_seed=1).run(x, y)
    log_z, ess = result3.log_evidence, result3.effective_sample_size
    is_mean = torch.cat([torch.tensor([result3.mean("b")]), result3.mean("w")])
    with vi3.param_scope():  # Pyro's own Importance with the same proposal
        pyro.set_rng_seed(1)
        posterior = pyro.infer.Importance(model, guide3, num_samples=num_is3).run(x, y)
        print(f"{name}: ours log p(x) {log_z:.3f}, ESS {ess:.0f}; Pyro's Importance "
              f"{float(posterior.get_log_normalizer()):.3f}, ESS {float(posterior.get_ESS()):.0f}")
    is3[name] = is_mean.double()
    stderr = math.sqrt(max(num_is3 / ess - 1, 0) / num_is3)  # delta method, as Importance reports
    rows.append(("  Importance, its guide", *is_mean.tolist(), log_z, stderr, ess,
                 f"{time.perf_counter() - start:.1f}"))
print_table(f"Model 3 (N = {N3}): posterior means; VI rows give the guide's median and its IWAE(1000) "
            f"bound, Importance rows use {num_is3} particles",
            [("strategy", 29), *[(n, 11) for n in names3], ("log p(x)", 11), ("± s.e.", 8),
             ("ESS", 8, ".0f"), ("s", 6)], rows)
print("exact posterior sd:", post_sd.numpy().round(3))

# %% [markdown]
# ## One figure for the three models
# Left: each point's fitted `E[z_i | x]` against the exact one. Middle: the data and the
# mixture density at the maximum-likelihood, MAP and IWAE fits. Right: each strategy's
# posterior mean (± sd for the guides) in units of the exact posterior: the exact
# answer is 0 ± 1 for every coefficient.

# %%
fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
ax = axes[0]
lims = [float(z_exact.min()) - 0.3, float(z_exact.max()) + 0.3]
ax.plot(lims, lims, color="0.6", lw=1, label="fitted = exact")
for (name, vi), marker in zip([("VI Trace_ELBO, batch 20", vi_elbo1), ("VI IWAE(8), full data", vi_iwae1)],
                              ["o", "x"]):
    z_loc = vi.params["z_loc"].double()
    ax.scatter(z_exact.numpy(), z_loc.numpy(), s=12, marker=marker, alpha=0.7,
               label=f"{name} (corr {np.corrcoef(z_loc, z_exact)[0, 1]:.3f})")
ax.set(xlim=lims, ylim=lims, xlabel="exact E[z_i | x]", ylabel="fitted z_loc[i]",
       title=f"1. SVI part II: {N1} local latents")
ax.legend(fontsize=8, loc="upper left")

ax = axes[1]
grid = torch.linspace(float(data.min()) - 1.5, float(data.max()) + 1.5, 400, dtype=torch.float64)
ax.hist(data.numpy(), bins=40, density=True, color="0.85", label="data")
for name, w, locs, scale, style in [
        ("EM (MLE)", mle_weights, mle_locs, mle_scale, dict(color="k", lw=2.5, alpha=0.5)),
        ("TraceEnum_ELBO + AutoDelta (MAP)", map_values["weights"], map_values["locs"],
         map_values["scale"], dict(color="C0", ls="--")),
        ("IWAE(8) + AutoNormal (median)", iwae_median["weights"], iwae_median["locs"],
         iwae_median["scale"], dict(color="C1", ls=":", lw=2))]:
    log_density = torch.logsumexp(torch.log(w.double()) + torch.distributions.Normal(
        locs.double(), scale.double()).log_prob(grid[:, None]), -1)
    ax.plot(grid.numpy(), log_density.exp().numpy(), label=name, **style)
ax.set(xlabel="x", ylabel="density", title=f"2. Gaussian mixture: {N2} points, K = {K}")
ax.legend(fontsize=8, loc="upper right")

ax = axes[2]
positions = np.arange(len(names3))
ax.axhspan(-1, 1, color="0.9", label="exact ± sd")
ax.axhline(0, color="0.5", lw=1)
for i, (name, label) in enumerate(zip(fits3, ["Trace_ELBO", "IWAE"])):
    _, _, mean, sd, _ = fits3[name]
    ax.errorbar(positions - 0.2 + 0.13 * i, ((mean - post_mean) / post_sd).numpy(),
                yerr=(sd / post_sd).numpy(), fmt="o", capsize=3, color=f"C{i}",
                label=f"{label} guide ± sd")
    ax.plot(positions + 0.13 + 0.13 * i, ((is3[name] - post_mean) / post_sd).numpy(), "x", ms=8,
            color=f"C{i}", label=f"IS, {label} proposal")
ax.set_xticks(positions, names3)
ax.set(ylim=(-3.3, 2.5), ylabel="(estimate - exact mean) / exact sd",
       title=f"3. Bayesian regression: {N3} points, x @ w")
ax.legend(fontsize=8, loc="lower center", ncol=2)
fig.tight_layout()
path = os.path.join(OUT_DIR, "pyro_users.png")
fig.savefig(path, dpi=100)
print(f"plot written to {path}")

# %% [markdown]
# What carried over unchanged: Pyro's `pyro.sample`/`param`/`plate` with subsampling,
# `config_enumerate`, `poutine.block`, `AutoDelta`, `AutoNormal`,
# `AutoMultivariateNormal`, `init_to_value`, the guides' `median` and `quantiles`,
# `Trace_ELBO`, `TraceEnum_ELBO`, `RenyiELBO`, `pyro.optim.Adam` and `ClippedAdam`, and
# even Pyro's `Importance` (inside `param_scope`). What to remember: parameters belong to
# the strategy (`vi.params`, `param_scope`, `params=`; copy a live value before it seeds an
# AutoGuide), and programs that index or multiply a latent along its leading dimension
# need `vectorize_particles=False` (in `VI` and in `Importance`) for several particles.

# %%
print(f"total time: {time.perf_counter() - T0:.1f} s")
pyro.clear_param_store()
