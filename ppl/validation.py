"""Checks of what a program is given, one place per concern and the same on both backends:
the values its sites observe, its plates, its parameters and the values of interventions
and evidence. Each names the site, plate or parameter and says what was expected, with the
errors of :mod:`ppl.errors`.

They run where they cost nothing on the hot path: once at a strategy's set-up
(:func:`check_observations`), when a plate or parameter is created, or only once something
has already failed (:func:`explain_score_failure`, :func:`explain_run_failure`, which turn
a library's message into one that names the site).

    >>> import torch, ppl, ppl.distributions as dist
    >>> def model(y):
    ...     with ppl.plate("data", len(y)):
    ...         ppl.sample("y", dist.Categorical(torch.ones(3) / 3), obs=y)
    >>> try:
    ...     check_observations(ppl.trace(model)(torch.tensor([0, 5])))
    ... except SiteError as error:
    ...     print(error.site, "|", str(error)[10:71])
    y | 1 of 2 observed values lie outside the support of Categorical
    >>> try:
    ...     check_plate("data", 0)
    ... except SiteError as error:
    ...     print(error.site)
    data
"""

import math
import numbers

from .errors import NonFiniteError, PPLError, ShapeError, SiteError
from .shapes import broadcast_shape

# the array types each backend's distributions score (module of the type, first part)
_ARRAYS = {"torch": ("torch",), "jax": ("jax", "jaxlib", "numpy")}
_HINTS = {"torch": "a torch.Tensor (torch.as_tensor(...))",
          "jax": "a JAX or NumPy array (jnp.asarray(...))"}
_LIBRARIES = ("torch.", "pyro.", "numpyro.")


def _library(value):
    return type(value).__module__.split(".")[0]


def _is_array(value):
    return hasattr(value, "shape") and hasattr(value, "dtype")


def _library_distribution(fn):
    """Whether ``fn`` (under its Independent / Masked / Expanded wrappers) is one of torch's,
    Pyro's or NumPyro's own distributions, which score arrays only."""
    while getattr(fn, "base_dist", None) is not None:
        fn = fn.base_dist
    return type(fn).__module__.startswith(_LIBRARIES)


def _validates(fn):
    """Whether the distribution that scores the value checks its support (validation on)."""
    while getattr(fn, "base_dist", None) is not None:
        fn = fn.base_dist
    return bool(getattr(fn, "_validate_args", False))


# ------------------------------------------------------------------- observations
def value_problem(name, fn, value, backend, observed=True, mask=None):
    """A sentence saying what is wrong with ``value`` at site ``name`` under ``fn``, or None:
    a list or another library's array where ``backend``'s arrays are expected, a number
    where a validating distribution needs an array, or values outside the support (NaN
    among them; infinities are left to the non-finite checks, which name them). ``mask``:
    the site's mask (masked elements may hold anything)."""
    what = "observed value" if observed else "value"
    if not _library_distribution(fn):
        return None  # a distribution of one's own may score any value
    if isinstance(value, (list, tuple)) or (
            _is_array(value) and _library(value) not in _ARRAYS.get(backend, ())):
        kind = type(value).__name__ if isinstance(value, (list, tuple)) else \
            f"{_library(value)} {type(value).__name__}"
        return (f"site {name!r}: the {what} is a {kind}, but on the {backend} backend "
                f"{type(_base(fn)).__name__} scores {_HINTS.get(backend, 'an array')}")
    if not _is_array(value):
        if backend == "torch" and isinstance(value, numbers.Number) and _validates(fn):
            return (f"site {name!r}: the {what} is a Python {type(value).__name__}; "
                    f"{type(_base(fn)).__name__} scores {_HINTS['torch']}")
        return None
    return _support_problem(name, fn, value, what, mask)


