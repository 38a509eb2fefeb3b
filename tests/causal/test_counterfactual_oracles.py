"""Oracle tests for the counterfactual-worlds messenger (ppl/causal/counterfactual.py).

Every answer here is worked out by hand from the structural equations: linear-Gaussian
SCMs, where abduction fixes every noise exactly (so each world's value is a closed form),
and small discrete SCMs enumerated by hand under the monotone (threshold) coupling of
Bernoulli noise, ``x_w = 1[u > 1 - p_w]`` with one uniform ``u`` shared by the worlds.
The exact answers are compared at 1e-6 (float32 sums of a handful of terms); no test
here samples for its oracle. The tests taking ``on_backend`` run on torch and on JAX: one
implementation of the worlds (a SiteHandler on the backend's array ops) answers alike on
both (JAX's exact answers come from funsor's sum-product, torch's from the project's
variable elimination).
"""

import math

import pyro
import pytest

import inference
import ppl
import ppl.distributions as dist
from inference.exact import enumerate_program
from models import linear_gaussian_scm
from ppl.errors import SiteError
from ppl.shapes import broadcast_shape

wv = ppl.world_value
EVIDENCE = {"x": 1.0, "y": 3.0, "z": 5.0}  # linear_gaussian_scm: u_x = u_y = u_z = 1


def run(model, evidence, interventions, *args, **kwargs):
    """One run of the counterfactual program (no particles: the world dim is leftmost)."""
    options = {k: kwargs.pop(k) for k in ("worlds", "exact", "max_plate_nesting") if k in kwargs}
    return ppl.trace(ppl.counterfactual_worlds(model, evidence, interventions, **options))(*args, **kwargs)


def positive(answer):
    """An exact answer's distribution without its values of probability zero."""
    return {value: p for value, p in answer.distribution.items() if p > 1e-9}


def worlds_of(trace, name, count):
    return [float(wv(trace, name, w)) for w in range(count)]


# ------------------------------------------------------------ the site's own evidence
def test_an_observed_site_of_the_model_is_abducted_like_evidence(on_backend):
    """``obs=`` in the model counts as evidence: y = 2 x + u_y observed at 3 with x = 1
    fixes u_y = 1, so under do(x = 0) y = 1; world values of scalar sites are scalars."""
    def scm():
        x = ppl.sample("x", dist.Normal(0.0, 1.0))
        return ppl.sample("y", dist.Normal(2.0 * x, 1.0), obs=ppl.get_backend().ops.asarray(3.0))

    tr = run(scm, {"x": 1.0}, {"x": 0.0})
    assert worlds_of(tr, "y", 2) == [3.0, 1.0]
    assert wv(tr, "y", 1).shape == ()


def test_an_independent_site_keeps_its_event_dims_apart_from_the_worlds(on_backend):
    """A vector site (``to_event``): abduction per component, u_v = v - x = [1, 2, 3], so
    under do(x = 0) v = [1, 2, 3]; an intervention on the vector sets it whole. The world
    dim sits left of the event dims (this crashed, or narrowed the event dim, before)."""
    def scm():
        x = ppl.sample("x", dist.Normal(0.0, 1.0))
        ops = ppl.get_backend().ops
        v = ppl.sample("v", dist.Normal(ops.expand_dims(x, -1) + ops.zeros((3,), x), 1.0).to_event(1))
        return ppl.sample("y", dist.Normal(v.sum(-1), 1.0))

    asarray = ppl.get_backend().ops.asarray
    tr = run(scm, {"x": 1.0, "v": asarray([2.0, 3.0, 4.0]), "y": 10.0}, {"x": 0.0})
    assert tr["v"].value.tolist() == [[2.0, 3.0, 4.0], [1.0, 2.0, 3.0]]
    assert tr["y"].value.tolist() == [10.0, 7.0]  # u_y = 10 - 9 = 1
    tr = run(scm, {"x": 1.0, "v": asarray([2.0, 3.0, 4.0]), "y": 10.0},
             {"v": asarray([5.0, 6.0, 7.0])})
    assert tr["v"].value.tolist() == [[2.0, 3.0, 4.0], [5.0, 6.0, 7.0]]
    assert tr["y"].value.tolist() == [10.0, 19.0]


