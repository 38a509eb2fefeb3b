"""Model-side enumeration: one training step of ``inference.VI`` vs Pyro's ``SVI`` with
``TraceEnum_ELBO`` on the same model, with a hand-written torch step as the floor.

Two models:

* ``enum_gmm``: Pyro's Gaussian-mixture tutorial model as it is (``config_enumerate``,
  Dirichlet weights, LogNormal scale, a plate of K = 3 component locations, a plate over
  N = 1,000 data points whose Categorical assignment is enumerated), with an
  ``AutoDelta`` guide over the globals (``poutine.block(expose=...)``) initialised as in
  the tutorial (fixed initial locations) and ``pyro.optim.Adam({"lr": 0.1, "betas":
  [0.8, 0.99]})``. Ours: ``VI(gmm, guide, TraceEnum_ELBO(max_plate_nesting=1), optim)``;
  Pyro: ``SVI(gmm, guide, optim, TraceEnum_ELBO(max_plate_nesting=1))``; hand-written:
  the log-sum-exp mixture likelihood plus the priors at the constrained parameters, one
  ``torch.optim.Adam`` step.
* ``enum_hmm``: a hidden Markov model with 3 states and T = 100 steps written with
  ``ppl.markov`` and ``infer={"enumerate": "parallel"}``, a learnable transition matrix
  (``ppl.param``, simplex rows) and learnable emission means (``ppl.param``), an empty
  guide. Ours: ``VI(hmm, guide, ELBO(), Adam(lr=0.01))``; Pyro: ``SVI(hmm, guide,
  pyro.optim.Adam({"lr": 0.01}), TraceEnum_ELBO(max_plate_nesting=0))``; hand-written:
  the forward algorithm in log space, one ``torch.optim.Adam`` step.

Enumeration leaves nothing random, so every method computes the same loss on its first
step (the last table column checks it). Our VI keeps its parameters in a store of its
own, Pyro's SVI in the global one: every method builds its own guide and parameters.
"""

import pyro
import pyro.distributions as pdist
import pyro.infer
import pyro.optim
import torch
from pyro import poutine
from pyro.infer import config_enumerate
from pyro.infer.autoguide import AutoDelta
from torch.distributions import constraints, transform_to

import ppl
import ppl.distributions as dist
from inference import ELBO, VI, Adam

from .common import (
    Method,
    fmt_ms,
    log,
    markdown_table,
    paired_ratio,
    ratio_table,
    settings,
    synchronizer,
    time_interleaved,
)

TARGET = 1.1  # ours / Pyro's TraceEnum_ELBO, median over rounds
DATA_SEED = 0

# ------------------------------------------------------------------------------ GMM
GMM_K, GMM_N = 3, 1000
GMM_TRUE_LOCS, GMM_TRUE_WEIGHTS, GMM_TRUE_SCALE = [0.0, 5.0, 10.0], [0.3, 0.3, 0.4], 1.0
GMM_INIT_INDICES = [0, 1, 2]  # the tutorial draws K data points; fixed ones here
GMM_ADAM = {"lr": 0.1, "betas": [0.8, 0.99]}  # the tutorial's


def gmm_data(device):
    gen = torch.Generator().manual_seed(DATA_SEED)
    assignment = torch.multinomial(torch.tensor(GMM_TRUE_WEIGHTS), GMM_N, replacement=True,
                                   generator=gen)
    x = torch.tensor(GMM_TRUE_LOCS)[assignment] + GMM_TRUE_SCALE * torch.randn(GMM_N, generator=gen)
    return x.to(device)


@config_enumerate
def gmm(data):
    weights = pyro.sample("weights", pdist.Dirichlet(0.5 * data.new_ones(GMM_K)))
    scale = pyro.sample("scale", pdist.LogNormal(data.new_zeros(()), 2.0))
    with pyro.plate("components", GMM_K, device=data.device):
        locs = pyro.sample("locs", pdist.Normal(data.new_zeros(()), 10.0))
    with pyro.plate("data", len(data), device=data.device):
        assignment = pyro.sample("assignment", pdist.Categorical(weights))
        pyro.sample("obs", pdist.Normal(locs[assignment], scale), obs=data)


def gmm_init(data):
    """The tutorial's initial values: uniform weights, scale sqrt(var / 2), K data points."""
    return {"weights": data.new_ones(GMM_K) / GMM_K,
            "scale": (data.var() / 2).sqrt(),
            "locs": data[torch.tensor(GMM_INIT_INDICES, device=data.device)].clone()}


