"""Optimisers named once for both backends.

``Adam(lr=1e-2)`` becomes ``torch.optim.Adam`` on torch and ``optax.adam`` on JAX. A
``torch.optim.Optimizer`` class (or any callable taking the parameter list), or an
``optax.GradientTransformation``, is accepted as well.

    >>> import torch
    >>> opt = Adam(lr=0.1).torch([torch.zeros(2, requires_grad=True)])
    >>> type(opt).__name__, opt.defaults["lr"]
    ('Adam', 0.1)
"""

import math
import numbers

from ppl.errors import UnsupportedError


def _check_lr(name, lr):
    """A learning rate is a finite positive number (a string such as "0.1" is refused, not
    parsed; an infinite rate would make every parameter NaN after the first step)."""
    try:
        if isinstance(lr, bool) or not isinstance(lr, numbers.Real) and not hasattr(lr, "__float__"):
            raise TypeError
        value = float(lr)  # a 0-d tensor too
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{name}: lr (the learning rate) must be a number, got {lr!r} of type "
                        f"{type(lr).__name__}") from None
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name}: lr (the learning rate) must be a finite positive number, got {lr!r}")


class OptimizerSpec:
    def __init__(self, name, lr, **options):
        _check_lr(name, lr)
        self.name = name
        self.lr = lr
        self.options = options

    def __repr__(self):
        extra = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return f"{self.name}(lr={self.lr}{extra})"

    def torch(self, params):
        import torch

        cls = {"Adam": torch.optim.Adam, "SGD": torch.optim.SGD, "AdamW": torch.optim.AdamW}[self.name]
        options = dict(self.options)
        params = list(params)
        if self.name in ("Adam", "AdamW") and "fused" not in options and "foreach" not in options:
            # the fused kernel does the same arithmetic in one pass (about 3x faster on
            # CPU for a VAE); fall back where it is unsupported (dtype, device)
            if all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params):
                try:
                    return cls(params, lr=self.lr, fused=True, **options)
                except (RuntimeError, ValueError):
                    pass
        return cls(params, lr=self.lr, **options)

    def optax(self):
        import optax

        make = {"Adam": optax.adam, "SGD": optax.sgd, "AdamW": optax.adamw}[self.name]
        options = dict(self.options)
        if "betas" in options:
            options["b1"], options["b2"] = options.pop("betas")
        return make(self.lr, **options)


def Adam(lr=1e-2, **options):
    """Adam with learning rate ``lr`` (options: ``betas``, ``eps``, ``weight_decay`` on torch).

    On torch the fused implementation is used where the parameters allow it; pass
    ``fused=False`` for the reference one."""
    return OptimizerSpec("Adam", lr, **options)


def AdamW(lr=1e-2, weight_decay=1e-2, **options):
    """Adam with decoupled weight decay (``weight_decay`` 0.01 by default, torch's default, on
    both backends: optax's own default is 1e-4)."""
    return OptimizerSpec("AdamW", lr, weight_decay=weight_decay, **options)


def SGD(lr=1e-2, **options):
    """Stochastic gradient descent (``momentum`` on torch)."""
    return OptimizerSpec("SGD", lr, **options)


def make_torch_optimizer(spec, params):
    """A ``torch.optim.Optimizer`` over ``params`` from a spec, a ``torch.optim`` class or
    factory, or a ``pyro.optim`` optimiser (built with its arguments)."""
    if isinstance(spec, OptimizerSpec):
        return spec.torch(params)
    if hasattr(spec, "pt_optim_constructor"):
        return _from_pyro_optim(spec, params)
    if type(spec).__module__.startswith("pyro.optim"):
        raise UnsupportedError(f"pyro.optim's {type(spec).__name__}",
                               hint="pass a pyro.optim optimiser (e.g. pyro.optim.Adam) or a "
                               "torch.optim factory")
    if isinstance(spec, type) or (callable(spec) and not hasattr(spec, "param_groups")):
        return spec(params)
    raise TypeError(f"optimizer must be an OptimizerSpec (e.g. Adam(lr=1e-2)), a torch.optim class or "
                    f"factory, or a pyro.optim optimiser, got {spec!r} (an optimiser already built "
                    "over other parameters cannot be used)")


def optimizer_name(spec, built=None):
    """The name of the optimiser ``spec`` makes: its spec's name (Adam, SGD, AdamW), or on
    torch the class of ``built`` (the one it made) or of a ``torch.optim`` class or
    ``pyro.optim`` optimiser; None where that is hidden (a factory, an optax transformation)."""
    if built is not None:
        return type(built).__name__
    if isinstance(spec, OptimizerSpec):
        return spec.name  # the torch.optim class of that name
    if hasattr(spec, "pt_optim_constructor"):
        return spec.pt_optim_constructor.__name__
    return spec.__name__ if isinstance(spec, type) else None


def optimizer_difference(saved_name, spec, built=None):
    """A checkpoint's optimiser name against the one ``spec`` makes, as a sentence, or None
    (also when either is unknown: a checkpoint without the name, a factory)."""
    current = optimizer_name(spec, built)
    if saved_name is None or current is None or saved_name == current:
        return None
    return f"the checkpoint's optimiser is {saved_name} and this strategy's is {current}"


def _from_pyro_optim(spec, params):
    args = spec.pt_optim_args
    if callable(args):
        raise UnsupportedError("a pyro.optim optimiser with per-parameter arguments (a callable)",
                               hint="pass a dict of arguments")
    if getattr(spec, "pt_clip_args", None):
        raise UnsupportedError("pyro.optim's clip_args", hint="clip inside a torch.optim factory")
    return spec.pt_optim_constructor(params, **args)


def make_optax(spec):
    """An ``optax.GradientTransformation`` from a spec, or the transformation itself."""
    if isinstance(spec, OptimizerSpec):
        return spec.optax()
    if hasattr(spec, "init") and hasattr(spec, "update"):
        return spec
    raise TypeError(f"on JAX, optimizer must be an OptimizerSpec or an optax transformation, got {spec!r}")
