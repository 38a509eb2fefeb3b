"""Counterfactual worlds in one program, with each site's exogenous noise shared.

``counterfactual_worlds(model, evidence, interventions)`` returns a program that runs the model
once, vectorised over a plate of worlds: world 0 is the factual world (where the
evidence holds), worlds 1..k are the intervened ones (``worlds="twin"``: one dict of
interventions, k = 1; ``worlds="multi"``: a list of k dicts, k + 1 worlds in all, never
2^k). Site ``x`` takes one value per world; read them with :func:`world_value`.

Each site's noise is shared by the rule registered for its distribution's family in
:mod:`ppl.causal.noise` (location-scale, inverse CDF, Gumbel-max for Bernoulli and
Categorical, none for Delta; counterfactual answers depend on it); register a rule for
a family of your own with :func:`ppl.causal.noise.register_noise`.

Abduction is exact: an observed location-scale or inverse-CDF site fixes its noise
(``eps = (x - loc_0) / scale_0``), an observed Bernoulli site restricts ``u`` to the
interval that reproduces it, an observed Categorical site draws ``g`` from its
conditional given the argmax; the factual likelihood of the evidence is recorded as site
``"<name>__evidence"`` and noise left uncertain as latent site ``"<name>__noise"``. With ``exact=True`` a
Bernoulli noise is instead enumerable: the index of the interval between the worlds'
thresholds in which ``u`` falls.

One implementation runs on both backends (a :class:`~ppl.site_handler.SiteHandler` on the
backend's array ops; the world plate is the backend's plate):

    >>> import ppl, ppl.distributions as dist
    >>> def scm():
    ...     x = ppl.sample("x", ppl.distributions.Normal(0.0, 1.0))
    ...     return ppl.sample("y", ppl.distributions.Normal(2 * x, 1.0))
    >>> for name in ("torch", "jax"):
    ...     with ppl.backend(name):
    ...         tr = ppl.trace(counterfactual_worlds(scm, {"x": 1.0, "y": 3.0}, {"x": 0.0}))()
    ...         print(name, [float(ppl.world_value(tr, "y", w)) for w in (0, 1)])  # u_y = 3 - 2 = 1
    torch [3.0, 1.0]
    jax [3.0, 1.0]
"""

import math
import weakref

from ..backend import backend_of
from ..errors import SiteError
from ..shapes import broadcast_shape
from ..site_handler import SiteHandler
from ..validation import check_site_values
from .interventions import DoMessenger, fit_to_site, missing_site_error
from .mechanism import _Mechanism
from .worlds import (SHARED, WORLD_PLATE, WorldValue, _factual_fn, _Shape, _side_site,
                     _without_world, world_dim)

_NESTING = weakref.WeakKeyDictionary()  # model -> its plate nesting


