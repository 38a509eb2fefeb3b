"""Renamed public names: the new name is the thing, the old one still works for one
release and says what it became."""

import importlib

import pytest


@pytest.mark.parametrize("module", ["ppl.backends.torch", "ppl.backends.torch.state", "ppl.backends.jax"])
def test_a_strategy_s_state_is_strategy_state_and_the_old_name_warns(module):
    if module.endswith("jax"):
        pytest.importorskip("numpyro")
    loaded = importlib.import_module(module)
    with pytest.warns(DeprecationWarning, match="ProgramState is now StrategyState"):
        old = loaded.ProgramState
    assert old is loaded.StrategyState
    assert loaded.StrategyState(rng_seed=0).rng_seed == 0
    with pytest.raises(AttributeError):
        loaded.NoSuchName


@pytest.mark.parametrize("module", ["ppl", "ppl.causal"])
def test_the_counterfactual_program_transform_is_counterfactual_worlds(module):
    # ppl.counterfactual returned a program while inference.counterfactual answers a query,
    # and the function hid its own module ppl.causal.counterfactual (now world_handler)
    loaded = importlib.import_module(module)
    with pytest.warns(DeprecationWarning, match="ppl.counterfactual is now ppl.counterfactual_worlds"):
        old = loaded.counterfactual
    assert old is loaded.counterfactual_worlds
    import ppl.causal.world_handler as the_module

    assert the_module.counterfactual_worlds is loaded.counterfactual_worlds


def test_importance_takes_param_values_and_the_old_name_warns():
    # Importance(params=...) was an input named like vi.params, a result
    import torch

    import ppl
    import ppl.distributions as dist
    from inference import Importance

    def model():
        ppl.sample("x", dist.Normal(ppl.param("loc", torch.tensor(0.0)), 1.0), obs=torch.tensor(2.0))

    given = {"loc": torch.tensor(2.0)}  # log N(2; 2, 1), with no latent site to average over
    exact = dist.Normal(2.0, 1.0).log_prob(torch.tensor(2.0)).item()
    assert Importance(model, num_particles=2, param_values=given).run().log_evidence == pytest.approx(exact)
    renamed = r"Importance\(params=...\) is now Importance\(param_values=...\)"
    with pytest.warns(DeprecationWarning, match=renamed):
        old = Importance(model, num_particles=2, params=given)
    assert old.run().log_evidence == pytest.approx(exact)
    with pytest.raises(TypeError, match="pass param_values= only"):
        Importance(model, param_values=given, params=given)
