"""The PyTorch backend: Pyro's primitives and handlers, plus the protocol inference is written against.

One Messenger, :class:`Recorder`, records a run, replays values into it and lets an
inference strategy choose how each latent site is drawn; because it is a Pyro
Messenger it stacks with every ``pyro.poutine`` handler.
"""

import contextlib
import random
import types

import numpy

import pyro
import pyro.distributions
import torch
from pyro import poutine
from pyro.distributions.torch_distribution import TorchDistributionMixin
from pyro.distributions.util import scale_and_mask
from pyro.ops.provenance import ProvenanceTensor, detach_provenance, get_provenance
from pyro.poutine.indep_messenger import IndepMessenger
from pyro.poutine.messenger import Messenger
from pyro.poutine.plate_messenger import PlateMessenger
from pyro.poutine.runtime import _PYRO_STACK
from pyro.poutine.subsample_messenger import SubsampleMessenger, _Subsample

from ..backend import activated
from ..shapes import broadcast_shape
from .torch_state import ProgramState, entered, restored_rng
from ..trace_view import PlateInfo, Site, Trace

PARTICLE_PLATE = "_particles"


class Plate(PlateMessenger):
    """``pyro.plate`` without the subsample site when nothing is subsampled.

    Pyro's plate always runs a ``_Subsample`` site through the effect stack to draw its
    indices; with no subsampling those are ``arange(size)``, so this plate makes them
    lazily. Subsampled plates behave exactly as ``pyro.plate``.
    """

    def __init__(self, name, size=None, subsample_size=None, subsample=None, dim=None,
                 use_cuda=None, device=None):
        if size is None or subsample is not None or subsample_size not in (None, size):
            super().__init__(name, size, subsample_size, subsample, dim, use_cuda, device)
            return
        IndepMessenger.__init__(self, name, size, dim, device)
        self.subsample_size = size
        self._indices = None

    def __enter__(self):
        super().__enter__()
        if not self._vectorized:
            return None
        if self._indices is None:
            self._indices = _arange(self.size, self.device)
        return self._indices

    def _process_message(self, msg):
        SubsampleMessenger._process_message(self, msg)
        if msg["type"] == "sample" and not msg["done"]:
            _broadcast(msg)


def _log_prob_spans(msg, fn, target):
    """Whether an observed value makes the log density span ``target`` without ``expand``.

    Expanding the distribution of an observed site only to score it repeats the
    parameter arithmetic over the whole plate (``[K, N]`` instead of ``[K, 1]``); when
    the value already carries the plate dimensions the log density has the same shape.
    """
    value = msg["value"]
    if not msg["is_observed"] or not torch.is_tensor(value):
        return False
    event_dim = len(fn.event_shape)
    value_batch = value.shape[:value.dim() - event_dim]
    try:
        return tuple(broadcast_shape(value_batch, fn.batch_shape)) == tuple(target)
    except RuntimeError:
        return False


def _broadcast(msg):
    """Pyro's plate broadcasting, skipping ``expand`` when the batch shape already fits
    (or when an observed value supplies it)."""
    fn = msg["fn"]
    if not isinstance(fn, TorchDistributionMixin):
        return
    actual = tuple(fn.batch_shape)
    target = [None if size == 1 else size for size in actual]
    for f in msg["cond_indep_stack"]:
        if f.dim is None or f.size == -1:
            continue
        if -f.dim > len(target):
            target = [None] * (-f.dim - len(target)) + target
        if target[f.dim] is not None and target[f.dim] != f.size:
            raise ValueError(
                f"Shape mismatch inside plate({f.name!r}) at site {msg['name']!r} dim {f.dim}: "
                f"the plate has size {f.size} but the distribution's batch shape has "
                f"{target[f.dim]}")
        target[f.dim] = f.size
    n = len(target)
    for i in range(n):
        if target[i] is None:
            j = i - n
            target[i] = actual[j] if len(actual) >= -j else 1
    if tuple(target) != actual and not _log_prob_spans(msg, fn, target):
        msg["fn"] = fn.expand(target)
        if msg["fn"].has_rsample != fn.has_rsample:
            msg["fn"].has_rsample = fn.has_rsample


_ARANGES = {}


def _arange(size, device):
    """Cached ``arange(size)``: a plate's indices when nothing is subsampled."""
    key = (size, str(device))
    if key not in _ARANGES:
        _ARANGES[key] = torch.arange(size, device=device)
    return _ARANGES[key]


_registered_modules = {}  # name -> (module, a param-store key, its (name, parameter) pairs)


