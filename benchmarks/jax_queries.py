"""Importance sampling and causal queries on JAX, side by side with torch and the peers.

* ``jax_importance``: ``Importance(model, num_particles=10000).run(x)`` on JAX (the prior as
  proposal, the Normal-Normal model of ``importance.py``, as ``models.conjugate`` writes it
  for both backends) against the same computation
  hand-written with ``jax.vmap`` and compiled with ``jax.jit``, and ours on torch.
* ``jax_counterfactual``: the twin-world query of ``causal.py`` (X = 1, Y = 3 seen, Y under
  do(X = 0); answer 1) on JAX, exact and by importance with 10,000 particles, against
  ChiRho's ``TwinWorldCounterfactual`` over a 10,000-particle plate (on torch, ChiRho being
  Pyro-only) and ours on torch.
* ``jax_interventional``: exact P(target | do(node = state)) on pgmpy's networks, ours on
  JAX against ours on torch (the project's own elimination on both).

Each call ends with its answer as a Python float (or the distribution's first
probability), as the strategies compute it.
"""

import math
import time

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp

import ppl
from inference import Importance, counterfactual, interventional
from inference.exact.elimination import NotEnumerableError
from models.conjugate import normal_normal_model

from . import causal, importance
from .common import Method, fmt_ms, log, markdown_table, paired_ratio, ratio_table, settings, time_interleaved

IMPORTANCE_TARGET, CHIRHO_TARGET = 1.2, 0.2


def _on_jax(fn):
    def call():
        with ppl.backend("jax"):
            return fn()
    return call


def _first_call_seconds(methods):
    out = {}
    for m in methods:
        start = time.perf_counter()
        m.call()
        out[m.name] = time.perf_counter() - start
    return out


def _table(methods, first, extra_header, extra):
    rows = [[m.name, fmt_ms(m.median), f"[{fmt_ms(m.minimum)}, {fmt_ms(m.maximum)}]",
             f"{first[m.name]:.2f}", extra(m)] for m in methods]
    return markdown_table(["method", "ms/call (median)", "ms/call [min, max]", "first call (s)",
                           extra_header], rows)


# ------------------------------------------------------------------------- importance
def bench_importance(quick=False, device="cpu"):
    if str(device) != "cpu":
        return f"(skipped: the JAX benchmarks run on the CPU build of jax here, not {device})"
    s = settings(quick, full=(20, 10, 3), small=(3, 3, 1))
    x_torch = importance.make_data("cpu")
    x = jnp.asarray(x_torch.numpy())
    K = importance.K
    with ppl.backend("jax"):
        ours_jax = Importance(normal_normal_model, num_particles=K, rng_seed=0)
    state = {"key": jax.random.PRNGKey(0)}

    @jax.jit
    def log_evidence(key):
        mu = jax.random.normal(key, (K,))
        log_w = jax.vmap(lambda m: jnp.sum(jax.scipy.stats.norm.logpdf(x, m, 1.0)))(mu)
        return logsumexp(log_w) - math.log(K)

    def hand():
        state["key"], key = jax.random.split(state["key"])
        return float(log_evidence(key))

    methods = [Method(f"ours on JAX: Importance(num_particles={K})",
                      _on_jax(lambda: ours_jax.run(x, progress=False).log_evidence), K),
               Method(f"hand-written jax.vmap + jax.jit ({K})", hand, K),
               Method(f"ours on torch: Importance(num_particles={K})", importance.ours(x_torch), K)]
    first = _first_call_seconds(methods)
    answers = {m.name: m.call() for m in methods}
    log(f"jax_importance: {s.rounds} rounds x {s.steps} calls, {s.warmup} warm-up calls")
    time_interleaved(methods, s.rounds, s.steps, s.warmup, None, log)
    exact = importance.analytic_log_evidence(x_torch)
    table = _table(methods, first, "log-evidence (one call)", lambda m: f"{answers[m.name]:.3f}")
    ratios = ratio_table([("ours on JAX / hand-written JAX", paired_ratio(methods[0], methods[1]),
                           IMPORTANCE_TARGET),
                          ("ours on JAX / ours on torch", paired_ratio(methods[0], methods[2]), None)],
                         what="time per particle")
    note = (f"Normal-Normal, n = {importance.N_OBS}, prior proposal; exact log-evidence "
            f"{exact:.3f}. {s.rounds} interleaved rounds x {s.steps} calls after {s.warmup} "
            "warm-up calls; 'first call' includes compilation.")
    return "\n\n".join(["### Importance sampling on JAX", table, ratios, note])


