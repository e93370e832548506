"""Dataset downloads against a local HTTP server on 127.0.0.1 (never the internet).

The server serves generated files in the real formats (gzipped IDX for MNIST and Fashion-MNIST,
the binary CIFAR-10 tarball) with HTTP ``Range`` support, and can drop a connection half-way.
The mirror variable points the datasets at it; the expected digests are those of the generated
files. Tested: SHA-256 checks (a bad file is refused and removed), atomic writes (no final file
before it is verified), resuming an interrupted transfer with a Range request, and reading the
downloaded data back exactly.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import os
import tarfile
import threading

import numpy as np
import pytest

from rosenblatt.data import download as dl
from rosenblatt.data.datasets import CIFAR10, MNIST, FashionMNIST


class _Server:
    """``http.server`` in a thread, serving ``files`` (URL path -> bytes) with Range support."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.drop_after: dict[str, int] = {}  # path -> bytes sent before the connection drops (once)
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                start = 0
                if self.headers.get("Range"):
                    start = int(self.headers["Range"].split("=")[1].split("-")[0])
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                payload = body[start:]
                cut = server.drop_after.pop(self.path, None)
                if cut is not None:  # send part of it, then hang up
                    self.wfile.write(payload[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(payload)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs=dict(poll_interval=0.02),
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def server(monkeypatch):
    s = _Server()
    monkeypatch.setenv(dl.MIRROR_VARIABLE, s.url + "/mirror")
    yield s
    s.close()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes())


def _mnist_files(seed):
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (12, 28, 28)),
        "train-labels-idx1-ubyte.gz": rng.integers(0, 10, 12),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (5, 28, 28)),
        "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, 5),
    }
    return arrays, {name: _idx(a) for name, a in arrays.items()}


def test_download_file_checks_resumes_and_is_atomic(server, tmp_path):
    body = os.urandom(300_000)
    server.files["/mirror/toy/blob.bin"] = body
    server.drop_after["/mirror/toy/blob.bin"] = 100_000  # the first transfer breaks off
    path = dl.download_file("https://example.invalid/files/blob.bin", tmp_path, _sha(body), dataset="toy", quiet=True)
    assert open(path, "rb").read() == body and not os.path.exists(path + ".part")
    assert server.requests == [("/mirror/toy/blob.bin", None), ("/mirror/toy/blob.bin", "bytes=100000-")]
    # already there and intact: nothing fetched
    dl.download_file("https://example.invalid/files/blob.bin", tmp_path, _sha(body), dataset="toy", quiet=True)
    assert len(server.requests) == 2


def test_download_resumes_a_part_file_left_by_an_earlier_run(server, tmp_path):
    body = os.urandom(50_000)
    server.files["/mirror/toy/blob.bin"] = body
    (tmp_path / "blob.bin.part").write_bytes(body[:20_000])  # an interrupted earlier download
    path = dl.download_file("http://x.invalid/blob.bin", tmp_path, _sha(body), dataset="toy", quiet=True)
    assert open(path, "rb").read() == body
    assert server.requests == [("/mirror/toy/blob.bin", "bytes=20000-")]


def test_download_refuses_a_bad_checksum(server, tmp_path):
    server.files["/mirror/toy/blob.bin"] = b"tampered" * 1000
    with pytest.raises(ValueError, match=r"has SHA-256 [0-9a-f]{64}, expected 0{64}; the file was deleted"):
        dl.download_file("http://x.invalid/blob.bin", tmp_path, "0" * 64, dataset="toy", quiet=True)
    assert os.listdir(tmp_path) == []  # neither the file nor a part file is left
    with pytest.raises(OSError, match=r"answered HTTP 404"):
        dl.download_file("http://x.invalid/missing.bin", tmp_path, "0" * 64, dataset="toy", quiet=True)


def test_download_gives_up_after_the_retries_and_keeps_the_part(server, tmp_path, monkeypatch):
    body = os.urandom(10_000)
    server.files["/mirror/toy/blob.bin"] = body

    def always_broken(url, part, timeout):
        with open(part, "ab") as f:
            f.write(b"")
        raise ConnectionResetError("connection reset")

    monkeypatch.setattr(dl, "_fetch_into", always_broken)
    with pytest.raises(OSError, match=r"after 2 attempts .* the next call resumes it"):
        dl.download_file("http://x.invalid/blob.bin", tmp_path, _sha(body), dataset="toy", retries=1, quiet=True)


