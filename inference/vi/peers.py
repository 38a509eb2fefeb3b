"""Pyro's own objective and optimiser objects, accepted where ours are.

A Pyro ELBO passed to ``VI`` becomes the objective here that computes the same bound
(``Trace_ELBO``, ``TraceMeanField_ELBO``, ``TraceGraph_ELBO``, ``TraceEnum_ELBO`` and
their ``Jit`` variants: :class:`ELBO`; ``RenyiELBO``: :class:`Renyi` (:class:`IWAE` at
alpha 0); ``ReweightedWakeSleep``: :class:`RWS`), with the same number of particles
(``pyro.optim`` optimisers: :func:`inference.optim.make_torch_optimizer`).

    >>> import pyro.infer
    >>> as_objective(pyro.infer.RenyiELBO(alpha=0, num_particles=8))
    IWAE(num_particles=8)
    >>> as_objective(pyro.infer.Trace_ELBO(num_particles=4))
    ELBO(num_particles=4)
"""

from ppl.errors import UnsupportedError

from .objectives import ELBO, IWAE, RWS, Objective, Renyi

_ELBO_NAMES = ("Trace_ELBO", "JitTrace_ELBO", "TraceMeanField_ELBO", "JitTraceMeanField_ELBO",
               "TraceGraph_ELBO", "JitTraceGraph_ELBO", "TraceEnum_ELBO", "JitTraceEnum_ELBO")


def as_objective(objective):
    """Our objective for ``objective`` (ours, or Pyro's); a clear error for anything else."""
    if isinstance(objective, Objective):
        return objective
    name = type(objective).__name__
    module = type(objective).__module__
    if module.startswith("pyro.infer"):
        k = getattr(objective, "num_particles", 1)
        if name in _ELBO_NAMES:
            return ELBO(num_particles=k)
        if name == "RenyiELBO":
            return IWAE(k) if objective.alpha == 0 else Renyi(objective.alpha, k)
        if name == "ReweightedWakeSleep":
            return RWS(k)
        raise UnsupportedError(f"Pyro's {name} as a VI objective", hint="use one of inference.vi's "
                               "ELBO, IWAE, Renyi, VIS or RWS")
    raise TypeError(f"VI: objective must be an Objective (ELBO(), IWAE(K), Renyi(alpha, K), VIS(K), "
                    f"RWS(K)) or a Pyro ELBO, got {objective!r}")