# ------------------------------------------------------------ kinds of intervention
def test_a_stochastic_intervention_pushes_the_shared_noise(on_backend):
    """do(x ~ Normal(5, 2)) in a counterfactual world reuses x's noise u_x = 1: x = 5 + 2
    = 7, then y = 2 * 7 + u_y = 15. Another family cannot share the noise: named error."""
    tr = run(linear_gaussian_scm, {"x": 1.0, "y": 3.0}, {"x": dist.Normal(5.0, 2.0)})
    assert worlds_of(tr, "x", 2) == [1.0, 7.0] and worlds_of(tr, "y", 2) == [3.0, 15.0]
    with pytest.raises(ValueError, match="site 'x': a stochastic intervention .* must be a Normal"):
        run(linear_gaussian_scm, {"x": 1.0}, {"x": dist.Laplace(0.0, 1.0)})


@pytest.mark.parametrize("method", ["exact", "importance"])
def test_stochastic_bernoulli_interventions_cut_the_shared_uniform(method, on_backend):
    """x ~ B(0.5) is x = 1[u > 0.5]; do(x ~ B(0.9)) is 1[u > 0.1], do(x ~ B(0.2)) is
    1[u > 0.8], thresholds on both sides of the factual one. With no evidence the worlds
    (x_0, x_1, x_2) are (0,0,0) for u < 0.1, (0,1,0) on (0.1, 0.5), (1,1,0) on (0.5, 0.8)
    and (1,1,1) above; given x = 0 (u < 0.5) P(x_1 = 1) = 0.4 / 0.5; given x = 1 the code
    2 x_1 + x_2 is 2 on (0.5, 0.8) and 3 above. Exact enumeration must cut u at the
    intervention's thresholds as well (it used only the worlds' own: P = 1, not 0.8).
    Importance: 20 000 draws, 4 standard errors."""
    def coin():
        return ppl.sample("x", dist.Bernoulli(0.5))

    sets = [{"x": dist.Bernoulli(0.9)}, {"x": dist.Bernoulli(0.2)}]

    def code(t):
        return 4 * wv(t, "x", 0) + 2 * wv(t, "x", 1) + wv(t, "x", 2)

    prior = inference.counterfactual(coin, {}, sets, code, worlds="multi", method=method,
                                     num_particles=20_000)
    down = inference.counterfactual(coin, {"x": 0.0}, sets[0], "x", method=method,
                                    num_particles=20_000)
    up = inference.counterfactual(coin, {"x": 1.0}, sets, lambda t: 2 * wv(t, "x", 1) + wv(t, "x", 2),
                                  worlds="multi", method=method, num_particles=20_000)
    for answer, mean in ((prior, 0.4 * 2 + 0.3 * 6 + 0.2 * 7), (down, 0.8), (up, 0.6 * 2 + 0.4 * 3)):
        tolerance = 1e-6 if method == "exact" else 4 * answer.stderr
        assert abs(answer.mean - mean) < tolerance, (answer, mean)
    if method == "exact":
        assert positive(prior) == pytest.approx({0.0: 0.1, 2.0: 0.4, 6.0: 0.3, 7.0: 0.2})