class CounterfactualMessenger(SiteHandler):
    """Runs each site once over all worlds, sharing its noise (see the module docstring);
    one implementation for both backends, on ``self.backend.ops``."""

    def __init__(self, evidence, intervention_sets, dim, exact=False):
        self.evidence = dict(evidence)
        self.sets = [dict(s) for s in intervention_sets]
        self.dim = dim
        self.exact = exact
        self._seen = set()

    def enter(self):
        self._seen = set()

    def exit(self, exc_type):
        if exc_type is None:
            named = set(self.evidence).union(*self.sets)
            for name in sorted(named - self._seen):
                raise missing_site_error("counterfactual", name, self._seen)

    @property
    def ops(self):
        return self.backend.ops

    def _side(self, name, fn, value=None, observed=False):
        return _side_site(self.backend, name, fn, value, observed)

    def _factor(self, name, log_factor):
        """The factual world's log density of the evidence, as an observed site."""
        self._side(f"{name}__evidence", self.ops.factor_distribution(log_factor),
                   value=self.ops.zeros((), log_factor), observed=True)

    def process_sample(self, msg):
        fn = msg["fn"]
        if msg["infer"].get(SHARED):
            return
        name = msg["name"]
        self._seen.add(name)
        if msg["infer"].get("_deterministic"):  # torch's deterministic site
            event_dim = len(fn.event_shape)
            if event_dim and event_dim == self.ops.ndim(msg["value"]):
                # Pyro's default event_dim (the value's ndim) takes in the world, particle and
                # plate dims; a mechanism is read as one value per plate element (pass
                # ppl.deterministic(..., event_dim=k) for a vector-valued mechanism)
                event_dim = 0
            self._mechanism_site(name, msg, event_dim)
            return
        ops = self.ops
        mechanism = _Mechanism(name, fn, self.dim)
        shape = _factual_fn(fn, self.dim)  # the site's shapes, world dim of size 1
        observed = name in self.evidence or msg["is_observed"]
        evidence = None
        if observed:
            raw = self.evidence[name] if name in self.evidence else msg["value"]
            evidence = self._fit(name, raw, shape)
            mechanism.check_evidence(evidence)
        if self._exogenous(name, mechanism):
            # the same distribution in every world, untouched: its value is its own noise,
            # enumerable as it is (explicit noise written as a sample site)
            if observed:
                value = evidence
            else:
                value = self._side(f"{name}__noise", mechanism.as_site_event(mechanism.factual()))
            noise, exogenous = value, True
        else:
            noise = self._noise(name, mechanism, evidence)
            value, exogenous = mechanism.push(noise), False
        overrides = self._intervene(name, shape, mechanism, value, noise)
        if observed:
            overrides.append((0, evidence))
            if exogenous or not (self.exact and mechanism.rule.threshold_noise):
                self._factor(name, mechanism.factual_log_prob(evidence))
        if overrides:
            value = self._set_worlds(value, overrides, len(fn.event_shape))
        full = broadcast_shape(tuple(value.shape), tuple(fn.batch_shape) + tuple(fn.event_shape))
        # a point mass of log density 0 (a scalar: one value per world, not per batch)
        value = ops.broadcast_to(value, full)
        msg["fn"] = self.backend.distributions.Delta(value, event_dim=len(fn.event_shape),
                                                     validate_args=False)
        msg["value"] = value
        msg["is_observed"] = True

    def process_deterministic(self, msg):
        """JAX's deterministic site (NumPyro's message, with ``ppl.deterministic``'s event_dim)."""
        self._seen.add(msg["name"])
        self._mechanism_site(msg["name"], msg, msg.get("event_dim") or 0)

    def _mechanism_site(self, name, msg, event_dim):
        """A ``deterministic`` site: a mechanism of explicit noise, whose value already
        follows its inputs in each world. Interventions set it per world; evidence keeps
        the factual world where it holds (a 0 / -inf factor: exact with discrete noise).
        Without an explicit ``event_dim`` the mechanism is scalar per plate element."""
        ops = self.ops
        value = ops.asarray(msg["value"])
        split = ops.ndim(value) - event_dim
        real = self.backend.distributions.constraints.real
        shape = _Shape(_without_world(value.shape[:split], self.dim), tuple(value.shape[split:]), real)
        overrides = self._intervene(name, shape, None, value, None)
        if name in self.evidence:
            evidence = self._fit(name, self.evidence[name], shape)
            factual = self._get_world(value, 0, event_dim)
            holds = factual == evidence
            if event_dim:
                holds = ops.all(ops.reshape(holds, tuple(holds.shape[:-event_dim]) + (-1,)), -1)
            # log 1 = 0 where the evidence holds, log 0 = -inf where it does not
            zero = ops.zeros((), ops.asarray(0.0))
            self._factor(name, ops.where(holds, zero, zero - math.inf))
            overrides.append((0, evidence))
        if overrides:  # (torch's fn, Pyro's masked Delta, scores nothing: left as it is)
            msg["value"] = self._set_worlds(value, overrides, event_dim)

    def _exogenous(self, name, mechanism):
        """In exact mode, a discrete site that no world intervenes on and whose distribution
        is the same in every world (its parameters are broadcast along the world dim)."""
        if not (self.exact and mechanism.base.has_enumerate_support):
            return False
        if any(name in interventions for interventions in self.sets):
            return False
        return mechanism.invariant()

    def _noise(self, name, mechanism, evidence):
        if not mechanism.rule.has_noise:
            return None
        if self.exact and mechanism.rule.threshold_noise:
            return self._interval_noise(name, mechanism, evidence)
        if evidence is not None:
            abducted, deterministic = mechanism.abduct(evidence)
            if deterministic:
                return abducted  # fixed by the evidence: nothing left to infer, no site
            return self._side(f"{name}__noise", abducted)
        return self._side(f"{name}__noise", mechanism.noise_prior())

    def _interval_noise(self, name, mechanism, evidence):
        """Exact mode: u's interval among the worlds' thresholds, as an enumerable site.

        Within one interval every world's outcome 1[u > threshold_w] is constant, so the
        interval index (with probability its length) carries all the noise that matters.
        """
        if mechanism.reinterpreted:
            raise SiteError(f"site {name!r}: exact counterfactuals enumerate a Bernoulli's noise "
                            "element by element, which a vector-valued site (to_event) cannot "
                            "have: declare its elements in a plate, or use method='importance'",
                            site=name)
        ops, d = self.ops, self.dim
        thresholds = [1 - mechanism.base.probs]  # the worlds' own, along the world dim d
        factual_shape = list(thresholds[0].shape)
        factual_shape[d] = 1
        for interventions in self.sets:  # a stochastic intervention's threshold cuts u too
            action = interventions.get(name)
            if ops.is_distribution(action):
                stochastic = _Mechanism(name, action, d).base
                if _family(stochastic) == _family(mechanism.base):  # else _intervene says why not
                    cut = ops.astype(1 - stochastic.probs, thresholds[0])
                    thresholds.append(ops.broadcast_to(cut, tuple(factual_shape)))
        # [..., plates, cuts], factual first
        thresholds = ops.moveaxis(ops.concatenate(thresholds, d), d, -1)
        zeros = thresholds[..., :1] * 0
        edges = ops.concatenate([zeros, ops.sort(thresholds, -1), zeros + 1], -1)
        lengths = ops.maximum(edges[..., 1:] - edges[..., :-1], 0.0)
        midpoints = (edges[..., 1:] + edges[..., :-1]) / 2
        if evidence is not None:
            factual = thresholds[..., :1]
            observed_one = ops.moveaxis(evidence, d, -1) > 0.5  # evidence keeps the world dim (size 1)
            consistent = (midpoints > factual) == observed_one
            lengths = ops.where(consistent, lengths, lengths * 0)
        total = ops.expand_dims(ops.sum(lengths, -1), -1)
        # normalised here (NumPyro's Categorical takes its probs as they are, Pyro's normalises
        # them); where the evidence is impossible (its factor is -inf) any index will do
        probs = ops.where(total > 0, lengths, lengths * 0 + 1)
        probs = probs / ops.expand_dims(ops.sum(probs, -1), -1)
        # put the world dimension back as size 1, so the site lines up with the plates
        probs, midpoints = ops.expand_dims(probs, d - 1), ops.expand_dims(midpoints, d - 1)
        categorical = self.backend.distributions.Categorical(probs=probs, validate_args=False)
        index = self._side(f"{name}__noise", categorical)
        if evidence is not None:
            self._factor(name, ops.log(ops.expand_dims(ops.squeeze(total, -1), d)))
        index = ops.expand_dims(ops.to_index(index), -1)
        midpoints = ops.broadcast_to(midpoints, broadcast_shape(tuple(midpoints.shape[:-1]),
                                                                tuple(index.shape[:-1]))
                                     + tuple(midpoints.shape[-1:]))
        return ops.squeeze(ops.take_last(midpoints, index), -1)

    def _intervene(self, name, shape, mechanism, value, noise):
        """[(world, value)] for the worlds that intervene on the site (``shape``: the
        site's shapes, world dim of size 1; ``mechanism`` None for a deterministic site)."""
        ops = self.ops
        overrides = []
        event_dim = len(shape.event_shape)
        for w, interventions in enumerate(self.sets, start=1):
            if name not in interventions:
                continue
            action = interventions[name]
            if isinstance(action, WorldValue):  # the site's value in another world (so far)
                if not 0 <= action.world <= len(self.sets):
                    raise SiteError(f"site {name!r}: world {w} reads world({action.world}), but the "
                                    f"worlds are 0 .. {len(self.sets)}", site=name)
                current = self._set_worlds(value, overrides, event_dim) if overrides else value
                new = self._get_world(current, action.world, event_dim)
            elif mechanism is None and ops.is_distribution(action):
                raise SiteError(f"site {name!r} is deterministic (a mechanism): intervene with a "
                                "value or a function of its value, not a distribution", site=name)
            elif ops.is_distribution(action):
                stochastic = _Mechanism(name, action, self.dim)
                if _family(stochastic.base) != _family(mechanism.base):
                    raise ValueError(
                        f"site {name!r}: a stochastic intervention in a counterfactual world must "
                        f"share the site's noise, so it must be a {_family(mechanism.base)}")
                new = stochastic.push(noise)
            elif callable(action):
                new = action(self._get_world(value, w, event_dim))
            else:
                new = action
            new = self._fit(name, new, shape)
            if mechanism is not None and not isinstance(action, WorldValue):
                mechanism.check_evidence(new, f"intervention's value in world {w}")
            overrides.append((w, new))
        return overrides

    def _fit(self, name, value, shape):
        """``value`` broadcast to the site's ``shape`` (world dim of size 1): a value that
        would fill the world dim with several entries is an error, not a value per world."""
        value = fit_to_site(name, value, shape, self.ops)
        d = self.dim - len(shape.event_shape)
        if self.ops.ndim(value) >= -d and value.shape[d] != 1:
            site = tuple(shape.batch_shape) + tuple(shape.event_shape)
            raise SiteError(f"site {name!r}: a value of shape {tuple(value.shape)} does not fit the "
                            f"site's batch + event shape {site}: its dim {d} is the worlds' (give "
                            "each world its value with an intervention)", site=name)
        return value

    def _set_worlds(self, value, overrides, event_dim):
        """``value`` with the world dim at full size and each ``(world, new)`` written in
        (a functional write: an index mask along the world dim picks each world's value)."""
        ops = self.ops
        d = self.dim - event_dim
        if ops.ndim(value) < -d:
            value = ops.reshape(value, (1,) * (-d - ops.ndim(value)) + tuple(value.shape))
        shape = list(broadcast_shape(tuple(value.shape), *(tuple(new.shape) for _, new in overrides)))
        shape[d] = len(self.sets) + 1
        value = ops.broadcast_to(value, tuple(shape))
        worlds = ops.reshape(ops.arange(len(self.sets) + 1), (-1,) + (1,) * (-d - 1))
        for world, new in overrides:  # each of size 1 along the world dim (_fit)
            value = ops.where(worlds == world, ops.astype(new, value), value)
        return value

    def _get_world(self, value, world, event_dim):
        d = self.dim - event_dim
        if self.ops.ndim(value) < -d or value.shape[d] == 1:
            return value
        return self.ops.narrow(value, d, world, 1)


