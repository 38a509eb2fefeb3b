"""The JAX backend's Recorder (what a run saw, as the common ``ppl.Trace`` view), and the
errors a failed run is explained by."""

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions
from numpyro.primitives import Messenger

from ..errors import SiteError
from ..trace_view import PlateInfo, Site, Trace
from ..validation import (check_distribution_backend, explain_score_failure, value_broadcasts,
                          value_shape_error)


class Recorder(Messenger):
    """Records sample, deterministic and param sites (see the torch ``Recorder``)."""

    def __init__(self, replay=None, draw=None, adjust=None):
        super().__init__()
        self.replay = replay
        self.draw = draw
        self.adjust = adjust
        self.sites = {}
        self.params = {}
        self.param_constraints = {}
        self.deterministics = {}
        self.subsamples = {}
        self.plate_sizes = {}  # a subsampled plate's full size, by name

    def process_message(self, msg):
        if msg["type"] == "plate":
            if self.replay is not None and msg["name"] in self.replay and _subsampled(msg):
                msg["value"] = self.replay[msg["name"]]  # the guide's indices (see torch's Recorder)
            return
        if msg["type"] != "sample":
            return
        check_distribution_backend(msg["name"], msg["fn"], "jax")
        if msg["is_observed"]:
            return
        if self.replay is not None and msg["name"] in self.replay:
            msg["value"] = self.replay[msg["name"]]
            msg["done"] = True  # the value stands: no enumeration below replaces it
            if self.adjust is not None:
                self.adjust(msg)
        elif self.draw is not None:
            self.draw(msg)

    def postprocess_message(self, msg):
        kind, name = msg["type"], msg.get("name")
        if kind == "plate":
            if _subsampled(msg):
                self.subsamples[name] = msg["value"]
                self.plate_sizes[name] = msg["args"][0]
        elif kind == "sample":
            if name in self.sites:
                raise ValueError(f"sample site {name!r} appears twice in one run; site names must be unique")
            self.sites[name] = msg
        elif kind == "deterministic":
            self.deterministics[name] = msg["value"]
        elif kind == "param":
            self.params[name] = msg["value"]
            self.param_constraints[name] = msg["kwargs"].get(
                "constraint", numpyro.distributions.constraints.real)


def _last_site(recorder):
    """The last site a failed run recorded, and where the failure came, in words."""
    after = list(recorder.sites)[-1] if recorder.sites else None
    return after, (f"after site {after!r}" if after else "before its first site")


def _torch_in_program(error, recorder):
    """A failure where a torch tensor is among the variables of the frame that raised (or
    named by the error) while a JAX program ran: a torch tensor reached a NumPyro
    distribution or a JAX operation."""
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    raised_on_torch = tb is not None and any(
        type(v).__module__.startswith("torch") for v in tb.tb_frame.f_locals.values())
    if not raised_on_torch and "'Tensor'" not in str(error):  # an operator's message names the type
        return None
    after, where = _last_site(recorder)
    return SiteError(f"a torch tensor reached the jax backend's program {where} ({type(error).__name__}: "
                     f"{str(error).splitlines()[0]}); pass JAX or NumPy arrays (jnp.asarray(...)) on the "
                     "jax backend, or run the program under ppl.backend('torch')", site=after)


def _traced_control_flow(error, recorder):
    """A traced value (the program runs under ``jax.jit`` or ``vmap``) reached Python control
    flow: JAX's error does not say where; name the last site drawn before it."""
    if not isinstance(error, jax.errors.ConcretizationTypeError):
        return None
    after, where = _last_site(recorder)
    return SiteError(f"the program turns a traced value into a Python one (an if, bool(), float() or "
                     f".item()) {where} while JAX compiles or vectorises it; write the branch with "
                     "jnp.where or jax.lax.cond, or pass a value the branch needs as a non-array "
                     "(static) argument", site=after)


def _subsampled(msg):
    """Whether a plate message draws a subsample (``subsample_size`` None: the whole plate;
    replaying its indices would force the guide's size on the model's plate)."""
    size, subsample_size = msg["args"]
    return subsample_size is not None and subsample_size != size


def _site_log_prob(site):
    try:
        lp = site.fn.log_prob(site.value)
    except (TypeError, ValueError, IndexError) as error:
        if not value_broadcasts(site):  # JAX's message names neither the site nor its plates
            raise value_shape_error(site, error) from error
        named = explain_score_failure(site, error, "jax")  # the site, and what it expects
        if named is not None:
            raise named from error
        raise
    base = site.fn
    while isinstance(base, numpyro.distributions.ExpandedDistribution):  # plates expand it
        base = base.base_dist
    if site.observed and isinstance(base, _CLAMPED):
        lp = _impossible_as_minus_inf(base, site.value, lp)
    return lp if site.scale is None else lp * site.scale


_CLAMPED = (numpyro.distributions.discrete.BernoulliProbs, numpyro.distributions.discrete.CategoricalProbs)


def _impossible_as_minus_inf(fn, value, log_prob):
    """NumPyro clamps probabilities of 0 before taking logs (as torch does): evidence that
    is impossible under the model gets -inf here, so that it reads as impossible."""
    probs = fn.probs
    if isinstance(fn, numpyro.distributions.discrete.BernoulliProbs):
        exact = jnp.where(value == 1, probs, 1 - probs)
    else:
        index = jnp.asarray(value).astype(jnp.int32)
        batch = jnp.broadcast_shapes(probs.shape[:-1], index.shape)
        full = jnp.broadcast_to(probs, batch + probs.shape[-1:])
        exact = jnp.take_along_axis(full, jnp.broadcast_to(index, batch)[..., None], -1)[..., 0]
    return jnp.where(exact == 0, -jnp.inf, log_prob)


def to_trace(recorder, return_value=None):
    sites = {
        name: Site(
            name=name,
            value=msg["value"],
            fn=msg["fn"],
            observed=msg["is_observed"],
            plates=tuple(PlateInfo(f.name, f.dim, f.size) for f in msg["cond_indep_stack"]),
            infer=msg.get("infer") or {},
            scale=msg.get("scale"),
            mask=None,  # numpyro's mask handler wraps the distribution itself
            _log_prob_fn=_site_log_prob,
        )
        for name, msg in recorder.sites.items()
    }
    from .jax import BACKEND  # the backend module imports this one

    trace = Trace(sites, recorder.params, recorder.deterministics, return_value, BACKEND)
    trace.param_constraints = recorder.param_constraints
    trace.subsamples = recorder.subsamples
    trace.plate_sizes = recorder.plate_sizes
    return trace
