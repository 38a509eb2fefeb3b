"""Property-based tests (hypothesis): random models from a small grammar, random guides and
random bad inputs. Every call either returns finite, checked results or raises one of the
project's errors naming the site, plate or argument: never a raw torch or Pyro error, never
a NaN without an error.

The grammar (written once: the valid-case properties run on both backends, JAX with fewer
examples since each new program compiles; the bad inputs run on torch): one to four sites,
each Normal, LogNormal, Gamma, Beta, Bernoulli or Categorical; none, one or two nested
``ppl.plate``s of sizes 1-3; each site observed (with valid generated data) or latent; a
site's parameters may read an earlier site's value through simple deterministic code (``u
= tanh(parent)``: a shift of a location, ``exp(u)`` for a positive parameter,
``sigmoid(u)`` for a probability, ``u * [0, 1, -1]`` for logits), that ``u`` optionally
recorded as a ``ppl.deterministic`` site. The guide is mean-field: Normal, LogNormal or
Beta (the latent's support) with ``ppl.param`` parameters for continuous latents; discrete
latents are either enumerated in the guide (a learnable Bernoulli or Categorical marked
``infer={"enumerate": "parallel"}``; IWAE, which cannot sum them out, draws them with the
score-function estimator) or enumerated in the model (the model site marked, no guide
site). A case uses one or the other: VI refuses guide-side and model-side enumeration in
one program (README).

Bugs these properties found are pinned by ``test_known_bug_*`` tests marked
``xfail(strict=True)``, each with a case strategy that always reaches the bug (so that a fix
turns them into failures to be promoted); the main properties leave exactly those calls out.

Profiles: "ci" (the default: derandomised, so every run draws the same examples; 100 per
property, about 12 s on two cores) and "long" (``HYPOTHESIS_PROFILE=long``: random, 1000
per property, about 90 s, for local runs). Neither keeps an example database; a failure
prints its ``@reproduce_failure`` blob.
"""

import math
import os
import warnings
from dataclasses import dataclass, replace
from types import SimpleNamespace

import numpy as np

import pyro
import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import ppl
import ppl.distributions as dist
from inference import ELBO, IWAE, SGD, VI, Adam, Importance
from ppl.errors import PPLError

_QUIET = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large,
          HealthCheck.filter_too_much]
settings.register_profile("ci", derandomize=True, database=None, max_examples=100, deadline=None,
                          print_blob=True, suppress_health_check=_QUIET)
settings.register_profile("long", derandomize=False, database=None, max_examples=1000, deadline=None,
                          print_blob=True, suppress_health_check=_QUIET)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

CONTINUOUS = ("normal", "lognormal", "gamma", "beta")
DISCRETE = ("bernoulli", "categorical")
FAMILIES = CONTINUOUS + DISCRETE
GUIDE_FAMILY = {"normal": "normal", "lognormal": "lognormal", "gamma": "lognormal", "beta": "beta",
                "bernoulli": "bernoulli", "categorical": "categorical"}
PLATES = ("plate_a", "plate_b")  # outer, inner
JAX_EXAMPLES = 6


# ------------------------------------------------------------------------ the grammar
@dataclass(frozen=True)
class Site:
    name: str
    family: str
    observed: bool
    depth: int            # how many of the case's plates enclose it (outermost first)
    parent: int | None    # index of an earlier site (at most as deep) whose value it reads
    deterministic: bool   # record tanh(value) as the ppl.deterministic site "<name>_det"


@dataclass(frozen=True)
class Case:
    sizes: tuple          # plate sizes, outermost first (0, 1 or 2 plates)
    sites: tuple
    discrete: str         # "guide" (guide-side enumeration) or "model" (model-side)
    data: dict            # observed site name -> tensor (the model's only argument)

    def shape(self, depth):
        """The batch shape of a site under ``depth`` of the plates (the inner plate at dim
        -1, the outer at -2 when there are two)."""
        if depth == 0:
            return ()
        if len(self.sizes) == 1:
            return (self.sizes[0],)
        return (self.sizes[0], 1) if depth == 1 else tuple(self.sizes)

    def model_enumerated(self, site):
        return not site.observed and site.family in DISCRETE and self.discrete == "model"

    def latent(self):
        return [s for s in self.sites if not s.observed]

    def guided(self):
        """The latent sites the guide samples (all but the model-enumerated ones)."""
        return [s for s in self.latent() if not self.model_enumerated(s)]


class _Plates:
    """The plates enclosing a site of ``depth`` (``sizes`` may differ from the case's;
    ``subsample``: plate index -> subsample_size)."""

    def __init__(self, sizes, depth, subsample=None):
        n, subsample = len(sizes), subsample or {}
        self.plates = [ppl.plate(PLATES[i], sizes[i], subsample_size=subsample.get(i), dim=i - n)
                       for i in range(depth)]

    def __enter__(self):
        for p in self.plates:
            p.__enter__()

    def __exit__(self, *exc):
        for p in reversed(self.plates):
            p.__exit__(*exc)
        return False


