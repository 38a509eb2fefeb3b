"""The loop every strategy shares: progress, loss history, a readable postfix.

In a terminal or a notebook the progress is a bar (tqdm) whose postfix is the recent mean
loss; written to a file or a CI log, where a bar's redraws become a line each, it is ten
plain lines instead (every tenth of the run), so a log stays readable:

    >>> import io, contextlib
    >>> log = io.StringIO()
    >>> with contextlib.redirect_stderr(log):
    ...     losses = run_steps(lambda: 1.0, (), {}, 50, label="fit")
    >>> print(log.getvalue().splitlines()[-1])
    fit: step 50/50 (100%), loss 1
"""

import sys

from tqdm.auto import tqdm


def run_steps(step, args, kwargs, num_steps, progress=True, label="loss"):
    """Call ``step(*args, **kwargs)`` ``num_steps`` times; returns the list of losses."""
    if not isinstance(num_steps, int) or num_steps < 0:
        raise ValueError(f"num_steps must be a non-negative integer, got {num_steps!r}")
    if progress and not _interactive():
        return _run_logged(step, args, kwargs, num_steps, label)
    losses = []
    bar = tqdm(range(num_steps), desc=label, leave=False) if progress else range(num_steps)
    every = max(1, num_steps // 100)
    for i in bar:
        losses.append(step(*args, **kwargs))
        if progress and (i % every == 0 or i == num_steps - 1):
            recent = losses[-every:]
            bar.set_postfix(loss=f"{sum(recent) / len(recent):.4g}")
    return losses


def run_batches(owner, step, args, kwargs, num_steps, progress, label):
    """The results of ``num_steps`` calls of ``step``, each a batch of weighted particles
    with a ``log_evidence`` (shown negated as the progress's loss), for ``owner`` to pool;
    a ValueError naming ``owner`` when there are none."""
    results = []

    def one_batch(*a, **k):
        results.append(step(*a, **k))
        return -results[-1].log_evidence if progress else None

    run_steps(one_batch, args, kwargs, num_steps, progress, label)
    if not results:
        raise ValueError(f"{owner}.run: num_steps must be at least 1 (no particles were drawn)")
    return results


def _interactive():
    """A notebook (tqdm.auto chose its widget) or a terminal on stderr."""
    if any(cls.__module__ == "tqdm.notebook" for cls in tqdm.__mro__):
        return True
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


def _run_logged(step, args, kwargs, num_steps, label):
    """The loop with a plain line at every tenth of the run: step, share, recent mean loss."""
    losses = []
    milestones = {max(1, round(num_steps * k / 10)) for k in range(1, 11)}
    last = 0
    for i in range(1, num_steps + 1):
        losses.append(step(*args, **kwargs))
        if i in milestones:
            recent = losses[last:]
            print(f"{label}: step {i}/{num_steps} ({100 * i // num_steps}%), "
                  f"loss {sum(recent) / len(recent):.4g}", file=sys.stderr, flush=True)
            last = i
    return losses
