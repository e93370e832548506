"""The strict safetensors reader: a fuzz test against the ``safetensors`` package, and hostile files.

The fuzz corpus mutates valid files, byte by byte and field by field. For every case the reader
must raise nothing but ``ValueError`` (naming the file), accept what the package accepts with the
same arrays, and reject what it rejects. The one allowed difference is where the format's
description is stricter than the package (duplicate keys, a header not starting with ``{``, a
tensor entry written as a list, a dtype written as an object): there the reader refuses.

``python tests/test_safetensors_reader.py`` prints the corpus's counts.
"""

from __future__ import annotations

import json
import os
import struct
from collections import Counter

import numpy as np
import pytest

import rosenblatt as rb
from rosenblatt.serialization import SafetensorsFile, load_arrays

CASES = 700


def _pack(header: str | bytes, data: bytes) -> bytes:
    raw = header.encode() if isinstance(header, str) else header
    return struct.pack("<Q", len(raw)) + raw + data


def _split(blob: bytes) -> tuple[dict, bytes]:
    (n,) = struct.unpack("<Q", blob[:8])
    return json.loads(blob[8:8 + n]), blob[8 + n:]


def _seeds(tmp: str) -> list[bytes]:
    """Valid files from both writers: several dtypes, a scalar, an empty tensor, metadata."""
    from safetensors.numpy import save as their_save

    rng = np.random.default_rng(0)
    tensors = {"weight": rng.normal(size=(3, 4)).astype(np.float32), "bias": np.arange(4, dtype=np.int64),
               "mask": np.array([True, False, True]), "scale": np.array(2.5, dtype=np.float64),
               "empty": np.zeros((0, 3), dtype=np.float16), "codes": np.arange(6, dtype=np.uint8).reshape(2, 3)}
    path = os.path.join(tmp, "seed.safetensors")
    rb.save(tensors, path, metadata={"format": "np", "note": "seed"})
    with open(path, "rb") as f:
        ours = f.read()
    rb.save({"w": np.ones(2, np.float32)}, path)
    with open(path, "rb") as f:
        tiny = f.read()
    theirs = their_save({k: v for k, v in tensors.items() if k != "scale"}, metadata={"a": "b"})
    return [ours, tiny, theirs]


_DTYPES = ["F32", "F64", "F16", "I64", "I32", "U8", "BOOL", "BF16", "F8_E4M3", "C64", "f32", "F33", "", "U64", "F4"]
_NUMBERS = [-1, -8, 0, 1, 2, 3, 7, 8, 9, 2**31, 2**63, 2**64 - 1, 2**64, 10**30, 0.5, 8.0]


