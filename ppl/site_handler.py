"""Handlers written once for both backends.

A :class:`SiteHandler` sees each sample site's message before the site is drawn
(``process_sample``) and after (``postprocess_sample``). The message fields it may read
and set are the ones Pyro and NumPyro share: ``name``, ``fn``, ``value``, ``is_observed``,
``infer``. The backend runs it as its own Messenger (``backend.handler``), so it stacks
with ``pyro.poutine`` on torch and ``numpyro.handlers`` on JAX. A handler is used as a
function transform or a context manager, like theirs:

    >>> import ppl, ppl.distributions as dist
    >>> class Doubled(SiteHandler):
    ...     def postprocess_sample(self, msg):
    ...         msg["value"] = 2 * msg["value"]
    >>> def model():
    ...     return ppl.sample("x", dist.Normal(0.0, 1.0), obs=1.5)
    >>> for name in ("torch", "jax"):
    ...     with ppl.backend(name):
    ...         print(name, float(Doubled()(model)()))
    torch 3.0
    jax 3.0
"""

from .backend import backend_of, get_backend


class SiteHandler:
    """Base of the backend-neutral handlers (``ppl.do``, ``ppl.condition``)."""

    backend = None  # the backend running the handler (set when it is entered or applied)

    def process_sample(self, msg):
        """Called before a sample site is drawn (innermost handler first)."""

    def postprocess_sample(self, msg):
        """Called after a sample site is drawn (outermost handler last)."""

    def process_deterministic(self, msg):
        """Called at a ``deterministic`` site on JAX (NumPyro's own message: ``name``,
        ``value``, ``event_dim``); on torch a deterministic site is a sample site flagged
        ``infer["_deterministic"]`` and comes to :meth:`process_sample`."""

    def enter(self):
        """Called as the handler becomes active (once per run of the wrapped program)."""

    def exit(self, exc_type):
        """Called after the handler left the stack; ``exc_type`` is None unless the run failed."""

    def __call__(self, fn):
        return backend_of(fn).handler(self, fn)

    def __enter__(self):
        messenger = get_backend().handler(self)
        self.__dict__.setdefault("_active", []).append(messenger)
        return messenger.__enter__()

    def __exit__(self, *exc):
        return self._active.pop().__exit__(*exc)


class RunsRule:
    """Mixin of the backends' Messengers that run a :class:`SiteHandler` (``rule``): it is
    told when the Messenger enters and after it leaves the stack."""

    def __init__(self, rule, *args):
        super().__init__(*args)
        self.rule = rule

    def __enter__(self):
        self.rule.enter()
        return super().__enter__()

    def __exit__(self, exc_type, exc_value, traceback):
        result = super().__exit__(exc_type, exc_value, traceback)
        self.rule.exit(exc_type)
        return result


__all__ = ["RunsRule", "SiteHandler"]