@pytest.mark.parametrize("cls", [MNIST, FashionMNIST])
def test_mnist_download_reads_back_exactly(cls, server, tmp_path, monkeypatch):
    arrays, files = _mnist_files(seed=len(cls.__name__))
    for name, data in files.items():
        server.files[f"/mirror/{cls.__name__}/{name}"] = data
    server.drop_after[f"/mirror/{cls.__name__}/train-images-idx3-ubyte.gz"] = 1000
    monkeypatch.setattr(cls, "resources", [(name, _sha(data)) for name, data in files.items()])
    train = cls(tmp_path, train=True, download=True)
    test = cls(tmp_path, train=False, download=True)
    pixels = np.round(train.data[:, 0] * 255).astype(np.uint8)
    np.testing.assert_array_equal(pixels, arrays["train-images-idx3-ubyte.gz"])
    assert train.data.dtype == np.float32 and train.data.max() <= 1.0
    np.testing.assert_array_equal(train.targets, arrays["train-labels-idx1-ubyte.gz"])
    np.testing.assert_array_equal(np.round(test.data[:, 0] * 255), arrays["t10k-images-idx3-ubyte.gz"])
    assert sorted(os.listdir(tmp_path / cls.__name__ / "raw")) == sorted(files)
    fetched = [p for p, _ in server.requests]
    assert len(fetched) == 5  # four files, one of them resumed once; the second call fetched nothing
    # the files are found again without download=True
    np.testing.assert_array_equal(cls(tmp_path).targets, train.targets)


def test_cifar10_download_reads_back_exactly(server, tmp_path, monkeypatch):
    rng = np.random.default_rng(4)
    batches = {f"data_batch_{i}.bin": 3 for i in range(1, 6)}
    batches["test_batch.bin"] = 4
    records, buffer = {}, io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, count in batches.items():
            labels = rng.integers(0, 10, count).astype(np.uint8)
            pixels = rng.integers(0, 256, (count, 3072)).astype(np.uint8)
            records[name] = (labels, pixels)
            raw = np.concatenate([labels[:, None], pixels], 1).tobytes()
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
        extra = tarfile.TarInfo("../outside.txt")  # a hostile member is never extracted
        extra.size = 3
        tar.addfile(extra, io.BytesIO(b"bad"))
    archive = buffer.getvalue()
    server.files["/mirror/CIFAR10/cifar-10-binary.tar.gz"] = archive
    monkeypatch.setattr(CIFAR10, "resources", [("cifar-10-binary.tar.gz", _sha(archive))])
    train = CIFAR10(tmp_path / "data", train=True, download=True)
    test = CIFAR10(tmp_path / "data", train=False)
    assert train.data.shape == (15, 3, 32, 32) and test.data.shape == (4, 3, 32, 32)
    labels = np.concatenate([records[f"data_batch_{i}.bin"][0] for i in range(1, 6)])
    pixels = np.concatenate([records[f"data_batch_{i}.bin"][1] for i in range(1, 6)])
    np.testing.assert_array_equal(train.targets, labels)
    np.testing.assert_array_equal(np.round(train.data * 255).astype(np.uint8), pixels.reshape(-1, 3, 32, 32))
    np.testing.assert_array_equal(test.targets, records["test_batch.bin"][0])
    assert not (tmp_path / "outside.txt").exists() and not (tmp_path / "data" / "outside.txt").exists()
    assert train.classes[0] == "airplane" and len(server.requests) == 1


def test_missing_data_without_download_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"download=True fetches it"):
        CIFAR10(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"give root .* or download=True"):
        MNIST(None)


def test_published_digests_are_well_formed():
    for cls in (MNIST, FashionMNIST, CIFAR10):
        for name, digest in cls.resources:
            assert len(digest) == 64 and int(digest, 16) >= 0, (cls.__name__, name)