def _support_problem(name, fn, value, what, mask):
    if not _validates(fn) or mask is False:
        return None  # validation is off: the value is scored as it is, as the user asked
    try:
        bad = _outside_support(fn, value)
        if bad is not None and _is_array(mask):
            bad = bad & mask
        if bad is None or not bool(bad.any()):
            return None
        count, total = int(bad.sum()), math.prod(bad.shape)
        picked = value[bad] if tuple(bad.shape) == tuple(value.shape) else None
        nan = bool((value != value).any() if picked is None else (picked != picked).any())
        examples = None if picked is None else picked[:3].tolist()
    except Exception:  # a support that cannot be checked element-wise here (or a traced value)
        return None
    base = _base(fn)
    support = f"the support of {type(base).__name__} ({base.support})"
    if nan:
        return f"site {name!r}: the {what} contains NaN; expected values in {support}"
    example = f", e.g. {examples}" if examples is not None else ""
    return f"site {name!r}: {count} of {total} {what}s lie outside {support}{example}"


_WRAPPERS = ("Independent", "ExpandedDistribution", "MaskedDistribution")


def _base(fn):
    """The distribution under batch wrappers (not a transformed one: LogNormal stays)."""
    while type(fn).__name__ in _WRAPPERS and getattr(fn, "base_dist", None) is not None:
        fn = fn.base_dist
    return fn


def _outside_support(fn, value):
    """Batch-shaped booleans: the elements outside ``fn``'s support (masked elements
    excluded; an infinity the support admits, as a real one does, is left to the non-finite
    checks), or None when a support cannot say."""
    ok = _in_support(fn, value)
    return None if ok is None else ~ok


def _in_support(fn, value):
    mask = getattr(fn, "_mask", None)
    base = getattr(fn, "base_dist", None)
    if base is not None and mask is not None:  # a masked distribution: masked elements pass
        ok = _in_support(base, value)
        if ok is None or isinstance(mask, bool):
            return None if ok is None or not mask else ok
        return ok | ~mask
    if base is not None and hasattr(fn, "reinterpreted_batch_ndims"):  # Independent
        ok = _in_support(base, value)
        r = fn.reinterpreted_batch_ndims
        if ok is None or not r:
            return ok
        return ok.reshape(tuple(ok.shape[:ok.ndim - r]) + (-1,)).all(-1) if ok.ndim >= r else ok.all()
    return fn.support.check(value)


def check_observations(trace):
    """Refuse, naming the site, observed values the site's distribution cannot score: a
    list, another library's array, NaN, values outside the support (see
    :func:`value_problem`). Run once at a strategy's set-up, on the first call's data."""
    backend = trace.backend.name if trace.backend is not None else "torch"
    for site in trace.sites.values():
        if not site.observed or site.infer.get("do") or site.infer.get("_deterministic"):
            continue
        problem = value_problem(site.name, site.fn, site.value, backend, mask=site.mask)
        if problem:
            raise SiteError(problem, site=site.name)


def first_bad_observation(trace):
    """The :class:`SiteError` for the first observed value :func:`check_observations` would
    refuse among the sites a (perhaps interrupted) run recorded, or None."""
    try:
        check_observations(trace)
    except SiteError as error:
        return error
    return None


def explain_score_failure(site, error, backend):
    """The :class:`SiteError` naming ``site`` when scoring its value raised ``error`` (a
    library's message without the site's name), or None to let ``error`` stand."""
    if isinstance(error, PPLError):
        return None
    problem = value_problem(site.name, site.fn, site.value, backend, site.observed, site.mask)
    if problem is None and getattr(_base(site.fn).support, "is_discrete", False):
        dtype = str(getattr(site.value, "dtype", ""))
        if "float" in dtype:
            problem = (f"site {site.name!r}: values of dtype {dtype} under {type(_base(site.fn)).__name__}, "
                       "whose support is integers; pass integer values")
    return None if problem is None else SiteError(problem, site=site.name)


def value_broadcasts(site):
    """Whether a site's value broadcasts against its distribution's batch + event shape."""
    value_shape = tuple(getattr(site.value, "shape", ()))
    try:
        broadcast_shape(value_shape, tuple(site.fn.batch_shape) + tuple(site.fn.event_shape))
    except RuntimeError:
        return False
    return True


