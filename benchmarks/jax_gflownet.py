"""GFlowNet-EM's trajectory-balance update on JAX: ``GFlowNetEM.e_step`` (one jit-compiled
engine step, an Equinox policy) against the same update written by hand with
``jax.numpy``, Equinox and ``optax``, beside the torch pair of ``gflownet.py``.

The model and sizes are ``gflownet.py``'s: the hierarchical 2-D mixture (4 super-clusters x
4 petals, sd 0.25) on 256 points, 16 trajectories per point per update, an MLP policy with
64 hidden units and Adam(lr=1e-3). "compile" is each method's first update (tracing and
XLA compilation; for ours also the set-up's dry run of the model).
"""

import time

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

import ppl
import ppl.distributions as dist
from inference import Adam, GFlowNetEM
from inference.gflownet.equinox_policies import EquinoxMLPPolicy
from models.hierarchical_mixture import PETAL_OFFSETS, SD, TRUE_MEANS, hierarchical_mixture_data

from . import gflownet
from .common import Method, fmt_ms, log, markdown_table, paired_ratio, ratio_table, settings, time_interleaved

N, TRAJECTORIES, HIDDEN = gflownet.N, gflownet.TRAJECTORIES, gflownet.HIDDEN
TARGET = 1.2


def jax_model(x):
    """``models.hierarchical_mixture``'s model with ``jax.numpy`` arrays."""
    super_means = ppl.param("super_means", jnp.asarray(TRUE_MEANS.numpy()))
    means = super_means[:, None, :] + jnp.asarray(PETAL_OFFSETS.numpy())[None]
    with ppl.plate("data", x.shape[0]):
        s = ppl.sample("super", dist.Categorical(jnp.ones(4) / 4))
        p = ppl.sample("petal", dist.Categorical(jnp.ones(4) / 4))
        ppl.sample("x", dist.Normal(means[s, p], SD).to_event(1), obs=x)


def ours(x):
    with ppl.backend("jax"):
        em = GFlowNetEM(jax_model, m_step=None, hidden=HIDDEN, optimizer=Adam(lr=1e-3),
                        num_trajectories=TRAJECTORIES, rng_seed=0)
    return lambda: em.e_step(x)


def hand(x):
    policy = EquinoxMLPPolicy(2, 8, 2, 4, HIDDEN, key=jax.random.PRNGKey(0))
    params, static = eqx.partition(policy, eqx.is_inexact_array)
    tx = optax.adam(1e-3)
    features = jnp.tile(x, (TRAJECTORIES, 1))
    means = jnp.asarray(TRUE_MEANS.numpy())[:, None, :] + jnp.asarray(PETAL_OFFSETS.numpy())[None]

    def loss(params, key):
        policy = eqx.combine(params, static)
        state, log_pf, actions = jnp.zeros((features.shape[0], 8)), 0.0, []
        for t, k in enumerate(jax.random.split(key, 2)):
            log_probs = jax.nn.log_softmax(policy(features, state, t)[:, :4], -1)
            a = jax.random.categorical(k, jax.lax.stop_gradient(log_probs), -1)
            log_pf = log_pf + jnp.take_along_axis(log_probs, a[:, None], -1)[:, 0]
            state = state + jax.nn.one_hot(4 * t + a, 8)
            actions.append(a)
        log_r = jax.scipy.stats.norm.logpdf(features, means[actions[0], actions[1]], SD).sum(-1)
        return jnp.mean((policy.log_partition(features) + log_pf - log_r + jnp.log(16.0)) ** 2)

    @jax.jit
    def update(params, opt_state, key):
        key, sub = jax.random.split(key)
        value, grads = jax.value_and_grad(loss)(params, sub)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, key, value

    held = [params, tx.init(params), jax.random.PRNGKey(1)]

    def step():
        held[0], held[1], held[2], value = update(*held)
        return float(value)

    return step


def bench_gflownet_tb_jax(quick=False, device="cpu"):
    if str(device) != "cpu":
        return f"(skipped: the JAX benchmarks run on the CPU build of jax here, not {device})"
    s = settings(quick, full=(20, 10, 3), small=(3, 3, 1))
    x_torch = hierarchical_mixture_data(N, seed=0)
    x = jnp.asarray(x_torch.numpy())
    trajectories = N * TRAJECTORIES
    methods = [Method("ours on JAX: GFlowNetEM.e_step", ours(x), trajectories),
               Method("hand-written jax.jit + equinox + optax", hand(x), trajectories),
               Method("ours on torch: GFlowNetEM.e_step", gflownet.ours(x_torch), trajectories),
               Method("hand-written torch TB update", gflownet.hand(x_torch), trajectories)]
    compile_s = {}
    for m in methods[:2]:
        start = time.perf_counter()
        m.call()
        compile_s[m.name] = time.perf_counter() - start
    log(f"gflownet_tb_jax: {s.rounds} rounds x {s.steps} updates, {s.warmup} warm-up updates")
    time_interleaved(methods, s.rounds, s.steps, s.warmup, None, log)
    rows = [[m.name, fmt_ms(m.median), f"[{fmt_ms(m.minimum)}, {fmt_ms(m.maximum)}]",
             f"{compile_s[m.name]:.2f}" if m.name in compile_s else "-"] for m in methods]
    table = markdown_table(["method", "ms/update (median)", "ms/update [min, max]", "compile (s)"], rows)
    ratios = ratio_table([("ours on JAX / hand-written JAX", paired_ratio(methods[0], methods[1]), TARGET),
                          ("ours on torch / hand-written torch", paired_ratio(methods[2], methods[3]), None),
                          ("ours on JAX / ours on torch", paired_ratio(methods[0], methods[2]), None)],
                         what="time per trajectory")
    note = (f"{N} points x {TRAJECTORIES} trajectories per update, 2 steps each, MLP policy with "
            f"{HIDDEN} hidden units; {s.rounds} interleaved rounds x {s.steps} updates after "
            f"{s.warmup} warm-up updates.")
    return "\n\n".join(["### GFlowNet-EM: trajectory-balance update on both backends", table, ratios, note])


BENCHMARKS = {"gflownet_tb_jax": bench_gflownet_tb_jax}
