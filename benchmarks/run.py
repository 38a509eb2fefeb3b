"""Run the benchmarks and print their tables as markdown on stdout (progress on stderr).

    python -m benchmarks.run                  # full run (several minutes)
    python -m benchmarks.run --quick          # smoke test: few repetitions, well under a minute
    python -m benchmarks.run --only vae_elbo  # one benchmark (or a module: vae_step, importance)
    python -m benchmarks.run --device cuda    # on the GPU (skipped when CUDA is unavailable)
    python -m benchmarks.run --threads 1      # torch.set_num_threads(1) (default: torch's own)
"""

import argparse
import datetime
import os
import sys
import time

import torch

from . import (
    causal,
    discrete_vae,
    enumeration,
    gflownet,
    grammar,
    importance,
    importance_memory,
    jax_gflownet,
    jax_queries,
    jax_vae_step,
    mcmc,
    mixture_em,
    smc,
    state_swap,
    subsample,
    trice,
    vae_step,
)
from .common import load_average, log, machine_description, markdown_table, resolve_device

MODULES = {"vae_step": vae_step, "importance": importance, "causal": causal,
           "gflownet": gflownet, "mixture_em": mixture_em, "grammar": grammar,
           "discrete_vae": discrete_vae, "enumeration": enumeration, "subsample": subsample,
           "importance_memory": importance_memory, "jax_vae_step": jax_vae_step,
           "jax_gflownet": jax_gflownet, "jax_queries": jax_queries, "state_swap": state_swap, "mcmc": mcmc,
           "smc": smc, "trice": trice}
BENCHMARKS = {name: (module_name, fn) for module_name, module in MODULES.items()
              for name, fn in module.BENCHMARKS.items()}


def select(only):
    """Benchmark names matching ``--only`` (a benchmark or a module name)."""
    if not only:
        return list(BENCHMARKS)
    chosen = []
    for item in only:
        names = [n for n, (module, _) in BENCHMARKS.items() if item in (n, module)]
        if not names:
            known = sorted(set(BENCHMARKS) | set(MODULES))
            raise SystemExit(f"--only: unknown benchmark {item!r}; choose from {known}")
        chosen += [n for n in names if n not in chosen]
    return chosen


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few repetitions (smoke test)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads(N) (default: torch's own default)")
    parser.add_argument("--only", action="append", metavar="NAME",
                        help=f"run only this benchmark or module (repeatable): "
                             f"{', '.join(list(BENCHMARKS) + list(MODULES))}")
    args = parser.parse_args(argv)
    names = select(args.only)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if device is None:
        return 0

    command = " ".join(["python -m benchmarks.run", *(sys.argv[1:] if argv is None else argv)])
    started = time.perf_counter()
    out = [
        "## Benchmarks",
        f"Date: {datetime.date.today().isoformat()}. Command: `{command}`"
        + (" (quick: repetition counts too small for conclusions)" if args.quick else ""),
        markdown_table(["machine", ""], machine_description(device), align="ll"),
    ]
    print("\n\n".join(out), flush=True)
    for name in names:
        _, fn = BENCHMARKS[name]
        log(f"running {name} ...")
        t0 = time.perf_counter()
        section = fn(quick=args.quick, device=device)
        log(f"{name} done in {time.perf_counter() - t0:.1f} s")
        print("\n" + section + f"\n\nLoad average after this benchmark: {load_average()} "
              f"(on {os.cpu_count()} logical cpus).", flush=True)
    log(f"all done in {time.perf_counter() - started:.1f} s (torch threads: "
        f"{torch.get_num_threads()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
