"""SMC through ``inference.SMC`` against a hand-written bootstrap filter on the same discrete
HMM (``models.state_space``: three states, Normal emissions, 50 steps), on torch.

Both sides resample multinomially where the ESS falls below half the particles and return
the log evidence; the table gives the time per particle-step (a sweep's time over K * T)
and each side's log evidence beside the forward algorithm's. Pyro's ``SMCFilter`` needs the
model rewritten as a class with ``init`` and ``step`` and keeps no evidence, and NumPyro
has no SMC, so the hand-written filter is the reference.
"""

import math

import numpy as np
import torch

from inference import SMC
from models.state_space import INITIAL, LOCS, SCALE, TRANSITION, forward_algorithm, hmm_data, hmm_model

from .common import Method, markdown_table, paired_ratio, time_interleaved, verdict

TARGET = 1.5  # ours / the hand-written filter, per particle-step (issue 18)
STEPS = 50
FULL, SMALL = (7, 5, (1000, 10000)), (2, 2, (1000,))  # (rounds, sweeps per round, particle counts)


def bootstrap_filter(ys, num_particles, threshold=0.5):
    """The HMM's bootstrap particle filter written by hand: its log evidence."""
    initial = torch.tensor(INITIAL, dtype=torch.float32)
    transition = torch.tensor(TRANSITION, dtype=torch.float32)
    locs = torch.tensor(LOCS, dtype=torch.float32)
    K = num_particles
    log_w, log_z, z = torch.zeros(K), 0.0, None
    for t in range(len(ys)):
        if z is not None:
            total = torch.logsumexp(log_w, 0)
            if torch.exp(2 * total - torch.logsumexp(2 * log_w, 0)) < threshold * K:
                index = torch.multinomial(torch.exp(log_w - total), K, replacement=True)
                z, log_z, log_w = z[index], log_z + float(total) - math.log(K), torch.zeros(K)
        probs = initial.expand(K, 3) if z is None else transition[z]
        z = torch.distributions.Categorical(probs).sample()
        log_w = log_w + torch.distributions.Normal(locs[z], SCALE).log_prob(ys[t])
    return log_z + float(torch.logsumexp(log_w, 0)) - math.log(K)


def bench_torch(quick=False, device="cpu"):
    if str(device) != "cpu":
        return f"(skipped: the SMC benchmark runs on the CPU, not {device})"
    rounds, sweeps, counts = SMALL if quick else FULL
    ys = hmm_data(STEPS, seed=0)
    exact = forward_algorithm(ys)[0]
    rows, notes = [], []
    for K in counts:
        torch.manual_seed(0)
        smc = SMC(hmm_model, num_particles=K, rng_seed=0)
        estimates = {"ours": [], "hand": []}
        ours = Method("ours", lambda: estimates["ours"].append(smc.step(ys).log_evidence), K * STEPS)
        hand = Method("hand", lambda: estimates["hand"].append(bootstrap_filter(ys, K)), K * STEPS)
        time_interleaved([ours, hand], rounds, sweeps, warmup=1)
        ratio = paired_ratio(ours, hand)
        for m in (ours, hand):
            values = np.array(estimates[m.name])
            rows.append([f"{m.name}, K = {K}", f"{1e9 * m.median / m.units_per_call:.1f}",
                         f"{values.mean():.3f} +- {values.std(ddof=1):.3f}", f"{exact:.3f}"])
        notes.append(f"K = {K}: ours / hand-written, per particle-step: {ratio} "
                     f"(target <= {TARGET}: {verdict(ratio, TARGET)})")
    table = markdown_table(["method", "ns per particle-step", "log evidence (mean +- sd over sweeps)",
                            "forward algorithm"], rows)
    return "\n\n".join([f"### SMC on torch, discrete HMM ({STEPS} steps)", table, "\n".join(notes)])


BENCHMARKS = {"smc_torch": bench_torch}