class _DryRunDo(DoMessenger):
    """``do`` for the dry run that finds the plates: a name it did not meet (a mechanism,
    which JAX's ``do`` does not see) is left to the worlds to check."""

    def exit(self, exc_type):
        pass


def _family(base):
    """The family's name as the user wrote it (NumPyro's ``BernoulliProbs`` is a Bernoulli)."""
    name = type(base).__name__
    for suffix in ("Probs", "Logits"):
        if name.endswith(suffix) and name != suffix:
            return name[: -len(suffix)]
    return name


def counterfactual_worlds(model, evidence, interventions, worlds="twin", exact=False,
                   max_plate_nesting=None):
    """The program of the factual world (with ``evidence``) and intervened world(s).

    ``worlds="twin"``: ``interventions`` is one dict, two worlds; ``worlds="multi"``: a list
    of dicts, one world each beside the factual one. ``exact=True`` makes Bernoulli noise
    enumerable (for ``inference.counterfactual(..., method="exact")``). The world plate sits
    left of the model's ``max_plate_nesting`` plate dimensions (found by a dry run once per
    model if not given).
    """
    if worlds == "twin":
        if not isinstance(interventions, dict):
            raise ValueError("counterfactual_worlds(worlds='twin') takes one dict of interventions")
        sets = [interventions]
    elif worlds == "multi":
        sets = [interventions] if isinstance(interventions, dict) else list(interventions)
        if not sets or not all(isinstance(s, dict) for s in sets):
            raise ValueError("counterfactual_worlds(worlds='multi') takes a list of intervention dicts")
    else:
        raise ValueError(f"counterfactual: worlds must be 'twin' or 'multi', got {worlds!r}")
    check_site_values("counterfactual evidence", evidence)
    for interventions in sets:
        check_site_values("counterfactual interventions", interventions)
    return CounterfactualProgram(model, dict(evidence), sets, exact, max_plate_nesting)


