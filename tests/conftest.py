import pyro
import pytest
import torch

import ppl
from inference.exact import elimination

# one intra-op thread: the suite's tensors are small, and with two threads a busy second
# core makes tiny kernels wait for a spinning worker (milliseconds each)
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def fresh_state():
    """Pyro's param store is global: every test starts empty, on torch, seeded, and with no
    cached elimination plan (a test's answer must not depend on which tests planned before
    it; mutation testing forks its workers from a process that ran the whole suite)."""
    elimination.clear_plans()
    pyro.clear_param_store()
    torch.manual_seed(0)
    ppl.set_backend("torch")
    yield
    pyro.clear_param_store()
    ppl.set_backend("torch")


@pytest.fixture(params=["torch", "jax"])
def on_backend(request):
    """Runs a backend-neutral test on both backends (the active one while it runs)."""
    if request.param == "jax":
        pytest.importorskip("numpyro")
    ppl.set_backend(request.param)
    return request.param
