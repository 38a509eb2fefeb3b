"""Causal queries: interventional and counterfactual distributions, effects, and adjustment.

The conditioning step is done exactly (``method="exact"``: discrete models, whose latent
sites are enumerated and summed out by variable elimination, see :mod:`inference.exact`, and
counterfactuals whose noise the evidence fixes, as in linear-Gaussian SCMs), by
importance sampling (``method="importance"``, with ``num_particles`` and optionally a
``guide`` as proposal) or by variational inference (``method="vi"``: the ``guide`` is fitted
to the conditioned program with ``objective`` for ``num_steps``, then used as the proposal
of importance sampling, which corrects its bias and gives a standard error); ``method="auto"``
takes the exact path where every latent site can be summed out and importance sampling
otherwise (the answer's ``method`` says which ran). A guide for a counterfactual program
samples its noise sites, ``"<site>__noise"``.

    >>> import torch, ppl, ppl.distributions as dist
    >>> def scm():
    ...     stress = ppl.sample("stress", dist.Bernoulli(0.5))
    ...     smoking = ppl.sample("smoking", dist.Bernoulli(0.2 + 0.6 * stress))
    ...     table = torch.tensor([[0.1, 0.15], [0.8, 0.85]])
    ...     return ppl.sample("cancer", dist.Bernoulli(table[stress.long(), smoking.long()]))
    >>> round(interventional(scm, {"smoking": 1.0}, "cancer").mean, 4)
    0.5
    >>> round(interventional(scm, {}, "cancer", evidence={"smoking": 1.0}).mean, 4)  # seeing
    0.71
"""

import math
import numbers

import numpy as np
import torch

import ppl
from ppl.backend import backend_of
from ppl.causal.world_handler import counterfactual_worlds as counterfactual_program
from ppl.causal import world_value
from ppl.errors import SiteError

from ..exact import NotEnumerableError, enumerate_program
from ..importance import Importance

METHODS = ("exact", "importance", "vi", "auto")


class Estimate:
    """An estimated expectation: ``mean``, its Monte Carlo ``stderr`` (0 when exact), the
    ``distribution`` {value: probability} of a discrete target (computed on first access),
    and how it was found; with ``method="vi"``, ``params`` holds the fitted guide's
    parameters."""

    params = None

    def __init__(self, mean, stderr=0.0, distribution=None, method="exact",
                 effective_sample_size=math.inf):
        self.mean = mean
        self.stderr = stderr
        self._distribution = distribution
        self.method = method
        self.effective_sample_size = effective_sample_size

    @property
    def distribution(self):
        if callable(self._distribution):
            self._distribution = self._distribution()
        return self._distribution

    def probability(self, value):
        """P(target == value) for a discrete target."""
        if self.distribution is None:
            raise ValueError("this estimate has no distribution (the target is not discrete)")
        return self.distribution.get(float(value), self.distribution.get(value, 0.0))

    def __sub__(self, other):
        return Estimate(self.mean - other.mean, math.hypot(self.stderr, other.stderr),
                        method=self.method)

    def __repr__(self):
        se = f" ± {self.stderr:.4g}" if self.stderr else ""
        return f"Estimate(mean={self.mean:.6g}{se}, method={self.method!r})"


def _check_method(method):
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def estimate(program, fn, *args, method="exact", num_particles=10_000, discrete=None,
             guide=None, objective=None, optimizer=None, num_steps=1000, **kwargs):
    """E[fn(trace)] under ``program`` (conditioned by its observed sites). ``method="auto"``:
    exact where every latent site can be summed out, importance sampling otherwise (with a
    ``guide``, importance sampling from it); the answer's ``method`` says which ran."""
    _check_method(method)
    if method == "auto":
        if guide is None:
            try:
                return estimate(program, fn, *args, method="exact", discrete=discrete, **kwargs)
            except NotEnumerableError:
                pass
        method = "importance"
    params = None
    if method == "vi":
        if guide is None:
            raise ValueError("method='vi' needs guide=: a program sampling the latent sites")
        from ..vi import ELBO, VI

        vi = VI(program, guide, objective or ELBO(num_particles=8), optimizer)
        vi.run(*args, num_steps=num_steps, progress=False, **kwargs)
        params = vi.params
    elif guide is not None and method == "exact":
        raise ValueError("method='exact' takes no guide")
    if method == "exact":
        posterior = enumerate_program(program, *args, **kwargs)

        def distribution():
            table = posterior.distribution(fn)
            return None if discrete is None and len(table) > 64 else table

        return Estimate(posterior.expectation(fn), 0.0,
                        distribution if discrete is not False else None, "exact")
    result = Importance(program, guide, num_particles=num_particles, param_values=params).run(*args, **kwargs)
    values = result.ops.to_numpy(fn(result.trace)).reshape(-1)
    if values.size == 1:  # the same in every particle (e.g. fixed by the evidence)
        values = np.broadcast_to(values, (num_particles,))
    if values.size != num_particles:
        raise ValueError("importance: the target must be one number per particle (a site "
                         "outside plates)")
    weights = result.ops.to_numpy(result.normalized_weights).astype(np.float64)
    values = values.astype(np.float64)
    mean = float((weights * values).sum())
    ess = result.effective_sample_size
    sd = float((weights * (values - mean) ** 2).sum()) ** 0.5
    distribution = None
    if discrete is not False:
        unique = np.unique(values)
        if len(unique) <= 64:
            distribution = {float(v): float(weights[values == v].sum()) for v in unique}
    answer = Estimate(mean, sd / math.sqrt(ess), distribution, method, ess)
    answer.params = params
    return answer


