"""The private names of the peer libraries the backends read, each checked to exist and to
behave as the backends use it (a release that removes or changes one fails here, not deep
inside a strategy), and confined to one module per backend.

The torch backend reads Pyro's privates only in ``ppl/backends/torch/pyro_internals.py``;
the JAX backend reads NumPyro's handler stack only in ``ppl/backends/jax.py``.
"""

import pathlib
import re

import pyro
import pyro.distributions as pd
import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parents[2]
PRIVATE = re.compile(r"_PYRO_STACK|_DIM_ALLOCATOR|_Subsample\b|\._params\b|\._constraints\b|"
                     r"\._param_to_name\b|_IntegerInterval")
CONFINED_TO = {"ppl/backends/torch/pyro_internals.py", "ppl/backends/jax.py"}


def test_pyro_s_handler_stack_and_dimension_allocator():
    from pyro.poutine.runtime import _DIM_ALLOCATOR, _PYRO_STACK

    assert isinstance(_PYRO_STACK, list) and isinstance(_DIM_ALLOCATOR._stack, list)
    with pyro.poutine.trace():
        assert len(_PYRO_STACK) == 1  # a handler pushes itself on this list
        with pyro.plate("data", 3, dim=-1):
            assert len(_DIM_ALLOCATOR._stack) >= 1  # a plate holds its dimension here
    assert not _PYRO_STACK


def test_pyro_s_subsample_site_class():
    from pyro.poutine.subsample_messenger import _Subsample

    def model():
        with pyro.plate("data", 5, subsample_size=2):
            pass

    trace = pyro.poutine.trace(model).get_trace()
    assert type(trace.nodes["data"]["fn"]) is _Subsample


def test_pyro_s_param_store_dictionaries():
    from ppl.backends.torch.pyro_internals import set_store_dicts, store_dicts

    store = pyro.get_param_store()
    pyro.param("private_api_probe", torch.tensor(2.0), constraint=pd.constraints.positive)
    try:
        params, param_to_name, constraints = store._params, store._param_to_name, store._constraints
        leaf = params["private_api_probe"]
        assert float(leaf) == pytest.approx(torch.tensor(2.0).log().item())  # unconstrained
        assert param_to_name[leaf] == "private_api_probe"
        assert constraints["private_api_probe"] is pd.constraints.positive
        saved = store_dicts(store)
        set_store_dicts(store, ({}, {}, {}))
        assert "private_api_probe" not in store  # the store reads the swapped-in dictionaries
        set_store_dicts(store, saved)
        assert "private_api_probe" in store
    finally:
        del store["private_api_probe"]


def test_numpyro_s_handler_stack():
    numpyro = pytest.importorskip("numpyro")
    from numpyro.primitives import _PYRO_STACK

    assert isinstance(_PYRO_STACK, list)
    with numpyro.handlers.trace():
        assert len(_PYRO_STACK) == 1


def test_torch_s_per_distribution_validation_flag():
    # read by the exact path, which switches Categorical's construction check off
    assert isinstance(torch.distributions.Distribution._validate_args, bool)
    assert hasattr(torch.distributions.Categorical(torch.tensor([0.5, 0.5])), "_validate_args")


def test_private_names_are_confined_to_one_module_per_backend():
    readers = {}
    for path in sorted(ROOT.glob("*/**/*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if relative.split("/")[0] not in ("ppl", "inference", "models"):
            continue
        if PRIVATE.search(path.read_text()):
            readers[relative] = sorted(set(PRIVATE.findall(path.read_text())))
    assert set(readers) <= CONFINED_TO, {k: v for k, v in readers.items() if k not in CONFINED_TO}


def test_the_peers_whose_privates_are_read_have_an_upper_bound_the_installed_version_meets():
    from importlib.metadata import version

    from packaging.requirements import Requirement

    text = (ROOT / "pyproject.toml").read_text()
    for name in ("pyro-ppl", "numpyro"):
        specs = {str(Requirement(r).specifier) for r in re.findall(rf'"({name}[^"]*)"', text)}
        assert specs, f"{name} is not a dependency"
        for spec in specs:
            upper = [s for s in Requirement(name + spec).specifier if s.operator == "<"]
            assert upper, f"{name}{spec} has no upper bound"
            assert version(name) in Requirement(name + spec).specifier, (name, spec, version(name))


def test_pyro_s_message_is_a_typed_dict_that_builds_plain_dicts():
    # compile=True makes these modules' ``Message`` plain ``dict`` (Dynamo cannot trace a
    # TypedDict with optional keys): safe only while calling it builds a plain dict
    import importlib

    from ppl.backends.torch.pyro_internals import _MESSAGE_MODULES
    from pyro.poutine.runtime import Message

    for name in _MESSAGE_MODULES:
        assert importlib.import_module(name).Message in (Message, dict), name
    message = Message(type="sample", name="x", value=None)
    assert type(message) is dict and message == {"type": "sample", "name": "x", "value": None}
