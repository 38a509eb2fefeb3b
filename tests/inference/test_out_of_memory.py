"""An allocation that fails inside an importance-sampling chunk is named with the chunk's
size and the arguments that shrink it (not torch's allocator message, and not mistaken for
a program that does not broadcast)."""

import pytest
import torch

import ppl
import ppl.distributions as dist
from inference import Importance
from ppl.errors import ResourceError

X = torch.tensor([0.2, -0.1, 0.4])


def model(x):
    loc = ppl.sample("loc", dist.Normal(0.0, 1.0))
    with ppl.plate("data", len(x)):
        ppl.sample("x", dist.Normal(loc, 1.0), obs=x)


def _failing_allocation(importance, message):
    """``importance._weights`` failing to allocate whenever its particles are vectorised."""
    weights = importance._weights

    def run(args, kwargs, particles, rng=None):
        if particles is not None:
            raise RuntimeError(message)
        return weights(args, kwargs, particles, rng)
    return run


# today: with vectorize_particles="auto", torch's allocator failure read as a program that
# does not broadcast: a warning, then 4000 runs one by one; with True, a ShapeError blaming
# the plate
@pytest.mark.parametrize("mode", ["auto", True])
@pytest.mark.parametrize("message", [
    "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: you tried "
    "to allocate 68719476736 bytes. Error code 12 (Cannot allocate memory)",
    "CUDA out of memory. Tried to allocate 64.00 GiB",
])
def test_an_allocation_failure_in_a_chunk_names_the_chunk_and_the_remedy(monkeypatch, mode, message):
    importance = Importance(model, num_particles=4000, max_memory=2 ** 20, vectorize_particles=mode)
    monkeypatch.setattr(importance, "_weights", _failing_allocation(importance, message))
    with pytest.raises(ResourceError, match=r"Importance: a chunk of \d+ particles ran out of memory "
                                            r"\(max_memory=1048576 bytes .*lower max_memory \(e.g. "
                                            r"max_memory=262144\) or pass a smaller chunk_size"):
        importance.run(X, progress=False)
    assert isinstance(ResourceError("x"), MemoryError)


def test_a_program_failure_is_not_an_allocation_failure():
    from ppl.errors import is_allocation_failure

    assert not is_allocation_failure(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert is_allocation_failure(RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate"))
    assert is_allocation_failure(MemoryError())