def test_a_stochastic_bernoulli_intervention_below_an_enumerated_parent(on_backend):
    """u ~ B(0.5), x ~ B(0.2 + 0.6 u) observed 1, do(x ~ B(0.1)): x = 1 means v > 1 - p_u
    (0.8 or 0.2), and x_1 = 1[v > 0.9] has probability 0.1 / 0.2 or 0.1 / 0.8; P(u = 1 |
    x = 1) = 0.8, so P(x_1 = 1) = 0.2 * 0.5 + 0.8 * 0.125 = 0.2 (thresholds cut along the
    world dim, right of the enumerated u's)."""
    def scm():
        u = ppl.sample("u", dist.Bernoulli(0.5))
        return ppl.sample("x", dist.Bernoulli(0.2 + 0.6 * u))

    answer = inference.counterfactual(scm, {"x": 1.0}, {"x": dist.Bernoulli(0.1)}, "x", method="exact")
    assert answer.mean == pytest.approx(0.2, abs=1e-6)


def test_a_shift_reads_the_sites_value_in_its_own_world(on_backend):
    """do(x = 0, y = y + 10): y's natural value in world 1 is 2 * 0 + u_y = 1, so y = 11
    and z = 0 + 11 + u_z = 12 (world 0's y + 10 would give 13)."""
    tr = run(linear_gaussian_scm, EVIDENCE, {"x": 0.0, "y": lambda y: y + 10.0})
    assert worlds_of(tr, "y", 2) == [3.0, 11.0] and worlds_of(tr, "z", 2) == [5.0, 12.0]


def test_world_references_read_factual_earlier_and_later_worlds(on_backend):
    """ppl.world(k) is the site's value in world k as resolved so far: an earlier world's
    value after its interventions, a later world's natural value (before its own)."""
    tr = run(linear_gaussian_scm, EVIDENCE, {"x": 0.0, "y": ppl.world(0)})  # y_1 = y_0 = 3
    assert worlds_of(tr, "y", 2) == [3.0, 3.0] and worlds_of(tr, "z", 2) == [5.0, 4.0]
    tr = run(linear_gaussian_scm, EVIDENCE, [{"y": 7.0}, {"y": ppl.world(1)}], worlds="multi")
    assert worlds_of(tr, "y", 3) == [3.0, 7.0, 7.0] and worlds_of(tr, "z", 3) == [5.0, 9.0, 9.0]
    # world 2 has x = 0, so its natural y is 2 * 0 + 1 = 1 (world 2 sets no y of its own)
    tr = run(linear_gaussian_scm, EVIDENCE, [{"y": ppl.world(2)}, {"x": 0.0}], worlds="multi")
    assert worlds_of(tr, "y", 3) == [3.0, 1.0, 1.0] and worlds_of(tr, "z", 3) == [5.0, 3.0, 2.0]
    message = r"site 'y': world 1 reads world\(3\), but the worlds are 0 .. 2"
    with pytest.raises(SiteError, match=message) as error:
        run(linear_gaussian_scm, {}, [{"y": ppl.world(3)}, {"x": 0.0}], worlds="multi")
    assert error.value.site == "y"


# ------------------------------------------------------------ mechanisms (deterministic sites)
def mediation_default_event_dim():
    """X -> M -> Y, unit coefficients; mechanisms without event_dim (Pyro's default)."""
    u_x, u_m, u_y = (ppl.sample(f"u_{v}", dist.Normal(0.0, 1.0)) for v in "xmy")
    x = ppl.deterministic("X", u_x)
    m = ppl.deterministic("M", x + u_m)
    return ppl.deterministic("Y", x + m + u_y)


def test_mechanisms_without_event_dim_are_one_value_per_world(on_backend):
    """do(X = 1, M = M + 10): M's natural value in world 1 is 1 + u_m, so M = 11 + u_m and
    Y = 1 + M + u_y; world 0 follows the noise. Read against the trace's noise values."""
    tr = run(mediation_default_event_dim, {}, {"X": 1.0, "M": lambda m: m + 10.0})
    u = {v: float(tr[f"u_{v}"].value[0]) for v in "xmy"}
    values = {name: tr.deterministics[name].tolist() for name in "XMY"}
    expected = {"X": [u["x"], 1.0], "M": [u["x"] + u["m"], 11.0 + u["m"]],
                "Y": [2 * u["x"] + u["m"] + u["y"], 12.0 + u["m"] + u["y"]]}
    for name in "XMY":
        assert values[name] == pytest.approx(expected[name], abs=1e-5), name