def xp():
    """The array functions the grammar uses, on the active backend (the models and guides
    are written once and run on both)."""
    if ppl.get_backend().name == "jax":
        import jax
        import jax.numpy as jnp

        return SimpleNamespace(tanh=jnp.tanh, exp=jnp.exp, sigmoid=jax.nn.sigmoid,
                               full=lambda shape, v: jnp.full(shape, v, jnp.float32),
                               asarray=lambda v: jnp.asarray(v, dtype=jnp.float32))
    return SimpleNamespace(tanh=torch.tanh, exp=torch.exp, sigmoid=torch.sigmoid,
                           full=lambda shape, v: torch.full(shape, float(v)),
                           asarray=lambda v: torch.as_tensor(v).to(torch.get_default_dtype()))


def on_active_backend(data):
    """A case's data (torch tensors) as arrays of the active backend."""
    if ppl.get_backend().name == "torch":
        return data
    import jax.numpy as jnp

    return {name: jnp.asarray(value.numpy()) for name, value in data.items()}


def squash(value):
    return xp().tanh(xp().asarray(value))


def prior(family, u):
    a = xp()
    if family == "normal":
        return dist.Normal(u, 1.0)
    if family == "lognormal":
        return dist.LogNormal(0.5 * u, 0.5)
    if family == "gamma":
        return dist.Gamma(2.0 * a.exp(u), 2.0)
    if family == "beta":
        return dist.Beta(2.0 * a.exp(u), 2.0)
    if family == "bernoulli":
        return dist.Bernoulli(a.sigmoid(u))
    return dist.Categorical(logits=u[..., None] * a.asarray([0.0, 1.0, -1.0]))


def make_model(case, subsample=None):
    def model(data):
        u = {}
        for i, site in enumerate(case.sites):
            with _Plates(case.sizes, site.depth, subsample):
                parent = u[site.parent] if site.parent is not None else xp().asarray(0.0)
                infer = {"enumerate": "parallel"} if case.model_enumerated(site) else None
                value = ppl.sample(site.name, prior(site.family, parent), obs=data.get(site.name),
                                   infer=infer)
                u[i] = squash(value)
                if site.deterministic:
                    u[i] = ppl.deterministic(f"{site.name}_det", u[i])
    return model


def sample_guide_site(site, family, shape, init=None):
    """The guide's site for ``site``: ``family`` with parameters of ``shape``; ``init``, a
    (parameter name, value) pair, fills one parameter's initial value with that value."""
    name, constraints, full = site.name, dist.constraints, xp().full
    positive = constraints.positive

    def param(param_name, value, **kwargs):
        if init is not None and param_name == init[0]:
            value = full(tuple(value.shape), init[1])
        return ppl.param(param_name, value, **kwargs)

    if family == "normal":
        fn = dist.Normal(param(f"{name}_loc", full(shape, 0.0)),
                         param(f"{name}_scale", full(shape, 1.0), constraint=positive))
    elif family == "lognormal":
        fn = dist.LogNormal(param(f"{name}_loc", full(shape, 0.0)),
                            param(f"{name}_scale", full(shape, 0.5), constraint=positive))
    elif family == "beta":
        fn = dist.Beta(param(f"{name}_a", full(shape, 2.0), constraint=positive),
                       param(f"{name}_b", full(shape, 2.0), constraint=positive))
    elif family == "bernoulli":
        fn = dist.Bernoulli(param(f"{name}_p", full(shape, 0.5), constraint=constraints.unit_interval))
    else:
        fn = dist.Categorical(param(f"{name}_p", full(shape + (3,), 1 / 3), constraint=constraints.simplex))
    infer = {"enumerate": "parallel"} if family in DISCRETE else None
    ppl.sample(name, fn, infer=infer)


def make_guide(case, families=None, extra=None, drop=None, sizes=None, init=None, subsample=None):
    """The mean-field guide. Bad ones: ``families`` (site name -> another guide family),
    ``extra`` (site name -> leading dims added to its parameters), ``drop`` (a site left
    out), ``sizes`` (other plate sizes), ``init`` (site name -> (parameter name, initial
    value)), ``subsample`` (plate index -> subsample_size)."""
    families, extra, init = families or {}, extra or {}, init or {}
    sizes = case.sizes if sizes is None else sizes

    def guide(data):
        for site in case.guided():
            if site.name != drop:
                with _Plates(sizes, site.depth, subsample):
                    shape = tuple(extra.get(site.name, ())) + replace(case, sizes=sizes).shape(site.depth)
                    sample_guide_site(site, families.get(site.name, GUIDE_FAMILY[site.family]), shape,
                                      init.get(site.name))
    return guide


