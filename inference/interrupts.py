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
"""

import contextlib
import signal
import threading


@contextlib.contextmanager
def deferred_interrupts():
    """Hold SIGINT until the block ends, then deliver it (main thread only: signal handlers
    cannot be set elsewhere, and there interrupts do not arrive anyway)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = []
    previous = signal.getsignal(signal.SIGINT)

    def hold(signum, frame):
        held.append(frame)
        signal.signal(signal.SIGINT, previous)  # a second Ctrl-C acts at once

    signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGINT) is hold:
            signal.signal(signal.SIGINT, previous)
        if held and callable(previous):
            previous(signal.SIGINT, held[0])  # Python's default raises KeyboardInterrupt here
        elif held and previous == signal.SIG_DFL:
            signal.raise_signal(signal.SIGINT)  # the default action: end the process