def gmm_guide(data):
    init = gmm_init(data)
    return AutoDelta(poutine.block(gmm, expose=["weights", "locs", "scale"]),
                     init_loc_fn=lambda site: init[site["name"]].clone())


def gmm_ours(data):
    vi = VI(gmm, gmm_guide(data), pyro.infer.TraceEnum_ELBO(max_plate_nesting=1),
            pyro.optim.Adam(dict(GMM_ADAM)))

    def step():
        return vi.step(data)

    step.vi = vi
    return step


def gmm_pyro(data):
    pyro.clear_param_store()
    svi = pyro.infer.SVI(gmm, gmm_guide(data), pyro.optim.Adam(dict(GMM_ADAM)),
                         pyro.infer.TraceEnum_ELBO(max_plate_nesting=1))
    return lambda: svi.step(data)


def gmm_hand(data):
    """MAP of the globals (AutoDelta's loss: -log p(x, globals) with the assignments summed
    out), parameters unconstrained through ``transform_to`` as in Pyro's param store."""
    init = gmm_init(data)
    to_simplex, to_positive = transform_to(constraints.simplex), transform_to(constraints.positive)
    raw_w = to_simplex.inv(init["weights"]).requires_grad_()
    raw_s = to_positive.inv(init["scale"]).requires_grad_()
    locs = init["locs"].clone().requires_grad_()
    opt = torch.optim.Adam([raw_w, raw_s, locs], lr=GMM_ADAM["lr"], betas=tuple(GMM_ADAM["betas"]))
    D = torch.distributions
    conc = 0.5 * data.new_ones(GMM_K)

    def step():
        weights, scale = to_simplex(raw_w), to_positive(raw_s)
        log_prior = (D.Dirichlet(conc).log_prob(weights) + D.LogNormal(0.0, 2.0).log_prob(scale)
                     + D.Normal(0.0, 10.0).log_prob(locs).sum())
        log_lik = torch.logsumexp(weights.log() + D.Normal(locs, scale).log_prob(data[:, None]),
                                  -1).sum()
        loss = -(log_prior + log_lik)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    return step


# ------------------------------------------------------------------------------ HMM
HMM_STATES, HMM_T = 3, 100
HMM_TRANSITION = [[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]]
HMM_MEANS = [-2.0, 0.0, 2.0]
HMM_INIT_MEANS = [-1.0, 0.0, 1.0]
HMM_LR = 0.01


def hmm_data(device):
    gen = torch.Generator().manual_seed(DATA_SEED)
    transition, means = torch.tensor(HMM_TRANSITION), torch.tensor(HMM_MEANS)
    z, ys = 0, []
    for _ in range(HMM_T):
        z = int(torch.multinomial(transition[z], 1, generator=gen))
        ys.append(means[z] + torch.randn((), generator=gen))
    return torch.stack(ys).to(device)


def hmm_init(ys):
    """Initial values: a uniform transition matrix, means spread over the data's range."""
    return (ys.new_ones(HMM_STATES, HMM_STATES) / HMM_STATES, ys.new_tensor(HMM_INIT_MEANS))


def hmm(ys):
    transition0, means0 = hmm_init(ys)
    transition = ppl.param("transition", transition0, constraint=dist.constraints.simplex)
    means = ppl.param("means", means0)
    z = 0
    for t in ppl.markov(range(len(ys))):
        z = ppl.sample(f"z_{t}", dist.Categorical(transition[z]), infer={"enumerate": "parallel"})
        ppl.sample(f"y_{t}", dist.Normal(means[z], 1.0), obs=ys[t])


def hmm_guide(ys):
    pass


def hmm_ours(ys):
    vi = VI(hmm, hmm_guide, ELBO(), Adam(lr=HMM_LR))

    def step():
        return vi.step(ys)

    step.vi = vi
    return step


def hmm_pyro(ys):
    pyro.clear_param_store()
    svi = pyro.infer.SVI(hmm, hmm_guide, pyro.optim.Adam({"lr": HMM_LR}),
                         pyro.infer.TraceEnum_ELBO(max_plate_nesting=0))
    return lambda: svi.step(ys)


