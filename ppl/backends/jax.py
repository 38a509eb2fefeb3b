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
from numpyro import handlers as nh
from numpyro.primitives import _PYRO_STACK, Messenger

from . import jax_enum
from .jax_ops import _Ops
from .jax_recorder import Recorder, _torch_in_program, _traced_control_flow, to_trace
from ..backend import activated
from ..errors import SiteError, UnsupportedError
from ..site_handler import RunsRule
from ..validation import (check_distribution_backend, check_plate, explain_run_failure)
from ..renames import STRATEGY_STATE, old_names

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
    arrays, rebuild = module_params(nn_module)
    return rebuild({path: numpyro.param(f"{name}$$${path}", leaf) for path, leaf in arrays.items()})


def module_params(module):
    """(path -> floating-point array of an Equinox ``module``, ``rebuild``); ``rebuild``
    puts values with the same names back into the module's structure."""
    import equinox

    if not isinstance(module, equinox.Module):
        raise TypeError(f"on the jax backend a module is an equinox.Module, not "
                        f"{type(module).__name__} (on torch, a torch.nn.Module)")
    arrays, rest = equinox.partition(module, equinox.is_inexact_array)
    leaves, treedef = jax.tree_util.tree_flatten_with_path(arrays)
    names = [jax.tree_util.keystr(path) for path, _ in leaves]

    def rebuild(values):
        return equinox.combine(jax.tree_util.tree_unflatten(treedef, [values[n] for n in names]), rest)

    return {name: leaf for name, (_, leaf) in zip(names, leaves)}, rebuild


def _plate(name, size, subsample_size=None, dim=None, **kwargs):
    check_plate(name, size, subsample_size)  # numpyro asserts, without the plate's name
    return numpyro.plate(name, size, subsample_size=subsample_size, dim=dim, **kwargs)


def _keyed_or_supplied(name):
    """Whether a handler gives site ``name`` a key (``seed``) or its value (``substitute``
    with that name, or with a function: NumPyro's MCMC potential substitutes every site)."""
    for handler in _PYRO_STACK:
        if isinstance(handler, nh.seed):
            return True
        if isinstance(handler, nh.substitute) and (
                handler.substitute_fn is not None or name in (handler.data or {})):
            return True
    return False


def _sample(name, fn, obs=None, infer=None, rng_key=None, **kwargs):
    """NumPyro's sample; a draw outside any ``seed`` handler (a program called directly, as
    on torch) takes a key from the backend's stream instead of failing NumPyro's key check.
    Where a ``substitute`` gives the value it does not (inside a compiled sampler a key
    from the stream would leak the trace)."""
    if not isinstance(fn, numpyro.distributions.Distribution):  # NumPyro's own check is a TypeError
        check_distribution_backend(name, fn, "jax")
    if rng_key is None and obs is None and not _keyed_or_supplied(name):
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


_BERNOULLI = (numpyro.distributions.discrete.BernoulliProbs, numpyro.distributions.discrete.BernoulliLogits)


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


class _Unkeyed(nh.seed):
    """A ``seed`` that splits no key for sample sites: the run's ``draw`` or ``replay`` sets
    every latent value (exact enumeration), so NumPyro's split per site, which runs before
    the Recorder's ``draw`` in the handler order, would go unused. A site left unset fails
    NumPyro's key check rather than drawing at random. Plates' subsamples and ``prng_key``
    still get keys from the backend's stream."""

    def __init__(self):
        super().__init__(rng_seed=None)

    def process_message(self, msg):
        if msg["type"] in ("plate", "prng_key", "control_flow") and msg["value"] is None:
            if self.rng_key is None:
                self.rng_key = BACKEND._fresh_key()
            super().process_message(msg)


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


_LOCK = threading.RLock()


class StrategyState:
    """A strategy's PRNG stream: ``next_key()`` splits a fresh key off it."""

    def __init__(self, rng_seed=None):
        self.rng_seed = rng_seed
        self.rng = jax.random.PRNGKey(0 if rng_seed is None else int(rng_seed))
        self.inherited = frozenset()  # parameters are values passed in, never global

    def next_key(self):
        self.rng, key = jax.random.split(self.rng)
        return key


class JaxBackend:
    """The backend protocol on JAX (declared in ``ppl/backends/base.py``)."""

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
        return StrategyState(rng_seed)

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

    module_params = staticmethod(module_params)

    @staticmethod
    def compile(fn):
        from .jax_static import compiled

        return compiled(fn)

    @staticmethod
    def mcmc_chains(model, args, kwargs, kernel, num_warmup, num_samples, num_chains, options,
                    progress, deterministic, key=None):
        """NumPyro's NUTS or HMC, chains vectorised (``jax_mcmc.py``)."""
        from .jax_mcmc import run_chains

        return run_chains(model, args, kwargs, kernel, num_warmup, num_samples, num_chains,
                          options, progress, deterministic, key)

    @staticmethod
    def compiled_loss(fn):
        """``fn`` itself: the engine compiles whole training steps with ``jax.jit``."""
        return fn

    def handler(self, rule, fn=None):
        """A backend-neutral :class:`~ppl.site_handler.SiteHandler` as a NumPyro Messenger
        (wrapping ``fn`` when given)."""
        rule.backend = self
        return RuleMessenger(rule, fn)

    particle_plate = PARTICLE_PLATE

    def run(self, fn, args=(), kwargs=None, replay=None, draw=None, adjust=None, particles=None,
            params=None, rng=None, enumerate_from=None):
        """Run ``fn`` under a :class:`Recorder`, seeded with ``rng`` and with ``params`` substituted."""
        key = self._fresh_key() if rng is None else rng  # rng=False: see _Unkeyed
        if particles is not None and particles[2:] == ("vmap",):
            from .jax_particles import run_mapped

            return run_mapped(self, fn, args, kwargs, replay, draw, adjust, particles, params, key)
        recorder = Recorder(replay, draw, adjust)
        seed = _Unkeyed() if rng is False else nh.seed(rng_seed=key)
        enum = contextlib.nullcontext() if enumerate_from is None else jax_enum.enumerating(enumerate_from)
        with activated(self.name), enum, recorder, seed, nh.substitute(data=params or {}):
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
                error.ppl_last_site = next(reversed(recorder.sites), None)  # where it failed
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


__getattr__ = old_names(__name__, {"ProgramState": (STRATEGY_STATE, StrategyState)})