def _module(name, nn_module, update_module_params=True):
    """``pyro.module``, skipped once registered when only ``Recorder``s and plates listen.

    Registering a module emits one ``param`` message per parameter on every call; inside
    a strategy's own run nothing but its ``Recorder`` reads them, so the recorder is
    handed the cached parameters directly.
    """
    cached = _registered_modules.get(name)
    if cached is not None and cached[0] is nn_module and _only_recorders_listen():
        if cached[1] in pyro.get_param_store()._params:
            for frame in _PYRO_STACK:
                if type(frame) is Recorder:
                    frame.params.update(cached[2])
            return nn_module
    # update_module_params: a module whose parameters were loaded into the param store
    # (a checkpoint) takes them, so that a resumed run continues exactly; parameters are
    # global by name, as in Pyro, so a clash of shapes is an error rather than an adoption
    _check_module_shapes(name, nn_module)
    out = pyro.module(name, nn_module, update_module_params=update_module_params)
    pairs = [(f"{name}$$${n}", p) for n, p in nn_module.named_parameters() if p.requires_grad]
    if pairs:
        _registered_modules[name] = (nn_module, pairs[0][0], pairs)
    return out


def _check_module_shapes(name, nn_module):
    store = pyro.get_param_store()._params
    for param_name, p in nn_module.named_parameters():
        stored = store.get(f"{name}$$${param_name}")
        if stored is not None and stored.shape != p.shape:
            raise ValueError(
                f"ppl.module({name!r}): the param store holds {name}$$${param_name} with shape "
                f"{tuple(stored.shape)}, but this module's parameter has shape {tuple(p.shape)}; "
                "register it under another name or call pyro.clear_param_store()")


def _param(name, init_value=None, *args, **kwargs):
    if init_value is not None and not callable(init_value) and not isinstance(init_value, torch.Tensor):
        init_value = torch.as_tensor(init_value, dtype=torch.get_default_dtype())
    return pyro.param(name, init_value, *args, **kwargs)


def _only_recorders_listen():
    return bool(_PYRO_STACK) and all(type(f) in _PARAM_BLIND for f in _PYRO_STACK)


primitives = types.SimpleNamespace(
    sample=pyro.sample,
    param=_param,
    plate=Plate,
    deterministic=pyro.deterministic,
    factor=pyro.factor,
    module=_module,
)
distributions = pyro.distributions


class Recorder(Messenger):
    """Records sample, deterministic and param sites of one run.

    ``replay``: values (by site name) that latent sites take instead of being drawn.
    ``draw``: ``draw(msg)`` called for each latent site that is not replayed; it may set
    ``msg["value"]`` (and change ``msg["fn"]``) to choose how the site is sampled.
    ``adjust``: ``adjust(msg)`` called for each replayed site (e.g. to relax its distribution).
    """

    def __init__(self, replay=None, draw=None, adjust=None):
        super().__init__()
        self.replay = replay
        self.draw = draw
        self.adjust = adjust
        self.sites = {}
        self.params = {}
        self.deterministics = {}

    def _pyro_sample(self, msg):
        if msg["is_observed"] or type(msg["fn"]) is _Subsample:
            return
        replay = self.replay
        if replay is not None and msg["name"] in replay:
            msg["value"] = replay[msg["name"]]
            if self.adjust is not None:
                self.adjust(msg)
        elif self.draw is not None:
            self.draw(msg)

    def _pyro_post_sample(self, msg):
        name = msg["name"]
        if type(msg["fn"]) is _Subsample:  # a plate's own subsample site, not a random variable
            return
        if msg["infer"].get("_deterministic"):
            self.deterministics[name] = msg["value"]
            return
        if name in self.sites:
            raise ValueError(f"sample site {name!r} appears twice in one run; site names must be unique")
        self.sites[name] = msg

    def _pyro_post_param(self, msg):
        self.params[msg["name"]] = msg["value"]


_PARAM_BLIND = (Recorder, Plate, pyro.plate)


def _is_one(scale):
    return isinstance(scale, (int, float)) and scale == 1


def _site_log_prob(site):
    try:
        log_prob = site.fn.log_prob(site.value)
    except (ValueError, RuntimeError) as error:
        if _broadcasts(site):
            raise
        raise ValueError(_shape_error(site, error)) from error
    return scale_and_mask(log_prob, site.scale, site.mask)


def _broadcasts(site):
    value_shape = tuple(getattr(site.value, "shape", ()))
    try:
        broadcast_shape(value_shape, tuple(site.fn.batch_shape) + tuple(site.fn.event_shape))
    except RuntimeError:
        return False
    return True


