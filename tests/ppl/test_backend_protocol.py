"""Both backends implement every member of the declared protocol (ppl/backends/base.py)."""

import pytest

import ppl
from ppl.backends.base import Backend, missing_members
from ppl.errors import UnsupportedError


@pytest.mark.parametrize("name", ["torch", "jax"])
def test_backend_implements_the_protocol(name):
    if name == "jax":
        pytest.importorskip("numpyro")
    backend = ppl.get_backend(name)
    assert missing_members(backend) == []
    assert isinstance(backend, Backend)


def test_missing_member_is_reported():
    class Partial:
        name = "partial"

    assert "run" in missing_members(Partial()) and "name" not in missing_members(Partial())


def test_a_feature_a_backend_lacks_raises_unsupported_error_naming_it():
    backend = ppl.get_backend("torch")
    with pytest.raises(UnsupportedError, match="particles mapped with vmap is not supported on the torch "
                       "backend") as caught:
        backend.run(lambda: None, particles=(4, -1, "vmap"))
    assert isinstance(caught.value, NotImplementedError)  # the built-in it replaces still catches it
