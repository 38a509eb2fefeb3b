"""``compile=True`` on torch (``backend.compiled_loss``): a strategy's loss (the programs'
runs, the objective and, by AOTAutograd, its backward) through ``torch.compile``.

The loss is compiled per argument shape and program structure: Dynamo guards on what it
read (shapes, the parameter store, the handler stack) and recompiles when that changes,
falling back to eager code past its recompile limit. Inductor draws random numbers as the
eager code does (``fallback_random``), so a compiled step reproduces the eager step's draws
for the same seed, to float rounding (fusion reorders sums). If compiling fails (no C++
compiler, an operation Inductor lacks: Dynamo's and Inductor's own exceptions), the first
call says why in a warning and the strategy runs eagerly from then on; an error of the
program itself (which Dynamo raises as the program raised it) passes through.

    >>> loss = CompiledLoss(lambda x: (x ** 2).sum())
    >>> float(loss(torch.ones(3))), loss.failure is None, loss.compile_seconds > 0
    (3.0, True, True)
"""

import time
import warnings

import torch
import torch._dynamo

from .pyro_internals import messages_as_dicts


class CompiledLoss:
    """``fn`` compiled on its first call; ``compile_seconds``: that call's time (tracing and
    code generation included); ``failure``: why compiling failed (then ``fn`` runs eagerly)."""

    def __init__(self, fn):
        self.fn = fn
        self.compile_seconds = None
        self.failure = None
        self._compiled = None

    def __call__(self, *args, **kwargs):
        if self.failure is not None:
            return self.fn(*args, **kwargs)
        if self._compiled is None:
            messages_as_dicts()
            self._compiled = torch.compile(self.fn, options={"fallback_random": True})
            start = time.perf_counter()
            out = self._first_call(args, kwargs)
            self.compile_seconds = time.perf_counter() - start
            return out
        return self._compiled(*args, **kwargs)

    def _first_call(self, args, kwargs):
        try:
            return self._compiled(*args, **kwargs)
        except torch._dynamo.exc.TorchDynamoException as error:  # the compiler's, not the program's
            self.failure = f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
            warnings.warn(f"compile=True: torch.compile failed ({self.failure}); running eagerly",
                          RuntimeWarning, stacklevel=4)
            return self.fn(*args, **kwargs)