# ------------------------------------------------------------------------ strategies
VALID = {
    "normal": st.floats(-3.0, 3.0),
    "lognormal": st.floats(0.1, 5.0),
    "gamma": st.floats(0.1, 5.0),
    "beta": st.floats(0.05, 0.95),
    "bernoulli": st.sampled_from([0.0, 1.0]),
    "categorical": st.integers(0, 2),
}


def observation(shape, family):
    """A valid observation of ``family`` with ``shape``."""
    n = math.prod(shape)
    dtype = torch.long if family == "categorical" else torch.get_default_dtype()
    return st.lists(VALID[family], min_size=n, max_size=n).map(
        lambda xs: torch.tensor(xs, dtype=dtype).reshape(shape))


@st.composite
def cases(draw, families=None, observed=None, depth=None, plates=(0, 2), leaf=False,
          child_depth=None, plated_observation=False, discrete=None):
    """A random (model, data) case and a target site index. Without arguments the target
    is None; the arguments shape the target, the site a mutation works on: its
    ``families``, ``observed`` (True, False or None for either), ``depth`` (an int, or
    "plated" for inside at least one plate), ``plates`` (the case's range of plate counts),
    ``leaf`` (no site reads its value), ``child_depth`` (append an observed Normal site at
    that depth reading the target's value); ``plated_observation`` appends an observed site
    inside every plate, ``discrete`` fixes where discrete latents are enumerated."""
    n_plates = draw(st.integers(*plates))
    sizes = tuple(draw(st.integers(1, 3)) for _ in range(n_plates))
    n_sites = draw(st.integers(1, 4))
    targeted = families is not None
    target = draw(st.integers(0, n_sites - 1)) if targeted else None
    sites = []
    for i in range(n_sites):
        family = draw(st.sampled_from(FAMILIES))
        is_observed = draw(st.booleans())
        site_depth = draw(st.integers(0, n_plates))
        if i == target:
            family = draw(st.sampled_from(families))
            is_observed = is_observed if observed is None else observed
            if depth == "plated":
                site_depth = draw(st.integers(1, n_plates))
            elif depth is not None:
                site_depth = depth
        parents = [j for j, s in enumerate(sites) if s.depth <= site_depth and not (leaf and j == target)]
        parent = draw(st.sampled_from([None] + parents))
        sites.append(Site(f"s{i}", family, is_observed, site_depth, parent, draw(st.booleans())))
    if child_depth is not None:
        sites.append(Site(f"s{len(sites)}", "normal", True, child_depth, target, False))
    if plated_observation:
        sites.append(Site(f"s{len(sites)}", draw(st.sampled_from(FAMILIES)), True, n_plates, None, False))
    discrete = discrete or draw(st.sampled_from(["guide", "model"]))
    case = Case(sizes, tuple(sites), discrete, {})
    data = {s.name: draw(observation(case.shape(s.depth), s.family), label=f"data[{s.name}]")
            for s in sites if s.observed}
    return replace(case, data=data), target


def fresh():
    """Every example starts from an empty param store and a seeded generator (the
    conftest fixture runs once per test, not once per example)."""
    pyro.clear_param_store()
    torch.manual_seed(0)


def finite(value):
    return bool(np.isfinite(np.asarray(value)).all())


def refuses_auto_plate(case):
    """Bug E (see test_known_bug_auto_independent_plate): every latent site lies in plate_a
    and some site lies outside it."""
    latent = case.latent()
    return bool(latent) and all(s.depth >= 1 for s in latent) and any(s.depth == 0 for s in case.sites)


# ------------------------------------------------------------------------ valid cases
@given(cases(), st.integers(0, 2 ** 16))
def test_vi_runs_finite_on_valid_cases(drawn, seed):
    vi_runs_finite(*drawn, seed)


# JAX compiles each new program (about a second each): fewer examples there
@settings(max_examples=JAX_EXAMPLES)
@given(cases(), st.integers(0, 2 ** 16))
def test_vi_runs_finite_on_valid_cases_on_jax(drawn, seed):
    pytest.importorskip("numpyro")
    with ppl.backend("jax"):
        vi_runs_finite(*drawn, seed)