def _site_value(target):
    def read(trace):
        if target in trace.deterministics and target not in trace.sites:  # a mechanism
            return trace.deterministics[target]
        return trace[target].value
    return read


def interventional(model, interventions, target, *args, evidence=None, method="exact",
                   num_particles=10_000, **kwargs):
    """The distribution of ``target`` under ``do(interventions)`` (and ``evidence``).

    ``target``: a site name or a function of the trace. Returns an :class:`Estimate`.
    ``guide``, ``objective``, ``optimizer``, ``num_steps``: see the module docstring.
    """
    program = ppl.do(model, interventions) if interventions else model
    if evidence:
        program = ppl.condition(program, data=evidence)
    fn = _site_value(target) if isinstance(target, str) else target
    return estimate(program, fn, *args, method=method, num_particles=num_particles, **kwargs)


def counterfactual(model, evidence, interventions, target, *args, worlds="twin", world=1,
                   method="exact", num_particles=10_000, **kwargs):
    """The distribution of ``target`` in counterfactual ``world`` (1 = the first intervened
    world) given ``evidence`` in the factual world. ``target``: a site name, or a function
    of the trace (read worlds with :func:`ppl.causal.world_value`, defined in ``ppl/causal/worlds.py``)."""
    _check_method(method)
    _check_world(world, worlds, interventions)
    if isinstance(target, str):
        def fn(trace):
            return world_value(trace, target, world)
    else:
        fn = target

    def query(method):
        program = counterfactual_program(model, evidence, interventions, worlds=worlds,
                                         exact=method == "exact")
        return estimate(program, fn, *args, method=method, num_particles=num_particles, **kwargs)

    if method == "auto" and kwargs.get("guide") is None:
        try:
            return query("exact")
        except NotEnumerableError:
            method = "importance"
    return query(method)


def _check_world(world, worlds, interventions):
    """``world`` indexes the program's worlds: 0 (factual) .. the number of intervened ones."""
    count = len(interventions) if worlds == "multi" and not isinstance(interventions, dict) else 1
    if isinstance(world, bool) or not isinstance(world, numbers.Integral) or not 0 <= world <= count:
        kind = "a twin counterfactual has" if worlds == "twin" else f"these {count + 1} worlds are"
        raise ValueError(f"counterfactual: world must be an integer from 0 (factual) to {count}, as "
                         f"{kind} worlds 0 .. {count}; got {world!r}")


def average_treatment_effect(model, treatment, outcome, *args, treated=1.0, control=0.0,
                             method="exact", num_particles=10_000, **kwargs):
    """E[outcome | do(treatment = treated)] - E[outcome | do(treatment = control)]."""
    high = interventional(model, {treatment: treated}, outcome, *args, method=method,
                          num_particles=num_particles, **kwargs)
    low = interventional(model, {treatment: control}, outcome, *args, method=method,
                         num_particles=num_particles, **kwargs)
    return high - low


def probability_of_necessity(model, treatment, outcome, *args, method="exact", **kwargs):
    """PN = P(outcome would be 0 had treatment been 0 | treatment = 1, outcome = 1)."""
    _require_binary(model, outcome, args, _model_kwargs(kwargs))
    return counterfactual(model, {treatment: 1.0, outcome: 1.0}, {treatment: 0.0},
                          lambda tr: 1.0 * (world_value(tr, outcome, 1) == 0), *args,
                          method=method, **kwargs)


