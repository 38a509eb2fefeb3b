"""``ppl.do``, ``ppl.condition`` and ``ppl.graph`` give the same answers on both backends
(one implementation, ``ppl/causal/interventions.py``; the graph by provenance on each)."""

import math
import warnings

import pytest

import ppl
import ppl.distributions as dist
from inference import Importance
from ppl.errors import SiteError


def chain():
    z = ppl.sample("z", dist.Normal(0.0, 1.0))
    w = ppl.sample("w", dist.Normal(z, 1.0))
    return ppl.sample("x", dist.Normal(w, 1.0))


def test_a_hard_intervention_holds_its_value_and_is_observed(on_backend):
    tr = ppl.trace(ppl.do(chain, {"z": 1.0}))()
    assert float(tr["z"].value) == 1.0
    assert tr["z"].observed and tr["z"].infer["do"] == "hard"
    assert sorted(tr.latent) == ["w", "x"]
    assert float(tr["z"].log_prob) == 0.0


def test_importance_under_do_needs_no_proposal_for_the_intervened_site(on_backend):
    # do(z = 1), x = 1.5 observed: w | x ~ N((1 + 1.5) / 2, 1/2); the evidence is N(1.5; 1, 2)
    program = ppl.condition(ppl.do(chain, {"z": 1.0}), {"x": 1.5})
    result = Importance(program, num_particles=20000, rng_seed=0).run()
    with pytest.raises(KeyError, match="no site 'z'"):
        result.mean("z")
    ess = float(result.effective_sample_size)
    assert abs(float(result.mean("w")) - 1.25) < 5 * math.sqrt(0.5 / ess)
    exact = -0.5 * math.log(2 * math.pi * 2.0) - 0.5 ** 2 / (2 * 2.0)
    assert abs(float(result.log_evidence) - exact) < 5 * float(result.log_evidence_stderr)


def test_a_shift_intervention_reads_its_natural_value(on_backend):
    tr = ppl.trace(ppl.do(chain, {"w": lambda natural: natural + 10.0}))()
    assert tr["w__natural"].infer["do"] == "natural" and not tr["w__natural"].observed
    assert float(tr["w"].value) == pytest.approx(float(tr["w__natural"].value) + 10.0)
    assert tr["w"].observed and tr["w"].infer["do"] == "shift"


def test_a_stochastic_intervention_draws_from_the_new_distribution(on_backend):
    tr = ppl.trace(ppl.do(chain, {"w": dist.Normal(50.0, 0.1)}))()
    assert tr["w"].infer["do"] == "stochastic" and not tr["w"].observed
    assert abs(float(tr["w"].value) - 50.0) < 1.0  # 10 sd of the new distribution; 0 sd is 50 from the old


def test_an_intervened_discrete_site_in_a_plate_takes_an_integer_value(on_backend):
    def model():
        with ppl.plate("p", 3):
            return ppl.sample("c", dist.Categorical(probs=ppl.get_backend().ops.asarray([0.2, 0.8])))

    tr = ppl.trace(ppl.do(model, {"c": 1}))()
    assert tuple(tr["c"].value.shape) == (3,) and "int" in str(tr["c"].value.dtype)


@pytest.mark.parametrize("transform", ["do", "condition"])
def test_an_unknown_site_name_is_an_error(on_backend, transform):
    handler = getattr(ppl, transform)
    expected = f"{transform}: the program has no sample site 'W'; did you mean 'w'"
    with pytest.raises(ValueError, match=expected):
        handler(chain, {"W": 1.0})()


def test_evidence_and_intervention_on_one_site_are_refused(on_backend):
    with pytest.raises(ValueError, match="site 'w' is conditioned on"):
        ppl.do(ppl.condition(chain, {"w": 1.0}), {"w": 0.0})()
    with pytest.raises(ValueError, match="site 'w' is intervened on"):
        ppl.condition(ppl.do(chain, {"w": 1.0}), {"w": 0.0})()


def test_handlers_work_as_context_managers_and_decorators(on_backend):
    with ppl.do(interventions={"z": 2.0}):
        tr = ppl.trace(chain)()
    assert float(tr["z"].value) == 2.0
    tr = ppl.trace(ppl.condition(data={"z": 3.0})(chain))()
    assert float(tr["z"].value) == 3.0 and tr["z"].infer["evidence"]


def test_a_program_called_directly_draws_fresh_values(on_backend):
    # on JAX the draws come from the backend's key stream, as torch's from its generator
    first, second = float(chain()), float(chain())
    assert first != second
    assert float(ppl.do(chain, {"w": 2.0})()) != 2.0  # x drawn around the intervened w
    assert float(ppl.seed(chain, 3)()) == float(ppl.seed(chain, 3)())


def graph_model():
    a = ppl.sample("a", dist.Normal(0.0, 1.0))
    d = ppl.deterministic("d", a ** 2 + 1)
    b = ppl.sample("b", dist.Normal(2 * d, 1.0))
    o = ppl.sample("o", dist.Normal(b, 1.0), obs=0.2)
    with ppl.plate("p", 3):
        e = ppl.sample("e", dist.Normal(o + a, 1.0))
    return ppl.sample("c", dist.Normal(a + e.sum(), 1.0))


GRAPH = [("a", "c"), ("a", "d"), ("a", "e"), ("b", "o"), ("d", "b"), ("e", "c"), ("o", "e")]


@pytest.mark.parametrize("transform, edges", [
    (lambda m: m, GRAPH),
    (lambda m: ppl.condition(m, {"b": 0.0}), GRAPH),
    (lambda m: ppl.do(m, {"b": 0.0}), [e for e in GRAPH if e != ("d", "b")]),
    (lambda m: ppl.do(m, {"b": lambda v: v + 1}),
     [e for e in GRAPH if e != ("d", "b")] + [("b__natural", "b"), ("d", "b__natural")]),
], ids=["plain", "condition", "do", "shift"])
def test_the_graph_has_edges_out_of_observed_and_through_deterministic_sites(on_backend, transform, edges):
    assert sorted(ppl.graph(transform(graph_model)).edges) == sorted(edges)


def test_identification_agrees_through_an_observed_mediator(on_backend):
    def model():
        z = ppl.sample("z", dist.Normal(0.0, 1.0))
        x = ppl.sample("x", dist.Normal(z, 1.0), obs=0.3)
        return ppl.sample("y", dist.Normal(x + z, 1.0))

    answer = ppl.identify(ppl.graph(model), "x", "y")
    assert answer.adjustment_sets == [frozenset({"z"})]


def test_control_flow_on_a_traced_value_is_named_on_jax_and_an_edge_on_torch(on_backend):
    def model():
        x = ppl.sample("x", dist.Bernoulli(0.5))
        p = 0.9 if x.item() > 0.5 else 0.1
        return ppl.sample("y", dist.Bernoulli(p))

    if on_backend == "torch":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert sorted(ppl.graph(model).edges) == [("x", "y")]
        return
    with pytest.raises(SiteError, match="after site 'x'.*jnp.where or jax.lax.cond") as caught:
        ppl.graph(model)
    assert caught.value.site == "x"
