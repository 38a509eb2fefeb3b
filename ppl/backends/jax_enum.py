"""Model-side enumeration on JAX, by NumPyro's funsor-based machinery: sites marked
``infer={"enumerate": "parallel"}`` get their support on a dimension of their own
(``numpyro.contrib.funsor.enum``), plates and those dimensions are named
(``dim_to_name`` on each site), and ``ppl.markov`` is NumPyro's funsor ``markov``, which
recycles dimensions along a chain. Needs ``funsor`` (``pip install funsor``).

    >>> import jax.numpy as jnp, ppl, ppl.distributions as dist
    >>> with ppl.backend("jax") as backend:
    ...     def model():
    ...         c = ppl.sample("c", dist.Bernoulli(0.3), infer={"enumerate": "parallel"})
    ...         ppl.sample("x", dist.Normal(2.0 * c, 1.0), obs=jnp.array(0.5))
    ...     trace = backend.run(model, enumerate_from=-1)
    >>> trace["c"].value.shape, dict(trace["x"].infer["dim_to_name"])
    ((2,), {-1: 'c'})
"""

import contextlib

import jax
import jax.numpy as jnp
from numpyro.primitives import Messenger

from ..errors import SiteError, UnsupportedError
from ..validation import markov_window_problem


def funsor_enumeration():
    """NumPyro's funsor handlers, or an error saying what to install."""
    try:
        from numpyro.contrib.funsor import enum, markov
        from numpyro.contrib.funsor.enum_messenger import NamedMessenger
        from numpyro.contrib.funsor.infer_util import plate_to_enum_plate
    except ImportError as error:  # funsor missing
        raise UnsupportedError("model-side enumeration without funsor", backend="jax",
                               hint="pip install funsor") from error
    return enum, markov, NamedMessenger, plate_to_enum_plate


@contextlib.contextmanager
def enumerating(first_available_dim):
    """Enumerate marked sites from ``first_available_dim`` leftwards, naming every site's
    batch dimensions (``infer["dim_to_name"]``) while the chain's names are alive."""
    enum, _, NamedMessenger, plate_to_enum_plate = funsor_enumeration()
    with plate_to_enum_plate(), enum(first_available_dim=first_available_dim), _NameDims(NamedMessenger):
        yield


class _NameDims(Messenger):
    def __init__(self, named):
        super().__init__()
        self.named = named

    def postprocess_message(self, msg):
        if msg["type"] == "sample":
            value_batch = jnp.shape(msg["value"])[: jnp.ndim(msg["value"]) - msg["fn"].event_dim]
            batch = jax.lax.broadcast_shapes(tuple(msg["fn"].batch_shape), value_batch)
            msg["infer"]["dim_to_name"] = self.named._get_dim_to_name(batch)


def markov(iterable=None, history=1):
    """``ppl.markov`` on JAX: NumPyro's funsor ``markov`` (without funsor, for programs that
    enumerate nothing, the steps as they are); its sites are marked as in a chain."""
    try:
        _, funsor_markov, _, _ = funsor_enumeration()
    except UnsupportedError:
        funsor_markov = None
    length = len(iterable) if hasattr(iterable, "__len__") else None
    if iterable is None:
        if funsor_markov is None:
            raise UnsupportedError("ppl.markov() as a context without funsor", backend="jax",
                                   hint="pip install funsor")
        return funsor_markov(history=history)
    return _chain(iterable, history, length, funsor_markov)


def _chain(iterable, history, length, funsor_markov):
    steps = iterable if funsor_markov is None else funsor_markov(iterable, history=history)
    with _InChain(history, length):
        yield from steps


class _InChain(Messenger):
    """Marks a chain's sites (``_markov_scope``); refuses, at the first one, a window of
    past steps longer than the chain (as on torch)."""

    def __init__(self, history, length):
        super().__init__()
        self.history, self.length = history, length

    def process_message(self, msg):
        if msg["type"] != "sample":
            return
        if self.length is not None and self.history > self.length:
            raise SiteError(markov_window_problem(msg["name"], self.history, self.length), site=msg["name"])
        msg["infer"] = dict(msg.get("infer") or {}, _markov_scope=True)