# --------------------------------------------------------------------- counterfactual
def bench_counterfactual(quick=False, device="cpu"):
    title = "### Twin-world counterfactual on JAX (linear-Gaussian SCM, 10,000 particles)"
    if str(device) != "cpu":
        return f"{title}\n\nSkipped on {device}: the peers run on the CPU here."
    try:
        import chirho  # noqa: F401
    except ImportError:
        return f"{title}\n\nSkipped: ChiRho is not installed."
    s = settings(quick, full=(20, 10, 3), small=(3, 3, 1))
    N = causal.N

    def exact():
        return counterfactual(causal.scm, causal.EVIDENCE, causal.ACTION, "y", method="exact").mean

    def sampled():
        return counterfactual(causal.scm, causal.EVIDENCE, causal.ACTION, "y", method="importance",
                              num_particles=N).mean

    methods = [Method("ours on JAX: counterfactual(method='exact')", _on_jax(exact)),
               Method(f"ours on JAX: counterfactual(method='importance', num_particles={N})",
                      _on_jax(sampled)),
               Method(f"chirho (torch): TwinWorldCounterfactual, plate({N})", causal.chirho_plate()),
               Method("ours on torch: counterfactual(method='exact')", causal.ours_exact())]
    first = _first_call_seconds(methods)
    answers = {m.name: m.call() for m in methods}
    log(f"jax_counterfactual: {s.rounds} rounds x {s.steps} calls, {s.warmup} warm-up calls")
    time_interleaved(methods, s.rounds, s.steps, s.warmup, None, log)
    table = _table(methods, first, "counterfactual E[Y] (answer 1)", lambda m: f"{answers[m.name]:.6f}")
    chirho_m = methods[2]
    entries = [(f"{m.name.split(': ', 1)[1]} on JAX / chirho", paired_ratio(m, chirho_m), CHIRHO_TARGET)
               for m in methods[:2]]
    entries.append(("ours exact, JAX / torch", paired_ratio(methods[0], methods[3]), None))
    ratios = ratio_table(entries, what="time per query")
    note = (f"Each call answers the whole query. {s.rounds} interleaved rounds x {s.steps} calls "
            f"after {s.warmup} warm-up calls; 'first call' includes compilation and set-up.")
    return "\n\n".join([title, table, ratios, note])


# ----------------------------------------------------------------- exact do-queries
def bench_interventional(quick=False, device="cpu"):
    title = "### Exact interventional queries on both backends (pgmpy's networks)"
    if str(device) != "cpu":
        return f"{title}\n\nSkipped on {device}."
    try:
        causal.load_network("asia")
    except ImportError:
        return f"{title}\n\nSkipped: pgmpy is not installed."
    s = settings(quick, full=(5, 5, 2), small=(2, 2, 1))
    rows, entries = [], []
    for network, node, state, target in causal.QUERIES:
        bn = causal.to_ours(causal.load_network(network))
        index = {node: bn.state_index(node, state)}

        def query(bn=bn, index=index, target=target):
            return interventional(bn, index, target, method="exact").probability(0)

        on_torch = Method(f"{network}: torch", query)
        on_jax = Method(f"{network}: JAX", _on_jax(query))
        try:
            first = _first_call_seconds([on_torch, on_jax])
        except NotEnumerableError as error:
            rows.append([network, "-", "refused", "-", "-", f"`NotEnumerableError`: {str(error)[:90]}..."])
            continue
        difference = abs(on_torch.call() - on_jax.call())
        log(f"jax_interventional, {network}: {s.rounds} rounds x {s.steps} calls")
        time_interleaved([on_torch, on_jax], s.rounds, s.steps, s.warmup, None, log)
        ratio = paired_ratio(on_jax, on_torch)
        rows.append([network, fmt_ms(on_torch.median), fmt_ms(on_jax.median), f"{first[on_jax.name]:.2f}",
                     str(ratio), f"answers differ by {difference:.1e}"])
        entries.append((f"{network}: JAX / torch", ratio, 1.0))
    table = markdown_table(["network", "torch ms/query", "JAX ms/query", "JAX first query (s)",
                            "JAX / torch", "note"], rows)
    return "\n\n".join([title, table, ratio_table(entries, what="time per query")])


BENCHMARKS = {"jax_importance": bench_importance, "jax_counterfactual": bench_counterfactual,
              "jax_interventional": bench_interventional}
