"""Where a ``VI(ELBO())`` VAE step spends its time, next to the hand-written step (cProfile).

    python -m benchmarks.profile_step            # the benchmark's 784-256-20 VAE
    python -m benchmarks.profile_step --tiny     # 4-4-2 networks, batch 2: the fixed per-step
                                                 # overhead, with the tensor work made negligible

Prints (1) the minimum time per step of ours and of the hand-written step, both with fused
Adam and one thread, timed without the profiler, and (2) a per-step breakdown of the
framework's functions and the top functions by own time under cProfile.
"""

import argparse
import cProfile
import pstats

import torch

from . import vae_step as v
from .common import Method, time_interleaved

# (file suffix, function name) of the framework's entry points, in call order
BREAKDOWN = [
    ("inference/vi/variational.py", "step"), ("inference/engines/torch.py", "step"),
    ("inference/vi/variational.py", "_surrogate"), ("inference/vi/variational.py", "_traces"),
    ("ppl/backends/torch/backend.py", "run"), ("pyro/poutine/runtime.py", "apply_stack"),
    ("ppl/backends/torch/plate.py", "_broadcast"), ("ppl/backends/torch/primitives.py", "_module"),
    ("ppl/backends/torch/recorder.py", "to_trace"), ("inference/weights.py", "total_log_weight"),
    ("inference/weights.py", "reduce"), ("ppl/backends/torch/recorder.py", "_site_log_prob"),
    ("torch/distributions/independent.py", "log_prob"),
    ("torch/distributions/utils.py", "_sum_rightmost"),
    ("pyro/distributions/torch_distribution.py", "to_event"),
    ("pyro/distributions/util.py", "scale_and_mask"), ("inference/vi/objectives.py", "loss"),
    ("inference/engines/torch.py", "discover"), ("torch/_tensor.py", "backward"),
    ("torch/optim/optimizer.py", "wrapper"),
]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_step")
    parser.add_argument("--tiny", action="store_true", help="4-4-2 networks, batch 2")
    parser.add_argument("--steps", type=int, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.tiny:
        v.X_DIM, v.H_DIM, v.Z_DIM, v.BATCH = 4, 4, 2, 2
    steps = args.steps or (2000 if args.tiny else 300)
    x = v._setup("cpu")
    ours = Method("ours: VI(ELBO())", v.ours_step(x, v.ELBO(), "cpu"))
    hand = Method("hand-written, Adam(fused=True)", v.hand_elbo_step(x, "cpu", fused=True))
    time_interleaved([ours, hand], 20, max(1, steps // 40), 10)
    print(f"min time per step (1 thread, no profiler): {ours.name} {1e6 * ours.minimum:.0f} us, "
          f"{hand.name} {1e6 * hand.minimum:.0f} us, difference "
          f"{1e6 * (ours.minimum - hand.minimum):+.0f} us")
    for method in (ours, hand):
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(steps):
            method.call()
        profiler.disable()
        stats = pstats.Stats(profiler)
        print(f"\n== {method.name}: {steps} steps under cProfile "
              f"({1e6 * stats.total_tt / steps:.0f} us/step with profiling overhead)")
        if method is ours:
            print(f"{'function':58s} {'calls/step':>10s} {'cum us/step':>12s} {'own us/step':>12s}")
            for suffix, name in BREAKDOWN:
                for (path, _, fn), (_, calls, own, cum, _) in stats.stats.items():
                    if fn == name and path.endswith(suffix):
                        print(f"{suffix + ':' + name:58s} {calls / steps:10.1f} "
                              f"{1e6 * cum / steps:12.1f} {1e6 * own / steps:12.1f}")
                        break
        stats.sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
