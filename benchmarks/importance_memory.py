"""Memory-bounded importance sampling: 10^7 particles on 1,000 observations.

Vectorised at once, one [10^7, 1000] float32 tensor alone is 40 GB; ``Importance`` runs
the particles in chunks under ``max_memory`` (256 MiB by default) and pools the weights
exactly. With the exact posterior as proposal every weight equals p(x), so the estimate
must match the closed form up to float32 rounding. Reports time, chunk size and the
process's peak resident memory (which includes the interpreter and libraries).
"""

import resource
import time

import torch

import ppl
import ppl.distributions as dist
from inference import Importance
from models.conjugate import normal_normal_log_evidence, normal_normal_model, normal_normal_posterior

from .common import log, markdown_table


def bench_importance_memory(quick=False, device="cpu"):
    n, particles = 1000, (10 ** 6 if quick else 10 ** 7)
    x = 0.5 + torch.randn(n, generator=torch.Generator().manual_seed(0))
    loc, scale = normal_normal_posterior(x)

    def posterior(x):
        ppl.sample("mu", dist.Normal(loc, scale))

    exact = normal_normal_log_evidence(x)
    start = time.perf_counter()
    imp = Importance(normal_normal_model, posterior, num_particles=particles, rng_seed=0)
    result = imp.run(x)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    log(f"importance_memory: {particles} particles in {seconds:.1f} s")
    table = markdown_table(
        ["particles", "observations", "chunk size", "seconds", "peak RSS (MB)", "log p(x)", "exact",
         "difference"],
        [[f"{particles:,}", f"{n:,}", f"{imp.chunk_size:,}", f"{seconds:.1f}", f"{peak:.0f}",
          f"{result.log_evidence:.5f}", f"{exact:.5f}", f"{result.log_evidence - exact:.1e}"]])
    return "\n\n".join(["### Importance sampling in bounded memory", table])


BENCHMARKS = {"importance_memory": bench_importance_memory}
