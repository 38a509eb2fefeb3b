"""One VAE training step on JAX: ``inference.VI`` vs NumPyro's jit-compiled ``SVI.update``
vs a hand-written ``jax.jit`` step, and the time each takes to compile.

The model of ``vae_step.py`` (784-256-20 tanh MLPs, a batch of 128 synthetic binary images,
Adam(lr=1e-3)), written once with ``ppl.param`` weights: ``ppl`` primitives resolve to
NumPyro's on the JAX backend, so NumPyro's ``SVI`` runs the very same model and guide. The
hand-written step is the loss written out with ``jax.numpy`` and ``optax.adam``, compiled
with ``jax.jit``. Every method starts from the same weights.

* ``jax_vae_elbo``: the single-sample ELBO (``ELBO()``, ``Trace_ELBO()``).
* ``jax_vae_iwae``: the IWAE bound with K = 50 (``IWAE(50)``, ``RenyiELBO(alpha=0,
  num_particles=50)``), per datapoint.

"compile" is the wall time of each method's first step (tracing and XLA compilation, and
for ours the set-up's dry run), each in a fresh process of its own after JAX's start-up:
in one process, the method timed first also paid the compilations that every later one
reuses (about 1.3 s here).
"""

import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.scipy.special import logsumexp

import ppl
import ppl.distributions as dist
from inference import ELBO, IWAE, VI, Adam

from .common import Method, fmt_ms, log, markdown_table, paired_ratio, ratio_table, settings, time_interleaved

ROOT = Path(__file__).resolve().parent.parent
X_DIM, H_DIM, Z_DIM, BATCH = 784, 256, 20, 128
LR = 1e-3


def make_data():
    return jnp.asarray((np.random.default_rng(0).random((BATCH, X_DIM)) < 0.3).astype(np.float32))


def initial_weights():
    rng = np.random.default_rng(1)

    def dense(n_in, n_out):
        bound = 1 / np.sqrt(n_in)
        return (jnp.asarray(rng.uniform(-bound, bound, (n_in, n_out)).astype(np.float32)),
                jnp.asarray(rng.uniform(-bound, bound, (n_out,)).astype(np.float32)))

    weights = {}
    for name, (n_in, n_out) in {"enc1": (X_DIM, H_DIM), "enc2": (H_DIM, 2 * Z_DIM),
                                "dec1": (Z_DIM, H_DIM), "dec2": (H_DIM, X_DIM)}.items():
        weights[f"{name}_w"], weights[f"{name}_b"] = dense(n_in, n_out)
    return weights


def _mlp(x, w1, b1, w2, b2):
    return jnp.tanh(x @ w1 + b1) @ w2 + b2


def model(x):
    w = {n: ppl.param(n, v) for n, v in INITIAL.items() if n.startswith("dec")}
    with ppl.plate("batch", x.shape[0]):
        z = ppl.sample("z", dist.Normal(jnp.zeros(Z_DIM), 1.0).to_event(1))
        logits = _mlp(z, w["dec1_w"], w["dec1_b"], w["dec2_w"], w["dec2_b"])
        ppl.sample("x", dist.Bernoulli(logits=logits).to_event(1), obs=x)


def guide(x):
    w = {n: ppl.param(n, v) for n, v in INITIAL.items() if n.startswith("enc")}
    with ppl.plate("batch", x.shape[0]):
        out = _mlp(x, w["enc1_w"], w["enc1_b"], w["enc2_w"], w["enc2_b"])
        ppl.sample("z", dist.Normal(out[:, :Z_DIM], jnp.exp(out[:, Z_DIM:])).to_event(1))


INITIAL = initial_weights()


def _log_weights(params, x, eps):
    """log p(x, z) - log q(z | x) for z = loc + scale * eps; eps [..., B, Z]."""
    out = _mlp(x, params["enc1_w"], params["enc1_b"], params["enc2_w"], params["enc2_b"])
    loc, log_scale = out[:, :Z_DIM], out[:, Z_DIM:]
    z = loc + jnp.exp(log_scale) * eps
    log_q = jnp.sum(-0.5 * eps ** 2 - log_scale - 0.5 * jnp.log(2 * jnp.pi), -1)
    log_prior = jnp.sum(-0.5 * z ** 2 - 0.5 * jnp.log(2 * jnp.pi), -1)
    logits = _mlp(z, params["dec1_w"], params["dec1_b"], params["dec2_w"], params["dec2_b"])
    log_lik = jnp.sum(x * logits - jnp.logaddexp(0.0, logits), -1)
    return log_prior + log_lik - log_q


def hand_step(x, K=None):
    """A jit-compiled step of the hand-written loss (the ELBO, or IWAE(K) per datapoint)."""
    tx = optax.adam(LR)

    def loss(params, key):
        if K is None:
            return -jnp.sum(_log_weights(params, x, jax.random.normal(key, (BATCH, Z_DIM))))
        log_w = _log_weights(params, x, jax.random.normal(key, (K, BATCH, Z_DIM)))
        return -jnp.sum(logsumexp(log_w, 0) - jnp.log(K))

    @jax.jit
    def update(params, opt_state, key):
        value, grads = jax.value_and_grad(loss)(params, key)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    state = {"params": dict(INITIAL), "opt": tx.init(dict(INITIAL)), "key": jax.random.PRNGKey(0)}

    def step():
        state["key"], key = jax.random.split(state["key"])
        state["params"], state["opt"], value = update(state["params"], state["opt"], key)
        return float(value)

    return step


