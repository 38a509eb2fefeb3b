"""What SMC refuses, by name: a site that reads values from before a resampling point
other than through it, and particles that would visit different sites.

    >>> import torch, ppl, ppl.distributions as dist
    >>> from inference import SMC
    >>> def drifting(ys):
    ...     drift = ppl.sample("drift", dist.Normal(0.0, 1.0))   # a static parameter
    ...     z = 0.0
    ...     for t, y in enumerate(ys):
    ...         z = ppl.sample(f"z_{t}", dist.Normal(z + drift, 1.0))
    ...         ppl.sample(f"y_{t}", dist.Normal(z, 1.0), obs=y)
    >>> try:
    ...     SMC(drifting, num_particles=10).run(torch.ones(3))
    ... except ppl.errors.SiteError as error:
    ...     print(str(error)[:60])
    SMC: site 'z_2' reads 'drift', drawn before 'z_1', where the
"""

import math

from ppl.errors import ShapeError, SiteError
from ppl.site_handler import SiteHandler


class Order(SiteHandler):
    """The sample and deterministic sites of a run, in program order."""

    def __init__(self):
        self.names = []

    def process_sample(self, msg):
        self.names.append(msg["name"])

    def process_deterministic(self, msg):
        self.names.append(msg["name"])


def check_markov_reads(order, parents, trace):
    """The values a site reads must be in the particles' current order: a site after a
    resampling point (a latent site after new evidence) may read values drawn since that
    point, and the point's own site values drawn since the point before it."""
    position = {name: i for i, name in enumerate(order)}
    start, previous, evidence = None, None, False
    for name in order:
        site = trace.sites.get(name)
        if site is not None and site.observed:
            evidence = True
        elif site is not None and evidence:  # a resampling point: redrawn from the ancestors
            start, previous, evidence = name, start, False
        boundary = previous if name == start else start
        if boundary is None:
            continue
        for parent in parents.get(name, ()):
            parent_site = trace.sites.get(parent)
            if parent_site is not None and parent_site.observed:
                continue  # data: the same in every particle
            if position.get(parent, math.inf) < position[boundary]:
                raise SiteError(
                    f"SMC: site {name!r} reads {parent!r}, drawn before {boundary!r}, where the "
                    "particles may be resampled; SMC resamples in the program's flow (it redraws the "
                    "first latent site after new evidence from each new particle's ancestor), so a "
                    "site may read only values drawn since the last such point (and that point's "
                    "site those since the one before), as a Markov chain's step reads the previous "
                    f"state. Draw {parent!r} again in each step, or pass ess_threshold=0 (no "
                    "resampling: sequential importance sampling)", site=name)


def not_one_structure(error):
    site = getattr(error, "ppl_last_site", None)
    where = f"after site {site!r}" if site else "before its first site"
    return ShapeError(
        f"SMC: the program failed with its particles vectorised on a plate {where}: {error}. SMC "
        "runs every particle through one run of the program, so the particles must visit the same "
        "sites: a branch on a drawn value (an if on a tensor) changes the structure between "
        "particles; write it with torch.where / jnp.where, and let the program broadcast over a "
        "batch dimension left of its plates")
