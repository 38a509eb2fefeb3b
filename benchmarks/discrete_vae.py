"""Discrete VAE on binarised 8x8 digits: test log-likelihood of the same decoder trained by
GFlowNet-EM, by ``VI`` + ``IWAE(50)`` with a mean-field encoder (score-function gradient),
and by ``VI`` with a Gumbel-softmax relaxed mean-field encoder (the GFlowNet-EM paper's
discrete-VAE comparison, on scikit-learn's digits instead of static MNIST).

Model: :class:`models.discrete_vae.DiscreteVAE`, a 4 x 4 grid of codes with K values each
(uniform prior) and an MLP decoder. Every method trains the same decoder architecture from
the same initialisation for the same budget of CPU time (process time, so that other
tenants of a shared machine do not eat into it) on minibatches of 64 of the 1,438 training
images. GFlowNet-EM's sampler is its default autoregressive MLP policy conditioned on x (no
conditional independence between codes); the baselines' encoders are mean-field.

Test log-likelihood: per test image (359), log p(x) estimated by importance sampling with
the method's own proposal (GFlowNet-EM's sampler, as in ``GFlowNetEM.evaluate`` but per
image; ``Importance`` with the encoder for the others), 1,000 draws per image. The table
gives the mean over test images with its standard error across images, and the paired
difference of GFlowNet-EM to each baseline (same images) with its standard error.

    python -m benchmarks.discrete_vae              # K = 4 (about 4 minutes on an idle core)
    python -m benchmarks.discrete_vae --quick      # seconds: a smoke test
    python -m benchmarks.discrete_vae --k 4 8      # several K
"""

import argparse
import math
import statistics
import sys
import time

import pyro
import torch

from inference import ELBO, IWAE, VI, Adam, GFlowNetEM, Importance
from models.data import load_binarized_digits, minibatches
from models.discrete_vae import DiscreteVAE

from .common import load_average, log, markdown_table

NUM_CODES, HIDDEN, BATCH = 16, 200, 64
FULL = {"seconds": 60.0, "samples": 1000, "test": None}
QUICK = {"seconds": 2.0, "samples": 50, "test": 20}
# GFlowNet-EM settings (see the tuning notes in the report): policy width and learning
# rate, trajectories per image per update, the sleep phase of the paper (weight 10 with
# probability 0.3 per update), importance-reweighted M-step.
GFN = {"hidden": 128, "num_trajectories": 8, "lr": 3e-3, "model_lr": 1e-2, "sleep": 10.0,
       "sleep_probability": 0.3, "m_step": "reweighted", "temperature": 1.0}
VI_LR = 3e-3  # the best of 1e-3, 3e-3 and 1e-2 for IWAE(50) in 60 CPU s
GUMBEL_ANNEAL = 1e-3


# ------------------------------------------------------------------ training
def _batches(x, seed):
    """Endless seeded epochs of minibatches."""
    epoch = 0
    while True:
        yield from minibatches(x, BATCH, seed=seed + epoch, drop_last=True)
        epoch += 1


def _train(step, x, seconds, seed):
    """Call ``step(batch)`` on minibatches until this process has used ``seconds`` of CPU
    time (a compute budget that other tenants of a shared machine do not eat into);
    returns (steps, CPU seconds, wall-clock seconds)."""
    batches = _batches(x, seed)
    start, wall, steps = time.process_time(), time.perf_counter(), 0
    while time.process_time() - start < seconds:
        step(next(batches))
        steps += 1
    return steps, time.process_time() - start, time.perf_counter() - wall


def _fresh(k, one_hot=False, seed=0):
    """A new DiscreteVAE with the same initial weights for every method."""
    pyro.clear_param_store()
    torch.manual_seed(seed)
    vae = DiscreteVAE(NUM_CODES, k, hidden=HIDDEN, one_hot=one_hot)
    torch.manual_seed(seed + 1)
    return vae


def train_gflownet(x, k, seconds, seed=0, **options):
    """GFlowNet-EM (``GFN`` settings, overridden by ``options``); returns
    (em, model, (steps, CPU s, wall s))."""
    opts = {**GFN, **options}
    vae = _fresh(k, seed=seed)
    em = GFlowNetEM(
        vae.model, hidden=opts["hidden"], num_trajectories=opts["num_trajectories"],
        optimizer=Adam(lr=opts["lr"]), model_optimizer=Adam(lr=opts["model_lr"]),
        sleep=opts["sleep"], sleep_probability=opts["sleep_probability"],
        m_step=opts["m_step"], temperature=opts["temperature"])
    return em, vae, _train(em.step, x, seconds, seed)


def train_vi(x, k, seconds, kind, seed=0, lr=VI_LR, anneal=GUMBEL_ANNEAL):
    """VI with the mean-field encoder: ``kind="score"`` (IWAE(50), score function) or
    ``"gumbel"`` (ELBO on the Concrete relaxation, temperature max(0.5, exp(-anneal t))
    at step t, as in Jang et al. 2017)."""
    vae = _fresh(k, one_hot=kind == "gumbel", seed=seed)
    if kind == "score":
        vi = VI(vae.model, vae.guide, IWAE(50), Adam(lr), estimators=vae.estimators("score"))
    else:
        def tau(t):
            return max(0.5, math.exp(-anneal * t))

        vi = VI(vae.model, vae.guide, ELBO(), Adam(lr), estimators=vae.estimators("gumbel", temperature=tau))
    return vi, vae, _train(vi.step, x, seconds, seed)