def ours_step(x, objective):
    vi = VI(model, guide, objective, Adam(lr=LR), rng_seed=0)
    return lambda: vi.step(x)


def numpyro_step(x, loss):
    from numpyro.infer import SVI

    svi = SVI(model, guide, optax.adam(LR), loss)
    update = jax.jit(svi.update)
    state = {"svi": svi.init(jax.random.PRNGKey(0), x)}

    def step():
        state["svi"], value = update(state["svi"], x)
        return float(value)

    return step


def _first_calls(methods):
    """The first call of each method (compilation included) and its loss. JAX's first
    compilations in a process (its own start-up and the kernels that eager operations share)
    go to whichever method runs first, so each method's time is measured in a fresh process
    of its own (``python -m benchmarks.jax_vae_step <bench> <method index>``); the calls here
    only warm the methods up and give the losses."""
    out = {}
    for index, m in enumerate(methods):
        loss = m.call()
        code = subprocess.run([sys.executable, "-m", "benchmarks.jax_vae_step", m.bench, str(index)],
                              capture_output=True, text=True, cwd=ROOT, check=True)
        out[m.name] = (float(code.stdout.split()[-1]), loss)
    return out


def _first_call_here(bench, index):
    """Seconds of the first call of method ``index`` of ``bench``, in this (fresh) process."""
    with ppl.backend("jax"):
        jax.jit(lambda a: jnp.tanh(a) @ a)(jnp.ones((2, 2))).block_until_ready()  # JAX's start-up
        methods = METHODS[bench]()
        start = time.perf_counter()
        methods[index].call()
        return time.perf_counter() - start


def _bench(title, quick, ours, numpyro_m, hand, target):
    s = settings(quick, full=(20, 20, 5), small=(3, 3, 2))
    methods = [ours, numpyro_m, hand]
    first = _first_calls(methods)
    log(f"{title}: {s.rounds} rounds x {s.steps} steps, {s.warmup} warm-up steps")
    time_interleaved(methods, s.rounds, s.steps, s.warmup, log=log)
    rows = [[m.name, fmt_ms(m.median), f"[{fmt_ms(m.minimum)}, {fmt_ms(m.maximum)}]",
             f"{first[m.name][0]:.2f}", f"{first[m.name][1]:.1f}"] for m in methods]
    table = markdown_table(["method", "ms/step (median)", "ms/step [min, max]", "compile (s)",
                            "first-step loss"], rows)
    ratios = ratio_table([("ours / numpyro", paired_ratio(ours, numpyro_m), target),
                          ("ours / hand-written", paired_ratio(ours, hand), None),
                          ("numpyro / hand-written", paired_ratio(numpyro_m, hand), None)])
    compile_ratio = first[ours.name][0] / first[numpyro_m.name][0]
    note = (f"{s.rounds} interleaved rounds x {s.steps} steps after {s.warmup} warm-up steps per "
            f"method. Compile time, ours / NumPyro: {compile_ratio:.2f} (target <= 1). The first-step "
            "losses differ by the random draws only (each library splits its keys its own way).")
    return "\n\n".join([f"### {title}", table, ratios, note])


def elbo_methods():
    from numpyro.infer import Trace_ELBO

    x = make_data()
    return [Method("ours: VI(ELBO())", ours_step(x, ELBO())),
            Method("numpyro: jit(SVI(Trace_ELBO()).update)", numpyro_step(x, Trace_ELBO())),
            Method("hand-written jax.jit + optax", hand_step(x))]


def iwae_methods(K=50):
    from numpyro.infer import RenyiELBO

    x = make_data()
    return [Method(f"ours: VI(IWAE({K}))", ours_step(x, IWAE(K))),
            Method(f"numpyro: jit(SVI(RenyiELBO(alpha=0, num_particles={K})).update)",
                   numpyro_step(x, RenyiELBO(alpha=0.0, num_particles=K))),
            Method("hand-written jax.jit + optax", hand_step(x, K))]


METHODS = {"elbo": elbo_methods, "iwae": iwae_methods}


def _tagged(bench):
    methods = METHODS[bench]()
    for m in methods:
        m.bench = bench
    return methods


def bench_elbo(quick=False, device="cpu"):
    return _bench("JAX VAE training step, ELBO (batch 128, 784-256-20)", quick, *_tagged("elbo"), 1.02)


def bench_iwae(quick=False, device="cpu", K=50):
    return _bench(f"JAX VAE training step, IWAE K={K} (batch 128, 784-256-20)", quick, *_tagged("iwae"),
                  1.02)


def _on_jax(bench):
    def run(quick=False, device="cpu"):
        if str(device) != "cpu":
            return f"(skipped: the JAX benchmarks run on the CPU build of jax here, not {device})"
        with ppl.backend("jax"):
            return bench(quick)
    return run


BENCHMARKS = {"jax_vae_elbo": _on_jax(bench_elbo), "jax_vae_iwae": _on_jax(bench_iwae)}


if __name__ == "__main__":  # one method's first call, timed in a fresh process
    print(_first_call_here(sys.argv[1], int(sys.argv[2])))
