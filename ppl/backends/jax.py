"""The JAX backend: NumPyro's primitives and handlers plus the same protocol as the torch one.

Randomness is explicit: ``run`` threads a PRNG key (a fresh one from a module-level
stream when none is given), and parameters are passed in rather than stored.
"""

import contextlib
import threading
import types

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions
from jax.scipy.special import logsumexp as _logsumexp
from numpyro import handlers as nh
from numpyro.primitives import _PYRO_STACK, Messenger

from . import jax_enum
from ..backend import activated
from ..errors import SiteError, UnsupportedError
from ..site_handler import RunsRule
from ..trace_view import PlateInfo, Site, Trace
from ..validation import (check_distribution_backend, check_plate, explain_run_failure,
                          explain_score_failure)

PARTICLE_PLATE = "_particles"


def _module(name, nn_module, **kwargs):
    """An Equinox module whose floating-point arrays are ``param`` sites named
    ``"<name>$$$<path>"`` (as Pyro names a module's weights): the returned module holds the
    values the running strategy gives them (trained, substituted, checkpointed as any
    parameter). Equinox modules are pytrees, so this needs no init function or input shape
    and stays pure under ``jax.jit``."""
    try:
        import equinox
    except ImportError as error:
        raise UnsupportedError(f"ppl.module({name!r}) without equinox", backend="jax",
                               hint="pip install 'ppl-extension[jax]' (or equinox)") from error
    if not isinstance(nn_module, equinox.Module):
        raise SiteError(f"ppl.module({name!r}): on the jax backend a module is an equinox.Module, "
                        f"not {type(nn_module).__name__} (on torch, a torch.nn.Module)", site=name)
    arrays, rest = equinox.partition(nn_module, equinox.is_inexact_array)
    leaves, treedef = jax.tree_util.tree_flatten_with_path(arrays)
    values = [numpyro.param(f"{name}$$${jax.tree_util.keystr(path)}", leaf) for path, leaf in leaves]
    return equinox.combine(jax.tree_util.tree_unflatten(treedef, values), rest)


def _plate(name, size, subsample_size=None, dim=None, **kwargs):
    check_plate(name, size, subsample_size)  # numpyro asserts, without the plate's name
    return numpyro.plate(name, size, subsample_size=subsample_size, dim=dim, **kwargs)


def _sample(name, fn, obs=None, infer=None, rng_key=None, **kwargs):
    """NumPyro's sample; a draw outside any ``seed`` handler (a program called directly, as
    on torch) takes a key from the backend's stream instead of failing NumPyro's key check."""
    if not isinstance(fn, numpyro.distributions.Distribution):  # NumPyro's own check is a TypeError
        check_distribution_backend(name, fn, "jax")
    if rng_key is None and obs is None and not any(isinstance(h, nh.seed) for h in _PYRO_STACK):
        rng_key = BACKEND._fresh_key()
    return numpyro.sample(name, fn, obs=obs, infer=infer, rng_key=rng_key, **kwargs)


def _deterministic(name, value, event_dim=None):
    """NumPyro's deterministic site (it records the value as it is), its message carrying
    ``event_dim`` for the handlers that read it (counterfactual worlds' mechanisms)."""
    if not _PYRO_STACK:
        return value
    msg = {"type": "deterministic", "name": name, "value": value, "cond_indep_stack": [],
           "event_dim": event_dim}
    return numpyro.primitives.apply_stack(msg)["value"]


primitives = types.SimpleNamespace(
    sample=_sample,
    param=numpyro.param,
    plate=_plate,
    deterministic=_deterministic,
    factor=numpyro.factor,
    module=_module,
    markov=jax_enum.markov,
)
distributions = numpyro.distributions


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


def _torch_in_program(error, recorder):
    """A failure with a torch tensor among the failing frames' variables while a JAX program
    ran: a torch tensor reached a NumPyro distribution or a JAX operation."""
    tb = error.__traceback__
    while tb is not None:
        if any(type(v).__module__.startswith("torch") for v in tb.tb_frame.f_locals.values()):
            break
        tb = tb.tb_next
    if tb is None and "'Tensor'" not in str(error):  # an operator's own message names the type
        return None
    after = list(recorder.sites)[-1] if recorder.sites else None
    where = f"after site {after!r}" if after else "before its first site"
    return SiteError(f"a torch tensor reached the jax backend's program {where} ({type(error).__name__}: "
                     f"{str(error).splitlines()[0]}); pass JAX or NumPy arrays (jnp.asarray(...)) on the "
                     "jax backend, or run the program under ppl.backend('torch')", site=after)