def value_shape_error(site, error):
    """The :class:`ShapeError` for a value that does not broadcast against its site's
    distribution (a plate of the wrong size, most often), naming the site and its plates."""
    value_shape = tuple(getattr(site.value, "shape", ()))
    expected = tuple(site.fn.batch_shape) + tuple(site.fn.event_shape)
    plates = ", ".join(f"{p.name!r} (dim {p.dim}, size {p.size})" for p in site.plates) or "none"
    return ShapeError(f"site {site.name!r}: cannot score a value of shape {value_shape} under "
                      f"{type(_base(site.fn)).__name__} with batch + event shape {expected}; plates: "
                      f"{plates}. ({error})", site=site.name)


# ------------------------------------------------------------------- a proposal's support
def _bounds(constraint):
    """(lower, upper, discrete) of a support on numbers (element-wise), or None when it is
    not an interval (a simplex, a dependent support)."""
    while getattr(constraint, "base_constraint", None) is not None:  # independent(...)
        constraint = constraint.base_constraint
    kind = type(constraint).__name__
    if kind in ("_Real", "_RealVector"):
        return -math.inf, math.inf, False
    if kind == "_Boolean":
        return 0, 1, True
    lower, upper = getattr(constraint, "lower_bound", None), getattr(constraint, "upper_bound", None)
    if lower is None and upper is None:
        return None
    return (-math.inf if lower is None else lower, math.inf if upper is None else upper,
            bool(getattr(constraint, "is_discrete", False)))


def _exceeds(a, b):
    """Whether ``a`` lies beyond ``b`` anywhere (numbers or arrays), by more than rounding."""
    rounding = (abs(b) != math.inf) & (abs(a - b) <= 1e-6 * (1 + abs(b)))
    result = (a > b) & ~rounding if hasattr(rounding, "shape") else (a > b) and not rounding
    return bool(result.any()) if hasattr(result, "any") else bool(result)


# transforms that map each number monotonically (torch's and NumPyro's share these names);
# the image of an interval under one is the interval between the images of its ends
_MONOTONE = frozenset({"ExpTransform", "SigmoidTransform", "AffineTransform", "SoftplusTransform",
                       "TanhTransform", "ComposeTransform", "_InverseTransform", "IdentityTransform"})


def _drawn_bounds(fn):
    """(lower, upper, discrete) of the values ``fn`` draws, or None when that cannot be
    told: its support's interval, or for a transformed distribution the image of its base
    distribution's interval through monotone transforms (torch reports ``Real()`` as the
    support of every transformed distribution whose last transform is affine)."""
    transforms, base = getattr(fn, "transforms", None), getattr(fn, "base_dist", None)
    if base is not None and type(fn).__name__ in _WRAPPERS:
        return _drawn_bounds(base)  # the base's values, batched
    if base is None or transforms is None:
        return _bounds(fn.support)
    bounds = _drawn_bounds(base)
    for transform in transforms:
        if bounds is None:
            return None
        bounds = _image(transform, bounds)
    return bounds


def _image(transform, bounds):
    """The image of the interval ``bounds`` under a monotone ``transform`` (None if it is
    not known to be monotone)."""
    parts = getattr(transform, "parts", None)
    if type(transform).__name__ not in _MONOTONE or (parts is not None and not all(
            type(p).__name__ in _MONOTONE for p in parts)):
        return None
    lower, upper, discrete = bounds
    if type(transform).__module__.startswith("torch") or type(transform).__module__.startswith("pyro"):
        import torch

        ends = torch.as_tensor(lower, dtype=torch.float64), torch.as_tensor(upper, dtype=torch.float64)
        a, b = transform(ends[0]), transform(ends[1])
        return torch.minimum(a, b), torch.maximum(a, b), False
    import jax.numpy as jnp

    a, b = transform(jnp.asarray(lower)), transform(jnp.asarray(upper))
    return jnp.minimum(a, b), jnp.maximum(a, b), False


def _short(value):
    """A value for a message: a number, or its first few entries."""
    flat = value.reshape(-1) if hasattr(value, "reshape") else value
    if not hasattr(flat, "tolist"):
        return repr(flat)
    entries = flat.tolist()
    if len(entries) == 1:
        return repr(entries[0])
    return repr(entries[:3])[:-1] + (", ...]" if len(entries) > 3 else "]")


