"""``compile=True`` on torch (``backend.compiled_loss``): a strategy's loss (the programs'
runs, the objective and, by AOTAutograd, its backward) through ``torch.compile``.

The loss is compiled per argument shape and program structure: Dynamo guards on what it
read (shapes, the parameter store, the handler stack) and recompiles when that changes,
falling back to eager code past its recompile limit. Inductor draws random numbers as the
eager code does (``fallback_random``), so a compiled step reproduces the eager step's draws
for the same seed, to float rounding (fusion reorders sums). If compiling fails (no C++
compiler, an operation Inductor lacks) or would not pay (a graph break at the program's
Python control flow, a structure that changes every step), a warning says why and the
strategy runs eagerly from then on; an error of the program itself is raised as eagerly.
Compiled calls skip the distributions' argument checks (Dynamo cannot trace torch's, which
would break the graph at every distribution): the strategy's set-up checked them in an
eager run, and a loss that is not finite is traced eagerly to the site responsible.

    >>> loss = CompiledLoss(lambda x: (x ** 2).sum())
    >>> float(loss(torch.ones(3))), loss.failure is None, loss.compile_seconds > 0
    (3.0, True, True)
"""

import time
import warnings

import pyro
import torch
import torch._dynamo

from .pyro_internals import messages_as_dicts


_WATCHED_CALLS = 3  # calls after the first that must not compile again for the same shapes


class CompiledLoss:
    """``fn`` compiled whole on its first call (``fullgraph``); ``compile_seconds``: that
    call's time (tracing and code generation included); ``failure``: why ``fn`` runs
    eagerly instead (the compiler failed; or compiling would not pay: the step would break
    into several graphs at the program's Python, each break paying Python again, or the
    same shapes compiled again on the next steps, as Pyro's enumeration makes them)."""

    def __init__(self, fn):
        self.fn = fn
        self.compile_seconds = None
        self.failure = None
        self._compiled = None
        self._watched = _WATCHED_CALLS
        self._recompiled = 0
        self._shapes = None

    def __call__(self, *args, **kwargs):
        if self.failure is not None:
            return self.fn(*args, **kwargs)
        if self._compiled is None:
            messages_as_dicts()
            self._compiled = torch.compile(self.fn, fullgraph=True, options={"fallback_random": True})
            self._shapes = _shapes(args, kwargs)
            start = time.perf_counter()
            out = self._call(args, kwargs)
            self.compile_seconds = time.perf_counter() - start
            return out
        if not self._watched:
            return self._call(args, kwargs)
        self._watched -= 1
        graphs = _counter("stats", "unique_graphs")
        out = self._call(args, kwargs)
        if _counter("stats", "unique_graphs") > graphs and _shapes(args, kwargs) == self._shapes:
            self._recompiled += 1  # once may be a flag the first step set; twice is a pattern
            if self._recompiled == 2:
                self._run_eagerly("the arguments' shapes were unchanged but it compiled again "
                                  "on two of the next steps: the program's structure changes "
                                  "from step to step")
        return out

    def _call(self, args, kwargs):
        try:
            with pyro.validation_enabled(False):  # see the module's docstring
                return self._compiled(*args, **kwargs)
        except torch._dynamo.exc.TorchDynamoException as error:
            # Dynamo stops while tracing, before running anything: the eager run raises the
            # program's own error (Dynamo reports one as "Observed exception"), or succeeds
            out = self.fn(*args, **kwargs)
            first = str(error).splitlines()[0][:200]
            if isinstance(error, torch._dynamo.exc.Unsupported):
                self._run_eagerly(f"the step would break into several compiled graphs at the "
                                  f"program's Python, each break paying Python again ({first})")
            else:
                self._run_eagerly(f"torch.compile failed ({type(error).__name__}: {first})")
            return out

    def _run_eagerly(self, why):
        self.failure = why
        warnings.warn(f"compile=True: {why}; running eagerly", RuntimeWarning, stacklevel=5)


def _counter(group, name):
    return torch._dynamo.utils.counters[group][name]


def _shapes(args, kwargs):
    """The shapes of the tensors among the arguments (and the other leaves' types)."""
    leaves, _ = torch.utils._pytree.tree_flatten((args, kwargs))
    return tuple(tuple(x.shape) if torch.is_tensor(x) else type(x) for x in leaves)