def _traced_control_flow(error, recorder):
    """A traced value (the program runs under ``jax.jit`` or ``vmap``) reached Python control
    flow: JAX's error does not say where; name the last site drawn before it."""
    if not isinstance(error, jax.errors.ConcretizationTypeError):
        return None
    after = list(recorder.sites)[-1] if recorder.sites else None
    where = f"after site {after!r}" if after else "before its first site"
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


_BERNOULLI = (numpyro.distributions.discrete.BernoulliProbs, numpyro.distributions.discrete.BernoulliLogits)
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
    trace = Trace(sites, recorder.params, recorder.deterministics, return_value, BACKEND)
    trace.param_constraints = recorder.param_constraints
    trace.subsamples = recorder.subsamples
    return trace


class RuleMessenger(RunsRule, Messenger):
    """Runs a backend-neutral :class:`ppl.site_handler.SiteHandler` as a NumPyro Messenger
    (``RuleMessenger(rule, fn)``); called with a single function and no handled function
    yet, it wraps it (as Pyro's do)."""

    def __call__(self, *args, **kwargs):
        if self.fn is None and len(args) == 1 and callable(args[0]) and not kwargs:
            return RuleMessenger(self.rule, args[0])
        return super().__call__(*args, **kwargs)

    def process_message(self, msg):
        if msg["type"] == "sample":
            self.rule.process_sample(msg)
        elif msg["type"] == "deterministic":
            self.rule.process_deterministic(msg)

    def postprocess_message(self, msg):
        if msg["type"] == "sample":
            self.rule.postprocess_sample(msg)


def _replay(fn=None, values=None):
    entries = {name: {"type": "sample", "value": v} for name, v in values.items()}
    return nh.replay(fn, trace=entries)


class _Uncondition(Messenger):
    """Observed sites drawn from their distributions instead (Pyro's ``poutine.uncondition``)."""

    def process_message(self, msg):
        if msg["type"] == "sample" and msg["is_observed"]:
            msg["is_observed"], msg["value"] = False, None


def _causal():
    from ..causal import interventions  # written once for both backends (it imports this package)

    return interventions


handlers = types.SimpleNamespace(
    replay=_replay,
    uncondition=lambda fn=None: _Uncondition(fn),
    condition=lambda fn=None, data=None: _causal().condition(fn, data=data),
    block=lambda fn=None, hide=None, expose=None, hide_fn=None: nh.block(
        fn, hide_fn=hide_fn, hide=hide, expose=expose),
    scale=lambda fn=None, scale=1.0: nh.scale(fn, scale=scale),
    mask=lambda fn=None, mask=True: nh.mask(fn, mask=mask),
    seed=lambda fn=None, rng_seed=0: nh.seed(fn, rng_seed=rng_seed),
    do=lambda fn=None, interventions=None: _causal().do(fn, interventions=interventions),
)


