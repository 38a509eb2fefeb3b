"""Shape arithmetic in plain Python (``torch.broadcast_shapes`` costs tens of microseconds
per call, which adds up on every site of every run)."""


def broadcast_shape(*shapes):
    """The broadcast of ``shapes`` as a tuple; RuntimeError if they do not broadcast.

    >>> broadcast_shape((3, 1), (4,), ())
    (3, 4)
    """
    ndim = max((len(s) for s in shapes), default=0)
    out = [1] * ndim
    for shape in shapes:
        offset = ndim - len(shape)
        for i, size in enumerate(shape):
            current = out[offset + i]
            if size == current or size == 1:
                continue
            if current != 1:
                raise RuntimeError(f"shapes {[tuple(s) for s in shapes]} do not broadcast")
            out[offset + i] = size
    return tuple(out)
