"""The parity suite: one model, both backends, the same answers, measured against NumPyro's
and Pyro's own estimators on the same noise, closed forms, and the peers (pgmpy, ChiRho).

Elsewhere on both backends (the ``on_backend`` fixture): graphs and identification
(``tests/causal/test_interventions_both_backends.py``), causal queries and exact enumeration
(``tests/causal/test_queries_both_backends.py``), counterfactual worlds
(``tests/causal/test_counterfactual_both_backends.py``), score-function baselines and
checkpoints (``tests/inference/vi/test_baselines_both_backends.py``), GFlowNet-EM against
exact EM (``tests/inference/gflownet/test_gflownet_both_backends.py``).
"""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import ppl
from inference import ELBO, VI, Importance, counterfactual, interventional
from inference.exact import enumerate_program
from models.conjugate import (
    normal_normal_data,
    normal_normal_guide,
    normal_normal_log_evidence,
    normal_normal_model,
    normal_normal_posterior,
)
from test_properties import DISCRETE, cases, make_model, on_active_backend

from peers import (
    chirho_api,
    chirho_scm2,
    chirho_scm3,
    chirho_twin,
    load_network,
    ours_scm2,
    ours_scm3,
    ours_vector,
    theirs_vector,
)


# ------------------------------------------------------------ ELBO on the same noise
def test_the_elbo_is_the_peer_s_trace_elbo_on_the_same_draws(on_backend):
    # ours and the backend's own library (Pyro's Trace_ELBO on torch, NumPyro's on JAX) draw
    # the guide's site from the same random state: the losses agree to float round-off
    x = normal_normal_data(5, true_mu=1.0, seed=0)
    # on torch a strategy without a stream of its own draws from the global generator
    vi = VI(normal_normal_model, normal_normal_guide, ELBO(), rng_seed=None if on_backend == "torch" else 3)
    vi.run(x, num_steps=3, progress=False)  # parameters away from their initial values
    if on_backend == "torch":
        import pyro

        pyro.set_rng_seed(11)
        ours = vi.loss(x)
        pyro.set_rng_seed(11)
        with vi.param_scope():
            theirs = pyro.infer.Trace_ELBO().loss(normal_normal_model, normal_normal_guide, x)
    else:
        import jax
        from numpyro.infer import Trace_ELBO

        _, key = jax.random.split(vi.state.rng)  # the key vi.loss takes from its stream
        ours = vi.loss(x)
        theirs = float(Trace_ELBO().loss(key, vi.params, normal_normal_model, normal_normal_guide, x))
    assert ours == pytest.approx(theirs, rel=1e-6, abs=1e-5)


# ----------------------------------------------------- log evidence: the closed form
def test_importance_with_the_exact_posterior_gives_the_exact_evidence(on_backend):
    # with the exact posterior as proposal every weight is p(x) itself: the estimate is the
    # closed form to float round-off, whatever the draws
    x = normal_normal_data(8, true_mu=0.5, seed=1)
    loc, scale = normal_normal_posterior(x)
    ops = ppl.get_backend().ops
    result = Importance(normal_normal_model, normal_normal_guide, num_particles=200, rng_seed=0,
                        param_values={"loc": ops.asarray(loc), "scale": ops.asarray(scale)}
                        ).run(x, progress=False)
    assert result.log_evidence == pytest.approx(normal_normal_log_evidence(x), abs=2e-5)
    weights = np.asarray(result.log_weights)
    assert np.ptp(weights) < 1e-4  # every particle's weight is the evidence


# ------------------------------------------------------- do-queries against pgmpy
PGMPY_QUERIES = [("asia", {"either": "yes"}, "dysp"), ("asia", {"smoke": "yes"}, "dysp"),
                 ("asia", {"tub": "yes"}, "xray"), ("sachs", {"PKA": "HIGH"}, "Akt"),
                 ("sachs", {"Erk": "LOW"}, "Akt")]


@pytest.mark.parametrize("network, do, target", PGMPY_QUERIES,
                         ids=[f"{n}-do({next(iter(d))})-{t}" for n, d, t in PGMPY_QUERIES])
def test_exact_do_queries_are_pgmpy_s_on_both_backends(on_backend, network, do, target):
    pytest.importorskip("pgmpy")
    from pgmpy.inference import CausalInference

    model, bn = load_network(network)
    ours = interventional(bn, {k: bn.state_index(k, v) for k, v in do.items()}, target, method="exact")
    theirs = CausalInference(model).query([target], do=do, show_progress=False)
    states = bn.states[target]
    np.testing.assert_allclose(ours_vector(ours, len(states)), theirs_vector(theirs, target, states),
                               rtol=0, atol=1e-6)


# ---------------------------------------------------- twin worlds against ChiRho
@pytest.mark.parametrize("ours_model, chirho_model, evidence, action, target", [
    (ours_scm2, chirho_scm2, {"x": 1.0, "y": 3.0}, {"x": 0.0}, "y"),
    (ours_scm3, chirho_scm3, {"x": 1.0, "y": 3.0, "z": 4.5}, {"x": 0.0}, "z"),
    (ours_scm3, chirho_scm3, {"x": 1.0, "y": 3.0, "z": 4.5}, {"y": 0.0}, "z"),
], ids=["x-to-y", "do-x", "do-y"])
def test_twin_world_counterfactuals_are_chirho_s_on_both_backends(on_backend, ours_model, chirho_model,
                                                                  evidence, action, target):
    # ChiRho (on Pyro) shares the noise of mechanisms written as transforms of it; ours shares
    # a plain Normal's by its location-scale form, on either backend, for the same answer
    api = chirho_api()
    with ppl.backend("torch"):
        _, cf = chirho_twin(api, chirho_model, evidence, action)
    theirs = float(cf[target].squeeze())
    ours = counterfactual(ours_model, evidence, action, target, method="exact")
    assert ours.mean == pytest.approx(theirs, abs=1e-5)
    assert ours.stderr == 0.0


# ------------------------------------- exact enumeration, random discrete programs
@settings(max_examples=40)
@given(cases(), st.integers(0, 3))
def test_exact_enumeration_agrees_across_backends_on_random_programs(drawn, _):
    # the property grammar's programs whose latent sites are all discrete: the same log
    # evidence on both backends (torch: the project's elimination or Pyro's plated sums;
    # JAX: funsor's), and the same marginal of every latent site (per element inside plates)
    case, _ = drawn
    assume(all(site.family in DISCRETE for site in case.latent()))
    pytest.importorskip("numpyro")
    answers = {}
    for name in ("torch", "jax"):
        with ppl.backend(name):
            posterior = enumerate_program(make_model(case), on_active_backend(case.data))
            marginals = {site.name: np.asarray(posterior.marginal(site.name)) for site in case.latent()}
            answers[name] = float(posterior.log_evidence), marginals
    (torch_evidence, torch_marginals), (jax_evidence, jax_marginals) = answers["torch"], answers["jax"]
    assert jax_evidence == pytest.approx(torch_evidence, rel=1e-4, abs=1e-4)
    for site, table in torch_marginals.items():
        np.testing.assert_allclose(jax_marginals[site], table, atol=1e-5, err_msg=site)
