"""NUTS through ``inference.MCMC`` against the peers' own samplers on the same model (eight
schools, centred), in wall time (compilation included: every call builds its sampler, as a
user's script does) and in effective draws per second.

* ``mcmc_jax``: ours on JAX against NumPyro's ``MCMC(NUTS(model))``.
* ``mcmc_torch``: ours on torch against Pyro's ``MCMC(NUTS(model, jit_compile=True))``.

Both sides run one chain of ``num_warmup + num_samples`` steps from their own seeds, after
one untimed run of the peer (the process's first use of JAX or TorchScript); the
ESS is the smallest bulk ESS over the sites (``inference.mcmc.diagnostics``, the same code for
both sides), so "ESS/s" compares how fast each yields usable draws.
"""

import time
import warnings

import numpy as np

import ppl
import ppl.distributions as dist
from inference import MCMC
from inference.mcmc.diagnostics import ess_bulk

from .common import markdown_table

Y = [28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0]
SIGMA = [15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0]
TARGET = 1.05  # ours / the peer's own sampler (issue 18)
FULL, SMALL = (3, 1000, 1000), (2, 100, 100)  # (paired rounds, warm-up steps, draws)


def eight_schools(y, sigma):
    mu = ppl.sample("mu", dist.Normal(0.0, 5.0))
    tau = ppl.sample("tau", dist.HalfCauchy(5.0))
    with ppl.plate("schools", len(Y)):
        theta = ppl.sample("theta", dist.Normal(mu, tau))
        ppl.sample("y", dist.Normal(theta, sigma), obs=y)


def _min_ess(draws):
    """The smallest bulk ESS over every scalar of every site (draws: name -> [1, n, ...])."""
    out = []
    for v in draws.values():
        flat = np.asarray(v, dtype=np.float64).reshape(v.shape[0], v.shape[1], -1)
        out += [ess_bulk(flat[..., i]) for i in range(flat.shape[-1])]
    return min(out)


def _timed(call):
    start = time.perf_counter()
    draws = call()
    seconds = time.perf_counter() - start
    return seconds, _min_ess(draws)


def _ours(backend, y, sigma, warmup, samples, seed):
    def call():
        with ppl.backend(backend), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # divergences: counted, not timed
            result = MCMC(eight_schools, num_warmup=warmup, num_samples=samples,
                          rng_seed=seed).run(y, sigma, progress=False)
        return {n: v for n, v in result.by_chain.items()}
    return call


def _numpyro(y, sigma, warmup, samples, seed):
    import jax
    from numpyro.infer import MCMC as NumPyroMCMC, NUTS

    def call():
        with ppl.backend("jax"):
            mcmc = NumPyroMCMC(NUTS(eight_schools), num_warmup=warmup, num_samples=samples,
                               progress_bar=False)
            mcmc.run(jax.random.PRNGKey(seed), y, sigma)
            return {n: np.asarray(v) for n, v in mcmc.get_samples(group_by_chain=True).items()}
    return call


def _pyro(y, sigma, warmup, samples, seed):
    import torch
    from pyro.infer import MCMC as PyroMCMC, NUTS

    def call():
        torch.manual_seed(seed)
        mcmc = PyroMCMC(NUTS(eight_schools, jit_compile=True, ignore_jit_warnings=True),
                        num_samples=samples, warmup_steps=warmup, disable_progbar=True)
        mcmc.run(y, sigma)
        return {n: v.numpy()[None] for n, v in mcmc.get_samples().items()}
    return call


def _compare(title, ours, peer, peer_name, rounds):
    rows, ratios = [], []
    results = {"ours": [], peer_name: []}
    peer()  # untimed: the process's first use of the library's operations is neither's cost
    for r in range(rounds):  # interleaved, the order alternating
        pair = [("ours", ours), (peer_name, peer)]
        for name, call in (pair if r % 2 == 0 else pair[::-1]):
            results[name].append(_timed(call))
        ratios.append(results["ours"][-1][0] / results[peer_name][-1][0])
    for name, runs in results.items():
        seconds = [s for s, _ in runs]
        rates = [e / s for s, e in runs]
        rows.append([name, f"{np.median(seconds):.2f}", f"[{min(seconds):.2f}, {max(seconds):.2f}]",
                     f"{np.median(rates):.2f}"])
    table = markdown_table(["method", "wall s (median)", "wall s [min, max]", "ESS/s (median)"], rows)
    ratio = float(np.median(ratios))
    verdict = "met" if ratio <= TARGET else "NOT met"
    note = (f"ours / {peer_name}, wall time: median {ratio:.3f} [{min(ratios):.3f}, "
            f"{max(ratios):.3f}] over {rounds} paired rounds (target <= {TARGET}: {verdict}).")
    return "\n\n".join([f"### {title}", table, note])


def bench_jax(quick=False, device="cpu"):
    if str(device) != "cpu":
        return f"(skipped: the JAX benchmarks run on the CPU build of jax here, not {device})"
    import jax.numpy as jnp

    rounds, warmup, samples = SMALL if quick else FULL
    y, sigma = jnp.asarray(Y), jnp.asarray(SIGMA)
    return _compare(f"NUTS on JAX, eight schools ({warmup} + {samples}, 1 chain)",
                    _ours("jax", y, sigma, warmup, samples, 0), _numpyro(y, sigma, warmup, samples, 0),
                    "numpyro: MCMC(NUTS)", rounds)


def bench_torch(quick=False, device="cpu"):
    import torch

    rounds, warmup, samples = SMALL if quick else FULL
    y, sigma = torch.tensor(Y), torch.tensor(SIGMA)
    return _compare(f"NUTS on torch, eight schools ({warmup} + {samples}, 1 chain)",
                    _ours("torch", y, sigma, warmup, samples, 0), _pyro(y, sigma, warmup, samples, 0),
                    "pyro: MCMC(NUTS(jit_compile=True))", rounds)


BENCHMARKS = {"mcmc_jax": bench_jax, "mcmc_torch": bench_torch}
