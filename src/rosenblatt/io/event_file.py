"""TensorBoard event files, written without TensorFlow or TensorBoard.

An event file (``events.out.tfevents.<time>.<host>``) is a TFRecord stream of ``Event`` protocol
buffers (``tensorflow/core/util/event.proto``). Each record is::

    uint64 length | uint32 masked_crc32c(length) | bytes data | uint32 masked_crc32c(data)

(little-endian; CRC-32C, the Castagnoli polynomial, then "masked" as TFRecord does). The few
protobuf messages needed here (``Event``, ``Summary``, ``Summary.Value``, ``HistogramProto``) are
encoded by hand below: field keys are ``(number << 3) | wire_type`` varints, and each field's
number is the one in TensorFlow's ``.proto`` files, quoted next to it.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from typing import Any

import numpy as np

# -- CRC-32C (Castagnoli), table-driven -----------------------------------------------------------


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C of ``data`` (``crc32c(b"123456789") == 0xE3069283``)."""
    crc = 0xFFFFFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _masked_crc(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def tfrecord(data: bytes) -> bytes:
    """One TFRecord: length, its CRC, the data, its CRC."""
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", _masked_crc(length)) + data + struct.pack("<I", _masked_crc(data))


# -- protobuf wire format -----------------------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    value &= (1 << 64) - 1  # negative int64 as two's complement, as protobuf does
    while True:
        bits = value & 0x7F
        value >>= 7
        if value:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


def _key(number: int, wire_type: int) -> bytes:
    return _varint((number << 3) | wire_type)


def _double(number: int, value: float) -> bytes:
    return _key(number, 1) + struct.pack("<d", float(value))


def _float(number: int, value: float) -> bytes:
    return _key(number, 5) + struct.pack("<f", float(value))


def _int(number: int, value: int) -> bytes:
    return _key(number, 0) + _varint(int(value))


def _bytes(number: int, value: bytes) -> bytes:
    return _key(number, 2) + _varint(len(value)) + value


def _packed_doubles(number: int, values: Any) -> bytes:
    return _bytes(number, np.asarray(values, dtype="<f8").tobytes())


def histogram_proto(values: Any, bins: int = 30) -> bytes:
    """``HistogramProto``: min = 1, max = 2, num = 3, sum = 4, sum_squares = 5, bucket_limit = 6,
    bucket = 7 (the right edge and the count of each bucket)."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    v = v[np.isfinite(v)]
    if v.size == 0:
        v = np.zeros(1)
    counts, edges = np.histogram(v, bins=bins)
    return (_double(1, v.min()) + _double(2, v.max()) + _double(3, v.size) + _double(4, v.sum())
            + _double(5, np.dot(v, v)) + _packed_doubles(6, edges[1:]) + _packed_doubles(7, counts))


def _summary_value(tag: str, simple_value: float | None = None, histogram: bytes | None = None) -> bytes:
    # Summary.Value: tag = 1, simple_value = 2, histo = 5
    body = _bytes(1, tag.encode())
    if simple_value is not None:
        body += _float(2, simple_value)
    if histogram is not None:
        body += _bytes(5, histogram)
    return body


def _event(step: int, wall_time: float, summary_values: list[bytes] | None = None,
           file_version: str | None = None) -> bytes:
    # Event: wall_time = 1, step = 2, file_version = 3, summary = 5; Summary: value = 1 (repeated)
    body = _double(1, wall_time) + _int(2, step)
    if file_version is not None:
        body += _bytes(3, file_version.encode())
    if summary_values is not None:
        body += _bytes(5, b"".join(_bytes(1, v) for v in summary_values))
    return body


class EventFileWriter:
    """Append scalar and histogram summaries to a new event file in ``log_dir``.

    TensorBoard (``tensorboard --logdir DIR``) shows every event file under ``DIR``; each folder
    is one run. Records are flushed by :meth:`flush`, so a running TensorBoard sees them.
    """

    def __init__(self, log_dir: str | os.PathLike) -> None:
        self.log_dir = os.fspath(log_dir)
        os.makedirs(self.log_dir, exist_ok=True)
        now = time.time()
        name = f"events.out.tfevents.{int(now)}.{socket.gethostname()}.{os.getpid()}"
        self.path = os.path.join(self.log_dir, name)
        self._file = open(self.path, "wb")
        self._file.write(tfrecord(_event(0, now, file_version="brain.Event:2")))
        self._file.flush()

    def add_scalars(self, step: int, scalars: dict[str, float]) -> None:
        """One event holding ``{tag: value}`` at ``step``."""
        values = [_summary_value(tag, simple_value=float(v)) for tag, v in scalars.items()]
        self._file.write(tfrecord(_event(step, time.time(), values)))

    def add_histograms(self, step: int, arrays: dict[str, Any], bins: int = 30) -> None:
        """One event holding a histogram of each array's values at ``step``."""
        values = [_summary_value(tag, histogram=histogram_proto(a, bins)) for tag, a in arrays.items()]
        self._file.write(tfrecord(_event(step, time.time(), values)))

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