def hmm_hand(ys):
    """The forward algorithm in log space (the initial state is 0, as in the model)."""
    transition0, means0 = hmm_init(ys)
    to_simplex = transform_to(constraints.simplex)
    raw_t = to_simplex.inv(transition0).requires_grad_()
    means = means0.clone().requires_grad_()
    opt = torch.optim.Adam([raw_t, means], lr=HMM_LR)
    Normal = torch.distributions.Normal

    def step():
        log_t = to_simplex(raw_t).log()
        log_e = Normal(means, 1.0).log_prob(ys[:, None])  # [T, S]
        alpha = log_t[0] + log_e[0]
        for t in range(1, len(ys)):
            alpha = torch.logsumexp(alpha[:, None] + log_t, 0) + log_e[t]
        loss = -torch.logsumexp(alpha, 0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    return step


# --------------------------------------------------------------------------- runner
def _first_step_losses(methods):
    """Each method's first loss (enumeration leaves nothing random: they must agree)."""
    return {m.name: m.call() for m in methods}


def _report(title, methods, ours, pyro_m, hand, first, notes):
    rows = []
    for m in methods:
        rows.append([m.name, fmt_ms(m.median), f"[{fmt_ms(m.minimum)}, {fmt_ms(m.maximum)}]",
                     str(paired_ratio(m, pyro_m)), f"{first[m.name]:.4f}"])
    table = markdown_table(
        ["method", "ms/step (median)", "ms/step [min, max]", "vs pyro: median [min, max]",
         "first-step loss"], rows)
    ratios = ratio_table([("ours / pyro", paired_ratio(ours, pyro_m), TARGET),
                          ("ours / hand-written", paired_ratio(ours, hand), None),
                          ("pyro / hand-written", paired_ratio(pyro_m, hand), None)])
    return "\n\n".join([f"### {title}", table, ratios] + notes)


def _protocol(s, first):
    values = list(first.values())
    spread = max(values) - min(values)
    return (f"{s.rounds} interleaved rounds x {s.steps} steps after {s.warmup} warm-up steps per "
            f"method; ratios are formed within each round. First-step losses (one step from the "
            f"same initial values, before the warm-up) differ by at most {spread:.2e}.")


def _compare(tag, title, s, device, ours, pyro_m, hand, model_note):
    """Time ours, Pyro's and the hand-written step side by side; the report's table."""
    methods = [ours, pyro_m, hand]
    first = _first_step_losses(methods)
    log(f"{tag}: {s.rounds} rounds x {s.steps} steps, {s.warmup} warm-up steps")
    time_interleaved(methods, s.rounds, s.steps, s.warmup, synchronizer(device), log)
    return _report(title, methods, ours, pyro_m, hand, first, [model_note, _protocol(s, first)])


def bench_gmm(quick=False, device="cpu"):
    s = settings(quick, full=(30, 20, 5), small=(2, 2, 1))
    data = gmm_data(device)
    model = (f"Pyro's GMM tutorial model (K = {GMM_K} components, N = {GMM_N} points drawn from "
             f"locs {GMM_TRUE_LOCS}, weights {GMM_TRUE_WEIGHTS}, scale {GMM_TRUE_SCALE}), the "
             f"assignment enumerated; AutoDelta over weights, scale and locs; "
             f"pyro.optim.Adam({GMM_ADAM}) for ours and Pyro, torch.optim.Adam with the same "
             f"settings for the hand-written step.")
    return _compare(
        "enum_gmm", f"Model-side enumeration: Gaussian mixture (K = {GMM_K}, N = {GMM_N})", s, device,
        Method("ours: VI(TraceEnum_ELBO(max_plate_nesting=1)), AutoDelta", gmm_ours(data)),
        Method("pyro: SVI(TraceEnum_ELBO(max_plate_nesting=1)), AutoDelta", gmm_pyro(data)),
        Method("hand-written torch (logsumexp mixture)", gmm_hand(data)), model)


def bench_hmm(quick=False, device="cpu"):
    s = settings(quick, full=(20, 3, 3), small=(2, 1, 1))
    ys = hmm_data(device)
    model = (f"HMM with {HMM_STATES} hidden states and T = {HMM_T} steps written with "
             "`ppl.markov` and `infer={'enumerate': 'parallel'}` (the same program for ours "
             "and Pyro); learnable transition matrix (simplex rows) and emission means, unit "
             f"emission scale; Adam(lr={HMM_LR}) everywhere (ours `inference.Adam`, Pyro "
             "`pyro.optim.Adam`, hand-written `torch.optim.Adam`).")
    return _compare(
        "enum_hmm", f"Model-side enumeration: HMM ({HMM_STATES} states, T = {HMM_T}, ppl.markov)", s, device,
        Method("ours: VI(ELBO()), empty guide", hmm_ours(ys)),
        Method("pyro: SVI(TraceEnum_ELBO(max_plate_nesting=0)), empty guide", hmm_pyro(ys)),
        Method("hand-written torch (forward algorithm)", hmm_hand(ys)), model)


BENCHMARKS = {"enum_gmm": bench_gmm, "enum_hmm": bench_hmm}