def vi_runs_finite(case, _, seed):
    """ELBO and IWAE(3): three steps with finite losses, a finite IWAE bound with 20
    particles, finite posterior draws and finite parameters."""
    fresh()
    model, guide, data = make_model(case), make_guide(case), on_active_backend(case.data)
    enumerated = {s.name: "score" for s in case.guided() if s.family in DISCRETE}
    # bug E: with every latent in a plate and a site outside it, the default
    # independent_plate="auto" refuses the model (IWAE's steps, any objective's evaluate);
    # weight whole traces there instead
    plate = None if refuses_auto_plate(case) else "auto"
    for objective, options in ((ELBO(), {}), (IWAE(3), {"estimators": enumerated})):
        vi = VI(model, guide, objective, Adam(lr=0.05), rng_seed=seed, independent_plate=plate,
                **options)
        for _ in range(3):
            loss = vi.step(data)
            assert math.isfinite(loss), (objective, loss)
        assert len(vi.history) == 3 and all(math.isfinite(v) for v in vi.history)
        bound = vi.evaluate(data, num_particles=20)
        assert math.isfinite(bound), (objective, bound)
        draws = vi.posterior(data, num_samples=5)
        assert {s.name for s in case.guided()} <= set(draws)
        for name, value in draws.items():
            assert value.shape[0] == 5 and finite(value), (objective, name, value)
        params = vi.params
        first = {"normal": "loc", "lognormal": "loc", "beta": "a", "bernoulli": "p", "categorical": "p"}
        assert {f"{s.name}_{first[GUIDE_FAMILY[s.family]]}" for s in case.guided()} <= set(params)
        for name, value in params.items():
            assert finite(value), (objective, name, value)


@given(cases(), st.integers(0, 2 ** 16))
def test_importance_is_finite_on_valid_cases(drawn, seed):
    importance_is_finite(*drawn, seed)


@settings(max_examples=JAX_EXAMPLES)
@given(cases(), st.integers(0, 2 ** 16))
def test_importance_is_finite_on_valid_cases_on_jax(drawn, seed):
    pytest.importorskip("numpyro")
    with ppl.backend("jax"):
        importance_is_finite(*drawn, seed)


def importance_is_finite(case, _, seed):
    """The prior, and the guide (after one VI step, its parameters passed on) as proposals:
    a finite log evidence, an effective sample size in [1, K], finite samples."""
    fresh()
    model, guide, data = make_model(case), make_guide(case), on_active_backend(case.data)
    K = 16
    fitted = VI(model, guide, ELBO(), Adam(lr=0.05), rng_seed=seed)
    fitted.step(data)
    for proposal, params in ((None, None), (guide, fitted.params)):
        result = Importance(model, proposal, num_particles=K, rng_seed=seed, param_values=params).run(data)
        assert math.isfinite(result.log_evidence), result.log_evidence
        assert tuple(result.log_weights.shape) == (K,)
        assert not np.isnan(np.asarray(result.log_weights)).any()
        ess = result.effective_sample_size
        # float32 weights: ESS may exceed K (or fall below 1) by rounding
        assert 1 - 1e-4 <= ess <= K * (1 + 1e-4), ess
        for s in case.latent():
            if not case.model_enumerated(s):
                assert s.name in result.samples and finite(result.samples[s.name]), s.name


# ------------------------------------------------------------------------ bad inputs
RAW = (RuntimeError, AttributeError, IndexError, KeyError, ZeroDivisionError, AssertionError)


