"""``rb.save`` / ``rb.load``: tensors in the safetensors format, written atomically, never pickled.

The format (https://github.com/huggingface/safetensors) is an 8-byte little-endian header length,
a JSON header mapping each name to its dtype, shape and byte range, then the raw little-endian
bytes. It holds only numbers, so loading a file can never execute code. This module reads and
writes it with NumPy alone; files are interchangeable with the ``safetensors`` package.

Reading is strict, because files come from anywhere. :class:`SafetensorsFile` reads the 8-byte
length, checks it against the file's size, reads only the header and validates it as the format
requires before any tensor is touched; tensors are then read one at a time. A file that is not a
regular file (``/dev/zero``, a pipe, a directory) is refused before anything is read, so junk
costs microseconds and a few kilobytes to reject, whatever its size. Every problem with a file's
content is a ``ValueError`` that names the file and the problem. The rules (those of the
``safetensors`` package, which a fuzz test checks against it, plus the format's own "must"s):

- the header length is at most 100,000,000 and fits in the file; the header is UTF-8 JSON that
  starts with ``{``, without duplicate keys, NaN/Infinity, lone surrogates, numbers out of range
  or nesting deeper than 127 levels;
- ``__metadata__``, if present, maps strings to strings (or is null);
- every other key is a tensor: an object with a known ``dtype`` string, a ``shape`` of
  non-negative integers and ``data_offsets`` ``[begin, end]`` of non-negative integers; the byte
  size implied by dtype and shape equals ``end - begin`` (computed without 64-bit overflow);
- sorted by offsets, the ranges start at 0, are contiguous and cover the data exactly: no hole,
  no overlap, no trailing bytes.

The format's description is stricter than the ``safetensors`` package in four places, and this
reader follows the format: duplicate keys, a header that does not start with ``{``, a tensor entry
written as a JSON list and a dtype written as an object are refused (the package accepts them
when the rest is consistent).
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import struct
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

_DTYPE_CODES = {
    np.dtype(np.float16): "F16", np.dtype(np.float32): "F32", np.dtype(np.float64): "F64",
    np.dtype(np.int8): "I8", np.dtype(np.int16): "I16", np.dtype(np.int32): "I32",
    np.dtype(np.int64): "I64", np.dtype(np.uint8): "U8", np.dtype(np.uint16): "U16",
    np.dtype(np.uint32): "U32", np.dtype(np.uint64): "U64", np.dtype(np.bool_): "BOOL",
}
_CODE_DTYPES = {code: dtype for dtype, code in _DTYPE_CODES.items()}
_CODE_DTYPES["C64"] = np.dtype(np.complex64)
# Every dtype of the format with its size in bits; those without a NumPy type are valid in a file
# but cannot be loaded.
_DTYPE_BITS = {"BOOL": 8, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8,
               "F8_E8M0": 8, "F8_E4M3FNUZ": 8, "F8_E5M2FNUZ": 8, "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
               "I32": 32, "U32": 32, "F32": 32, "C64": 64, "F64": 64, "I64": 64, "U64": 64}
_MAX_HEADER = 100_000_000  # the safetensors package's limit
_MAX_DEPTH = 127  # the deepest JSON nesting the package's parser (serde_json) accepts
_USIZE = 2**64  # offsets and sizes are 64-bit unsigned integers
TEMP_PREFIX = ".tmp-"  # temporary files of atomic_write
_HEADER_CHUNK = 1 << 20
_CONTROL_BYTE = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]")  # never valid in JSON text


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
    """Write ``chunks`` to ``path`` so that a crash leaves either the old file or the new one.

    The data goes to a temporary file ``.tmp-<random>-<name>`` in the same folder, is flushed to
    disk and renamed over ``path``. The file gets the mode of any newly created file (``0o666``
    less the umask), like files written with ``open``.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    while True:
        tmp = os.path.join(folder, f"{TEMP_PREFIX}{os.urandom(6).hex()}-{os.path.basename(path)}")
        try:
            fd = os.open(tmp, flags, 0o666)
            break
        except FileExistsError:  # 48 random bits collided: draw again
            continue
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