def vector_mechanism():
    """Three fair coins; V = (X + U0, X * U1) is one vector-valued mechanism."""
    u0 = ppl.sample("u0", dist.Bernoulli(0.5))
    u1 = ppl.sample("u1", dist.Bernoulli(0.5))
    x = ppl.sample("x", dist.Bernoulli(0.5))
    return ppl.deterministic("V", _stack_last(x + u0, x * u1), event_dim=1)


def _stack_last(a, b):
    """``a`` and ``b`` broadcast and stacked on a last axis, on the active backend."""
    ops = ppl.get_backend().ops
    shape = broadcast_shape(tuple(a.shape), tuple(b.shape))
    return ops.stack([ops.broadcast_to(a, shape), ops.broadcast_to(b, shape)], -1)


def test_evidence_on_a_vector_mechanism_holds_in_some_worlds_only(on_backend):
    """Evidence V = (1, 0) keeps (x, u0, u1) in {(1,0,0), (0,1,0), (0,1,1)}, each 1/3 (by
    enumeration of the 8 equally likely triples); under do(x = 1), V_1 = (1 + u0, u1) is
    (1,0), (2,0), (2,1): the code 10 V_1[0] + V_1[1] is 10, 20, 21 with 1/3 each. The
    evidence is compared as a whole vector in the factual world only, and world 1 keeps
    its own value. (world_value reads a vector mechanism's world along the event dim, so
    world 1 is read here at the world dim, -2.)"""
    def code(t):
        v1 = ppl.get_backend().ops.narrow(t.deterministics["V"], -2, 1, 1)
        return 10 * v1[..., 0] + v1[..., 1]

    asarray = ppl.get_backend().ops.asarray
    answer = inference.counterfactual(vector_mechanism, {"V": asarray([1.0, 0.0])},
                                      {"x": 1.0}, code, method="exact")
    assert positive(answer) == pytest.approx({10.0: 1 / 3, 20.0: 1 / 3, 21.0: 1 / 3})
    # intervening on the vector sets it whole in its world, and it flows downstream
    tr = run(vector_mechanism, {}, {"V": asarray([7.0, 8.0])})
    assert tr.deterministics["V"][1].tolist() == [7.0, 8.0]


def test_evidence_on_a_mechanism_in_one_run_is_a_zero_or_minus_infinity_factor(on_backend):
    """One run (no particle dims): the factor compares the factual world's value alone;
    world 1 (do(X = 0)) differs from it and keeps its own value, not the evidence. (u's
    noise is a uniform: u = 1[noise > 0.5].)"""
    def scm():
        u = ppl.sample("u", dist.Bernoulli(0.5))
        x = ppl.deterministic("X", u, event_dim=0)
        return ppl.deterministic("Y", x + 1.0, event_dim=0)

    ops = ppl.get_backend().ops
    for noise, u_value, factor in ((0.9, 1.0, 0.0), (0.1, 0.0, float("-inf"))):
        tr = ppl.trace(ppl.condition(ppl.counterfactual_worlds(scm, {"Y": 2.0}, {"X": 0.0}),
                                     {"u__noise": noise}))()
        assert tr.deterministics["X"].tolist() == [u_value, 0.0]
        assert tr.deterministics["Y"].tolist() == [2.0, 1.0]  # world 0 keeps the evidence
        assert float(tr["Y__evidence"].fn.log_prob(ops.asarray(0.0)).sum()) == factor


