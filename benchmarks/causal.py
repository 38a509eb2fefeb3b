"""Causal queries against peer libraries: ChiRho (counterfactuals) and pgmpy (exact do-queries).

``causal_counterfactual``: the linear-Gaussian SCM X = U_x, Y = 2 X + U_y (U ~ N(0, 1)),
observed X = 1, Y = 3, counterfactual Y under do(X = 0); the answer is 1 (abduct
U_y = 3 - 2 * 1). Methods, each ending with the counterfactual mean of Y as a Python float:

- ours: ``inference.counterfactual(scm, evidence, {"x": 0.0}, "y", method="importance",
  num_particles=10000)`` and ``method="exact"`` (the noise the evidence fixes is a point mass,
  so exact enumeration is one run of the twin-world program);
- ChiRho 0.3: ``TwinWorldCounterfactual`` + ``do`` + ``condition`` with each mechanism
  written as ``TransformedDistribution(Normal(0, 1), AffineTransform(loc, 1))`` (the form
  whose noise ChiRho shares between worlds), vectorised over 10,000 particles with an
  explicit ``pyro.plate``, and without one through ``pyro.infer.Predictive(parallel=True)``;
- hand-written torch: abduct U_y and push it through the intervened mechanism for 10,000
  particles.

``causal_interventional``: P(target | do(node = state)) on pgmpy's bundled networks, exactly:
ours ``inference.interventional(bn, ..., method="exact")`` on the network converted to
``models.causal.DiscreteBayesianNetwork`` vs pgmpy's ``CausalInference(model).query(...,
do=..., show_progress=False)`` (built once, so warm). Ours runs the program once with every
latent site enumerated on its own dimension and sums the sites out by variable elimination
(barren sites dropped), so alarm (37 nodes, about 5.8e15 joint configurations) is answered
exactly too.
"""

import math
import warnings

import numpy as np
import torch

import ppl
import ppl.distributions as dist
from inference import counterfactual, interventional
from inference.exact import enumerate_program

from .common import (
    Method,
    fmt_ms,
    log,
    markdown_table,
    paired_ratio,
    ratio_table,
    settings,
    time_interleaved,
)

N = 10_000
EVIDENCE, ACTION, ANSWER = {"x": 1.0, "y": 3.0}, {"x": 0.0}, 1.0
TARGET_VS_CHIRHO = round(1 / 3, 3)  # ours at least 3x faster than ChiRho
TARGET_VS_PGMPY = 1.0  # ours at least as fast as pgmpy


# --------------------------------------------------------------------------- counterfactual
def scm():
    x = ppl.sample("x", dist.Normal(0.0, 1.0))
    return ppl.sample("y", dist.Normal(2.0 * x, 1.0))


def ours_exact():
    def call():
        return counterfactual(scm, EVIDENCE, ACTION, "y", method="exact").mean

    return call


def ours_importance():
    def call():
        return counterfactual(scm, EVIDENCE, ACTION, "y", method="importance",
                              num_particles=N).mean

    return call


def hand():
    x_obs, y_obs = torch.tensor(EVIDENCE["x"]), torch.tensor(EVIDENCE["y"])
    x_do = torch.tensor(ACTION["x"])

    def call():
        u_y = (y_obs - 2.0 * x_obs).expand(N)  # abduction: the noise the evidence fixes
        y_cf = 2.0 * x_do + u_y  # action + prediction, one value per particle
        return y_cf.mean().item()

    return call


def _chirho_parts():
    import pyro
    import pyro.distributions as pdist
    from chirho.counterfactual.handlers import TwinWorldCounterfactual
    from chirho.indexed.ops import IndexSet, gather
    from chirho.interventional.handlers import do
    from chirho.observational.handlers import condition

    def mechanism(loc):
        return pdist.TransformedDistribution(pdist.Normal(0.0, 1.0),
                                             [pdist.transforms.AffineTransform(loc, 1.0)])

    def chirho_scm():
        x = pyro.sample("x", mechanism(0.0))
        return pyro.sample("y", mechanism(2.0 * x))

    def naive_scm():
        x = pyro.sample("x", pdist.Normal(0.0, 1.0))
        return pyro.sample("y", pdist.Normal(2.0 * x, 1.0))

    data = {k: torch.tensor(v) for k, v in EVIDENCE.items()}
    actions = {k: torch.tensor(v) for k, v in ACTION.items()}
    world = IndexSet(**{TwinWorldCounterfactual.fresh_prefix: {1}})

    def query(model):
        program = do(condition(model, data=data), actions)

        def run():
            with TwinWorldCounterfactual():
                return gather(program(), world)

        return run

    return pyro, query(chirho_scm), query(naive_scm)


def chirho_plate():
    pyro, run, _ = _chirho_parts()

    def call():
        with pyro.plate("particles", N, dim=-1):
            y_cf = run()
        return y_cf.mean().item()

    return call


