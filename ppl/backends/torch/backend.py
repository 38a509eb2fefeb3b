"""The backend protocol on PyTorch (``ppl/backends/base.py``)."""

import contextlib
import warnings

import pyro
import pyro.distributions
import torch
from pyro.poutine.enum_messenger import EnumMessenger

from ...backend import activated
from ...errors import SiteError, UnsupportedError, user_stacklevel
from ...validation import explain_run_failure, first_bad_observation
from .handlers import RuleMessenger, _EscapeWatch, _FixedParams, _ProvenanceTracker, handlers
from .ops import _Ops
from .plate import PARTICLE_PLATE, Plate
from .primitives import distributions, primitives
from .recorder import Recorder, to_trace
from .state import StrategyState, entered, restored_rng


class TorchBackend:
    """The backend protocol on PyTorch (declared in ``ppl/backends/base.py``)."""

    name = "torch"
    primitives = primitives
    distributions = distributions
    handlers = handlers
    ops = _Ops
    Recorder = Recorder
    to_trace = staticmethod(to_trace)

    particle_plate = PARTICLE_PLATE

    def run(self, fn, args=(), kwargs=None, replay=None, draw=None, adjust=None, particles=None,
            params=None, rng=None, enumerate_from=None):
        """Run ``fn`` under a :class:`Recorder` and return its :class:`Trace` view.

        ``particles``: ``(num, dim)`` to vectorise the run over a particle plate.
        ``params``: values that ``param`` sites take instead of the store's (modules keep
        their own weights). ``rng`` is for functional backends; on torch randomness comes
        from the generator of the entered :class:`StrategyState`. ``enumerate_from``: sites
        marked ``infer={"enumerate": "parallel"}`` that nothing replays are enumerated by
        Pyro's ``EnumMessenger`` on dims from this one leftwards (``pyro.markov`` recycles
        them); the recorder sits above it, so replayed values win.
        """
        if particles is not None and particles[2:] == ("vmap",):
            raise UnsupportedError("particles mapped with vmap", backend=self.name,
                                   hint="vectorize_particles=True (a particle plate) or False (one by one)")
        recorder = Recorder(replay, draw, adjust)
        fixed = _FixedParams(params) if params else contextlib.nullcontext()
        enum = (contextlib.nullcontext() if enumerate_from is None
                else EnumMessenger(first_available_dim=enumerate_from))
        with activated(self.name), fixed, enum, recorder:
            try:
                if particles is None:
                    value = fn(*args, **(kwargs or {}))
                else:
                    with Plate(PARTICLE_PLATE, particles[0], dim=particles[1]):
                        value = fn(*args, **(kwargs or {}))
            except (ValueError, RuntimeError, TypeError) as error:
                # a distribution refusing a parameter: name it, if one (or a module's weight) is NaN
                modules = [fn] if isinstance(fn, torch.nn.Module) else []
                named = explain_run_failure(error, recorder.params, modules=modules)
                if named is None:  # or an observation met before the failure
                    named = first_bad_observation(to_trace(recorder))
                if named is not None:
                    raise named from error
                error.ppl_last_site = next(reversed(recorder.sites), None)  # where it failed
                raise
        return to_trace(recorder, value)

    def split_rng(self, rng):
        return None, None

    @staticmethod
    def compile(fn):
        """None: torch runs eagerly (a strategy then calls its own eager path)."""
        return None

    @staticmethod
    def mcmc_chains(model, args, kwargs, kernel, num_warmup, num_samples, num_chains, options,
                    progress, deterministic, key=None):
        """Pyro's NUTS or HMC, chain after chain (``mcmc.py``); ``key`` unused: Pyro draws
        from torch's generator, the strategy's while it is entered."""
        from .mcmc import run_chains

        return run_chains(model, args, kwargs, kernel, num_warmup, num_samples, num_chains,
                          options, progress, deterministic)

    @staticmethod
    def compiled_loss(fn):
        """``fn`` through ``torch.compile`` (``compile=True``; see ``compiled_loss.py``)."""
        from .compiled_loss import CompiledLoss

        return CompiledLoss(fn)

    @staticmethod
    def module_params(module):
        """(name -> parameter of a ``torch.nn.Module``, ``rebuild``): the parameters are the
        module's own leaves, so ``rebuild`` gives the module back."""
        if not isinstance(module, torch.nn.Module):
            raise TypeError(f"on the torch backend a module is a torch.nn.Module, not "
                            f"{type(module).__name__} (on jax, an equinox.Module)")
        return dict(module.named_parameters()), lambda values: module

    def handler(self, rule, fn=None):
        """A backend-neutral :class:`~ppl.site_handler.SiteHandler` as a Pyro Messenger
        (wrapping ``fn`` when given)."""
        rule.backend = self
        messenger = RuleMessenger(rule)
        return messenger(fn) if fn is not None else messenger

    def new_state(self, rng_seed=None):
        """A strategy's own parameter store and (when seeded) random stream."""
        return StrategyState(rng_seed)

    entered = staticmethod(entered)

    def draw_reparam(self, msg):
        fn = msg["fn"]
        msg["value"] = fn.rsample() if fn.has_rsample else fn.sample()

    def draw_detached(self, msg):
        msg["value"] = msg["fn"].sample()

    def rsample(self, fn, msg):
        return fn.rsample()

    def dependencies(self, fn, args, kwargs):
        """site -> the sites its distribution was computed from, by provenance tracking.

        Unlike Pyro's ``get_dependencies``, observed and intervened sites are nodes with
        children too, and ``deterministic`` sites pass their inputs' provenance through. A
        site's value turned into a Python number (``item()``, ``bool()``, an ``if`` on a
        tensor) leaves provenance behind, so every site drawn after that is given it as a
        parent (control dependence: an over-approximation, never a missing edge), with a
        warning naming the sites.
        """
        watch = _EscapeWatch()
        tracker = _ProvenanceTracker(watch)
        with torch.random.fork_rng(devices=[]), torch.no_grad(), pyro.validation_enabled(False):
            with activated(self.name), tracker, watch:
                fn(*args, **(kwargs or {}))
        if watch.escaped:
            warnings.warn(
                f"ppl.graph: the values of sites {sorted(watch.escaped)} were turned into Python "
                "numbers (item(), float(), bool() or an if on a tensor); control flow may carry a "
                "dependence on them, so every site drawn after that has them as parents (remove "
                "an edge you know to be absent with graph.remove_edge)",
                UserWarning, stacklevel=user_stacklevel())
        return tracker.parents

    def relaxed(self, name, fn, temperature):
        """The Concrete relaxation of a OneHotCategorical or Bernoulli site (through ``to_event``)."""
        if isinstance(fn, pyro.distributions.Independent):
            base = self.relaxed(name, fn.base_dist, temperature)
            return base.to_event(fn.reinterpreted_batch_ndims)
        kinds = (pyro.distributions.OneHotCategorical, pyro.distributions.Bernoulli)
        if not isinstance(fn, kinds):  # checked first: only these have the logits read below
            raise SiteError(
                f"site {name!r}: estimator 'gumbel' relaxes OneHotCategorical and Bernoulli sites, "
                f"not {type(fn).__name__}; write a Categorical site as OneHotCategorical, and use "
                "'reparam' or 'score' for a continuous one", site=name)
        tau = torch.tensor(float(temperature), dtype=fn.logits.dtype, device=fn.logits.device)
        # no support check: at low temperatures the relaxed draws themselves round off
        # the float32 simplex (or to exactly 0 / 1) and would fail it
        if isinstance(fn, pyro.distributions.OneHotCategorical):
            return pyro.distributions.RelaxedOneHotCategorical(tau, logits=fn.logits, validate_args=False)
        return pyro.distributions.RelaxedBernoulli(tau, logits=fn.logits, validate_args=False)

    def straight_through(self, fn, soft):
        """The hard sample in the forward pass, the relaxed sample's gradient in the backward."""
        base = fn.base_dist if isinstance(fn, pyro.distributions.Independent) else fn
        if isinstance(base, pyro.distributions.OneHotCategorical):
            hard = torch.nn.functional.one_hot(soft.argmax(-1), soft.shape[-1]).to(soft.dtype)
        else:
            hard = (soft > 0.5).to(soft.dtype)
        return hard + (soft - soft.detach())

    @contextlib.contextmanager
    def no_grad(self):
        with torch.no_grad():
            yield

    @contextlib.contextmanager
    def preserved_rng(self):
        """Run a block without changing the random stream seen by the code after it."""
        with restored_rng():
            yield


BACKEND = TorchBackend()