def expect_named_error(call, names, what):
    """``call()`` must raise one of the project's errors, or a ValueError/TypeError, whose
    message names one of ``names`` (a site or plate as 'name', quoted as the project's
    messages quote them, or an argument's name); never a raw library error, and never
    return (a bad input accepted, perhaps with a NaN in the result)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. Importance's untrained-proposal warning
            out = call()
    except Exception as error:  # noqa: BLE001 -- which exception it is, is the point
        message = f"{type(error).__name__}: {error}"
        # UnsupportedError is a NotImplementedError, hence a RuntimeError: the project's own
        assert isinstance(error, PPLError) or (
            isinstance(error, (ValueError, TypeError)) and not isinstance(error, RAW)), (
            f"{what}: a raw {message}")
        assert any(name in str(error) for name in names), f"{what}: names none of {names}: {message}"
        return
    raise AssertionError(f"{what}: the bad input was accepted, returning {out!r}")


VI_STEP, PRIOR_RUN, GUIDE_RUN = "VI(ELBO()).step", "Importance(model).run", "Importance(model, guide).run"


def strategy_calls(case, guide, data, names, labels=(VI_STEP, PRIOR_RUN, GUIDE_RUN)):
    model = make_model(case)
    calls = {VI_STEP: lambda: VI(model, guide, ELBO(), rng_seed=0).step(data),
             PRIOR_RUN: lambda: Importance(model, num_particles=10, rng_seed=0).run(data),
             GUIDE_RUN: lambda: Importance(model, guide, num_particles=10, rng_seed=0).run(data)}
    return [(label, calls[label], names) for label in labels]


def with_value_at(draw, case, site, value):
    """The case's data with one element of ``site``'s observation replaced by ``value``."""
    changed = case.data[site.name].clone()
    changed.reshape(-1)[draw(st.integers(0, changed.numel() - 1), label="element")] = value
    return {**case.data, site.name: changed}


# Each mutation: the case it needs (arguments of ``cases``) and a function
# (case, target, draw) -> [(call label, call, names one of which its error must give)].
MUTATIONS = {}


def mutation(**need):
    def register(fn):
        MUTATIONS[fn.__name__] = (need, fn)
        return fn
    return register


@mutation(families=("normal", "lognormal", "gamma", "beta", "bernoulli"), observed=True, leaf=True)
def nan_observation(case, target, draw):
    site = case.sites[target]
    data = with_value_at(draw, case, site, math.nan)
    return strategy_calls(case, make_guide(case), data, [repr(site.name)])


# infinities inside the support's closure (+-inf for Normal, +inf for positive sites) and
# for Bernoulli; -inf for a positive site and +-inf for Beta are bug A
INFINITE = {"normal": [math.inf, -math.inf], "lognormal": [math.inf], "gamma": [math.inf],
            "bernoulli": [math.inf, -math.inf]}


@mutation(families=tuple(INFINITE), observed=True)
def inf_observation(case, target, draw):
    site = case.sites[target]
    data = with_value_at(draw, case, site, draw(st.sampled_from(INFINITE[site.family])))
    return strategy_calls(case, make_guide(case), data, [repr(site.name)])


@mutation(families=FAMILIES, observed=True)
def python_value_observation(case, target, draw):
    """A (nested) list, or a Python number for a site outside plates, instead of a tensor."""
    site = case.sites[target]
    data = {**case.data, site.name: case.data[site.name].tolist()}
    return strategy_calls(case, make_guide(case), data, [repr(site.name)])


@mutation(families=FAMILIES, observed=None, depth="plated", plates=(1, 2))
def empty_plate(case, target, draw):
    """Empty data: the plate's size is that of the data, 0 (in the model and the guide)."""
    level = draw(st.integers(0, case.sites[target].depth - 1), label="plate")
    sizes = tuple(0 if i == level else n for i, n in enumerate(case.sizes))
    empty = replace(case, sizes=sizes)
    data = {s.name: case.data[s.name].new_zeros(empty.shape(s.depth)) if s.depth > level
            else case.data[s.name] for s in case.sites if s.observed}
    return strategy_calls(empty, make_guide(empty), data, [repr(PLATES[level])])


OUTSIDE = {"lognormal": [-1.0, 0.0], "gamma": [-1.0], "beta": [1.5, -0.2, 0.0, 1.0],
           "bernoulli": [2.0, 0.5, -1.0], "categorical": [3, -1]}


@mutation(families=tuple(OUTSIDE), observed=True)
def out_of_support_observation(case, target, draw):
    site = case.sites[target]
    data = with_value_at(draw, case, site, draw(st.sampled_from(OUTSIDE[site.family])))
    return strategy_calls(case, make_guide(case), data, [repr(site.name)])


@mutation(families=FAMILIES, observed=False, leaf=True)
def guide_of_another_shape(case, target, draw):
    """A guide site with an extra leading dim (its value read by no other site; when it is,
    see bug C). As a proposal (Importance) it is bug D."""
    site = case.sites[target]
    if case.model_enumerated(site):  # no guide site to change
        return []
    guide = make_guide(case, extra={site.name: (draw(st.integers(2, 3), label="extra"),)})
    return strategy_calls(case, guide, case.data, [repr(site.name)], labels=(VI_STEP,))


@mutation(families=("lognormal", "gamma", "beta"), observed=False)
def guide_outside_the_support(case, target, draw):
    """A Normal guide for a positive or unit-interval latent (or LogNormal for a Beta)."""
    site = case.sites[target]
    family = draw(st.sampled_from(["normal", "lognormal"] if site.family == "beta" else ["normal"]))
    guide = make_guide(case, families={site.name: family})
    return strategy_calls(case, guide, case.data, [repr(site.name)], labels=(VI_STEP, GUIDE_RUN))


@mutation(families=CONTINUOUS, observed=False)
def guide_missing_a_site(case, target, draw):
    site = case.sites[target]
    guide = make_guide(case, drop=site.name)
    return strategy_calls(case, guide, case.data, [repr(site.name)], labels=(VI_STEP, GUIDE_RUN))


@mutation(families=CONTINUOUS, observed=False, depth="plated", plates=(1, 2))
def guide_plate_of_another_size(case, target, draw):
    level = draw(st.integers(0, case.sites[target].depth - 1), label="plate")
    sizes = tuple(n + 1 if i == level else n for i, n in enumerate(case.sizes))
    guide = make_guide(case, sizes=sizes)
    return strategy_calls(case, guide, case.data, [repr(PLATES[level])], labels=(VI_STEP, GUIDE_RUN))


