"""Subsampled plates: a VI step's cost follows the subsample, not the full plate.

Pyro's SVI tutorial part II model (a global mean, a local latent per data point, a guide
with per-point parameters indexed by the subsample), with N = 100,000 points. One
``VI(model, guide, ELBO()).step`` at subsample sizes 100 and 1,000 against the full plate,
and Pyro's ``SVI`` with ``Trace_ELBO`` at the same sizes, all interleaved in one run.
What stays proportional to N: the guide's per-point parameters (the optimiser updates
all N of them, as in Pyro) and Pyro's index draw (``randperm(N)``).
"""

import pyro
import pyro.infer
import pyro.optim
import torch

import ppl
import ppl.distributions as dist
from inference import ELBO, VI, Adam

from .common import Method, load_average, log, markdown_table, paired_ratio, time_interleaved

N = 100_000


def _programs(x, batch):
    def model(x):
        mu = ppl.sample("mu", dist.Normal(0.0, 10.0))
        with ppl.plate("data", N, subsample_size=batch) as ind:
            z = ppl.sample("z", dist.Normal(mu, 1.0))
            ppl.sample("x", dist.Normal(z, 0.5), obs=x[ind])

    def guide(x):
        loc = ppl.param("mu_loc", torch.tensor(0.0))
        ppl.sample("mu", dist.Normal(loc, 0.1))
        z_loc = ppl.param("z_loc", torch.zeros(N))
        with ppl.plate("data", N, subsample_size=batch) as ind:
            ppl.sample("z", dist.Normal(z_loc[ind], 0.5))

    return model, guide


def bench_subsample(quick=False, device="cpu"):
    if str(device) != "cpu":
        log("subsample: runs on the CPU only")
    torch.manual_seed(0)
    x = 2.0 + torch.randn(N)
    rounds, steps = (3, 5) if quick else (15, 20)
    methods = []
    for batch in (100, 1000, N):
        model, guide = _programs(x, batch)
        vi = VI(model, guide, ELBO(), Adam(lr=0.01), rng_seed=0)
        methods.append(Method(f"ours, subsample {batch}", lambda vi=vi: vi.step(x)))
        pyro.clear_param_store()
        svi = pyro.infer.SVI(model, guide, pyro.optim.Adam({"lr": 0.01}), pyro.infer.Trace_ELBO())
        methods.append(Method(f"Pyro SVI, subsample {batch}", lambda svi=svi: svi.step(x)))
    start_load = load_average()
    time_interleaved(methods, rounds, steps, log=log)
    ours = {m.name: m for m in methods}
    rows = []
    for batch in (100, 1000):
        for who in ("ours", "Pyro SVI"):
            sub, full = ours[f"{who}, subsample {batch}"], ours[f"{who}, subsample {N}"]
            rows.append([who, f"{batch:,}", f"{1e3 * sub.median:.2f}", f"{1e3 * full.median:.2f}",
                         str(paired_ratio(sub, full)), f"{batch / N:.3f}"])
        rows.append(["ours / Pyro", f"{batch:,}", "", "",
                     str(paired_ratio(ours[f'ours, subsample {batch}'],
                                      ours[f'Pyro SVI, subsample {batch}'])), ""])
    table = markdown_table(["method", "subsample", "ms / step", f"full plate ({N:,}) ms / step",
                            "subsample / full, median [min, max]", "subsample / N"], rows,
                           align="lrrrrr")
    note = (f"{rounds} rounds x {steps} steps, interleaved; load average at start {start_load}. "
            "The ratio to the full plate falls far below 1 but not to subsample / N: the "
            "optimiser still updates all N per-point guide parameters and Pyro draws the "
            "indices with randperm(N), in both libraries.")
    return "\n\n".join(["### Subsampled plates: step cost against the full plate", table, note])


BENCHMARKS = {"subsample": bench_subsample}