def test_evidence_on_a_vector_mechanism_is_one_factor_per_plate_element(on_backend):
    """V_i = (u + i, u) for plate elements i = 0, 1, 2 with u = 1 (its uniform noise
    conditioned above 0.5): evidence ((1, 1), (0, 1), (3, 1)) holds in elements 0 and 2
    only, so the factor is log 1, log 0, log 1, one per element; do(V = (7, 8)) writes
    world 1 of every element."""
    ops = ppl.get_backend().ops

    def scm():
        u = ppl.sample("u", dist.Bernoulli(0.5))
        with ppl.plate("data", 3):
            v = _stack_last(u + ops.asarray([0.0, 1.0, 2.0]), u)  # [worlds, 3, 2]
            v = ppl.deterministic("V", v, event_dim=1)
            return ppl.sample("e", dist.Normal(v.sum(-1), 1.0))  # a sample site: the plate is found

    evidence = {"V": ops.asarray([[1.0, 1.0], [0.0, 1.0], [3.0, 1.0]])}
    program = ppl.condition(ppl.counterfactual_worlds(scm, evidence, {"V": ops.asarray([7.0, 8.0])}),
                            {"u__noise": 0.9})
    tr = ppl.trace(program)()
    factor = tr["V__evidence"].fn.log_prob(ops.asarray(0.0))
    assert factor.reshape(-1).tolist() == [0.0, float("-inf"), 0.0]
    assert tr.deterministics["V"][1].tolist() == [[7.0, 8.0]] * 3


def test_an_intervention_on_a_constant_inside_a_plate(on_backend):
    """k_i = (1, 2, 3) a constant per plate element, y_i = k_i x + u_i; do(k = 5): with x = 1
    and y = k + 1 observed (u_i = 1), world 1 has y_i = 5 + 1."""
    def scm():
        x = ppl.sample("x", dist.Normal(0.0, 1.0))
        with ppl.plate("data", 3):
            k = ppl.deterministic("k", ppl.get_backend().ops.asarray([1.0, 2.0, 3.0]), event_dim=0)
            return ppl.sample("y", dist.Normal(k * x, 1.0))

    tr = run(scm, {"x": 1.0, "y": ppl.get_backend().ops.asarray([2.0, 3.0, 4.0])}, {"k": 5.0})
    assert tr.deterministics["k"].tolist() == [[1.0, 2.0, 3.0], [5.0, 5.0, 5.0]]
    assert tr["y"].value.tolist() == [[2.0, 3.0, 4.0], [6.0, 6.0, 6.0]]


def constant_scale():
    """y = k x + u_y with k a mechanism of no noise (a constant of the model)."""
    k = ppl.deterministic("k", ppl.get_backend().ops.asarray(2.0), event_dim=0)
    x = ppl.sample("x", dist.Normal(0.0, 1.0))
    return ppl.sample("y", dist.Normal(k * x, 1.0))


def test_interventions_on_a_mechanism_of_no_world(on_backend):
    """k has no world dim of its own; do(k = 3), k + 1, and another world's k each give
    world-specific values: y = k_w * 1 + u_y with u_y = 3 - 2 = 1."""
    evidence = {"x": 1.0, "y": 3.0}
    for interventions, worlds, ks in (({"k": 3.0}, "twin", [2.0, 3.0]),
                                      ({"k": lambda k: k + 1.0}, "twin", [2.0, 3.0]),
                                      ([{"k": 5.0}, {"k": ppl.world(1)}], "multi", [2.0, 5.0, 5.0])):
        tr = run(constant_scale, evidence, interventions, worlds=worlds)
        assert tr.deterministics["k"].tolist() == ks
        assert worlds_of(tr, "y", len(ks)) == [k + 1.0 for k in ks]