def remove_stale_temporaries(folder: str | os.PathLike) -> list[str]:
    """Delete the temporary files that writes killed mid-way left in ``folder``; returns their names.

    Only for a folder no other process is writing to: a live write's temporary file looks the same.
    """
    removed = []
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return removed
    for name in names:
        full = os.path.join(folder, name)
        if name.startswith(TEMP_PREFIX) and os.path.isfile(full) and not os.path.islink(full):
            os.unlink(full)
            removed.append(name)
    return sorted(removed)


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


class _HeaderError(Exception):
    """A problem found while parsing the header (turned into a ValueError naming the file)."""


def _reject_constant(name: str) -> Any:
    raise _HeaderError(f"the header holds {name}, which JSON does not allow")


def _parse_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _HeaderError(f"the number {text[:40]} in the header is out of range")
    return value


def _parse_int(text: str) -> int | float:
    # serde_json reads integers into 64 bits: a larger one, and "-0", become floating point
    # numbers, which no integer field accepts.
    value = int(text) if len(text) <= 21 else None
    if value is not None and -(2**63) <= value < _USIZE and text != "-0":
        return value
    return _parse_float(text)


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        duplicate = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise _HeaderError(f"the header repeats the key {duplicate!r}")
    return result


def _depth(value: Any) -> int:
    """Nesting depth of parsed JSON (an object or list counts one level), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            deepest = max(deepest, level)
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            deepest = max(deepest, level)
            stack.extend((v, level + 1) for v in item)
    return deepest


def _parse_header(raw: bytes | bytearray) -> dict[str, Any]:
    if raw[:1] != b"{":
        raise _HeaderError("the header does not start with '{'")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _HeaderError(f"the header is not UTF-8 (byte {exc.start})") from None
    try:
        header = json.loads(text, object_pairs_hook=_object_without_duplicates, parse_constant=_reject_constant,
                            parse_float=_parse_float, parse_int=_parse_int)
    except json.JSONDecodeError as exc:
        raise _HeaderError(f"the header is not valid JSON ({exc.msg} at character {exc.pos})") from None
    except (RecursionError, MemoryError):
        raise _HeaderError(f"the header nests deeper than {_MAX_DEPTH} levels") from None
    if _depth(header) > _MAX_DEPTH:
        raise _HeaderError(f"the header nests deeper than {_MAX_DEPTH} levels")
    try:  # a lone surrogate (e.g. "\\ud800") is not a Unicode string
        json.dumps(header, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise _HeaderError("the header holds a string with a lone UTF-16 surrogate") from None
    return header


def _usize(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < _USIZE


class TensorInfo:
    """Where one tensor lives in a safetensors file: ``name``, ``dtype`` code, ``shape``, ``begin``, ``end``."""

    __slots__ = ("name", "dtype", "shape", "begin", "end")

    def __init__(self, name: str, dtype: str, shape: tuple[int, ...], begin: int, end: int) -> None:
        self.name, self.dtype, self.shape, self.begin, self.end = name, dtype, shape, begin, end

    def __repr__(self) -> str:
        return f"TensorInfo({self.name!r}, {self.dtype}, shape={self.shape}, bytes=[{self.begin}, {self.end}))"


def _tensor_info(name: str, entry: Any) -> TensorInfo:
    where = f"tensor {name!r}"
    if not isinstance(entry, dict):
        raise _HeaderError(f"{where}: expected an object with dtype, shape and data_offsets, "
                           f"got {type(entry).__name__}")
    for field in ("dtype", "shape", "data_offsets"):
        if field not in entry:
            raise _HeaderError(f"{where} has no '{field}'")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(dtype, str) or dtype not in _DTYPE_BITS:
        raise _HeaderError(f"{where}: unknown dtype {dtype!r} (known: {', '.join(_DTYPE_BITS)})")
    if not isinstance(shape, list) or not all(_usize(d) for d in shape):
        raise _HeaderError(f"{where}: shape must be a list of non-negative integers, got {shape!r:.80}")
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(_usize(o) for o in offsets):
        raise _HeaderError(f"{where}: data_offsets must be [begin, end], two non-negative integers, "
                           f"got {offsets!r:.80}")
    return TensorInfo(name, dtype, tuple(shape), offsets[0], offsets[1])


def _check_layout(infos: list[TensorInfo]) -> int:
    """Validate the byte ranges as the format requires; returns the size of the data section."""
    position = 0
    for info in sorted(infos, key=lambda i: (i.begin, i.end)):
        where = f"tensor {info.name!r}"
        if info.begin != position or info.end < info.begin:
            problem = ("overlaps the one before it" if info.begin < position else
                       "leaves a gap before it" if info.begin > position else "has end < begin")
            raise _HeaderError(f"{where}: data_offsets [{info.begin}, {info.end}] {problem} (the ranges must "
                               f"be contiguous from 0, without gaps or overlaps)")
        position = info.end
        count = 1
        for dim in info.shape:  # in the order the package multiplies, each product within 64 bits
            count *= dim
            if count >= _USIZE:
                raise _HeaderError(f"{where}: the shape {list(info.shape)} overflows 64 bits")
        bits = count * _DTYPE_BITS[info.dtype]
        if bits >= _USIZE:
            raise _HeaderError(f"{where}: the shape {list(info.shape)} overflows 64 bits")
        if bits % 8:
            raise _HeaderError(f"{where}: {count} {info.dtype} values do not fill whole bytes")
        if info.end - info.begin != bits // 8:
            raise _HeaderError(f"{where}: a {info.dtype} tensor of shape {list(info.shape)} takes {bits // 8} "
                               f"bytes, but data_offsets give {info.end - info.begin}")
    return position


class SafetensorsFile:
    """A safetensors file opened for reading: the header is validated, tensors are read on demand.

    Opening reads the first 8 bytes and the header only. :meth:`read` reads one tensor into a new
    NumPy array (native byte order, owned and writable); the file is never loaded whole. Use it as
    a context manager, or call :meth:`close`.

    Args:
        path: the file.

    Raises:
        FileNotFoundError, PermissionError: the file cannot be opened.
        ValueError: anything else: not a regular file, or not a valid safetensors file (the
            message names the file and the problem).

    Attributes:
        path: the path as given; ``metadata``: the ``__metadata__`` dict (empty if none);
        ``tensors``: ``{name: TensorInfo}`` in the header's order; ``size``: the file's size.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)
        flags = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
        # Non-blocking, so that opening a FIFO with no writer does not hang before fstat refuses it.
        fd = os.open(self.path, flags | getattr(os, "O_NONBLOCK", 0))
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                kind = ("a directory" if stat.S_ISDIR(info.st_mode) else "a device" if
                        stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode) else
                        "a pipe" if stat.S_ISFIFO(info.st_mode) else "a socket" if stat.S_ISSOCK(info.st_mode)
                        else "not a regular file")
                raise ValueError(f"load: '{self.path}' is not a safetensors file: it is {kind}, not a regular file")
            if hasattr(os, "set_blocking"):
                os.set_blocking(fd, True)
            self._file = os.fdopen(fd, "rb", buffering=0)
        except BaseException:
            os.close(fd)
            raise
        self.size = info.st_size
        try:
            self.metadata, self.tensors = self._read_header()
        except BaseException:
            self.close()
            raise

    def _fail(self, problem: str) -> ValueError:
        return ValueError(f"load: '{self.path}' is not a safetensors file: {problem}")

    def _read_exactly(self, offset: int, buffer: memoryview) -> None:
        self._file.seek(offset)
        done = 0
        while done < len(buffer):
            got = self._file.readinto(buffer[done:])
            if not got:
                raise self._fail(f"it ended at byte {offset + done} while {offset + len(buffer)} were expected "
                                 "(was it changed while being read?)")
            done += got

    def _read_header(self) -> tuple[dict[str, str], dict[str, TensorInfo]]:
        if self.size < 8:
            raise self._fail(f"it has {self.size} bytes, fewer than the 8 of the header length (rosenblatt "
                             "never unpickles files)")
        prefix = bytearray(8)
        self._read_exactly(0, memoryview(prefix))
        (length,) = struct.unpack("<Q", prefix)
        if length > _MAX_HEADER:
            raise self._fail(f"the header length {length} exceeds the limit of {_MAX_HEADER} bytes (rosenblatt "
                             "never unpickles files)")
        if 8 + length > self.size:
            raise self._fail(f"the header length {length} runs past the end of the {self.size}-byte file "
                             "(rosenblatt never unpickles files)")
        # Read in chunks and stop at the first sign of junk: the header must start with "{", and JSON
        # holds no control bytes but whitespace. A junk file is refused after one small read.
        raw = bytearray()
        for start in range(0, length, _HEADER_CHUNK):
            part = bytearray(min(_HEADER_CHUNK, length - start))
            self._read_exactly(8 + start, memoryview(part))
            if start == 0 and part[:1] != b"{":
                raise self._fail("the header does not start with '{' (rosenblatt never unpickles files)")
            bad = _CONTROL_BYTE.search(part)
            if bad:
                raise self._fail(f"the header holds the byte {part[bad.start()]:#04x} at position "
                                 f"{start + bad.start()}, which JSON does not allow (rosenblatt never unpickles files)")
            raw += part
        try:
            header = _parse_header(raw)
            metadata = header.pop("__metadata__", None)
            if metadata is not None and (not isinstance(metadata, dict)
                                         or not all(isinstance(v, str) for v in metadata.values())):
                raise _HeaderError("__metadata__ must map strings to strings, got "
                                   f"{type(metadata).__name__ if not isinstance(metadata, dict) else 'other values'}")
            infos = [_tensor_info(name, entry) for name, entry in header.items()]
            data_size = _check_layout(infos)
            if 8 + length + data_size != self.size:
                extra = self.size - 8 - length - data_size
                raise _HeaderError(f"the tensors cover {data_size} bytes of data, the file holds "
                                   f"{self.size - 8 - length}" + (" (trailing bytes)" if extra > 0 else ""))
            for info in infos:
                self._check_numpy(info)
        except _HeaderError as exc:
            raise self._fail(str(exc)) from None
        self._data_start = 8 + length
        return dict(metadata or {}), {info.name: info for info in infos}

    @staticmethod
    def _check_numpy(info: TensorInfo) -> None:
        if info.dtype not in _CODE_DTYPES:
            raise _HeaderError(f"tensor {info.name!r} has dtype {info.dtype}, which NumPy has no type for")
        try:  # NumPy's limits on dimensions, without allocating anything
            np.lib.stride_tricks.as_strided(np.empty(1, _CODE_DTYPES[info.dtype]), shape=info.shape,
                                            strides=(0,) * len(info.shape))
        except (ValueError, OverflowError) as exc:
            raise _HeaderError(f"tensor {info.name!r} of shape {list(info.shape)} cannot be a NumPy array ({exc})") from None

    def keys(self) -> list[str]:
        """The tensor names, in the header's order."""
        return list(self.tensors)

    def __contains__(self, name: object) -> bool:
        return name in self.tensors

    def __iter__(self) -> Iterator[str]:
        return iter(self.tensors)

    def __len__(self) -> int:
        return len(self.tensors)

    def read(self, name: str) -> np.ndarray:
        """Read tensor ``name`` from the file into a new array."""
        if name not in self.tensors:
            raise KeyError(f"load: '{self.path}' has no tensor {name!r}")
        if self._file is None:
            raise ValueError(f"load: '{self.path}' is closed")
        info = self.tensors[name]
        dtype = _CODE_DTYPES[info.dtype].newbyteorder("<")
        array = np.empty(info.shape, dtype=dtype)
        if array.nbytes:
            self._read_exactly(self._data_start + info.begin, memoryview(array.reshape(-1).view(np.uint8)))
        return array if dtype.isnative else array.astype(dtype.newbyteorder("="))

    def close(self) -> None:
        """Close the file (tensors already read stay valid)."""
        if getattr(self, "_file", None) is not None:
            self._file.close()
        self._file = None

    def __enter__(self) -> SafetensorsFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SafetensorsFile('{self.path}', {len(self.tensors)} tensors)"


def load_arrays(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read a safetensors file into NumPy arrays; returns ``(arrays, metadata)``.

    The file is validated before any tensor is read (see :class:`SafetensorsFile`); a problem
    raises a ``ValueError`` naming the file and the problem.
    """
    with SafetensorsFile(path) as file:
        return {name: file.read(name) for name in file.tensors}, file.metadata


def load(path: str | os.PathLike, device: str | None = None) -> dict[str, Any]:
    """Load a safetensors file as a dict of tensors (in the order they were saved).

    The file is validated before any tensor is read, and tensors are read one at a time (see
    :class:`SafetensorsFile`). Raises ``ValueError`` naming the file and the problem when it is
    not a valid safetensors file (or not a regular file), ``FileNotFoundError`` when it is missing.
    """
    from rosenblatt.core import Tensor

    with SafetensorsFile(path) as file:
        return {name: Tensor(file.read(name), device=device) for name in file.tensors}
