"""Names renamed in 2026-12, kept for one release: a module's ``__getattr__`` that gives
the new thing under the old name with a ``DeprecationWarning`` saying what it became.

    >>> import warnings
    >>> __getattr__ = old_names(__name__, {"old": ("old is now new", 42)})
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     value = __getattr__("old")
    >>> value, str(caught[0].message)
    (42, 'old is now new; the old name goes in the next release')
"""

import warnings

STRATEGY_STATE = ("ProgramState is now StrategyState (a strategy's state: its parameter store and "
                  "random stream)")
COUNTERFACTUAL_WORLDS = ("ppl.counterfactual is now ppl.counterfactual_worlds (it returns a program "
                         "over worlds; inference.counterfactual answers a query)")


def old_names(module, renamed):
    """``__getattr__`` for ``module``: ``renamed`` maps an old name to (what became of it,
    in words; the thing)."""
    def __getattr__(name):
        if name not in renamed:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        became, value = renamed[name]
        warnings.warn(f"{became}; the old name goes in the next release", DeprecationWarning,
                      stacklevel=2)
        return value
    return __getattr__