# ------------------------------------------------------------ exact mode (interval noise)
def test_exact_abduction_of_bernoulli_sites_with_a_latent_parent(on_backend):
    """u ~ B(0.5) latent; z ~ B(0.2 + 0.6 u) observed 1 (the same in every world: its own
    noise); x ~ B(0.5) observed 0; y ~ B(0.1 + 0.4 x + 0.4 u) observed 0; do(x = 1).
    P(u | evidence) is proportional to 0.5 * P(z=1|u) * P(y=0|x=0,u): 0.5*0.2*0.9 = 0.09
    and 0.5*0.8*0.5 = 0.2. Given y_0 = 0 (v < 1 - p_0), y_1 = 1[v > 1 - p_1] has
    probability (p_1 - p_0) / (1 - p_0): 0.4 / 0.9 at u = 0, 0.8 at u = 1. Every
    evidence factor (z's, y's per value of u) changes the answer 0.2 / 0.29. The program's
    log evidence is the factual world's: with a root w ~ B(0.3) observed 1 (its own noise,
    a constant factor), P(w, z, x, y) = 0.3 * 0.5 * 0.5 * (0.2 * 0.9 + 0.8 * 0.5)."""
    def scm():
        ppl.sample("w", dist.Bernoulli(0.3))
        u = ppl.sample("u", dist.Bernoulli(0.5))
        ppl.sample("z", dist.Bernoulli(0.2 + 0.6 * u))
        x = ppl.sample("x", dist.Bernoulli(0.5))
        return ppl.sample("y", dist.Bernoulli(0.1 + 0.4 * x + 0.4 * u))

    evidence = {"w": 1.0, "z": 1.0, "x": 0.0, "y": 0.0}
    answer = inference.counterfactual(scm, evidence, {"x": 1.0}, "y", method="exact")
    assert answer.mean == pytest.approx((0.09 * 0.4 / 0.9 + 0.2 * 0.8) / 0.29, abs=1e-6)
    program = ppl.counterfactual_worlds(scm, evidence, {"x": 1.0}, exact=True)
    posterior = enumerate_program(program)
    assert posterior.log_evidence == pytest.approx(math.log(0.3 * 0.25 * 0.58), abs=1e-6)
    # u is its own noise (drawn once, in the factual world), yet has a value per world
    assert ppl.trace(program)()["u"].value.shape == (2,)


def test_exact_evidence_impossible_for_some_values_of_a_latent(on_backend):
    """y ~ B(u (0.3 + 0.6 x)): y = 1 is impossible when u = 0 (no interval reproduces it:
    its factor is log 0), so u = 1 and y_0 = 1 means v > 0.7; under do(x = 1) the
    threshold is 0.1, so y_1 = 1 surely. P(u = 1 | x = 0, y = 1) = 1."""
    def scm():
        u = ppl.sample("u", dist.Bernoulli(0.5))
        x = ppl.sample("x", dist.Bernoulli(0.5))
        return ppl.sample("y", dist.Bernoulli(u * (0.3 + 0.6 * x)))

    answer = inference.counterfactual(scm, {"x": 0.0, "y": 1.0}, {"x": 1.0},
                                      lambda t: 2 * wv(t, "y", 1) + wv(t, "u", 0), method="exact")
    assert positive(answer) == pytest.approx({3.0: 1.0})


def test_exact_bernoulli_evidence_inside_a_plate(on_backend):
    """x ~ B(0.5), y_i ~ B(0.2 + 0.5 x) for three plate elements observed (1, 0, 1):
    P(x = 1 | y) = 0.7*0.3*0.7 / (0.7*0.3*0.7 + 0.2*0.8*0.2) (each element's evidence
    factor, per element). In one run, the worlds keep the monotone coupling per element:
    where y_0 = 1 (u > 1 - p_0), do(x = 1) (threshold 0.3 <= 1 - p_0) gives y_1 = 1."""
    def plated():
        x = ppl.sample("x", dist.Bernoulli(0.5))
        with ppl.plate("n", 3):
            return ppl.sample("y", dist.Bernoulli(0.2 + 0.5 * x))

    evidence = {"y": ppl.get_backend().ops.asarray([1.0, 0.0, 1.0])}
    answer = inference.counterfactual(plated, evidence, {"x": 1.0}, lambda t: wv(t, "x", 0),
                                      method="exact")
    assert answer.mean == pytest.approx(0.147 / (0.147 + 0.032), abs=1e-6)
    pyro.set_rng_seed(0)  # torch draws from its seeded generator, JAX from the backend's key stream
    for _ in range(20):
        tr = run(plated, evidence, {"x": 1.0}, exact=True)
        assert tr["y"].value.shape == (2, 3) and tr["y"].value[0].tolist() == [1.0, 0.0, 1.0]
        assert tr["y"].value[1, 0] == 1.0 and tr["y"].value[1, 2] == 1.0


