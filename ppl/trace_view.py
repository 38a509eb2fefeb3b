"""One read-only view of an executed program for both backends.

``ppl.trace(model)(*args)`` returns a :class:`Trace`; inference code reads only this view.

    >>> import torch, ppl, ppl.distributions as dist
    >>> def model():
    ...     with ppl.plate("data", 3):
    ...         return ppl.sample("x", dist.Normal(0.0, 1.0), obs=torch.zeros(3))
    >>> tr = ppl.trace(model)()
    >>> site = tr["x"]
    >>> site.observed, [p.name for p in site.plates], tuple(site.log_prob.shape)
    (True, ['data'], (3,))
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class PlateInfo:
    """A plate a site lies in: its name, batch dimension (negative) and size."""

    name: str
    dim: int | None
    size: int


@dataclass
class Site:
    """One ``sample`` site: its value, distribution, observed flag, plates and infer config.

    ``log_prob`` is the element-wise log density with the plate scale (subsampling,
    ``scale`` handler) and mask applied, computed on first access.
    """

    name: str
    value: Any
    fn: Any
    observed: bool
    plates: tuple
    infer: dict
    scale: Any = None
    mask: Any = None
    _log_prob_fn: Callable = field(default=None, repr=False)
    _log_prob: Any = field(default=None, repr=False)

    @property
    def log_prob(self):
        if self._log_prob is None:
            self._log_prob = self._log_prob_fn(self)
        return self._log_prob

    @property
    def log_prob_sum(self):
        return self.log_prob.sum()

    @property
    def is_latent(self):
        return not self.observed


class Trace:
    """Sample sites (in execution order), parameter values and the program's return value."""

    def __init__(self, sites, params=None, deterministics=None, return_value=None, backend=None):
        self.sites = dict(sites)
        self.params = dict(params or {})
        self.deterministics = dict(deterministics or {})
        self.return_value = return_value
        self.backend = backend
        self.subsamples = {}  # plate name -> the indices a subsampled plate drew
        self.plate_sizes = {}  # plate name -> a subsampled plate's full size

    def replay_values(self):
        """What another program replays from this one: the latent sites' values and the
        subsampled plates' indices (by plate name)."""
        values = {name: s.value for name, s in self.sites.items() if not s.observed}
        values.update(self.subsamples)
        return values

    def __getitem__(self, name):
        try:
            return self.sites[name]
        except KeyError:
            raise KeyError(
                f"the program has no sample site {name!r}; its sites are {list(self.sites)}"
            ) from None

    def __contains__(self, name):
        return name in self.sites

    def __iter__(self):
        return iter(self.sites.values())

    def __len__(self):
        return len(self.sites)

    @property
    def latent(self):
        """The latent (unobserved) sites, by name."""
        return {name: s for name, s in self.sites.items() if not s.observed}

    @property
    def observed(self):
        """The observed sites, by name."""
        return {name: s for name, s in self.sites.items() if s.observed}

    def values(self):
        """Every site's value (sample and deterministic sites), by name."""
        out = {name: s.value for name, s in self.sites.items()}
        out.update(self.deterministics)
        return out

    def log_joint(self):
        """The sum of every site's scaled, masked log density."""
        total = 0.0
        for site in self.sites.values():
            total = total + site.log_prob_sum
        return total

    def __repr__(self):
        kinds = ", ".join(f"{n}{'(obs)' if s.observed else ''}" for n, s in self.sites.items())
        return f"Trace({kinds})"