def chirho_predictive():
    pyro, run, _ = _chirho_parts()
    predictive = pyro.infer.Predictive(run, num_samples=N, parallel=True,
                                       return_sites=["_RETURN"])

    def call():
        return predictive()["_RETURN"].mean().item()

    return call


def chirho_naive_answer():
    """ChiRho with plain Normal mechanisms: fresh noise in the counterfactual world."""
    pyro, _, run = _chirho_parts()
    torch.manual_seed(0)
    with pyro.plate("particles", N, dim=-1):
        y_cf = run()
    return float(y_cf.mean()), float(y_cf.std())


def bench_counterfactual(quick=False, device="cpu"):
    title = "### Counterfactual query, linear-Gaussian SCM (twin worlds, 10,000 particles)"
    if torch.device(device).type != "cpu":
        return f"{title}\n\nSkipped on {device}: the peers (ChiRho) run on the CPU here."
    try:
        import chirho  # noqa: F401
    except ImportError:
        return f"{title}\n\nSkipped: ChiRho is not installed."
    s = settings(quick, full=(30, 20, 5), small=(3, 5, 2))
    candidates = [
        Method("ours: counterfactual(method='exact')", ours_exact()),
        Method(f"ours: counterfactual(method='importance', num_particles={N})",
               ours_importance(), N),
        Method(f"chirho: TwinWorldCounterfactual, transformed mechanisms, plate({N})",
               chirho_plate(), N),
        Method(f"chirho: same, Predictive(num_samples={N}, parallel=True), no explicit plate",
               chirho_predictive(), N),
        Method(f"hand-written torch abduction ({N})", hand(), N),
    ]
    answers, failures = {}, {}
    for m in candidates:
        try:
            answers[m.name] = m.call()
        except Exception as error:  # report it, time the others
            failures[m.name] = f"{type(error).__name__}: {error}"
            log(f"  {m.name} failed: {failures[m.name]}")
    methods = [m for m in candidates if m.name not in failures]
    log(f"causal_counterfactual: {s.rounds} rounds x {s.steps} calls, {s.warmup} warm-up calls")
    time_interleaved(methods, s.rounds, s.steps, s.warmup, None, log)
    by_name = {m.name: m for m in methods}
    chirho_m, hand_m = by_name[candidates[2].name], by_name[candidates[4].name]

    rows = []
    for m in candidates:
        if m.name in failures:
            rows.append([m.name, "failed", "-", "-", "-", "-"])
            continue
        answer = answers[m.name]
        rows.append([m.name, fmt_ms(m.median), f"[{fmt_ms(m.minimum)}, {fmt_ms(m.maximum)}]",
                     str(paired_ratio(_per_call(m), _per_call(chirho_m))), f"{answer:.6f}",
                     "yes" if abs(answer - ANSWER) < 1e-5 else "NO"])
    table = markdown_table(["method", "ms/query (median)", "ms/query [min, max]",
                            "time vs chirho (plate): median [min, max]",
                            "counterfactual E[Y]", "= 1?"], rows)
    entries = []
    for m in methods[:2]:
        entries.append((f"{m.name.split(': ', 1)[1]} / chirho (plate)",
                        paired_ratio(_per_call(m), _per_call(chirho_m)), TARGET_VS_CHIRHO))
    if len(methods) == len(candidates):
        entries.append(("chirho Predictive / chirho (plate)",
                        paired_ratio(_per_call(methods[3]), _per_call(chirho_m)), None))
    for m in methods[:2]:
        entries.append((f"{m.name.split(': ', 1)[1]} / hand-written",
                        paired_ratio(_per_call(m), _per_call(hand_m)), None))
    ratios = ratio_table(entries, what="time per query")
    naive_mean, naive_sd = chirho_naive_answer()
    notes = [
        f"Every call answers the whole query (10,000 counterfactual draws of Y, or the exact "
        f"distribution, reduced to its mean as a Python float); ratios are per query. The "
        f"evidence fixes both noises, so all 10,000 draws equal 1 and the exact answer is a "
        f"point mass. {s.rounds} interleaved rounds x {s.steps} queries after {s.warmup} "
        f"warm-up queries per method.",
        f"ChiRho shares noise between worlds only for observed sites whose mechanism is an "
        f"invertible `TransformedDistribution`: with plain `Normal(2 x, 1)` mechanisms the same "
        f"query returns E[Y] = {naive_mean:.3f} (sd {naive_sd:.3f}, 10,000 particles), the "
        f"interventional answer 0, silently.",
    ]
    for name, error in failures.items():
        notes.append(f"`{name}` failed and was not timed: `{error}`.")
    return "\n\n".join([title, table, ratios] + notes)


def _per_call(m):
    """The method with units_per_call = 1, so ratios compare whole queries."""
    return Method(m.name, m.call, 1.0, m.per_round)


# --------------------------------------------------------------------------- interventional
QUERIES = [  # (network, node, state, target)
    ("asia", "either", "yes", "dysp"),
    ("cancer", "Smoker", "True", "Dyspnoea"),
    ("survey", "E", "high", "T"),
    ("sachs", "PKA", "HIGH", "Akt"),
    ("alarm", "HR", "LOW", "BP"),
]