def _model_kwargs(kwargs):
    """The model's own keyword arguments among a query's."""
    query = {"guide", "objective", "optimizer", "num_steps", "num_particles", "discrete"}
    return {k: v for k, v in kwargs.items() if k not in query}


def _require_binary(model, outcome, args, kwargs):
    """The probabilities of causation are about a binary outcome: a threshold on a
    continuous one would answer without a word. Checked on the outcome's distribution (its
    support), or on the values of a deterministic outcome in one prior run."""
    backend = backend_of(model)
    constraints = backend.distributions.constraints
    with backend.no_grad():
        trace = ppl.trace(model)(*args, **kwargs)
    if outcome in trace.sites:
        support = trace[outcome].fn.support
        binary = support is constraints.boolean or (
            isinstance(support, type(constraints.integer_interval(0, 1)))
            and support.lower_bound == 0 and support.upper_bound == 1)
    elif outcome in trace.deterministics:
        value = backend.ops.to_numpy(trace.deterministics[outcome])
        binary = bool(((value == 0) | (value == 1)).all())
    else:
        raise SiteError(f"the program has no site {outcome!r}", site=outcome)
    if not binary:
        raise SiteError(f"site {outcome!r}: the probabilities of necessity and sufficiency need a "
                        "binary outcome (a Bernoulli site, or a mechanism taking 0 and 1)", site=outcome)


def probability_of_sufficiency(model, treatment, outcome, *args, method="exact", **kwargs):
    """PS = P(outcome would be 1 had treatment been 1 | treatment = 0, outcome = 0)."""
    _require_binary(model, outcome, args, _model_kwargs(kwargs))
    return counterfactual(model, {treatment: 0.0, outcome: 0.0}, {treatment: 1.0},
                          lambda tr: 1.0 * (world_value(tr, outcome, 1) == 1), *args,
                          method=method, **kwargs)


def probability_of_necessity_and_sufficiency(model, treatment, outcome, *args, method="exact",
                                             **kwargs):
    """PNS = P(outcome_1 = 1 and outcome_0 = 0): two intervened worlds, no evidence."""
    _require_binary(model, outcome, args, _model_kwargs(kwargs))

    def both(trace):
        return 1.0 * ((world_value(trace, outcome, 1) == 1) & (world_value(trace, outcome, 2) == 0))

    return counterfactual(model, {}, [{treatment: 1.0}, {treatment: 0.0}], both, *args,
                          worlds="multi", method=method, **kwargs)


def adjustment_formula(data, treatment, outcome, adjustment_set, value, kind="backdoor"):
    """E[outcome | do(treatment = value)] from discrete observational ``data`` (a dict of
    equal-length 1-D arrays) by the back-door or front-door adjustment formula.

    back-door: sum_z P(z) E[Y | x, z]; front-door (``adjustment_set`` = mediators M):
    sum_m P(m | x) sum_x' P(x') E[Y | m, x'].
    """
    columns = {k: torch.as_tensor(v) for k, v in data.items()}
    for name in [treatment, outcome, *adjustment_set]:
        if name not in columns:
            raise ValueError(f"adjustment_formula: the data has no column {name!r} "
                             f"(columns: {sorted(columns)})")
    x, y = columns[treatment], columns[outcome].double()
    n = len(x)
    z = _joint_key(columns, adjustment_set, n)
    if kind == "backdoor":
        total = 0.0
        for zv in torch.unique(z):
            in_z = z == zv
            cell = in_z & (x == value)
            if not cell.any():
                raise ValueError(f"adjustment_formula: no row has {treatment} = {value} in "
                                 "one stratum of the adjustment set (positivity fails)")
            total += float(in_z.double().mean()) * float(y[cell].mean())
        return Estimate(total, method="backdoor adjustment")
    if kind == "frontdoor":
        treated = x == value
        total = 0.0
        for mv in torch.unique(z):
            p_m = float((z[treated] == mv).double().mean())
            inner = 0.0
            for xv in torch.unique(x):
                cell = (z == mv) & (x == xv)
                if cell.any():
                    inner += float((x == xv).double().mean()) * float(y[cell].mean())
            total += p_m * inner
        return Estimate(total, method="frontdoor adjustment")
    raise ValueError(f"adjustment_formula: kind must be 'backdoor' or 'frontdoor', got {kind!r}")


def _joint_key(columns, names, n):
    key = torch.zeros(n, dtype=torch.long)
    for name in names:
        codes = torch.unique(columns[name], return_inverse=True)[1]
        key = key * (int(codes.max()) + 1) + codes
    return key