# ---------------------------------------------------------------- evaluation
def test_log_likelihoods_gflownet(em, x, samples, chunk=8):
    """Per-image log p(x) estimates with the GFlowNet sampler as proposal."""
    parts = [em.evaluate(x[i:i + chunk], num_samples=samples, per_element=True)
             for i in range(0, len(x), chunk)]
    return torch.cat(parts).tolist()


def test_log_likelihoods_guide(vae, x, samples):
    """Per-image log p(x) estimates with ``Importance`` and the encoder as proposal."""
    out = []
    for i in range(len(x)):
        result = Importance(vae.model, vae.guide, num_particles=samples, rng_seed=i).run(x[i:i + 1])
        out.append(result.log_evidence)
    return out


def mean_and_stderr(values):
    return statistics.fmean(values), statistics.stdev(values) / math.sqrt(len(values))


# ------------------------------------------------------------------- report
def run_k(k, train, test, cfg, seed=0):
    """Train and evaluate the three methods for one K; returns table rows and a verdict."""
    results = {}
    log(f"discrete_vae K={k}: GFlowNet-EM for {cfg['seconds']:.0f} CPU s ...")
    em, vae, budget = train_gflownet(train, k, cfg["seconds"], seed)
    results["GFlowNet-EM (autoregressive policy)"] = (
        budget, test_log_likelihoods_gflownet(em, test, cfg["samples"]))
    log(f"discrete_vae K={k}: VI + IWAE(50), score function ...")
    vi, vae, budget = train_vi(train, k, cfg["seconds"], "score", seed)
    results["VI + IWAE(50), mean-field, score function"] = (
        budget, test_log_likelihoods_guide(vae, test, cfg["samples"]))
    log(f"discrete_vae K={k}: VI, Gumbel-softmax ...")
    vi, vae, budget = train_vi(train, k, cfg["seconds"], "gumbel", seed)
    results["VI, mean-field, Gumbel-softmax relaxation"] = (
        budget, test_log_likelihoods_guide(vae, test, cfg["samples"]))
    reference = next(iter(results.values()))[1]
    rows, verdicts = [], []
    for name, ((steps, cpu, wall), values) in results.items():
        mean, se = mean_and_stderr(values)
        if values is reference:
            diff = "-"
        else:
            d_mean, d_se = mean_and_stderr([a - b for a, b in zip(reference, values)])
            diff = f"{d_mean:+.2f} ± {d_se:.2f}"
            verdicts.append((name, d_mean, d_se))
        rows.append([name, k, f"{cpu:.0f} / {wall:.0f}", steps, f"{mean:.2f} ± {se:.2f}", diff])
    return rows, verdicts


def bench_discrete_vae(quick=False, device="cpu", ks=(4,)):
    """The benchmark's markdown section."""
    if torch.device(device).type != "cpu":
        return "### Discrete VAE on digits\n\nRuns on the CPU only (skipped)."
    cfg = QUICK if quick else FULL
    train = load_binarized_digits("train")
    test = load_binarized_digits("test")
    if cfg["test"] is not None:
        test = test[:cfg["test"]]
    rows, lines = [], []
    for k in ks:
        k_rows, verdicts = run_k(k, train, test, cfg)
        rows += k_rows
        for name, d_mean, d_se in verdicts:
            if d_mean > 2 * d_se:
                word = "better than"
            elif d_mean < -2 * d_se:
                word = "worse than"
            else:
                word = "not distinguishable (within 2 s.e.) from"
            lines.append(f"- K={k}: GFlowNet-EM is {word} {name}: paired difference "
                         f"{d_mean:+.2f} ± {d_se:.2f} nats per test image.")
    table = markdown_table(["method", "K", "training CPU s / wall s", "steps", "test log-lik. (nats/image)",
                            "GFlowNet-EM minus this"], rows, align="lrrrrr")
    note = (f"{len(test)} test images, {cfg['samples']} importance samples per image from each "
            f"method's own proposal; ± is the standard error across test images (it includes "
            f"the Monte-Carlo error). Each method trained for {cfg['seconds']:.0f} s of CPU time "
            f"(torch threads: {torch.get_num_threads()}) on minibatches of {BATCH} (same "
            f"decoder: {NUM_CODES} codes -> {HIDDEN} ReLU -> 64 logits, same initial weights, "
            f"uniform prior). GFlowNet-EM: {GFN}. VI: "
            f"Adam({VI_LR}); Gumbel temperature max(0.5, exp(-{GUMBEL_ANNEAL} t)). Load average: "
            f"{load_average()}.")
    return "\n\n".join(["### Discrete VAE on digits: test log-likelihood", table,
                        "\n".join(lines), note])


BENCHMARKS = {"discrete_vae": bench_discrete_vae}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--k", type=int, nargs="+", default=[4])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(bench_discrete_vae(args.quick, ks=tuple(args.k)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
