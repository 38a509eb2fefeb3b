"""Distribution classes' argument checks switched off for a block of code, restored after.

Exact elimination builds a Categorical per site and per query; checking each one's
probabilities as it is built costs more than the rest of a small query, so the elimination
checks the tables it uses instead (``inference/exact/factors.py``).

    >>> from torch.distributions import Categorical
    >>> import torch
    >>> with checks_off(Categorical):
    ...     Categorical(torch.tensor([-1.0, 2.0]))._validate_args
    False
"""

import contextlib


@contextlib.contextmanager
def checks_off(*classes):
    """Instances of ``classes`` built inside skip their argument check (``_validate_args``,
    the class attribute that both torch and NumPyro read when a distribution is built)."""
    saved = [(cls, vars(cls).get("_validate_args", _ABSENT)) for cls in classes]
    for cls in classes:
        cls._validate_args = False
    try:
        yield
    finally:
        for cls, value in saved:
            if value is _ABSENT:
                del cls._validate_args
            else:
                cls._validate_args = value


_ABSENT = object()
