"""An interrupt (Ctrl-C) that lands inside a training step takes effect when the step ends,
so that a step's parameter update and its bookkeeping (``step_count``, ``history``, the
optimiser's own state) are applied together or not at all.

A second interrupt during the same step is not held: a step that never ends can still be
stopped (its bookkeeping may then be one off, as the user asked twice).

    >>> import os, signal
    >>> done = []
    >>> try:
    ...     with deferred_interrupts():
    ...         signal.raise_signal(signal.SIGINT)  # as Ctrl-C would, mid-step
    ...         done.append("the rest of the step")
    ... except KeyboardInterrupt:
    ...     done.append("interrupted after it")
    >>> done
    ['the rest of the step', 'interrupted after it']

The handler is set and restored through ``_signal``, the C module behind ``signal``: the
public functions convert each handler to an enum on the way, about 2-3 us a call, which
made this guard cost 12 us a step.
"""

import contextlib
import signal
import threading

import _signal  # noqa: I001  (CPython's C module behind ``signal``: same functions, no enum wrapping)


def deferred_interrupts():
    """Hold SIGINT until the block ends, then deliver it (main thread only: signal handlers
    cannot be set elsewhere, and there interrupts do not arrive anyway)."""
    if threading.current_thread() is not threading.main_thread():
        return _NOT_MAIN
    return _Deferral()


_NOT_MAIN = contextlib.nullcontext()  # reusable: it holds no state


class _Deferral:
    """One step's guard: holds the first SIGINT, hands a second on at once."""

    __slots__ = ("held", "previous")

    def __enter__(self):
        self.held = None
        self.previous = _signal.signal(signal.SIGINT, self.hold)
        return self

    def hold(self, signum, frame):
        if self.held is None:
            self.held = frame
            _signal.signal(signal.SIGINT, self.previous)  # a second Ctrl-C acts at once
        else:  # (reached only if the handler was set again meanwhile)
            self._deliver(frame)

    def __exit__(self, *exc):
        if _signal.getsignal(signal.SIGINT) == self.hold:
            _signal.signal(signal.SIGINT, self.previous)
        if self.held is not None:
            self._deliver(self.held)

    def _deliver(self, frame):
        previous = self.previous
        if callable(previous):
            previous(signal.SIGINT, frame)  # Python's default raises KeyboardInterrupt here
        elif previous == signal.SIG_DFL:
            signal.raise_signal(signal.SIGINT)  # the default action: end the process