# ------------------------------------------------------------ plates and the world dim
def plated_scm(n, *, shift):
    """A model with arguments: n plate elements y_i = x + i + shift + u_i."""
    x = ppl.sample("x", dist.Normal(0.0, 1.0))
    with ppl.plate("data", n, dim=-1):
        return ppl.sample("y", dist.Normal(x + ppl.get_backend().ops.arange(n) + shift, 1.0))


def test_the_world_plate_sits_left_of_the_models_plates(on_backend):
    """Found by one dry run with the program's arguments (remembered per model), or given:
    the world dim is -(nesting + 1). Values: u_i = 0 (evidence y = i + 1 + shift at x = 1),
    so under do(x = 0) y_i = i + shift."""
    calls = []

    def model(n, *, shift):
        calls.append(n)
        return plated_scm(n, shift=shift)

    evidence = {"x": 1.0, "y": ppl.get_backend().ops.asarray([11.0, 12.0, 13.0])}
    tr = run(model, evidence, {"x": 0.0}, 3, shift=10.0)
    assert ppl.causal.worlds.world_dim(tr) == -2 and len(calls) == 2  # the dry run, the run
    assert tr["y"].value.tolist() == [[11.0, 12.0, 13.0], [10.0, 11.0, 12.0]]
    run(model, evidence, {"x": 0.0}, 3, shift=10.0)
    assert len(calls) == 3  # no second dry run for the same model
    given = run(plated_scm, evidence, {"x": 0.0}, 3, shift=10.0, max_plate_nesting=2)
    assert ppl.causal.worlds.world_dim(given) == -3
    assert given["y"].value.squeeze(-2).tolist() == [[11.0, 12.0, 13.0], [10.0, 11.0, 12.0]]
    # a model with no plate: the world dim is -1
    assert ppl.causal.worlds.world_dim(run(linear_gaussian_scm, {}, {"x": 0.0})) == -1


def test_a_subsampled_plate_inside_the_worlds(on_backend):
    """The subsample site of a plate (Pyro's) is not a site of the worlds; y_i = x + i + u_i
    with x observed 1 and do(x = 0) lowers every subsampled element by exactly 1."""
    def scm():
        x = ppl.sample("x", dist.Normal(0.0, 1.0))
        with ppl.plate("data", 10, subsample_size=3) as idx:
            return ppl.sample("y", dist.Normal(x + 1.0 * idx, 1.0))

    tr = run(scm, {"x": 1.0}, {"x": 0.0})
    y = tr["y"].value
    assert y.shape == (2, 3) and [float(d) for d in y[0] - y[1]] == pytest.approx([1.0] * 3, abs=1e-6)


