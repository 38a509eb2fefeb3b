"""Backend-neutral array helpers for models written once with the ``ppl`` primitives.

``ppl.sample`` and ``ppl.param`` resolve to Pyro or NumPyro when called, but array
*creation* is backend specific: Pyro's param store wants a ``torch.Tensor`` as initial
value while NumPyro takes a ``jax.numpy`` array. These helpers make the active
backend's array, and read any backend's array back into NumPy.

    >>> import ppl
    >>> asarray([1.0, 2.0]).dtype
    torch.float32
    >>> to_numpy(asarray(3.0)).dtype
    dtype('float64')
"""

import numpy as np

import ppl


def backend_name():
    """``"torch"`` or ``"jax"``: the backend ``ppl`` primitives resolve to right now."""
    return ppl.get_backend().name


def asarray(value, backend=None):
    """``value`` as a float32 array of ``backend`` (default: the active one)."""
    name = backend or backend_name()
    if name == "torch":
        import torch

        if isinstance(value, torch.Tensor):
            return value.to(torch.get_default_dtype())
        return torch.as_tensor(np.asarray(value, dtype=np.float32))
    if name == "jax":
        import jax.numpy as jnp

        return jnp.asarray(np.asarray(value, dtype=np.float32))
    raise ValueError(f"unknown backend {name!r}")


def zeros(shape, backend=None):
    """A float32 array of zeros of the given shape on ``backend`` (default: the active one)."""
    return asarray(np.zeros(shape, dtype=np.float32), backend)


def to_numpy(x):
    """A float64 NumPy copy of a torch tensor, JAX array, list or number."""
    if hasattr(x, "detach"):  # torch.Tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)
