"""Peer libraries as oracles, shared by the peer tests and the parity suite: ChiRho's twin
worlds on the linear-Gaussian SCM (its mechanisms written as invertible transforms of the
noise, the way ChiRho shares noise) and pgmpy's bundled discrete networks converted to ours.
Each helper skips the calling test when its library is not installed."""

import functools
import warnings

import numpy as np
import pytest
import torch

import ppl
import ppl.distributions as dist
from models.causal import DiscreteBayesianNetwork


def chirho_api():
    """ChiRho's handlers and indexing ops (the calling test skips when ChiRho is missing)."""
    pytest.importorskip("chirho")
    from chirho.counterfactual.handlers import TwinWorldCounterfactual
    from chirho.indexed.ops import IndexSet, gather
    from chirho.interventional.handlers import do
    from chirho.observational.handlers import condition

    class Api:
        pass

    api = Api()
    api.TwinWorldCounterfactual, api.do, api.condition = TwinWorldCounterfactual, do, condition
    api.gather, api.IndexSet = gather, IndexSet
    return api


def chirho_mechanism(loc):
    """loc + U, U ~ Normal(0, 1), as an invertible transform of the noise (ChiRho's recipe)."""
    import pyro.distributions as pdist

    return pdist.TransformedDistribution(
        pdist.Normal(0.0, 1.0), [pdist.transforms.AffineTransform(loc, 1.0)])


def chirho_scm2():
    import pyro

    x = pyro.sample("x", chirho_mechanism(0.0))
    y = pyro.sample("y", chirho_mechanism(2.0 * x))
    return {"x": x, "y": y}


def chirho_scm3():
    import pyro

    x = pyro.sample("x", chirho_mechanism(0.0))
    y = pyro.sample("y", chirho_mechanism(2.0 * x))
    z = pyro.sample("z", chirho_mechanism(x + y))
    return {"x": x, "y": y, "z": z}


def chirho_naive_scm(num_particles):
    """The same SCM with plain Normal mechanisms: ChiRho does not share their noise."""
    import pyro
    import pyro.distributions as pdist

    with pyro.plate("particles", num_particles, dim=-1):
        x = pyro.sample("x", pdist.Normal(0.0, 1.0))
        y = pyro.sample("y", pdist.Normal(2.0 * x, 1.0))
    return {"x": x, "y": y}


def ours_scm2():
    """The linear-Gaussian SCM X = U_x, Y = 2 X + U_y as we write it (plain Normals, on
    either backend)."""
    x = ppl.sample("x", dist.Normal(0.0, 1.0))
    return ppl.sample("y", dist.Normal(2.0 * x, 1.0))


def ours_scm3():
    """... with Z = X + Y + U_z."""
    x = ppl.sample("x", dist.Normal(0.0, 1.0))
    y = ppl.sample("y", dist.Normal(2.0 * x, 1.0))
    return ppl.sample("z", dist.Normal(x + y, 1.0))


def chirho_twin(api, model, evidence, interventions):
    """(factual, counterfactual) values of every returned site under ChiRho's twin worlds."""
    data = {k: torch.as_tensor(v, dtype=torch.get_default_dtype()) for k, v in evidence.items()}
    actions = {k: torch.as_tensor(v, dtype=torch.get_default_dtype())
               for k, v in interventions.items()}
    worlds = api.TwinWorldCounterfactual()
    with worlds:
        values = api.do(api.condition(model, data=data), actions)()
        split = worlds.fresh_prefix  # the twin-world index plate's name
        factual = {k: api.gather(v, api.IndexSet(**{split: {0}})) for k, v in values.items()}
        cf = {k: api.gather(v, api.IndexSet(**{split: {1}})) for k, v in values.items()}
    return factual, cf


@functools.lru_cache(maxsize=None)
def load_network(name):
    """A bundled pgmpy network (offline) and its conversion to ours."""
    from pgmpy.utils import get_example_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        model = get_example_model(name)
    return model, to_ours(model)


def to_ours(model):
    """pgmpy's DiscreteBayesianNetwork -> ours.

    pgmpy's ``TabularCPD.values`` has shape ``[card, *evidence cards]``, with the evidence
    in the order ``cpd.variables[1:]`` and each axis's states in the order
    ``cpd.state_names[var]``; ours is ``[*parent cards, card]`` in the order of ``parents``,
    every node's states in the order of its own CPD. The bundled networks list evidence in
    sorted order, so ours takes the parents in reverse-sorted order: the transpose is then
    exercised by every node with two or more parents (asia's either and dysp, cancer's
    Cancer, survey's E and T, sachs's Akt, Mek, ...).
    """
    import networkx as nx

    states = {node: list(model.get_cpds(node).state_names[node]) for node in model.nodes()}
    cpds = {}
    for node in nx.topological_sort(model):
        cpd = model.get_cpds(node)
        evidence = list(cpd.variables[1:])
        parents = sorted(model.get_parents(node), reverse=True)
        assert sorted(evidence) == sorted(parents)
        values = np.asarray(cpd.values, dtype=np.float64)
        for axis, var in enumerate(cpd.variables):  # each axis in its node's state order
            values = np.take(values, [cpd.state_names[var].index(s) for s in states[var]], axis)
        values = values.transpose([1 + evidence.index(p) for p in parents] + [0])
        cpds[node] = (tuple(parents), torch.from_numpy(np.ascontiguousarray(values)))
    return DiscreteBayesianNetwork(cpds, states=states)


def ours_vector(estimate, card):
    probs = np.zeros(card)
    for value, p in estimate.distribution.items():
        probs[int(value)] = p
    return probs


def theirs_vector(factor, target, states):
    """A pgmpy factor over ``target`` as a vector in the node's canonical state order."""
    assert factor.variables == [target]
    names = factor.state_names[target]
    return np.array([factor.values[names.index(s)] for s in states])
