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
