"""Downloads of dataset files: SHA-256 checked, atomic, resumable, from a mirror if one is set.

:func:`download_file` fetches one URL into a folder:

- **Checked.** The file's SHA-256 must equal the expected digest; a wrong file is deleted and a
  ``ValueError`` names both digests. A file already on disk with the right digest is not
  fetched again.
- **Atomic.** Bytes go to ``<name>.part``; only a complete, verified file is renamed to its final
  name (``os.replace``), so an interrupted run never leaves a truncated file that looks complete.
- **Resumable.** A ``.part`` file left by an interrupted transfer is continued with an HTTP
  ``Range`` request; a connection that drops mid-transfer is retried from where it stopped
  (``retries`` times). A server that ignores ``Range`` (status 200) restarts the file.
- **Mirrored.** With ``ROSENBLATT_DATA_MIRROR`` set (e.g. ``http://10.0.0.5/datasets``), files come
  from ``<mirror>/<dataset>/<file name>`` instead of the original hosts: the same digests apply.

Only the standard library is used (``urllib``).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence

MIRROR_VARIABLE = "ROSENBLATT_DATA_MIRROR"
_CHUNK = 1 << 20


def sha256_of(path: str | os.PathLike) -> str:
    """The hexadecimal SHA-256 digest of a file (read in 1 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def source_url(url: str, dataset: str) -> str:
    """``url``, or its file under ``<mirror>/<dataset>/`` when ``ROSENBLATT_DATA_MIRROR`` is set."""
    mirror = os.environ.get(MIRROR_VARIABLE, "").strip()
    if not mirror:
        return url
    return f"{mirror.rstrip('/')}/{dataset}/{url.rsplit('/', 1)[-1]}"


def _fetch_into(url: str, part: str, timeout: float) -> None:
    """Append the rest of ``url`` to ``part`` (a Range request when ``part`` has bytes already)."""
    have = os.path.getsize(part) if os.path.exists(part) else 0
    request = urllib.request.Request(url, headers={"User-Agent": "rosenblatt"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to fetch: the part file is already whole
            return
        raise
    with response:
        mode = "ab" if have and response.status == 206 else "wb"  # 200: the server restarts the file
        length = response.headers.get("Content-Length")
        received = 0
        with open(part, mode) as f:
            while True:
                block = response.read(_CHUNK)
                if not block:
                    break
                f.write(block)
                f.flush()
                received += len(block)
    # http.client ends a body that stops early without an error: compare with the announced length
    if length is not None and received < int(length):
        raise ConnectionError(f"the connection closed after {received:,} of {int(length):,} bytes")


def download_file(url: str, folder: str | os.PathLike, sha256: str, dataset: str = "", filename: str | None = None,
                  retries: int = 3, timeout: float = 60.0, quiet: bool = False) -> str:
    """Download ``url`` into ``folder`` (see the module docstring) and return the file's path.

    Args:
        url: where the file lives (its last path component is the file name unless ``filename``).
        folder: the destination folder (created if needed).
        sha256: the expected hexadecimal SHA-256 digest.
        dataset: the dataset's folder name under a mirror (``ROSENBLATT_DATA_MIRROR``).
        filename: the local file name.
        retries: how many times a dropped connection is resumed.
        timeout: seconds a connection may stall.
        quiet: do not print what is downloaded.
    """
    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    name = filename or url.rsplit("/", 1)[-1]
    path = os.path.join(folder, name)
    expected = sha256.lower()
    if os.path.exists(path):
        if sha256_of(path) == expected:
            return path
        os.remove(path)  # a stale or corrupted copy: fetch it again
    source = source_url(url, dataset)
    part = path + ".part"
    if not quiet:
        resumed = f" (resuming at {os.path.getsize(part):,} bytes)" if os.path.exists(part) else ""
        print(f"Downloading {source} to {path}{resumed}", file=sys.stderr)
    errors: list[str] = []
    for _ in range(retries + 1):
        try:
            _fetch_into(source, part, timeout)
            break
        except urllib.error.HTTPError as exc:  # the server answered: retrying will not help
            raise OSError(f"download: {source} answered HTTP {exc.code} ({exc.reason})") from None
        except (http.client.IncompleteRead, ConnectionError, TimeoutError, urllib.error.URLError, OSError) as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
    else:
        raise OSError(f"download: could not fetch {source} after {retries + 1} attempts ({errors[-1]}); "
                      f"the partial file {part} is kept and the next call resumes it")
    actual = sha256_of(part)
    if actual != expected:
        os.remove(part)
        raise ValueError(f"download: {source} has SHA-256 {actual}, expected {expected}; the file was deleted "
                         f"(a corrupted transfer or a wrong mirror: {MIRROR_VARIABLE}="
                         f"{os.environ.get(MIRROR_VARIABLE, '')!r})")
    os.replace(part, path)
    return path


def download_all(base_url: str, files: Sequence[tuple[str, str]], folder: str | os.PathLike, dataset: str,
                 quiet: bool = False) -> list[str]:
    """Download every ``(file name, sha256)`` of ``files`` from ``base_url`` into ``folder``."""
    return [download_file(f"{base_url.rstrip('/')}/{name}", folder, digest, dataset=dataset, quiet=quiet)
            for name, digest in files]


__all__ = ["MIRROR_VARIABLE", "download_all", "download_file", "sha256_of", "source_url"]
