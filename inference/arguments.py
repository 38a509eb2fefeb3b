"""Checks of a strategy's numeric arguments, written once.

    >>> count("Importance", "num_particles", 4)
    4
    >>> count("GFlowNetEM", "replay", -1, minimum=0)
    Traceback (most recent call last):
    ...
    ValueError: GFlowNetEM: replay must be a non-negative integer, got -1
"""

import numbers


def is_integer(value):
    """An integer of any integer type (``np.int64`` too), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def count(owner, name, value, minimum=1):
    """``value`` as a Python int, or a ValueError naming ``owner``'s argument ``name``:
    a positive integer (``minimum=1``) or a non-negative one (``minimum=0``)."""
    if not is_integer(value) or value < minimum:
        kind = "positive" if minimum == 1 else "non-negative"
        raise ValueError(f"{owner}: {name} must be a {kind} integer, got {value!r}")
    return int(value)