def load_network(name):
    from pgmpy.utils import get_example_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return get_example_model(name)


def to_ours(model):
    """pgmpy's network as ours: tables ``[*parent cards, card]`` from pgmpy's
    ``[card, *evidence cards]`` (evidence order ``cpd.variables[1:]``)."""
    import networkx as nx

    from models.causal import DiscreteBayesianNetwork

    states = {node: list(model.get_cpds(node).state_names[node]) for node in model.nodes()}
    cpds = {}
    for node in nx.topological_sort(model):
        cpd = model.get_cpds(node)
        evidence, parents = list(cpd.variables[1:]), sorted(model.get_parents(node))
        values = np.asarray(cpd.values, dtype=np.float64)
        for axis, var in enumerate(cpd.variables):
            values = np.take(values, [cpd.state_names[var].index(s) for s in states[var]], axis)
        values = values.transpose([1 + evidence.index(p) for p in parents] + [0])
        cpds[node] = (tuple(parents), torch.from_numpy(np.ascontiguousarray(values)))
    return DiscreteBayesianNetwork(cpds, states=states)


def _configurations(bn, node):
    return math.prod(len(s) for n, s in bn.states.items() if n != node)


def _largest_table(bn, index, target):
    """Cells of the largest table variable elimination multiplies out for the query."""
    posterior = enumerate_program(ppl.do(bn, index))
    return posterior.largest_table(lambda trace: trace[target].value)


def bench_interventional(quick=False, device="cpu"):
    title = "### Exact interventional queries on pgmpy's bundled networks"
    if torch.device(device).type != "cpu":
        return f"{title}\n\nSkipped on {device}: the peer (pgmpy) runs on the CPU here."
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            from pgmpy.inference import CausalInference
    except ImportError:
        return f"{title}\n\nSkipped: pgmpy is not installed."
    s = settings(quick, full=(20, 10, 3), small=(3, 2, 1))
    rows, entries = [], []
    for network, node, state, target in QUERIES:
        model = load_network(network)
        bn = to_ours(model)
        infer = CausalInference(model)
        do, index = {node: state}, {node: bn.state_index(node, state)}
        states = bn.states[target]

        def theirs(infer=infer, do=do, target=target):
            return infer.query([target], do=do, show_progress=False)

        def ours(bn=bn, index=index, target=target):
            return interventional(bn, index, target, method="exact")

        factor = theirs()
        p_theirs = np.array([factor.values[factor.state_names[target].index(v)] for v in states])
        query = f"{network}: P({target} \\| do({node} = {state}))"  # escaped for the table
        ours_m = Method(f"{network}: ours interventional(method='exact')", ours)
        pgmpy_m = Method(f"{network}: pgmpy CausalInference.query", theirs)
        methods = [ours_m, pgmpy_m]
        log(f"causal_interventional, {network}: {s.rounds} rounds x {s.steps} calls")
        time_interleaved(methods, s.rounds, s.steps, s.warmup, None, log)
        for m in methods:
            result = m.call()
            if m is pgmpy_m:
                probs = p_theirs
            else:
                probs = np.zeros(len(states))
                for value, p in result.distribution.items():
                    probs[int(value)] = p
            error = float(np.abs(probs - p_theirs).max())
            first = m is methods[0]
            rows.append([query if first else "", m.name.split(": ", 1)[1],
                         f"{_configurations(bn, node):.2g}" if first else "",
                         f"{_largest_table(bn, index, target)}" if first else "",
                         fmt_ms(m.median), f"[{fmt_ms(m.minimum)}, {fmt_ms(m.maximum)}]",
                         str(paired_ratio(m, pgmpy_m)),
                         f"{probs[0]:.4f} ({states[0]})", f"{error:.1e}"])
        entries.append((f"{network}: ours exact / pgmpy", paired_ratio(ours_m, pgmpy_m),
                        TARGET_VS_PGMPY))
    table = markdown_table(["query", "method", "joint configurations", "largest table (ours)",
                            "ms/query (median)", "ms/query [min, max]",
                            "vs pgmpy: median [min, max]", "P(first state)",
                            "max abs diff vs pgmpy"], rows, align="llrrrrrrr")
    ratios = ratio_table(entries, what="time per query")
    notes = [
        f"{s.rounds} interleaved rounds x {s.steps} queries after {s.warmup} warm-up queries "
        f"per method; pgmpy's `CausalInference` is built once per network (warm), ours runs "
        f"its program on every query (as `interventional` does) and sums the latent sites out "
        f"by variable elimination. Joint configurations: the product of the support sizes of "
        f"the latent sites under the do (what enumerating the joint would visit); largest "
        f"table: the cells of the largest table our elimination multiplies out. Differences "
        f"with pgmpy are float32 round-off of our tables.",
    ]
    return "\n\n".join([title, table, ratios] + notes)


BENCHMARKS = {"causal_counterfactual": bench_counterfactual,
              "causal_interventional": bench_interventional}