@mutation()
def bad_num_particles(case, target, draw):
    k = draw(st.sampled_from([0, -3, 2.5, "3", None, True, math.nan, math.inf]), label="num_particles")
    model, guide = make_model(case), make_guide(case)
    calls = [("IWAE(k)", lambda: IWAE(k)), ("ELBO(k)", lambda: ELBO(k)),
             ("Importance(model, num_particles=k)", lambda: Importance(model, num_particles=k)),
             ("VI.evaluate(num_particles=k)",
              lambda: VI(model, guide, ELBO(), rng_seed=0).evaluate(case.data, num_particles=k))]
    return [(f"{what} with k={k!r}", call, ["num_particles"]) for what, call in calls]


@mutation()
def bad_learning_rate(case, target, draw):
    lr = draw(st.sampled_from([0, 0.0, -1, -1e-3, math.inf, -math.inf, math.nan, "0.1", None, [0.1]]),
              label="lr")
    optimiser = draw(st.sampled_from([Adam, SGD]), label="optimiser")
    return [(f"{optimiser.__name__}(lr={lr!r})", lambda: optimiser(lr=lr), ["lr"])]


@mutation()
def bad_objective(case, target, draw):
    objective = draw(st.sampled_from(["elbo", "IWAE", "Trace_ELBO", 3, ELBO, IWAE]), label="objective")
    model, guide = make_model(case), make_guide(case)
    return [(f"VI(objective={objective!r})", lambda: VI(model, guide, objective).step(case.data),
             ["objective"])]


PARAMS = {"normal": ("loc", "scale"), "lognormal": ("loc", "scale"), "beta": ("a", "b"),
          "bernoulli": ("p",), "categorical": ("p",)}


@mutation(families=FAMILIES, observed=False)
def guide_parameter_initialised_badly(case, target, draw):
    """A guide parameter initialised NaN, infinite or outside its constraint."""
    site = case.sites[target]
    if case.model_enumerated(site):  # no guide site to change
        return []
    param = f"{site.name}_{draw(st.sampled_from(PARAMS[GUIDE_FAMILY[site.family]]), label='param')}"
    bad = [math.nan, math.inf, -math.inf] if param.endswith("_loc") else [math.nan, math.inf, -1.0]
    value = draw(st.sampled_from(bad), label="value")
    guide = make_guide(case, init={site.name: (param, value)})
    # bug G: an infinite Beta concentration, as a proposal (see KNOWN_BUGS)
    labels = (VI_STEP,) if site.family == "beta" and value == math.inf else (VI_STEP, GUIDE_RUN)
    return strategy_calls(case, guide, case.data, [repr(param), repr(site.name)], labels=labels)


@mutation(families=FAMILIES, observed=None, depth="plated", plates=(1, 2))
def subsample_larger_than_the_plate(case, target, draw):
    level = draw(st.integers(0, case.sites[target].depth - 1), label="plate")
    subsample = {level: case.sizes[level] + draw(st.integers(1, 2), label="more")}
    model = make_model(case, subsample)
    guide = make_guide(case, subsample=subsample)
    name = [repr(PLATES[level])]
    return [(VI_STEP, lambda: VI(model, guide, ELBO(), rng_seed=0).step(case.data), name),
            (PRIOR_RUN, lambda: Importance(model, num_particles=10, rng_seed=0).run(case.data), name)]


@mutation(families=FAMILIES, observed=None, depth="plated", plates=(1, 2))
def max_plate_nesting_too_small(case, target, draw):
    nesting = len(case.sizes) - 1  # a site lies in the outermost plate, at dim -len(sizes)
    model, guide = make_model(case), make_guide(case)
    names = ["max_plate_nesting"]
    return [(VI_STEP, lambda: VI(model, guide, ELBO(), max_plate_nesting=nesting).step(case.data), names),
            (PRIOR_RUN, lambda: Importance(model, num_particles=10, max_plate_nesting=nesting).run(case.data),
             names)]


@mutation(families=CONTINUOUS, observed=False)
def discrete_estimator_on_a_continuous_site(case, target, draw):
    site = case.sites[target]
    estimator = draw(st.sampled_from(["gumbel", "enum", "magic"]), label="estimator")
    model, guide = make_model(case), make_guide(case)
    return [(f"VI(estimators={{{site.name!r}: {estimator!r}}}).step",
             lambda: VI(model, guide, estimators={site.name: estimator}).step(case.data), [repr(site.name)])]


