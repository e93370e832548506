"""``rb.save`` / ``rb.load``: tensors in the safetensors format, written atomically, never pickled.

The format (https://github.com/huggingface/safetensors) is an 8-byte little-endian header length,
a JSON header mapping each name to its dtype, shape and byte range, then the raw little-endian
bytes. It holds only numbers, so loading a file can never execute code. This module reads and
writes it with NumPy alone; files are interchangeable with the ``safetensors`` package.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from collections.abc import Mapping
from typing import Any

import numpy as np

_DTYPE_CODES = {
    np.dtype(np.float16): "F16", np.dtype(np.float32): "F32", np.dtype(np.float64): "F64",
    np.dtype(np.int8): "I8", np.dtype(np.int16): "I16", np.dtype(np.int32): "I32",
    np.dtype(np.int64): "I64", np.dtype(np.uint8): "U8", np.dtype(np.uint16): "U16",
    np.dtype(np.uint32): "U32", np.dtype(np.uint64): "U64", np.dtype(np.bool_): "BOOL",
}
_CODE_DTYPES = {code: dtype for dtype, code in _DTYPE_CODES.items()}
_MAX_HEADER = 100 * 1024 * 1024


def _host_array(value: Any, name: str) -> np.ndarray:
    from rosenblatt.core import Tensor

    if isinstance(value, Tensor):
        value = value.data
    if hasattr(value, "get") and not isinstance(value, np.ndarray):  # CuPy -> host
        value = value.get()
    array = np.asarray(value)
    if array.dtype not in _DTYPE_CODES:
        raise TypeError(f"save: '{name}' has dtype {array.dtype}, which safetensors cannot store")
    return np.ascontiguousarray(array).reshape(array.shape).astype(array.dtype.newbyteorder("<"), copy=False)


def atomic_write(path: str | os.PathLike, chunks: list[bytes | memoryview]) -> None:
    """Write ``chunks`` to ``path`` so that a crash leaves either the old file or the new one."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.basename(path), dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def save(tensors: Mapping[str, Any], path: str | os.PathLike, metadata: Mapping[str, str] | None = None) -> None:
    """Save a dict of tensors/arrays (e.g. a ``state_dict``) to a safetensors file, atomically."""
    if not isinstance(tensors, Mapping):
        raise TypeError(f"save: expected a dict of name -> tensor, got {type(tensors).__name__}")
    header: dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    arrays = []
    offset = 0
    for name in tensors:
        if not isinstance(name, str):
            raise TypeError(f"save: tensor names must be strings, got {name!r}")
        array = _host_array(tensors[name], name)
        nbytes = array.nbytes
        header[name] = {"dtype": _DTYPE_CODES[array.dtype.newbyteorder("=")], "shape": list(array.shape),
                        "data_offsets": [offset, offset + nbytes]}
        arrays.append(array)
        offset += nbytes
    blob = json.dumps(header, separators=(",", ":")).encode("utf-8")
    blob += b" " * (-len(blob) % 8)  # the format aligns the data to 8 bytes
    chunks: list[bytes | memoryview] = [struct.pack("<Q", len(blob)), blob]
    chunks += [memoryview(a.reshape(-1).view(np.uint8)) for a in arrays if a.size]
    atomic_write(path, chunks)


def load_arrays(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read a safetensors file into NumPy arrays; returns ``(arrays, metadata)``."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        raw = f.read()
    problem = f"load: '{path}' is not a safetensors file"
    if len(raw) < 8:
        raise ValueError(problem + " (too short)")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > _MAX_HEADER or 8 + n > len(raw):
        raise ValueError(problem + " (bad header length; rosenblatt never unpickles files)")
    try:
        header = json.loads(raw[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError(problem + " (header is not JSON; rosenblatt never unpickles files)") from None
    if not isinstance(header, dict):
        raise ValueError(problem + " (header is not a JSON object)")
    metadata = header.pop("__metadata__", {}) or {}
    data = memoryview(raw)[8 + n:]
    arrays = {}
    for name, info in header.items():
        try:
            dtype = _CODE_DTYPES[info["dtype"]].newbyteorder("<")
            begin, end = info["data_offsets"]
            shape = tuple(info["shape"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{problem} (bad entry for '{name}')") from None
        count = int(np.prod(shape, dtype=np.int64))
        if end - begin != count * dtype.itemsize or end > len(data):
            raise ValueError(f"{problem} (byte range of '{name}' does not match its shape)")
        array = np.frombuffer(data[begin:end], dtype=dtype, count=count).reshape(shape)
        arrays[name] = array.astype(dtype.newbyteorder("="), copy=True)
    return arrays, metadata


def load(path: str | os.PathLike, device: str | None = None) -> dict[str, Any]:
    """Load a safetensors file as a dict of tensors (in the order they were saved)."""
    from rosenblatt.core import Tensor

    arrays, _ = load_arrays(path)
    return {name: Tensor(array, device=device) for name, array in arrays.items()}