def _json_mutation(blob: bytes, rng: np.random.Generator) -> bytes:
    header, data = _split(blob)
    names = [k for k in header if k != "__metadata__"]
    name = names[rng.integers(len(names))] if names else "x"
    entry = header.get(name) if isinstance(header.get(name), dict) else {}
    kind = int(rng.integers(16))
    text = None
    if kind == 0:  # an offset becomes some other number
        entry["data_offsets"][int(rng.integers(2))] = _NUMBERS[rng.integers(len(_NUMBERS))]
    elif kind == 1:  # a negative offset
        entry["data_offsets"][0] = -int(rng.integers(1, 9))
    elif kind == 2:  # reversed range
        entry["data_offsets"] = entry["data_offsets"][::-1]
    elif kind == 3:  # a shape entry changes
        if entry.get("shape"):
            entry["shape"][int(rng.integers(len(entry["shape"])))] = _NUMBERS[rng.integers(len(_NUMBERS))]
        else:
            entry["shape"] = [_NUMBERS[rng.integers(len(_NUMBERS))]]
    elif kind == 4:  # another dtype
        entry["dtype"] = _DTYPES[rng.integers(len(_DTYPES))]
    elif kind == 5:  # a field goes missing
        entry.pop(["dtype", "shape", "data_offsets"][rng.integers(3)], None)
    elif kind == 6:  # an unknown field (the package ignores these)
        entry["extra"] = [1, {"x": None}, "text"]
    elif kind == 7:  # __metadata__ of the wrong kind
        header["__metadata__"] = [[], ["a", "b"], {"k": 1}, None, {}, "s", {"k": {"n": "v"}}][rng.integers(7)]
    elif kind == 8:  # a duplicated entry (same or another range)
        other = names[rng.integers(len(names))] if names else name
        body = json.dumps(header)
        text = body[:-1] + f', "{other}": ' + json.dumps(header.get(name)) + "}"
    elif kind == 9:  # overlapping ranges: one tensor's range copied onto another
        if len(names) > 1 and isinstance(header[names[1]], dict):
            header[names[0]]["data_offsets"] = list(header[names[1]]["data_offsets"])
    elif kind == 10:  # the entry becomes another JSON type
        header[name] = [entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")] if rng.integers(2) else 7
    elif kind == 11:  # numbers the package's parser refuses
        text = json.dumps(header)[:-1] + ', "z": {"n": ' + ["NaN", "Infinity", "1e400", "-0", "1.5", "123456789012345678901234567890"][rng.integers(6)] + "}}"
    elif kind == 12:  # deep nesting
        depth = int(rng.integers(120, 135))
        text = json.dumps(header)[:-1] + ', "__metadata__x": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0], "n": ' + "[" * depth + "]" * depth + "}}"
    elif kind == 13:  # padding and whitespace around the object
        text = [" ", "\n", "\t", "\ufeff", ""][rng.integers(5)] + json.dumps(header) + ["   ", "\x00", " x", ""][rng.integers(4)]
    elif kind == 14:  # strings with escapes
        text = json.dumps(header)[:-1] + ', "' + ["\\ud800", "\\u0061", "\\ud83d\\ude00", "\\u0000", "\x01"][rng.integers(5)] + '": {"dtype": "U8", "shape": [0], "data_offsets": [0, 0]}}'
    else:  # a shape whose product overflows 64 bits, or a huge zero-size shape
        entry["shape"] = [[2**62, 2**62, 0], [0, 2**63], [0, 2**62], [2**32, 2**32]][rng.integers(4)]
    if text is None:
        text = json.dumps(header)
    if rng.integers(4) == 0:  # sometimes the data changes too
        data = data[:int(rng.integers(len(data) + 1))] + bytes(rng.integers(0, 256, int(rng.integers(0, 9)), dtype=np.uint8))
    return _pack(text, data)


_SIGNIFICANT = '{}[]",:09 e.-'


def _byte_mutation(blob: bytes, rng: np.random.Generator) -> bytes:
    data = bytearray(blob)
    kind = int(rng.integers(6))
    if kind == 0:  # flip a byte anywhere
        data[int(rng.integers(len(data)))] ^= 1 << int(rng.integers(8))
    elif kind == 1:  # a byte of the header length
        data[int(rng.integers(8))] = int(rng.integers(256))
    elif kind == 2:  # truncated
        del data[int(rng.integers(len(data))):]
    elif kind == 3:  # trailing garbage
        data += bytes(rng.integers(0, 256, int(rng.integers(1, 16)), dtype=np.uint8))
    elif kind == 4:  # a header byte replaced by a JSON-significant character
        (n,) = struct.unpack("<Q", bytes(data[:8]))
        data[8 + int(rng.integers(n))] = ord(_SIGNIFICANT[rng.integers(len(_SIGNIFICANT))])
    else:  # random junk of a random size
        data = bytearray(rng.integers(0, 256, int(rng.integers(0, 64)), dtype=np.uint8))
    return bytes(data)


def corpus(tmp: str, n: int = CASES) -> list[bytes]:
    rng = np.random.default_rng(1234)
    seeds = _seeds(tmp)
    cases = list(seeds)
    while len(cases) < n:
        seed = seeds[rng.integers(len(seeds))]
        cases.append(_json_mutation(seed, rng) if rng.integers(3) else _byte_mutation(seed, rng))
    return cases


def _format_violation(blob: bytes) -> str | None:
    """Where the format's description is stricter than the package: a label, else None."""
    if len(blob) < 8:
        return None
    (n,) = struct.unpack("<Q", blob[:8])
    raw = blob[8:8 + n]
    if not raw.startswith(b"{"):
        return "header does not start with '{'"
    duplicates = []

    def pairs(items):
        keys = [k for k, _ in items]
        if len(set(keys)) != len(keys):
            duplicates.append(keys)
        return dict(items)

    try:
        header = json.loads(raw, object_pairs_hook=pairs)
    except (ValueError, RecursionError):
        return None
    if duplicates:
        return "duplicate keys"
    for key, entry in header.items():
        if key != "__metadata__" and isinstance(entry, list):
            return "tensor entry as a list"
        if key != "__metadata__" and isinstance(entry, dict) and isinstance(entry.get("dtype"), dict):
            return "dtype as an object"
    return None


def compare(blobs: list[bytes], tmp: str) -> Counter:
    """Run the package and the reader on every case; assert they agree; return the counts."""
    from safetensors.numpy import load_file

    counts: Counter = Counter()
    path = os.path.join(tmp, "case.safetensors")
    for i, blob in enumerate(blobs):
        with open(path, "wb") as f:
            f.write(blob)
        try:
            theirs = load_file(path)
        except Exception:  # noqa: BLE001 - any failure of the package counts as a rejection
            theirs = None
        try:
            ours, _ = load_arrays(path)
        except ValueError as exc:
            assert path in str(exc), f"case {i}: the error does not name the file: {exc}"
            ours = None
        except Exception as exc:  # noqa: BLE001
            pytest.fail(f"case {i}: {type(exc).__name__} instead of ValueError: {exc}")
        if theirs is None:
            assert ours is None, f"case {i}: the reader accepts a file the package rejects: {blob[:300]!r}"
            counts["both reject"] += 1
        elif ours is None:
            violation = _format_violation(blob)
            assert violation is not None, f"case {i}: the reader rejects a file the package accepts: {blob[:300]!r}"
            counts[f"package accepts, format forbids ({violation})"] += 1
        else:
            assert set(ours) == set(theirs), f"case {i}"
            for key in theirs:
                a, b = ours[key], theirs[key]
                assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes(), (i, key)
            counts["both accept, same arrays"] += 1
    return counts


def test_reader_agrees_with_the_safetensors_package_on_mutated_files(tmp_path):
    pytest.importorskip("safetensors")
    counts = compare(corpus(str(tmp_path)), str(tmp_path))
    assert sum(counts.values()) == CASES
    assert counts["both accept, same arrays"] >= 50 and counts["both reject"] >= 300, counts


def test_non_regular_files_are_refused_without_reading(tmp_path):
    for special in ("/dev/zero", "/dev/null"):
        if os.path.exists(special):
            with pytest.raises(ValueError, match="a device, not a regular file"):
                rb.load(special)
    with pytest.raises(ValueError, match="a directory"):
        rb.load(tmp_path)
    if hasattr(os, "mkfifo"):
        fifo = tmp_path / "pipe"
        os.mkfifo(fifo)
        with pytest.raises(ValueError, match="a pipe"):
            rb.load(fifo)  # would block forever if the reader opened it for reading normally
    with pytest.raises(FileNotFoundError):
        rb.load(tmp_path / "missing.safetensors")


def test_large_junk_is_rejected_from_its_first_bytes(tmp_path):
    junk = tmp_path / "junk.safetensors"
    with open(junk, "wb") as f:  # a sparse 4 GB file: costs no disk
        f.truncate(4 * 2**30)
    with pytest.raises(ValueError, match="header length 0|does not start"):
        rb.load(junk)
    with open(junk, "r+b") as f:
        f.write(struct.pack("<Q", 2**31))  # a header length within the file, but above the limit
    with pytest.raises(ValueError, match="exceeds the limit"):
        rb.load(junk)
    with open(junk, "r+b") as f:  # 100 MB of header, refused after its first chunk
        f.write(struct.pack("<Q", 10**8) + b"{")
    with pytest.raises(ValueError, match="holds the byte 0x00 at position 1"):
        rb.load(junk)


@pytest.mark.parametrize("header,data,needle", [
    ('{"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}', b"\0" * 4, "non-negative"),
    ('{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}', b"\0" * 4, "end < begin|gap"),
    ('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}',
     b"\0" * 4, "overlaps"),
    ('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', b"\0" * 8, "trailing bytes"),
    ('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}',
     b"\0" * 4, "repeats the key 'a'"),
    ('{"__metadata__":["x"]}', b"", "__metadata__ must map strings to strings"),
    ('{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,4]}}', b"\0" * 4, "takes 12 bytes"),
    ('{"a":{"dtype":"X9","shape":[1],"data_offsets":[0,4]}}', b"\0" * 4, "unknown dtype"),
    ('{"a":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}}', b"\0" * 4, "shape must be"),
    ('{"a":' + "[" * 300 + "]" * 300 + "}", b"", "nests deeper"),
    ('{"a":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}', b"\0" * 4, "NumPy has no type"),
    ('{"a":\x00}', b"", "holds the byte 0x00 at position 5"),
    (' {}', b"", "does not start with"),
])
def test_each_problem_is_a_value_error_naming_file_and_problem(tmp_path, header, data, needle):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(_pack(header, data))
    with pytest.raises(ValueError, match=needle) as info:
        rb.load(path)
    assert str(path) in str(info.value)


def test_lazy_reads_one_tensor_at_a_time(tmp_path):
    path = tmp_path / "w.safetensors"
    rb.save({"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.ones(3, np.int32)}, path,
            metadata={"k": "v"})
    with SafetensorsFile(path) as file:
        assert file.keys() == ["a", "b"] and file.metadata == {"k": "v"}
        assert file.tensors["a"].shape == (2, 3) and file.tensors["b"].dtype == "I32"
        b = file.read("b")
        assert b.dtype == np.int32 and b.tolist() == [1, 1, 1] and b.flags.writeable
        with pytest.raises(KeyError, match="no tensor 'c'"):
            file.read("c")
    with open(path, "r+b") as f:  # the file shrinks after it was opened and validated
        file = SafetensorsFile(path)
        f.truncate(os.path.getsize(path) - 4)
        with pytest.raises(ValueError, match="changed while being read"):
            file.read("b")
        file.close()


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        for label, count in sorted(compare(corpus(folder), folder).items()):
            print(f"{count:5d}  {label}")
