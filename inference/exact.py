"""Exact enumeration of a program's discrete latent sites (torch).

Every latent site's support is laid out on its own batch dimension, left of the plates;
the joint log density over the grid of configurations then gives exact posterior
expectations of any function of the trace.

    >>> import torch, ppl, ppl.distributions as dist
    >>> def coin():
    ...     bias = ppl.sample("bias", dist.Categorical(torch.tensor([0.5, 0.5])))
    ...     p = torch.tensor([0.2, 0.8])[bias]
    ...     ppl.sample("flip", dist.Bernoulli(p), obs=torch.tensor(1.0))
    >>> posterior = enumerate_program(coin)
    >>> round(posterior.expectation(lambda tr: tr["bias"].value.float()), 3)
    0.8
"""

import math

import torch
from pyro import poutine

from ppl.backends.torch import BACKEND

from .program import plate_nesting

MAX_CELLS = 1 << 22


class EnumeratedPosterior:
    """The enumerated trace and the normalised log weights of its grid of configurations."""

    def __init__(self, trace, log_joint, nesting):
        self.trace = trace
        self.log_evidence = float(torch.logsumexp(log_joint.reshape(-1), 0))
        self.log_weights = log_joint - self.log_evidence
        self.nesting = nesting

    def _on_grid(self, values, what):
        values = torch.as_tensor(values)
        if values.dim() > self.log_weights.dim():
            _raise(values.shape, self.log_weights.shape, what)
        try:
            return torch.broadcast_to(values, self.log_weights.shape)
        except RuntimeError:
            _raise(values.shape, self.log_weights.shape, what)

    def expectation(self, fn):
        """E[fn(trace)] for a function returning one number per configuration."""
        values = self._on_grid(fn(self.trace), "the function's value")
        return float((self.log_weights.exp() * values.to(self.log_weights.dtype)).sum())

    def distribution(self, fn):
        """{value: probability} of a discrete function of the trace."""
        values = self._on_grid(fn(self.trace), "the function's value").reshape(-1)
        weights = self.log_weights.exp().reshape(-1)
        out = {}
        for v in torch.unique(values):
            out[v.item()] = float(weights[values == v].sum())
        return out


def _raise(value_shape, grid_shape, what):
    raise ValueError(
        f"exact enumeration: {what} has shape {tuple(value_shape)}, which does not line up with "
        f"the grid of configurations {tuple(grid_shape)}; exact queries take one number per "
        "configuration (a target outside plates)")


def enumerate_program(program, *args, max_cells=MAX_CELLS, max_plate_nesting=8, **kwargs):
    """Run ``program`` with every latent site enumerated; returns an :class:`EnumeratedPosterior`.

    Enumerated dimensions start left of ``max_plate_nesting`` plate dimensions, so no dry
    run is needed to find the program's nesting.
    """
    enum_dims = {}
    cells = [1]

    def draw(msg):
        name, fn = msg["name"], msg["fn"]
        if not getattr(fn, "has_enumerate_support", False):
            raise ValueError(
                f"exact enumeration: latent site {name!r} ({type(fn).__name__}) has no finite "
                "support; exact queries need every latent site discrete (or fixed by evidence); "
                "use method='importance'")
        for frame in msg["cond_indep_stack"]:
            if frame.dim is not None and frame.size > 1:
                raise ValueError(
                    f"exact enumeration: latent site {name!r} lies in plate {frame.name!r} of "
                    f"size {frame.size}; enumerating it jointly over the plate is not supported; "
                    "use method='importance'")
        dim = -(max_plate_nesting + 1 + len(enum_dims))
        enum_dims[name] = dim
        support = fn.enumerate_support(expand=False)
        cells[0] *= support.shape[0]
        if cells[0] > max_cells:
            raise ValueError(f"exact enumeration: more than {max_cells} configurations by site "
                             f"{name!r}; use method='importance'")
        msg["value"] = support.reshape((support.shape[0],) + (1,) * (-dim - 1) + tuple(fn.event_shape))

    with torch.no_grad(), poutine.block():
        trace = BACKEND.run(program, args, kwargs, draw=draw)
    nesting = plate_nesting([trace])
    if nesting > max_plate_nesting:
        raise ValueError(f"exact enumeration: the program nests {nesting} plates; pass "
                         f"max_plate_nesting={nesting}")
    log_joint = torch.zeros(())
    for site in trace:
        lp = site.log_prob
        if nesting and lp.dim() > 0:
            lp = lp.sum(tuple(range(-min(nesting, lp.dim()), 0)))
        log_joint = log_joint + lp
    posterior = EnumeratedPosterior(trace, log_joint, nesting)
    if not math.isfinite(posterior.log_evidence):
        raise ValueError("exact enumeration: the evidence has probability zero under the program")
    return posterior