def support_problem(name, proposal, target, value, role="guide"):
    """A sentence when ``proposal`` (a guide's distribution for site ``name``) can draw
    values outside ``target``'s support (the model's), where the model has no density;
    None when it cannot. A transformed distribution is judged by the image of its base's
    support through its transforms; a point mass (``Delta``), or a proposal whose values'
    range cannot be told (a transform of unknown shape), by its drawn ``value``.

        >>> import torch, pyro.distributions as pd
        >>> from torch.distributions import biject_to, constraints
        >>> into = biject_to(constraints.interval(0.0, 10.0))  # sigmoid, then affine
        >>> bounded = pd.TransformedDistribution(pd.Normal(0.0, 1.0), into)
        >>> support_problem("sigma", bounded, pd.Uniform(0.0, 10.0), bounded.sample()) is None
        True
        >>> support_problem("sigma", pd.Normal(5.0, 1.0), pd.Uniform(0.0, 10.0), torch.tensor(5.0))[:60]
        "site 'sigma': the guide draws it from Normal, whose support "
    """
    p_base, t_base = _base(proposal), _base(target)
    try:
        t = _bounds(target.support)
        p = None if type(p_base).__name__ == "Delta" else _drawn_bounds(proposal)
        if p is None:  # judged by its draw
            inside = target.support.check(value)
            if bool(inside.all()):
                return None
            return (f"site {name!r}: the {role} drew {_short(value)} from {type(p_base).__name__}, "
                    f"outside the model's {type(t_base).__name__} support {target.support}, where "
                    "the model has no density; draw it from a distribution on the model's support")
        if t is None:
            return None
        wider = _exceeds(t[0], p[0]) or _exceeds(p[1], t[1]) or (t[2] and not p[2])
        if not wider:
            return None
        transforms = getattr(proposal, "transforms", None)
        if transforms is not None and type(p_base).__name__ == "TransformedDistribution":
            inner = _base(p_base.base_dist)
            return (f"site {name!r}: the {role} draws it from {type(inner).__name__} through "
                    f"{', '.join(type(t).__name__ for t in transforms)}, whose values range over "
                    f"({float(p[0].min()):.4g}, {float(p[1].max()):.4g}), which reaches outside the "
                    f"model's {type(t_base).__name__} support {target.support}, where the model has "
                    "no density; choose transforms whose image is the model's support (e.g. "
                    "biject_to(the model's support))")
    except Exception:  # supports of other kinds, or bounds of shapes that do not broadcast
        return None
    return (f"site {name!r}: the {role} draws it from {type(p_base).__name__}, whose support "
            f"{proposal.support} reaches outside the model's {type(t_base).__name__} support "
            f"{target.support}, where the model has no density; draw it from a distribution on "
            "the model's support (e.g. LogNormal or a TransformedDistribution for a positive site)")


# ------------------------------------------------------------------- plates
def check_plate(name, size, subsample_size=None):
    """A plate's size must be a positive integer and its ``subsample_size`` at most that."""
    if type(size) is int and size > 0 and (subsample_size is None or (
            type(subsample_size) is int and 0 < subsample_size <= size)):
        return  # the common case, checked first: this runs at every plate's entry
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        if size < 1:
            raise SiteError(f"plate {name!r} has size {size}: the data it runs over are empty; "
                            "a plate needs at least one element", site=name)
        if (isinstance(subsample_size, numbers.Integral) and not isinstance(subsample_size, bool)
                and not 1 <= subsample_size <= size):
            raise SiteError(f"plate {name!r}: subsample_size={subsample_size} must lie in 1 .. "
                            f"{size}, the plate's size", site=name)


# ------------------------------------------------------------------- parameters
def _all(check):
    return bool(check.all()) if hasattr(check, "all") else bool(check)