class _Ops:
    """Array operations the objectives need, on JAX arrays."""

    stop_gradient = staticmethod(jax.lax.stop_gradient)
    exp = staticmethod(jnp.exp)
    log = staticmethod(jnp.log)
    where = staticmethod(jnp.where)
    square = staticmethod(jnp.square)
    stack = staticmethod(jnp.stack)
    reshape = staticmethod(jnp.reshape)
    concatenate = staticmethod(jnp.concatenate)

    @staticmethod
    def logsumexp(x, dim):
        return _logsumexp(x, axis=dim)

    @staticmethod
    def softmax(x, dim):
        return jax.nn.softmax(x, axis=dim)

    @staticmethod
    def sum(x, dim=None):
        return jnp.sum(x, axis=dim)

    @staticmethod
    def mean(x, dim=None):
        return jnp.mean(x, axis=dim)

    @staticmethod
    def ndim(x):
        return jnp.ndim(x)

    @staticmethod
    def numel(x):
        return jnp.size(x)

    @staticmethod
    def broadcast_to(x, shape):
        return jnp.broadcast_to(x, shape)

    @staticmethod
    def isfinite(x):
        return bool(jnp.all(jnp.isfinite(x)))

    @staticmethod
    def sum_log_prob(site):
        return jnp.sum(site.log_prob)

    @staticmethod
    def isnan(x):
        return bool(jnp.any(jnp.isnan(x)))

    @staticmethod
    def item(x):
        return float(x)

    @staticmethod
    def asarray(x, like=None):
        return jnp.asarray(x) if like is None else jnp.asarray(x, dtype=like.dtype)

    @staticmethod
    def categorical(probs, num, rng):
        return jax.random.choice(rng, probs.shape[0], (num,), p=probs)

    @staticmethod
    def is_distribution(x):
        return isinstance(x, numpyro.distributions.Distribution)

    @staticmethod
    def log_prob_shape(site):
        """The shape of a site's log density, found by abstract evaluation: computing it
        eagerly would compile a kernel per operation (tens of ms each) at set-up."""
        if site._log_prob is not None:
            return tuple(site._log_prob.shape)
        return tuple(jax.eval_shape(lambda: site._log_prob_fn(site)).shape)

    @staticmethod
    def site_value(value, fn):
        """``value`` as an array for the site of ``fn``: integers for a discrete support."""
        if isinstance(value, jax.Array):
            return value
        discrete = getattr(fn.support, "is_discrete", False)
        return jnp.asarray(value, dtype=jnp.result_type(int) if discrete else jnp.result_type(float))

    # ------------------------------------------------ what counterfactual worlds need
    @staticmethod
    def is_array(x):
        return isinstance(x, jax.Array)

    @staticmethod
    def zeros(shape, like):
        return jnp.zeros(tuple(shape), dtype=jnp.result_type(like))

    @staticmethod
    def ones(shape, like):
        return jnp.ones(tuple(shape), dtype=jnp.result_type(like))

    arange = staticmethod(jnp.arange)

    @staticmethod
    def astype(x, like):
        return jnp.asarray(x).astype(jnp.result_type(like))

    @staticmethod
    def to_index(x):
        return jnp.asarray(x).astype(jnp.result_type(int))

    @staticmethod
    def narrow(x, axis, start, length):
        return jax.lax.slice_in_dim(x, start, start + length, axis=axis)

    @staticmethod
    def select(x, axis, index):
        return jnp.take(x, index, axis=axis)

    @staticmethod
    def expand_dims(x, axis):
        return jnp.expand_dims(x, axis)

    @staticmethod
    def squeeze(x, axis):
        return jnp.squeeze(x, axis) if jnp.shape(x)[axis] == 1 else x  # as torch's

    moveaxis = staticmethod(jnp.moveaxis)

    @staticmethod
    def take_last(x, index):
        """``x``'s entries at ``index`` along the last axis (the leading axes broadcast)."""
        batch = jnp.broadcast_shapes(jnp.shape(x)[:-1], jnp.shape(index)[:-1])
        return jnp.take_along_axis(jnp.broadcast_to(x, batch + jnp.shape(x)[-1:]),
                                   jnp.broadcast_to(index, batch + jnp.shape(index)[-1:]), -1)

    @staticmethod
    def one_hot(index, size):
        return jnp.asarray(index)[..., None] == jnp.arange(size)

    @staticmethod
    def argmax(x, axis):
        return jnp.argmax(x, axis=axis)

    @staticmethod
    def sort(x, axis):
        return jnp.sort(x, axis=axis)

    maximum = staticmethod(jnp.maximum)
    logaddexp = staticmethod(jnp.logaddexp)

    @staticmethod
    def log_softmax(x, axis):
        return jax.nn.log_softmax(x, axis=axis)

    @staticmethod
    def all(x, axis=None):
        return jnp.all(x, axis=axis)

    @staticmethod
    def tiny(x):
        return jnp.finfo(jnp.result_type(x)).tiny

    @staticmethod
    def uniform(shape, like, key=None):
        """Uniform(0, 1) draws with ``key`` (a sample site's: the seed handler's stream)."""
        return jax.random.uniform(key, tuple(shape), dtype=jnp.result_type(like))

    @staticmethod
    def is_broadcast_along(x, axis):
        """Whether ``x`` repeats one slice along ``axis`` (JAX arrays have no strides: the
        slices are compared; counterfactual programs are not jitted)."""
        return bool(jnp.all(x == jax.lax.slice_in_dim(x, 0, 1, axis=axis)))

    @staticmethod
    def factor_distribution(log_factor):
        from .jax_causal import Factor

        return Factor(log_factor)

    @staticmethod
    def gumbel_given_argmax(logits, k):
        from .jax_causal import GumbelGivenArgmax

        return GumbelGivenArgmax(logits, k)


_LOCK = threading.RLock()


class ProgramState:
    """A strategy's PRNG stream: ``next_key()`` splits a fresh key off it."""

    def __init__(self, rng_seed=None):
        self.rng_seed = rng_seed
        self.rng = jax.random.PRNGKey(0 if rng_seed is None else int(rng_seed))
        self.inherited = frozenset()  # parameters are values passed in, never global

    def next_key(self):
        self.rng, key = jax.random.split(self.rng)
        return key


