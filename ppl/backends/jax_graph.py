"""``ppl.graph`` on JAX: which sites each site's distribution was computed from.

NumPyro's ``get_dependencies`` drops the edges out of observed and intervened sites (their
values are constants to it) and passes through ``deterministic`` sites. Here every sample
site's value and every deterministic value is an input whose provenance JAX's abstract
interpretation follows (``numpyro.ops.provenance``), as the torch backend's provenance
tracker does, so both backends give the same graph:

    >>> import ppl, ppl.distributions as dist
    >>> def model():
    ...     z = ppl.sample("z", dist.Normal(0.0, 1.0))
    ...     x = ppl.sample("x", dist.Normal(z, 1.0), obs=0.3)
    ...     return ppl.sample("y", dist.Normal(x, 1.0))
    >>> with ppl.backend("jax"):
    ...     sorted(ppl.graph(model).edges)
    [('x', 'y'), ('z', 'x')]

A value that reaches Python control flow (``if``, ``float()``, ``.item()``) cannot be
followed: the error names the last site drawn before it and the fix.
"""

import jax
from numpyro import handlers as nh
from numpyro.ops.provenance import eval_provenance
from numpyro.primitives import Messenger

from ..backend import activated
from ..errors import SiteError


class _Tagged(Messenger):
    """Gives each sample and deterministic site the value passed in (tracked by JAX), and
    keeps what the program computed for a deterministic site and each site's distribution."""

    def __init__(self, values):
        super().__init__()
        self.values = values
        self.sites = {}
        self.computed = {}
        self.last = None

    def process_message(self, msg):
        # the handlers inside this one (do, condition, plates) have seen the site already
        if msg["type"] in ("sample", "deterministic") and msg["name"] in self.values:
            if msg["type"] == "deterministic":
                self.computed[msg["name"]] = msg["value"]
            msg["value"] = self.values[msg["name"]]

    def postprocess_message(self, msg):
        if msg["type"] == "sample" and msg["name"] in self.values:
            self.sites[msg["name"]] = msg["fn"]
        if msg["type"] in ("sample", "deterministic"):
            self.last = msg["name"]


def dependencies(backend, fn, args, kwargs):
    """site -> the sites its distribution (or a deterministic site's value) was computed from."""
    trace = backend.run(fn, args, kwargs)
    values = {name: site.value for name, site in trace.sites.items()}
    values.update(trace.deterministics)
    tagged = None

    def outputs(**inputs):
        nonlocal tagged
        tagged = _Tagged(inputs)
        with activated(backend.name), tagged, nh.seed(rng_seed=0):
            fn(*args, **(kwargs or {}))
        out = {name: site.log_prob(inputs[name]) for name, site in tagged.sites.items()}
        out.update(tagged.computed)
        return out

    try:
        provenance = eval_provenance(outputs, **values)
    except jax.errors.ConcretizationTypeError as error:
        after = f"after site {tagged.last!r}" if tagged.last else "before its first site"
        raise SiteError(
            f"ppl.graph on the jax backend: the program turns a traced value into a Python one "
            f"(an if, bool(), float() or .item()) {after}, so the control flow cannot be followed; "
            "write the branch with jnp.where or jax.lax.cond, or build the graph on the torch "
            "backend, which gives such a site an edge to every later site", site=tagged.last) from error
    return {name: set(parents) - {name} for name, parents in provenance.items()}
