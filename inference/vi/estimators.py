"""Per-site gradient estimators: how a guide's latent site is drawn and differentiated.

Choose one per site with ``VI(..., estimators={"z": "score"})`` or the site's
``infer={"estimator": ...}``; by default a site is reparameterised when its
distribution allows it and uses the score function otherwise.

An estimator is an object that says how its site is drawn (``draw(backend, msg, step)``)
and, by its attributes, what VI adds for it: ``scores`` (a score-function surrogate term
for the site's log q, with the estimator's ``baseline``: None, ``"running"`` or
``"learned"``), ``enumerates`` (its values are the whole support on a dimension of their
own, summed by objectives linear in the log-weights) and ``relax_model_site(backend, msg,
step)`` (how the model scores the site). VI reads only these, so an estimator of one's
own is a subclass registered under a name:

    >>> resolve_estimator("score", "z")
    Score(baseline='running')
    >>> resolve_estimator("gumbel", "c")
    Gumbel(temperature=1.0, straight_through=False)
    >>> class Detached(Estimator):  # a draw without a gradient path, and no surrogate term
    ...     def draw(self, backend, msg, step):
    ...         backend.draw_detached(msg)
    >>> register_estimator("detached", Detached)
    >>> resolve_estimator("detached", "z")
    Detached()
    >>> del ESTIMATORS["detached"]
"""

import math


class Estimator:
    """The base of every estimator: ``draw`` is the subclass's; the defaults add nothing."""

    name = None
    scores = False  # a score-function surrogate term for the site's log q
    baseline = None  # for that term: None, "running" or "learned" (with ``decay``)
    enumerates = False  # the whole support on a dimension of its own

    def draw(self, backend, msg, step):
        """Set ``msg["value"]`` (and, where the estimator changes it, ``msg["fn"]``)."""
        raise NotImplementedError(f"{type(self).__name__}.draw")

    def relax_model_site(self, backend, msg, step):
        """Change how the model scores the site (the default: as it is)."""

    def __repr__(self):
        return f"{type(self).__name__}()"


class Reparam(Estimator):
    """Pathwise gradient through ``rsample``."""

    name = "reparam"

    def draw(self, backend, msg, step):
        if not msg["fn"].has_rsample:
            raise ValueError(
                f"site {msg['name']!r}: estimator 'reparam' needs a reparameterisable "
                f"distribution, but {type(msg['fn']).__name__} has no rsample; use 'score', "
                "'enum' or 'gumbel'")
        backend.draw_reparam(msg)


class Score(Estimator):
    """Score-function (REINFORCE) gradient with a baseline: ``"running"`` (an exponential
    moving average of the learning signal, ``decay``), ``"learned"`` (a scalar fitted by
    least squares) or ``None``."""

    name = "score"
    scores = True

    def __init__(self, baseline="running", decay=0.9):
        if baseline not in ("running", "learned", None):
            raise ValueError(f"Score: baseline must be 'running', 'learned' or None, got {baseline!r}")
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"Score: decay must lie in [0, 1), got {decay!r}")
        self.baseline = baseline
        self.decay = decay

    def __repr__(self):
        return f"Score(baseline={self.baseline!r})"

    def draw(self, backend, msg, step):
        backend.draw_detached(msg)


class Enum(Estimator):
    """Exact sum over the site's finite support (for objectives linear in the log-weights,
    i.e. the ELBO). The support is laid out on a fresh batch dimension left of the
    particle and plate dimensions."""

    name = "enum"
    enumerates = True

    def draw(self, backend, msg, step):
        fn = msg["fn"]
        if not fn.has_enumerate_support:
            raise ValueError(
                f"site {msg['name']!r}: estimator 'enum' needs a distribution with finite "
                f"support, but {type(fn).__name__} has none")
        dim = msg["_enum_dim"]
        support = fn.enumerate_support(expand=False)
        event_shape = tuple(fn.event_shape)
        msg["value"] = support.reshape((support.shape[0],) + (1,) * (-dim - 1) + event_shape)


class Gumbel(Estimator):
    """Gumbel-softmax / Concrete relaxation (Jang et al. 2017; Maddison et al. 2017) for
    ``OneHotCategorical`` and ``Bernoulli`` sites.

    ``temperature``: a number, or a function of the step number such as
    ``lambda t: max(0.5, math.exp(-1e-4 * t))``. Without ``straight_through`` the site's
    guide and model densities are replaced by their relaxed versions; with it the value is
    the hard sample and gradients flow through the relaxed one.
    """

    name = "gumbel"

    def __init__(self, temperature=1.0, straight_through=False):
        if not callable(temperature) and not temperature > 0:
            raise ValueError(f"Gumbel: temperature must be positive, got {temperature!r}")
        self.temperature = temperature
        self.straight_through = straight_through

    def __repr__(self):
        return f"Gumbel(temperature={self.temperature}, straight_through={self.straight_through})"

    def temperature_at(self, step):
        tau = self.temperature(step) if callable(self.temperature) else self.temperature
        if not tau > 0 or not math.isfinite(tau):
            raise ValueError(f"Gumbel: temperature at step {step} is {tau!r}; it must be positive")
        return tau

    def draw(self, backend, msg, step):
        relaxed = backend.relaxed(msg["name"], msg["fn"], self.temperature_at(step))
        soft = backend.rsample(relaxed, msg)
        if self.straight_through:
            msg["value"] = backend.straight_through(msg["fn"], soft)
        else:
            msg["fn"] = relaxed
            msg["value"] = soft

    def relax_model_site(self, backend, msg, step):
        """In the model, score the relaxed value under the relaxed prior (no-op when straight-through)."""
        if not self.straight_through:
            msg["fn"] = backend.relaxed(msg["name"], msg["fn"], self.temperature_at(step))


ESTIMATORS = {"reparam": Reparam, "score": Score, "enum": Enum, "gumbel": Gumbel}


def register_estimator(name, estimator_class):
    """Make ``estimator_class`` (an :class:`Estimator` subclass, built without arguments)
    available by ``name`` in ``VI(estimators=...)`` and ``infer={"estimator": name}``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"register_estimator: the name must be a non-empty string, got {name!r}")
    if not (isinstance(estimator_class, type) and issubclass(estimator_class, Estimator)):
        raise TypeError(f"register_estimator({name!r}): expected a subclass of Estimator, got "
                        f"{estimator_class!r}")
    if estimator_class.draw is Estimator.draw:
        raise TypeError(f"register_estimator({name!r}): {estimator_class.__name__} does not define "
                        "draw(backend, msg, step)")
    ESTIMATORS[name] = estimator_class


def resolve_estimator(spec, site):
    """An :class:`Estimator` from a name or an instance; ``site`` names the site in errors."""
    if isinstance(spec, Estimator):
        return spec
    if isinstance(spec, str) and spec in ESTIMATORS:
        return ESTIMATORS[spec]()
    raise ValueError(
        f"site {site!r}: unknown estimator {spec!r}; expected one of {sorted(ESTIMATORS)} "
        "or an Estimator instance")