class JaxBackend:
    """The backend protocol on JAX (see DESIGN.md, "Backend protocol")."""

    name = "jax"
    primitives = primitives
    distributions = distributions
    handlers = handlers
    ops = _Ops
    Recorder = Recorder
    to_trace = staticmethod(to_trace)

    def __init__(self):
        self._stream = jax.random.PRNGKey(0)

    def _fresh_key(self):
        self._stream, key = jax.random.split(self._stream)
        return key

    def new_state(self, rng_seed=None):
        """A strategy's own random stream (parameters are values on JAX, held by engines)."""
        return ProgramState(rng_seed)

    @contextlib.contextmanager
    def entered(self, state):
        """Run a strategy's call: one thread at a time, and NumPyro's handler stack left as
        it was if the call fails."""
        with _LOCK:
            depth = len(_PYRO_STACK)
            try:
                yield state
            except BaseException:
                del _PYRO_STACK[depth:]
                raise

    def split_rng(self, rng):
        return tuple(jax.random.split(rng))

    def handler(self, rule, fn=None):
        """A backend-neutral :class:`~ppl.site_handler.SiteHandler` as a NumPyro Messenger
        (wrapping ``fn`` when given)."""
        rule.backend = self
        return RuleMessenger(rule, fn)

    particle_plate = PARTICLE_PLATE

    def run(self, fn, args=(), kwargs=None, replay=None, draw=None, adjust=None, particles=None,
            params=None, rng=None, enumerate_from=None):
        """Run ``fn`` under a :class:`Recorder`, seeded with ``rng`` and with ``params`` substituted."""
        key = self._fresh_key() if rng is None else rng
        if particles is not None and particles[2:] == ("vmap",):
            from .jax_particles import run_mapped

            return run_mapped(self, fn, args, kwargs, replay, draw, adjust, particles, params, key)
        recorder = Recorder(replay, draw, adjust)
        enum = contextlib.nullcontext() if enumerate_from is None else jax_enum.enumerating(enumerate_from)
        with activated(self.name), enum, recorder, nh.seed(rng_seed=key), nh.substitute(data=params or {}):
            try:
                if particles is None:
                    value = fn(*args, **(kwargs or {}))
                else:
                    with numpyro.plate(PARTICLE_PLATE, particles[0], dim=particles[1]):
                        value = fn(*args, **(kwargs or {}))
            except (ValueError, RuntimeError, TypeError) as error:
                # a distribution refusing a parameter: name it, if one is NaN or outside its constraint
                named = explain_run_failure(error, recorder.params, recorder.param_constraints)
                if named is None:
                    named = _torch_in_program(error, recorder) or _traced_control_flow(error, recorder)
                if named is not None:
                    raise named from error
                raise
        return to_trace(recorder, value)

    def draw_reparam(self, msg):
        pass  # numpyro's default draw is differentiable where the distribution allows it

    def draw_detached(self, msg):
        value, intermediates = msg["fn"](*msg["args"], sample_intermediates=True, **msg["kwargs"])
        msg["value"] = jax.lax.stop_gradient(value)
        msg["intermediates"] = intermediates

    def dependencies(self, fn, args, kwargs):
        """site -> the sites its distribution was computed from (``jax_graph``: observed and
        intervened sites have children, deterministic sites are nodes, as on torch)."""
        from .jax_graph import dependencies

        return dependencies(self, fn, args, kwargs)

    def relaxed(self, name, fn, temperature):
        """The Concrete relaxation of a Bernoulli site (through ``to_event`` and plates).
        NumPyro has no OneHotCategorical, so a Categorical site has no relaxation here."""
        reinterpreted, base = 0, fn
        while isinstance(base, numpyro.distributions.Independent):
            reinterpreted += base.reinterpreted_batch_ndims
            base = base.base_dist
        batch = tuple(base.batch_shape)
        while isinstance(base, numpyro.distributions.ExpandedDistribution):
            base = base.base_dist
        if not isinstance(base, _BERNOULLI):
            raise SiteError(
                f"site {name!r}: estimator 'gumbel' relaxes Bernoulli sites on the jax backend, not "
                f"{type(base).__name__} (NumPyro has no OneHotCategorical to relax a Categorical "
                "as); use 'enum' or 'score' for it, or the torch backend", site=name)
        logits = jnp.broadcast_to(base.logits, batch)
        # no support check: at low temperatures the relaxed draws round off to exactly 0 / 1
        relaxed = numpyro.distributions.RelaxedBernoulliLogits(
            jnp.asarray(temperature, dtype=logits.dtype), logits, validate_args=False)
        return relaxed.to_event(reinterpreted) if reinterpreted else relaxed

    def straight_through(self, fn, soft):
        """The hard sample in the forward pass, the relaxed sample's gradient in the backward."""
        hard = (soft > 0.5).astype(soft.dtype)
        return hard + (soft - jax.lax.stop_gradient(soft))

    def rsample(self, fn, msg):
        return fn.rsample(msg["kwargs"]["rng_key"], msg["kwargs"].get("sample_shape") or ())

    @contextlib.contextmanager
    def no_grad(self):
        yield

    @contextlib.contextmanager
    def preserved_rng(self):
        yield  # keys are explicit: nothing global to preserve


BACKEND = JaxBackend()