@mutation()
def bad_strategy_argument(case, target, draw):
    """Other arguments of VI and Importance: a bad value must be refused, naming it."""
    model, guide, x = make_model(case), make_guide(case), case.data
    bad_count = st.sampled_from([0, -1, 2.5, "3"])  # None: the default (max_memory: bug F)
    options = {
        "rng_seed": (st.sampled_from(["0", 1.5, math.nan, [0], True]),
                     lambda v: [lambda: VI(model, guide, rng_seed=v),
                                lambda: Importance(model, rng_seed=v)]),
        "max_plate_nesting": (st.sampled_from([-1, 1.5, "2", True]),
                              lambda v: [lambda: VI(model, guide, max_plate_nesting=v),
                                         lambda: Importance(model, max_plate_nesting=v)]),
        "vectorize_particles": (st.sampled_from(["yes", 2, None]),
                                lambda v: [lambda: VI(model, guide, vectorize_particles=v)]),
        "independent_plate": (st.sampled_from(["no_such_plate", 3]),
                              lambda v: [lambda: VI(model, guide, IWAE(2), independent_plate=v).step(x)]),
        "num_samples": (bad_count, lambda v: [lambda: VI(model, guide).posterior(x, num_samples=v)]),
        "batch_particles": (bad_count, lambda v: [
            lambda: VI(model, guide).evaluate(x, num_particles=4, batch_particles=v)]),
        "num_steps": (st.sampled_from([-1, 2.5, "3", None]),
                      lambda v: [lambda: VI(model, guide).run(x, num_steps=v, progress=False),
                                 lambda: Importance(model, num_particles=4).run(x, num_steps=v)]),
        "max_memory": (bad_count, lambda v: [lambda: Importance(model, max_memory=v)]),
        "chunk_size": (bad_count, lambda v: [lambda: Importance(model, chunk_size=v)]),
        "estimators": (st.sampled_from(["no_such_site"]),
                       lambda v: [lambda: VI(model, guide, estimators={v: "reparam"}).step(x)]),
    }
    argument = draw(st.sampled_from(sorted(options)), label="argument")
    values, calls = options[argument]
    value = draw(values, label="value")
    names = [argument] + ([repr(value)] if isinstance(value, str) else [])
    return [(f"{argument}={value!r} (call {i})", call, names) for i, call in enumerate(calls(value))]


def check_mutation(data, need, mutate):
    case, target = data.draw(cases(**need), label="case")
    for what, call, names in mutate(case, target, data.draw):
        fresh()
        expect_named_error(call, names, what)


@pytest.mark.parametrize("name", sorted(MUTATIONS))
@given(data=st.data())
def test_bad_input_raises_a_named_error(name, data):
    need, mutate = MUTATIONS[name]
    check_mutation(data, need, mutate)


# ------------------------------------------------------------------------ known bugs
# Each strategy below always reaches its bug; the test fails (xfail) at the first example,
# so shrinking is skipped. Once a bug is fixed the test XPASSes (strict: a failure): move
# its mutation into MUTATIONS above.
known_bug = settings(phases=[Phase.explicit, Phase.generate], report_multiple_bugs=False)


def inf_outside_the_support(case, target, draw):
    site = case.sites[target]
    value = draw(st.sampled_from([-math.inf] if site.family in ("lognormal", "gamma")
                                 else [math.inf, -math.inf]))
    data = with_value_at(draw, case, site, value)
    return strategy_calls(case, make_guide(case), data, [repr(site.name)])


def nan_observation_feeding_a_child(case, target, draw):
    site = case.sites[target]
    data = with_value_at(draw, case, site, math.nan)
    return strategy_calls(case, make_guide(case), data, [repr(site.name)])


def proposal_of_another_shape(case, target, draw):
    site = case.sites[target]
    guide = make_guide(case, extra={site.name: (draw(st.integers(2, 3), label="extra"),)})
    return strategy_calls(case, guide, case.data, [repr(site.name)], labels=(GUIDE_RUN,))


def guide_of_another_shape_feeding_a_plated_child(case, target, draw):
    site = case.sites[target]
    (size,) = case.sizes
    extra = draw(st.sampled_from([k for k in (2, 3, 4) if k != size]), label="extra")
    guide = make_guide(case, extra={site.name: (extra,)})
    return strategy_calls(case, guide, case.data, [repr(site.name)], labels=(VI_STEP,))


def proposal_with_an_infinite_beta_concentration(case, target, draw):
    site = case.sites[target]
    param = f"{site.name}_{draw(st.sampled_from(['a', 'b']), label='param')}"
    guide = make_guide(case, init={site.name: (param, math.inf)})
    return strategy_calls(case, guide, case.data, [repr(param), repr(site.name)], labels=(GUIDE_RUN,))