def _shape_error(site, error):
    value_shape = tuple(getattr(site.value, "shape", ()))
    expected = tuple(site.fn.batch_shape) + tuple(site.fn.event_shape)
    plates = ", ".join(f"{p.name!r} (dim {p.dim}, size {p.size})" for p in site.plates) or "none"
    return (f"site {site.name!r}: cannot score a value of shape {value_shape} under "
            f"{type(site.fn).__name__} with batch + event shape {expected}; plates: {plates}. "
            f"({error})")


def _plates(msg):
    return tuple(PlateInfo(f.name, f.dim, f.size) for f in msg["cond_indep_stack"])


def to_trace(recorder, return_value=None):
    """The common :class:`Trace` view of what a :class:`Recorder` saw."""
    sites = {
        name: Site(
            name=name,
            value=msg["value"],
            fn=msg["fn"],
            observed=msg["is_observed"],
            plates=_plates(msg),
            infer=msg["infer"],
            scale=msg["scale"],
            mask=msg["mask"],
            _log_prob_fn=_site_log_prob,
        )
        for name, msg in recorder.sites.items()
    }
    return Trace(sites, recorder.params, recorder.deterministics, return_value, BACKEND)


class _ProvenanceTracker(Messenger):
    """Tags every sample site's value with its name and reads each site's parents off the
    provenance of its log density."""

    def __init__(self):
        super().__init__()
        self.parents = {}

    def _pyro_post_sample(self, msg):
        if type(msg["fn"]) is _Subsample or msg["infer"].get("_deterministic"):
            return
        name = msg["name"]
        value = detach_provenance(msg["value"])
        if not torch.is_tensor(value):
            value = torch.as_tensor(value)
        tagged = ProvenanceTensor(value, frozenset({name}))
        self.parents[name] = set(get_provenance(msg["fn"].log_prob(tagged))) - {name}
        msg["value"] = tagged


class _ReplayValues(Messenger):
    def __init__(self, values):
        super().__init__()
        self.values = values

    def _pyro_sample(self, msg):
        if not msg["is_observed"] and msg["name"] in self.values:
            msg["value"] = self.values[msg["name"]]


class _Seed(Messenger):
    """Seeds torch's (and Python's and NumPy's) random number generators on entry and
    restores them on exit, so that code after the block draws as if it had not run."""

    def __init__(self, rng_seed):
        super().__init__()
        self.rng_seed = rng_seed
        self._outer = []

    def __enter__(self):
        fork = restored_rng()
        fork.__enter__()
        self._outer.append((fork, random.getstate(), numpy.random.get_state()))
        pyro.set_rng_seed(self.rng_seed)
        return super().__enter__()

    def __exit__(self, *exc):
        try:
            return super().__exit__(*exc)
        finally:
            fork, python_state, numpy_state = self._outer.pop()
            random.setstate(python_state)
            numpy.random.set_state(numpy_state)
            fork.__exit__(None, None, None)


def _condition(fn=None, data=None):
    from ..causal.interventions import condition

    return condition(fn, data=data)


def _do(fn=None, interventions=None):
    from ..causal.interventions import do

    return do(fn, interventions=interventions)


handlers = types.SimpleNamespace(
    replay=lambda fn=None, values=None: _ReplayValues(values)(fn) if fn else _ReplayValues(values),
    condition=_condition,
    block=poutine.block,
    scale=poutine.scale,
    mask=poutine.mask,
    seed=lambda fn=None, rng_seed=0: _Seed(rng_seed)(fn) if fn else _Seed(rng_seed),
    do=_do,
    uncondition=poutine.uncondition,
)


class _Ops:
    """Array operations the objectives need, on torch tensors."""

    logsumexp = staticmethod(torch.logsumexp)
    stop_gradient = staticmethod(torch.Tensor.detach)
    exp = staticmethod(torch.exp)
    log = staticmethod(torch.log)
    where = staticmethod(torch.where)
    softmax = staticmethod(lambda x, dim: torch.softmax(x, dim))
    square = staticmethod(torch.square)

    @staticmethod
    def sum(x, dim=None):
        return x.sum() if dim is None else x.sum(dim)

    @staticmethod
    def mean(x, dim=None):
        return x.mean() if dim is None else x.mean(dim)

    stack = staticmethod(torch.stack)
    concatenate = staticmethod(torch.cat)

    @staticmethod
    def broadcast_to(x, shape):
        return torch.as_tensor(x).expand(shape)

    @staticmethod
    def isnan(x):
        return bool(torch.isnan(x).any())

    @staticmethod
    def categorical(probs, num, rng=None):
        return torch.multinomial(probs, num, replacement=True)

    @staticmethod
    def numel(x):
        return x.numel()

    @staticmethod
    def reshape(x, shape):
        return x.reshape(shape)

    @staticmethod
    def ndim(x):
        return x.dim()

    @staticmethod
    def isfinite(x):
        return bool(torch.isfinite(x).all())

    @staticmethod
    def sum_log_prob(site):
        """The site's total log density; scores ``to_event`` sites through their base
        distribution, since everything is summed anyway."""
        fn = site.fn
        if (type(fn) is pyro.distributions.Independent and site.mask is None
                and site._log_prob is None):
            try:
                total = fn.base_dist.log_prob(site.value).sum()
            except (ValueError, RuntimeError):
                return site.log_prob.sum()
            return total if _is_one(site.scale) else total * site.scale
        return site.log_prob.sum()

    @staticmethod
    def item(x):
        return x.detach().item() if isinstance(x, torch.Tensor) else float(x)

    @staticmethod
    def asarray(x, like=None):
        if like is not None:
            return torch.as_tensor(x, dtype=like.dtype, device=like.device)
        return torch.as_tensor(x)


