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