class CounterfactualProgram:
    """Callable program over ``len(intervention_sets) + 1`` worlds (see :func:`counterfactual`)."""

    def __init__(self, model, evidence, intervention_sets, exact, max_plate_nesting=None):
        self.model = model
        self.evidence = evidence
        self.intervention_sets = intervention_sets
        self.exact = exact
        self.num_worlds = len(intervention_sets) + 1
        self._nesting = max_plate_nesting

    def plate_nesting(self, args, kwargs):
        """The model's own plate nesting: given, remembered for this model, or found by one
        dry run (the model's plates are assumed not to change between calls)."""
        if self._nesting is None:
            try:
                self._nesting = _NESTING.get(self.model)
            except TypeError:  # not weakly referenceable
                pass
        if self._nesting is None:
            backend = backend_of(self.model)
            # blocked: handlers around this program must not see the dry run
            # the first world's values (another world's value, ppl.world, is not known yet);
            # names are checked by the worlds themselves
            first = {name: action for name, action in self.intervention_sets[0].items()
                     if not isinstance(action, WorldValue)}
            with backend.preserved_rng(), backend.no_grad(), backend.handlers.block():
                trace = backend.run(_DryRunDo(first)(self.model), args, kwargs)
            self._nesting = max((-p.dim for s in trace for p in s.plates if p.dim is not None),
                                default=0)
            try:
                _NESTING[self.model] = self._nesting
            except TypeError:
                pass
        return self._nesting

    def __call__(self, *args, **kwargs):
        dim = world_dim(self.plate_nesting(args, kwargs))
        backend = backend_of(self.model)
        rule = CounterfactualMessenger(self.evidence, self.intervention_sets, dim, self.exact)
        # the world plate is the backend's own: sites kept outside it say so (shared_infer)
        with backend.handler(rule), backend.primitives.plate(WORLD_PLATE, self.num_worlds, dim=dim):
            return self.model(*args, **kwargs)