class _FixedParams(Messenger):
    """``param`` sites take the given values instead of the store's. A module's weights
    (``name$$$weight``) stay in the module: Pyro would otherwise swap the module's own
    parameters for these."""

    def __init__(self, values):
        super().__init__()
        self.values = {name: value for name, value in values.items() if "$$$" not in name}

    def _pyro_param(self, msg):
        if msg["name"] in self.values:
            msg["value"] = self.values[msg["name"]]
            msg["done"] = True


class TorchBackend:
    """The backend protocol on PyTorch (see DESIGN.md, "Backend protocol")."""

    name = "torch"
    primitives = primitives
    distributions = distributions
    handlers = handlers
    ops = _Ops
    Recorder = Recorder
    to_trace = staticmethod(to_trace)

    def run(self, fn, args=(), kwargs=None, replay=None, draw=None, adjust=None, particles=None,
            params=None, rng=None):
        """Run ``fn`` under a :class:`Recorder` and return its :class:`Trace` view.

        ``particles``: ``(num, dim)`` to vectorise the run over a particle plate.
        ``params``: values that ``param`` sites take instead of the store's (modules keep
        their own weights). ``rng`` is for functional backends; on torch randomness comes
        from the generator of the entered :class:`ProgramState`.
        """
        recorder = Recorder(replay, draw, adjust)
        fixed = _FixedParams(params) if params else contextlib.nullcontext()
        with activated(self.name), fixed, recorder:
            if particles is None:
                value = fn(*args, **(kwargs or {}))
            else:
                with Plate(PARTICLE_PLATE, particles[0], dim=particles[1]):
                    value = fn(*args, **(kwargs or {}))
        return to_trace(recorder, value)

    def split_rng(self, rng):
        return None, None

    def new_state(self, rng_seed=None):
        """A strategy's own parameter store and (when seeded) random stream."""
        return ProgramState(rng_seed)

    entered = staticmethod(entered)

    def draw_reparam(self, msg):
        fn = msg["fn"]
        msg["value"] = fn.rsample() if fn.has_rsample else fn.sample()

    def draw_detached(self, msg):
        msg["value"] = msg["fn"].sample()

    def dependencies(self, fn, args, kwargs):
        """site -> the sites its distribution was computed from, by provenance tracking.

        Unlike Pyro's ``get_dependencies``, observed and intervened sites are nodes with
        children too, and ``deterministic`` sites pass their inputs' provenance through.
        """
        tracker = _ProvenanceTracker()
        with torch.random.fork_rng(devices=[]), torch.no_grad(), pyro.validation_enabled(False):
            with activated(self.name), tracker:
                fn(*args, **(kwargs or {}))
        return tracker.parents

    def relaxed(self, name, fn, temperature):
        """The Concrete relaxation of a OneHotCategorical or Bernoulli site (through ``to_event``)."""
        if isinstance(fn, pyro.distributions.Independent):
            base = self.relaxed(name, fn.base_dist, temperature)
            return base.to_event(fn.reinterpreted_batch_ndims)
        tau = torch.tensor(float(temperature), dtype=fn.logits.dtype, device=fn.logits.device)
        # no support check: at low temperatures the relaxed draws themselves round off
        # the float32 simplex (or to exactly 0 / 1) and would fail it
        if isinstance(fn, pyro.distributions.OneHotCategorical):
            return pyro.distributions.RelaxedOneHotCategorical(tau, logits=fn.logits, validate_args=False)
        if isinstance(fn, pyro.distributions.Bernoulli):
            return pyro.distributions.RelaxedBernoulli(tau, logits=fn.logits, validate_args=False)
        raise ValueError(
            f"site {name!r}: estimator 'gumbel' relaxes OneHotCategorical and Bernoulli sites, "
            f"not {type(fn).__name__}; write a Categorical site as OneHotCategorical")

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
