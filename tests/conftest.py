import pyro
import pytest
import torch

import ppl


@pytest.fixture(autouse=True)
def fresh_state():
    """Pyro's param store is global: every test starts empty, on torch, seeded."""
    pyro.clear_param_store()
    torch.manual_seed(0)
    ppl.set_backend("torch")
    yield
    pyro.clear_param_store()
    ppl.set_backend("torch")
