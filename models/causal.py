"""Structural causal models for interventional and counterfactual queries (torch).

Each is a program of ``ppl`` sample sites; ``graph(model)`` draws it, ``interventional`` and
``counterfactual`` query it.

- :func:`front_door_model`: smoking -> tar -> cancer with a latent genotype confounding
  smoking and cancer, fitted to Pearl, Glymour and Jewell's *Primer*, Table 3.1;
- :func:`simpson_model`: drug, gender, recovery from the *Primer*, Table 1.1;
- :func:`linear_gaussian_scm`: X = U_x, Y = 2 X + U_y (plus Z = X + Y + U_z);
- :func:`confounded_scm`: stress (latent) -> smoking -> cancer, stress -> cancer;
- :class:`DiscreteBayesianNetwork`: any discrete network given by conditional tables.

    >>> from inference import interventional
    >>> round(interventional(front_door_model, {"smoking": 1.0}, "cancer").mean, 4)
    0.5475
"""

import torch

import ppl
import ppl.distributions as dist

# Primer, Table 3.1: P(cancer | smoking, tar); smokers 400 of 800; tar in 95% of smokers
# and 5% of non-smokers
CANCER_GIVEN_SMOKING_TAR = torch.tensor([[0.90, 0.95], [0.10, 0.15]])  # [smoking, tar]


def front_door_model():
    """A latent genotype U decides smoking (S = U) and, with tar T, cancer: the observed joint
    of (S, T, C) is that of Table 3.1, and P(C | do(S)) is what the front-door formula gives."""
    genotype = ppl.sample("genotype", dist.Bernoulli(0.5))
    smoking = ppl.sample("smoking", dist.Bernoulli(genotype))
    tar = ppl.sample("tar", dist.Bernoulli(0.05 + 0.90 * smoking))
    # cancer depends on tar and on the genotype (which equals smoking when not intervened)
    p = CANCER_GIVEN_SMOKING_TAR[genotype.long(), tar.long()]
    return ppl.sample("cancer", dist.Bernoulli(p))


# Primer, Table 1.1: 357 men (87 took the drug), 343 women (263 took it)
RECOVERY_GIVEN_GENDER_DRUG = torch.tensor([[55 / 80, 192 / 263], [234 / 270, 81 / 87]])


def simpson_model():
    """gender -> drug, gender -> recovery, drug -> recovery (gender 1 = male)."""
    male = ppl.sample("gender", dist.Bernoulli(357 / 700))
    drug = ppl.sample("drug", dist.Bernoulli(263 / 343 + (87 / 357 - 263 / 343) * male))
    p = RECOVERY_GIVEN_GENDER_DRUG[male.long(), drug.long()]
    return ppl.sample("recovery", dist.Bernoulli(p))


def linear_gaussian_scm(noise_scale=1.0):
    """X = U_x, Y = 2 X + U_y, Z = X + Y + U_z with standard normal noise (times noise_scale)."""
    x = ppl.sample("x", dist.Normal(0.0, noise_scale))
    y = ppl.sample("y", dist.Normal(2.0 * x, noise_scale))
    return ppl.sample("z", dist.Normal(x + y, noise_scale))


CANCER_GIVEN_STRESS_SMOKING = torch.tensor([[0.1, 0.15], [0.8, 0.85]])


def confounded_scm():
    """P(stress) = 0.5, P(smoking | stress) = 0.2 / 0.8, P(cancer | stress, smoking) =
    [[0.1, 0.15], [0.8, 0.85]]: P(cancer | do(smoking = 1)) = 0.50, do(0): 0.45, while
    P(cancer | smoking = 1) = 0.71 and P(cancer | smoking = 0) = 0.24."""
    stress = ppl.sample("stress", dist.Bernoulli(0.5))
    smoking = ppl.sample("smoking", dist.Bernoulli(0.2 + 0.6 * stress))
    p = CANCER_GIVEN_STRESS_SMOKING[stress.long(), smoking.long()]
    return ppl.sample("cancer", dist.Bernoulli(p))


class DiscreteBayesianNetwork:
    """A discrete network as a program: ``nodes`` in topological order, each with its
    ``parents`` and a table of shape ``[*parent cardinalities, cardinality]``.

    Values are state indices (Categorical sites); ``states[node]`` names them.

        >>> import torch
        >>> bn = DiscreteBayesianNetwork(
        ...     {"rain": ((), torch.tensor([0.8, 0.2])),
        ...      "wet": (("rain",), torch.tensor([[0.9, 0.1], [0.2, 0.8]]))})
        >>> sorted(ppl.graph(bn).edges)
        [('rain', 'wet')]
    """

    def __init__(self, cpds, states=None):
        self.cpds = {node: (tuple(parents), torch.as_tensor(table, dtype=torch.get_default_dtype()))
                     for node, (parents, table) in cpds.items()}
        self.states = states or {}
        self._tables = {"torch": {node: table for node, (_, table) in self.cpds.items()}}
        for node, (parents, table) in self.cpds.items():
            if table.dim() != len(parents) + 1:
                raise ValueError(f"node {node!r}: a table of shape {tuple(table.shape)} does not "
                                 f"fit {len(parents)} parent(s) plus the node's own states")
            for parent in parents:
                if parent not in self.cpds:
                    raise ValueError(f"node {node!r}: parent {parent!r} is not a node")

    def state_index(self, node, state):
        """The index of a named state (or the index itself)."""
        if isinstance(state, str):
            return self.states[node].index(state)
        return state

    def __call__(self):
        """The network as a program, on the active backend (its tables converted once)."""
        backend = ppl.get_backend()
        tables = self._tables.get(backend.name)
        if tables is None:
            tables = self._tables[backend.name] = {
                node: backend.ops.asarray(table.numpy()) for node, (_, table) in self.cpds.items()}
        values = {}
        for node, (parents, _) in self.cpds.items():
            table = tables[node]
            probs = (backend.ops.gather(table, tuple(backend.ops.to_index(values[p]) for p in parents))
                     if parents else table)
            values[node] = ppl.sample(node, dist.Categorical(probs))
        return values