# ------------------------------------------------------------ bad input, named
def test_bad_input_is_named(on_backend):
    asarray = ppl.get_backend().ops.asarray

    def plated_mechanism():
        u = ppl.sample("u", dist.Normal(0.0, 1.0))
        with ppl.plate("data", 3):
            m = ppl.deterministic("m", u + asarray([0.0, 1.0, 2.0]), event_dim=0)
            return ppl.sample("e", dist.Normal(m, 1.0))  # a sample site: the plate is found

    # values that do not fit the site's plate of 3 elements
    two = asarray([0.0, 0.0])
    for model, evidence, interventions, site in ((plated_scm, {}, {"y": two}, "y"),
                                                 (plated_scm, {"y": two}, {"x": 0.0}, "y"),
                                                 (plated_mechanism, {"m": two}, {}, "m"),
                                                 (plated_mechanism, {}, {"m": two}, "m")):
        with pytest.raises(ValueError, match=f"site '{site}': a value of shape \\(2,\\) does not fit"):
            run(model, evidence, interventions, 3, shift=0.0) if model is plated_scm else \
                run(model, evidence, interventions)
    with pytest.raises(SiteError, match="counterfactual evidence: site 'y' is given NaN"):
        ppl.counterfactual_worlds(linear_gaussian_scm, {"y": float("nan")}, {"x": 0.0})
    with pytest.raises(SiteError, match="counterfactual interventions: site 'x' is given NaN"):
        ppl.counterfactual_worlds(linear_gaussian_scm, {}, [{"y": 0.0}, {"x": float("nan")}], worlds="multi")
    twin, multi = "one dict of interventions", "a list of intervention dicts"
    with pytest.raises(ValueError, match=rf"^counterfactual_worlds\(worlds='twin'\) takes {twin}$"):
        ppl.counterfactual_worlds(linear_gaussian_scm, {}, [{"x": 0.0}])
    for sets in ([], [{"x": 0.0}, 1.0]):
        with pytest.raises(ValueError, match=rf"^counterfactual_worlds\(worlds='multi'\) takes {multi}$"):
            ppl.counterfactual_worlds(linear_gaussian_scm, {}, sets, worlds="multi")
    with pytest.raises(ValueError, match="worlds must be 'twin' or 'multi', got 'triple'"):
        ppl.counterfactual_worlds(linear_gaussian_scm, {}, {"x": 0.0}, worlds="triple")
    # a value along the world dim is not one value per world (it used to mix the worlds:
    # evidence y = (3, 5) gave y = 3 in both worlds); a batch left of the worlds is fine
    with pytest.raises(SiteError, match=r"^site 'y': a value of shape \(2,\) does not fit the site's batch "
                                         r"\+ event shape \(1,\): its dim -1 is the worlds' \(give each "
                                         r"world its value with an intervention\)$") as error:
        run(linear_gaussian_scm, {"x": 1.0, "y": asarray([3.0, 5.0])}, {"x": 0.0})
    assert error.value.site == "y"
    with pytest.raises(SiteError, match=r"site 'y': a value of shape \(2, 3\) .* dim -2 is the worlds'"):
        run(plated_scm, {}, {"y": asarray([[0.0] * 3] * 2)}, 3, shift=0.0)
    batch = run(linear_gaussian_scm, {"x": 1.0, "y": asarray([[3.0], [5.0]])}, {"x": 0.0})
    assert batch["y"].value.tolist() == [[3.0, 1.0], [5.0, 3.0]]  # u_y = 1 and 3
    batch = run(linear_gaussian_scm, {"x": 1.0, "y": 3.0}, {"x": asarray([[0.0], [2.0]])})
    assert batch["y"].value.tolist() == [[3.0, 1.0], [3.0, 5.0]]  # y_1 = 2 x_1 + 1
    # a distribution with no noise rule, as a stochastic intervention (exact mode: on a
    # Bernoulli site, whose noise is cut at the interventions' thresholds)
    with pytest.raises(ValueError, match="^site 'x': Beta has no noise-sharing rule"):
        run(linear_gaussian_scm, {}, {"x": dist.Beta(2.0, 2.0)})
    with pytest.raises(ValueError, match="^site 'x': Beta has no noise-sharing rule"):
        run(lambda: ppl.sample("x", dist.Bernoulli(0.5)), {}, {"x": dist.Beta(2.0, 2.0)}, exact=True)
    # one dict is one intervened world under worlds="multi" too
    assert ppl.counterfactual_worlds(linear_gaussian_scm, {}, {"x": 0.0}, worlds="multi").num_worlds == 2
    with pytest.raises(SiteError, match="^site 'M' is deterministic .* not a distribution$") as error:
        run(mediation_default_event_dim, {}, {"M": dist.Normal(0.0, 1.0)})
    assert error.value.site == "M"
