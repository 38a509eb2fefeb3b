"""Importance sampling from the prior on a Normal-Normal model, in particles per second.

    mu ~ Normal(0, 1),   x_i ~ Normal(mu, 1) for i = 1..100 (a plate)

Methods: ``inference.Importance(model, num_particles=10000).run(x)``; the same computation
hand-written in torch; Pyro's sequential ``pyro.infer.Importance`` (one trace per particle,
so far fewer particles per call); and Pyro's
``pyro.infer.importance.vectorized_importance_weights`` with the prior as proposal (the
model with its observations blocked, which is what ``pyro.infer.Importance`` uses when
given no guide). Every call ends with the log-evidence estimate as a Python float, as
``Importance.run`` computes it.

The sanity columns compare each method's log-evidence estimate (mean over a few separate
calls) with the analytic value: x ~ N(0, I + 11^T), so
log p(x) = -n/2 log 2 pi - 1/2 log(1 + n) - 1/2 (sum x_i^2 - (sum x_i)^2 / (1 + n)).
"""

import math
import statistics

import pyro
import pyro.distributions as pdist
import pyro.infer
import torch
from pyro import poutine
from pyro.infer.importance import vectorized_importance_weights

import ppl
import ppl.distributions as dist
from inference import Importance

from .common import (
    Method,
    fmt_ms,
    fmt_rate,
    log,
    markdown_table,
    paired_ratio,
    ratio_table,
    settings,
    synchronizer,
    time_interleaved,
)

N_OBS, K, K_PYRO_SEQ = 100, 10_000, 200
MU_TRUE, DATA_SEED = 1.0, 0
TARGET = 1.2  # issue 17 (was 1.5)


def make_data(device):
    gen = torch.Generator().manual_seed(DATA_SEED)
    return (MU_TRUE + torch.randn(N_OBS, generator=gen)).to(device)


def analytic_log_evidence(x):
    x = x.double().cpu()
    n = x.numel()
    quad = float((x * x).sum() - x.sum() ** 2 / (1 + n))
    return -0.5 * n * math.log(2 * math.pi) - 0.5 * math.log(1 + n) - 0.5 * quad


def ppl_model(x):
    mu = ppl.sample("mu", dist.Normal(x.new_zeros(()), x.new_ones(())))
    with ppl.plate("data", x.shape[0]):
        ppl.sample("x", dist.Normal(mu, 1.0), obs=x)


def pyro_model(x):
    mu = pyro.sample("pyro_mu", pdist.Normal(x.new_zeros(()), x.new_ones(())))
    with pyro.plate("pyro_data", x.shape[0], device=x.device):
        pyro.sample("pyro_x", pdist.Normal(mu, 1.0), obs=x)


pyro_prior = poutine.block(pyro_model, hide_types=["observe"])


def ours(x):
    importance = Importance(ppl_model, num_particles=K)

    def call():
        return importance.run(x).log_evidence

    return call


def hand(x):
    log_K = math.log(K)

    def call():
        with torch.no_grad():
            mu = torch.randn(K, device=x.device)
            log_w = torch.distributions.Normal(mu[:, None], 1.0).log_prob(x).sum(-1)
            return (torch.logsumexp(log_w, 0) - log_K).item()

    return call


def pyro_sequential(x):
    def call():
        importance = pyro.infer.Importance(pyro_model, num_samples=K_PYRO_SEQ)
        importance.run(x)
        return importance.get_log_normalizer().item()

    return call


def pyro_vectorized(x):
    log_K = math.log(K)

    def call():
        with torch.no_grad():
            log_w, _, _ = vectorized_importance_weights(pyro_model, pyro_prior, x, num_samples=K,
                                                        max_plate_nesting=1)
            return (torch.logsumexp(log_w, 0) - log_K).item()

    return call


def bench_importance(quick=False, device="cpu"):
    s = settings(quick, full=(30, 5, 3), small=(3, 2, 1))
    pyro.clear_param_store()
    x = make_data(device)
    exact = analytic_log_evidence(x)
    methods = [
        Method(f"ours: Importance(num_particles={K})", ours(x), K),
        Method(f"hand-written torch ({K})", hand(x), K),
        Method(f"pyro: vectorized_importance_weights ({K})", pyro_vectorized(x), K),
        Method(f"pyro: Importance(num_samples={K_PYRO_SEQ}), sequential", pyro_sequential(x),
               K_PYRO_SEQ),
    ]
    ours_m, hand_m, pyro_vec, pyro_seq = methods
    torch.manual_seed(0)
    estimates = {m.name: [m.call() for _ in range(2 if quick else 10)] for m in methods}
    log(f"importance: {s.rounds} rounds x {s.steps} calls, {s.warmup} warm-up calls")
    time_interleaved(methods, s.rounds, s.steps, s.warmup, synchronizer(device), log)

    rows = []
    for m in methods:
        est = estimates[m.name]
        mean = statistics.fmean(est)
        sd = statistics.stdev(est) if len(est) > 1 else float("nan")
        rows.append([m.name, f"{int(m.units_per_call)}", fmt_ms(m.median),
                     f"[{fmt_ms(m.minimum)}, {fmt_ms(m.maximum)}]", fmt_rate(m.throughput),
                     str(paired_ratio(m, hand_m)), f"{mean:.3f} ± {sd:.3f}", f"{mean - exact:+.3f}"])
    table = markdown_table(
        ["method", "particles/call", "ms/call (median)", "ms/call [min, max]", "particles/s",
         "time per particle vs hand: median [min, max]", "log evidence (mean ± sd)",
         "minus analytic"], rows)
    ratios = ratio_table(
        [("ours / hand-written", paired_ratio(ours_m, hand_m), TARGET),
         ("pyro vectorized / hand-written", paired_ratio(pyro_vec, hand_m), None),
         ("pyro sequential / hand-written", paired_ratio(pyro_seq, hand_m), None),
         ("ours / pyro vectorized", paired_ratio(ours_m, pyro_vec), None),
         ("ours / pyro sequential", paired_ratio(ours_m, pyro_seq), None)],
        what="time per particle")
    sanity = (
        f"Analytic log evidence: {exact:.3f} (n = {N_OBS}, data drawn with mu = {MU_TRUE}). "
        f"Log-evidence columns: mean ± sd over {len(next(iter(estimates.values())))} separate "
        f"calls, outside the timed rounds; Pyro's sequential sampler uses {K_PYRO_SEQ} particles "
        f"per call, hence its larger spread.")
    protocol = (
        f"{s.rounds} interleaved rounds x {s.steps} calls after {s.warmup} warm-up calls per "
        f"method; the ratios compare time per particle within each round (so the sequential "
        f"sampler's {K_PYRO_SEQ} particles are scaled to {K}).")
    notes = [sanity, protocol]
    return "\n\n".join([f"### Importance sampling, Normal-Normal (n = {N_OBS}, prior proposal)",
                        table, ratios] + notes)


BENCHMARKS = {"importance": bench_importance}