KNOWN_BUGS = {  # all fixed now (Importance(max_memory=None) means no limit: bug F was a choice)
    "A: -inf or +inf observed outside the support's closure": (
        dict(families=("lognormal", "gamma", "beta"), observed=True), inf_outside_the_support,
        "bug A: -inf for a LogNormal/Gamma site, +-inf for a Beta site: check_observations leaves "
        "infinities to the non-finite checks, but torch's support validation refuses them first "
        "(raw ValueError 'Expected value argument ... within the support', no site named) in "
        "VI and Importance"),
    "B: NaN observation read by another site": (
        dict(families=("normal", "lognormal", "gamma", "beta", "bernoulli"), observed=True,
             depth=0, child_depth=0), nan_observation_feeding_a_child,
        "bug B: check_observations runs after the dry run, so a NaN observation whose value "
        "another site reads fails first in that site's distribution (raw ValueError 'Expected "
        "parameter loc ... Normal', the NaN site not named) in VI and Importance"),
    "C: guide site of another shape read by a plated site": (
        dict(families=("normal", "lognormal", "gamma", "beta"), observed=False, depth=0,
             plates=(1, 1), child_depth=1), guide_of_another_shape_feeding_a_plated_child,
        "bug C: the guide's value shape is checked after the dry run (VI._check_sites), not as "
        "the model meets the site (program.against_guide), so a mis-shaped value read by a "
        "plated site fails there first: Pyro's raw 'Shape mismatch inside plate' naming the "
        "child (or, for a model-enumerated child, a SiteError blaming the child)"),
    "D: proposal site of another shape": (
        dict(families=("normal", "lognormal", "gamma", "beta"), observed=False, depth=0,
             plates=(1, 2), leaf=True, plated_observation=True, discrete="guide"),
        proposal_of_another_shape,
        "bug D: Importance never checks a proposal site's shape against the model's; in a "
        "model with a plate, a guide site of shape (k,) for a scalar latent broadcasts and the "
        "run returns a finite, wrong log evidence (samples of shape [K, k])"),
    "G: proposal whose log density is NaN": (
        dict(families=("beta",), observed=False), proposal_with_an_infinite_beta_concentration,
        "bug G: Importance diagnoses NaN weights from the model's trace only: a proposal whose "
        "log density is NaN at finite values (Beta with an infinite concentration, which the "
        "positive constraint admits) raises NonFiniteError 'importance weights are NaN: no "
        "single site is NaN', naming neither the guide site nor its parameter (VI names them)"),
}


@pytest.mark.parametrize("bug", list(KNOWN_BUGS))
@known_bug
@given(data=st.data())
def test_former_bug(bug, data):
    """Once xfail pins of bugs this suite found (each reason says what it did), fixed since:
    the strategies still reach each case, which now raises a project error naming it."""
    need, mutate, _ = KNOWN_BUGS[bug]
    check_mutation(data, need, mutate)


@st.composite
def plated_latent_and_global_site(draw):
    """Every latent site in a plate, one observed site outside it: the case of bug E."""
    size = draw(st.integers(1, 3))
    latent = draw(st.sampled_from(CONTINUOUS))
    outside = draw(st.sampled_from(FAMILIES))
    sites = (Site("s0", latent, False, 1, None, False), Site("s1", outside, True, 0, None, False))
    case = Case((size,), sites, "guide", {})
    return replace(case, data={"s1": draw(observation((), outside))})


BUG_E = ("bug E: with the default independent_plate='auto', VI refuses a model whose latent "
         "sites all lie in a plate when a site lies outside it, even one whose log density is "
         "the same for every particle (it reads no latent): ValueError 'site 's1' lies outside "
         "plate 'plate_a' but its log density varies across particles' (wrapped in a ShapeError "
         "blaming the vectorised particles in IWAE's step). The particle plate broadcasts the "
         "site's log density to [K, 1] and WeightLayout.reduce takes the size K for variation. "
         "VI.evaluate keeps the plate whatever the objective, so ELBO's evaluate fails too.")


@pytest.mark.parametrize("call", ["IWAE(3) step", "ELBO() evaluate"])
@known_bug
@given(plated_latent_and_global_site())
def test_former_bug_auto_independent_plate(call, case):  # BUG_E, fixed on torch
    fresh()
    assert refuses_auto_plate(case)
    model, guide = make_model(case), make_guide(case)
    try:
        if call == "IWAE(3) step":
            value = VI(model, guide, IWAE(3), rng_seed=0).step(case.data)
        else:
            value = VI(model, guide, ELBO(), rng_seed=0).evaluate(case.data, num_particles=20)
    except ValueError as error:
        raise AssertionError(f"{call} refused a valid model: {error}") from error
    assert math.isfinite(value)