def check_param_value(name, value, constraint, what="initial value"):
    """A parameter's (initial) value must lie in its constraint: outside it, the
    unconstrained value the optimiser moves would be NaN."""
    if constraint is None or not _is_array(value):
        return
    try:
        inside = bool(constraint.check(value).all())
    except (TypeError, ValueError, RuntimeError, NotImplementedError):
        return
    if not inside:
        shown = value.tolist() if math.prod(value.shape) <= 4 else f"an array of shape {tuple(value.shape)}"
        raise SiteError(f"param {name!r}: the {what} {shown} lies outside its constraint "
                        f"{constraint}; give a value inside it", site=name)


def explain_run_failure(error, params, constraints=None, modules=()):
    """When a program failed inside a library (a distribution refusing its parameters) on
    a parameter that is NaN or outside its constraint, the error naming that parameter;
    otherwise None (an infinite parameter may be meant, as -inf logits, so it is not
    blamed). ``params``: the values the run met by name; ``modules``: ``torch.nn.Module``
    programs whose weights are not in ``params``."""
    if isinstance(error, PPLError) or not isinstance(error, (ValueError, RuntimeError, TypeError)):
        return None
    named = list(params.items())
    for module in modules:
        named += [(f"{type(module).__name__}.{n}", p) for n, p in module.named_parameters()]
    for name, value in named:
        if not _is_array(value) and not isinstance(value, numbers.Real):
            continue
        try:
            if value != value if isinstance(value, numbers.Real) else bool((value != value).any()):
                return NonFiniteError(f"parameter {name!r} is NaN, and the program failed on it: {error}")
            constraint = (constraints or {}).get(name)
            if constraint is not None and not _all(constraint.check(value)):
                return SiteError(f"param {name!r}: its value lies outside its constraint {constraint}, "
                                 f"and the program failed on it: {error}", site=name)
        except Exception:  # a value that cannot be read here (a traced one, under jit)
            continue
    return None


# ------------------------------------------------------------------- another backend's objects
_BACKEND_LIBRARIES = {"torch": ("torch", "pyro"), "jax": ("numpyro", "jax", "funsor")}


def check_distribution_backend(name, fn, backend):
    """A sample site's distribution must be the running backend's (a NumPyro distribution
    in a torch program fails deep inside Pyro with ``KeyError: 'rng_key'``)."""
    library = type(fn).__module__.partition(".")[0]
    if library in _BACKEND_LIBRARIES[backend]:
        return
    for other, libraries in _BACKEND_LIBRARIES.items():
        if library in libraries:
            raise SiteError(
                f"site {name!r}: its distribution {type(fn).__name__} is {library}'s, for the "
                f"{other} backend, but the program runs on the {backend} backend; use "
                f"ppl.distributions (the running backend's) or run it under "
                f"ppl.backend({other!r})", site=name)


# ------------------------------------------------------------------- interventions, evidence
def check_site_values(kind, values):
    """The values of ``do`` or ``condition`` (or a counterfactual's evidence and
    interventions): a number or array among them must not be NaN."""
    for name, value in values.items():
        if isinstance(value, bool) or callable(value) or hasattr(value, "batch_shape"):
            continue  # a shift (a function) or a stochastic intervention (a distribution)
        if isinstance(value, numbers.Real):
            nan = value != value
        elif _is_array(value):
            try:
                nan = bool((value != value).any())
            except (TypeError, RuntimeError):
                continue
        else:
            continue
        if nan:
            raise SiteError(f"{kind}: site {name!r} is given NaN; expected a value in the site's "
                            "support", site=name)


__all__ = ["check_observations", "check_param_value", "check_plate", "check_site_values",
           "explain_run_failure", "explain_score_failure", "support_problem", "value_broadcasts",
           "value_problem", "value_shape_error"]


def markov_window_problem(name, history, length):
    """The message for a ``ppl.markov`` chain of ``length`` steps whose ``history`` (the
    window of past steps a step may read) is longer than the chain, met at site ``name``."""
    return (f"site {name!r} is in ppl.markov(history={history}) over a chain of {length} steps: the "
            f"window of past steps is longer than the chain; history is the chain's order (1 for a "
            f"first-order chain), at most {length} here")
