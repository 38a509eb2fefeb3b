"""The ops table exact elimination multiplies JAX programs' tables with: numpy, float64,
on the host.

An exact query is eager and runs once per new layout of its tables; JAX compiles each
eager operation once per new shape (tens of milliseconds each), and a query's tables each
have a shape of their own, so a first query on a 20-site chain took 10 s through
``jax.numpy`` and takes milliseconds here. The tables are not differentiated (exact
queries answer numbers), so nothing is lost by leaving JAX.

    >>> import jax.numpy as jnp
    >>> table = HostTables.to_wide_float(jnp.asarray([[0.25, 0.75]]))
    >>> table.dtype.name, float(HostTables.amax(table))
    ('float64', 0.75)
"""

import numpy as np


class HostTables:
    """The ops exact elimination uses, on numpy arrays (arrays of any library in, numpy
    float64 out)."""

    exp = staticmethod(np.exp)
    log = staticmethod(np.log)
    where = staticmethod(np.where)
    reshape = staticmethod(np.reshape)
    moveaxis = staticmethod(np.moveaxis)
    broadcast_to = staticmethod(np.broadcast_to)
    numel = staticmethod(np.size)

    @staticmethod
    def to_wide_float(x):
        return np.asarray(x, dtype=np.float64)

    @staticmethod
    def asarray(x, like=None):
        return np.asarray(x)

    @staticmethod
    def amax(x):
        return np.max(x)

    @staticmethod
    def astype(x, like):
        return np.asarray(x).astype(like.dtype)

    @staticmethod
    def zeros(shape, like):
        return np.zeros(tuple(shape), dtype=np.float64)
