"""A toy "chain of thought": each input draws a rationale of three tokens from {0, 1, 2, 3}
(64 rationales in all) from a small autoregressive model, and the rationale's answer is
the sum of its tokens mod 4. The parameters are logit tables per input: ``first[x]``,
``second[x, z_1]``, ``third[x, z_1, z_2]``; an answer check scores the observed answer
(log 1 or log 0). Everything is enumerable, so the exact log likelihood, its gradient and
the posterior over rationales are known: the oracles for TRICE (Phan, Hoffman et al.
2023, whose research figure uses a toy of this kind).

    >>> x, y = toy_data()
    >>> uniform = {name: np.zeros(shape) for name, shape in shapes(len(x)).items()}
    >>> round(mean_log_likelihood(uniform, x, y), 4)   # every answer has probability 1/4
    -1.3863
"""

import functools
import itertools
import math

import numpy as np

import ppl
import ppl.distributions as dist

from ._arrays import asarray, to_numpy

TOKENS, LENGTH = 4, 3
RATIONALES = np.array(list(itertools.product(range(TOKENS), repeat=LENGTH)))  # [64, 3]
ANSWERS = RATIONALES.sum(1) % TOKENS


def shapes(num_inputs):
    """The parameters' shapes, by name."""
    return {"first": (num_inputs, TOKENS), "second": (num_inputs, TOKENS, TOKENS),
            "third": (num_inputs, TOKENS, TOKENS, TOKENS)}


def initial_logits(num_inputs, scale=0.5, seed=0):
    """The parameters' starting point: small random logits (at zero the gradient vanishes
    by symmetry: every token is uniform given the answer)."""
    rng = np.random.default_rng(seed)
    return {name: rng.normal(0.0, scale, shape) for name, shape in shapes(num_inputs).items()}


@functools.lru_cache(maxsize=8)
def _starting_arrays(num_inputs, backend):
    """initial_logits as the backend's arrays, made once (the program runs twice a step)."""
    return {name: asarray(value, backend) for name, value in initial_logits(num_inputs).items()}


def rationale_model(x, y, batch_size=None, num_inputs=None):
    """Three tokens ``z1, z2, z3`` per input, each given the ones before; the answer check
    ``(z1 + z2 + z3) mod 4 == y``."""
    ops = ppl.get_backend().ops
    start = _starting_arrays(num_inputs or len(x), ppl.get_backend().name)
    first, second, third = (ppl.param(name, start[name]) for name in ("first", "second", "third"))
    with ppl.plate("data", len(x), subsample_size=batch_size) as index:
        xi = x[index]
        z1 = ppl.sample("z1", dist.Categorical(logits=first[xi]))
        z2 = ppl.sample("z2", dist.Categorical(logits=second[xi, z1]))
        z3 = ppl.sample("z3", dist.Categorical(logits=third[xi, z1, z2]))
        right = ((z1 + z2 + z3) % TOKENS) == y[index]
        ppl.factor("check", ops.where(right, 0.0, -math.inf))


def toy_data(num_inputs=8, seed=0):
    """Inputs 0..n-1 (integer arrays of the active backend) and an answer for each."""
    y = np.random.default_rng(seed).integers(0, TOKENS, num_inputs)
    return _integers(np.arange(num_inputs)), _integers(y)


def _integers(values):
    if ppl.get_backend().name == "torch":
        import torch

        return torch.as_tensor(values, dtype=torch.long)
    import jax.numpy as jnp

    return jnp.asarray(values, dtype=jnp.int32)


def _log_softmax(logits):
    logits = to_numpy(logits).astype(np.float64)
    top = logits.max(-1, keepdims=True)
    return logits - top - np.log(np.exp(logits - top).sum(-1, keepdims=True))


def rationale_probabilities(params, x):
    """p(z | x) for every rationale: ``[len(x), 64]`` (float64 numpy)."""
    x = to_numpy(x).astype(int)
    a, b, c = RATIONALES.T
    first, second, third = (_log_softmax(params[n])[x] for n in ("first", "second", "third"))
    return np.exp(first[:, a] + second[:, a, b] + third[:, a, b, c])


def _right(y):
    return ANSWERS[None, :] == to_numpy(y).astype(int)[:, None]


def mean_log_likelihood(params, x, y):
    """(1/n) sum_i log p(y_i | x_i), summing over the 64 rationales."""
    return float(np.mean(np.log((rationale_probabilities(params, x) * _right(y)).sum(1))))


def posterior_rationales(params, x, y, rng):
    """One draw of each (z1, z2, z3)_i from p(z | x_i, y_i): ``[n, 3]`` integers."""
    probs = rationale_probabilities(params, x) * _right(y)
    probs /= probs.sum(1, keepdims=True)
    return RATIONALES[[rng.choice(len(RATIONALES), p=p) for p in probs]]
