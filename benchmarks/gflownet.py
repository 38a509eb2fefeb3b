"""Sampler training throughput of GFlowNet-EM: ``GFlowNetEM.e_step`` against the same
trajectory-balance update written by hand in torch.

Model: the hierarchical 2-D mixture (4 super-clusters x 4 petals, sd 0.25) on 256 points; 16
trajectories per point per update (4,096 trajectories), the same MLP policy architecture
and Adam(lr=1e-3) on both sides.
"""

import pyro
import torch

from inference import Adam, GFlowNetEM
from inference.gflownet import MLPPolicy
from models.hierarchical_mixture import (
    SD,
    TRUE_MEANS,
    component_means,
    hierarchical_mixture_data,
    hierarchical_mixture_model,
)

from .common import (
    Method,
    fmt_ms,
    fmt_rate,
    log,
    markdown_table,
    paired_ratio,
    ratio_table,
    settings,
    time_interleaved,
)

N, TRAJECTORIES, HIDDEN = 256, 16, 64
TARGET = 1.2
LOG_16 = float(torch.log(torch.tensor(16.0)))


def ours(x):
    pyro.clear_param_store()
    torch.manual_seed(0)
    em = GFlowNetEM(hierarchical_mixture_model, m_step=None, hidden=HIDDEN,
                    optimizer=Adam(lr=1e-3), num_trajectories=TRAJECTORIES)
    em.e_step(x)
    return lambda: em.e_step(x)


def hand(x):
    torch.manual_seed(0)
    policy = MLPPolicy(2, 8, 2, 4, HIDDEN)
    opt = torch.optim.Adam(policy.parameters(), lr=1e-3)
    means = component_means(TRUE_MEANS)  # the model's default initialisation
    features = x.repeat(TRAJECTORIES, 1)
    n = features.shape[0]
    rows = torch.arange(n)

    def step():
        state = features.new_zeros(n, 8)
        log_pf = features.new_zeros(n)
        actions = []
        for t in range(2):
            log_probs = policy(features, state, t)[:, :4].log_softmax(-1)
            a = torch.multinomial(log_probs.detach().exp(), 1).squeeze(-1)
            log_pf = log_pf + log_probs.gather(-1, a.unsqueeze(-1)).squeeze(-1)
            state = state.clone()
            state[rows, 4 * t + a] = 1.0
            actions.append(a)
        with torch.no_grad():
            mu = means[actions[0], actions[1]]
            log_r = torch.distributions.Normal(mu, SD).log_prob(features).sum(-1) - LOG_16
        loss = ((policy.log_partition(features) + log_pf - log_r) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    return step


def bench_gflownet_tb(quick=False, device="cpu"):
    s = settings(quick, full=(20, 10, 3), small=(3, 3, 1))
    x = hierarchical_mixture_data(N, seed=0)
    trajectories = N * TRAJECTORIES
    methods = [Method("ours: GFlowNetEM.e_step", ours(x), trajectories),
               Method("hand-written torch TB update", hand(x), trajectories)]
    log(f"gflownet: {s.rounds} rounds x {s.steps} updates, {s.warmup} warm-up updates")
    time_interleaved(methods, s.rounds, s.steps, s.warmup, None, log)
    rows = [[m.name, fmt_ms(m.median), f"[{fmt_ms(m.minimum)}, {fmt_ms(m.maximum)}]",
             fmt_rate(m.throughput)] for m in methods]
    table = markdown_table(["method", "ms/update (median)", "ms/update [min, max]",
                            "trajectories/s"], rows)
    ratios = ratio_table([("ours / hand-written", paired_ratio(*methods), TARGET)],
                         what="time per trajectory")
    note = (f"{N} points x {TRAJECTORIES} trajectories per update, 2 steps each (super-cluster, "
            f"component), MLP policy with {HIDDEN} hidden units; {s.rounds} interleaved rounds x "
            f"{s.steps} updates after {s.warmup} warm-up updates.")
    return "\n\n".join(["### GFlowNet-EM: trajectory-balance update throughput", table, ratios, note])


BENCHMARKS = {"gflownet_tb": bench_gflownet_tb}
