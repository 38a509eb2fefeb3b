"""The loop every strategy shares: progress bar, loss history, a readable postfix."""

from tqdm.auto import tqdm


def run_steps(step, args, kwargs, num_steps, progress=True, label="loss"):
    """Call ``step(*args, **kwargs)`` ``num_steps`` times; returns the list of losses."""
    if not isinstance(num_steps, int) or num_steps < 0:
        raise ValueError(f"num_steps must be a non-negative integer, got {num_steps!r}")
    losses = []
    bar = tqdm(range(num_steps), desc=label, leave=False) if progress else range(num_steps)
    every = max(1, num_steps // 100)
    for i in bar:
        losses.append(step(*args, **kwargs))
        if progress and (i % every == 0 or i == num_steps - 1):
            recent = losses[-every:]
            bar.set_postfix(loss=f"{sum(recent) / len(recent):.4g}")
    return losses
