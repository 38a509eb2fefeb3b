"""Checkpoints as data: arrays in a NumPy ``.npz`` archive plus JSON metadata, read back
without pickle, so that loading a file never runs code.

A strategy's state is a tree of dicts, lists, tuples, numbers, strings and arrays (torch
tensors or JAX/NumPy arrays). :func:`write` lays the arrays out as ``a0, a1, ...`` and
the rest as JSON (``__meta__``); the write is atomic (a temporary file beside the target,
flushed, synced, then renamed over it), so a failed save leaves the old checkpoint whole.
:func:`read` checks the format, version, strategy kind and backend before returning the
tree; the strategy then checks the contents against itself before changing anything.

    >>> import os, tempfile, torch
    >>> path = os.path.join(tempfile.mkdtemp(), "fit.ckpt")
    >>> write(path, "VI", "torch", {"step": 3, "params": {"loc": torch.tensor([1.0, 2.0])}})
    >>> tree = read(path, "VI", "torch")
    >>> tree["step"], tree["params"]["loc"].tolist()
    (3, [1.0, 2.0])
    >>> read(path, "GFlowNetEM", "torch")
    Traceback (most recent call last):
    ...
    ppl.errors.CheckpointError: ... was written by a VI, not a GFlowNetEM
"""

import contextlib
import io
import json
import os
import tempfile
import zipfile

import numpy as np

from ppl.errors import CheckpointError

FORMAT, VERSION = "ppl-checkpoint", 1


def write(path, kind, backend, tree):
    """Write ``tree`` (the state of a ``kind`` strategy on ``backend``) to ``path`` atomically."""
    arrays = []
    meta = {"format": FORMAT, "version": VERSION, "strategy": kind, "backend": backend,
            "state": _encode(tree, arrays)}
    payload = {f"a{i}": array for i, array in enumerate(arrays)}
    payload["__meta__"] = np.array(json.dumps(meta))
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        handle, temporary = tempfile.mkstemp(prefix=".ckpt-", dir=directory)
    except OSError as error:
        raise CheckpointError(f"cannot write a checkpoint to {path!r}: {error}") from error
    try:
        with os.fdopen(handle, "wb") as f:
            np.savez(f, **payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        if isinstance(error, OSError):
            raise CheckpointError(f"cannot write a checkpoint to {path!r}: {error}") from error
        raise


def read(path, kind, backend):
    """The state tree saved at ``path``, after checking that it is a checkpoint of a
    ``kind`` strategy on ``backend``; arrays come back as NumPy arrays."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as error:
        raise CheckpointError(f"cannot read checkpoint {path!r}: {error}") from error
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            meta = json.loads(str(archive["__meta__"]))
            arrays = {name: archive[name] for name in archive.files if name != "__meta__"}
    except (ValueError, OSError, KeyError, EOFError, zipfile.BadZipFile, json.JSONDecodeError) as error:
        raise CheckpointError(
            f"{path!r} is not a checkpoint written by save() (empty, truncated or another "
            f"format: {type(error).__name__}: {error})") from error
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path!r} is not a checkpoint written by save()")
    if meta.get("version") != VERSION:
        raise CheckpointError(f"{path!r}: checkpoint format version {meta.get('version')!r}, "
                              f"this library reads version {VERSION}")
    if meta.get("strategy") != kind:
        raise CheckpointError(f"{path!r} was written by a {meta.get('strategy')}, not a {kind}")
    if meta.get("backend") != backend:
        raise CheckpointError(f"{path!r} was written on the {meta.get('backend')} backend; this "
                              f"{kind} runs on {backend}")
    return _decode(meta["state"], arrays, path)


def _encode(node, arrays):
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    if isinstance(node, dict):
        if all(isinstance(k, str) for k in node):
            return {"__dict__": {k: _encode(v, arrays) for k, v in node.items()}}
        return {"__items__": [[_encode(k, arrays), _encode(v, arrays)] for k, v in node.items()]}
    if isinstance(node, (list, tuple)):
        return {"__tuple__" if isinstance(node, tuple) else "__list__": [_encode(v, arrays) for v in node]}
    if hasattr(node, "shape") and hasattr(node, "dtype"):
        array, dtype = _to_numpy(node)
        arrays.append(array)
        return {"__array__": len(arrays) - 1, "dtype": dtype, "torch": _is_torch(node)}
    if isinstance(node, np.generic):
        return node.item()
    raise CheckpointError(f"cannot save an object of type {type(node).__name__} in a checkpoint "
                          "(arrays, numbers, strings, lists and dicts only)")


def _decode(node, arrays, path):
    if not isinstance(node, dict):
        return node
    try:
        if "__dict__" in node:
            return {k: _decode(v, arrays, path) for k, v in node["__dict__"].items()}
        if "__items__" in node:
            return {_decode(k, arrays, path): _decode(v, arrays, path) for k, v in node["__items__"]}
        if "__list__" in node:
            return [_decode(v, arrays, path) for v in node["__list__"]]
        if "__tuple__" in node:
            return tuple(_decode(v, arrays, path) for v in node["__tuple__"])
        if "__array__" in node:
            return _from_numpy(arrays[f"a{node['__array__']}"], node["dtype"], node["torch"])
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{path!r}: malformed checkpoint ({error})") from error
    raise CheckpointError(f"{path!r}: malformed checkpoint (an entry of keys {sorted(node)})")


def _is_torch(x):
    return type(x).__module__.startswith("torch")


def _to_numpy(x):
    if _is_torch(x):
        import torch

        x = x.detach().cpu()
        if x.dtype == torch.bfloat16:  # NumPy has no bfloat16: keep the bits
            return x.view(torch.int16).numpy(), "bfloat16"
        return x.numpy(), str(x.dtype).replace("torch.", "")
    array = np.asarray(x)
    return array, str(array.dtype)


def _from_numpy(array, dtype, is_torch):
    if not is_torch:
        return array
    import torch

    tensor = torch.from_numpy(np.array(array))
    return tensor.view(torch.bfloat16) if dtype == "bfloat16" else tensor


def difference(saved, current, what):
    """The first difference between two ``{name: shape}`` maps, as a sentence, or None."""
    for name in current:
        if name not in saved:
            return f"{what} {name!r} of this strategy is not in the checkpoint (it has {sorted(saved)})"
    for name in saved:
        if name not in current:
            return f"the checkpoint has {what} {name!r}, which this strategy lacks (it has {sorted(current)})"
    for name, shape in current.items():
        if tuple(saved[name]) != tuple(shape):
            return (f"{what} {name!r} has shape {tuple(saved[name])} in the checkpoint and "
                    f"{tuple(shape)} here")
    return None
