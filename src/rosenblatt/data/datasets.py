"""Datasets: bundled digits, MNIST / Fashion-MNIST / CIFAR-10 (with ``download=True``), CSV, HDF5 and
ROOT files, folders of images, and synthetic generators.

Loaders return NumPy arrays: inputs as float32 (images in NCHW, scaled to [0, 1]) and class labels
as int64. Generators take ``seed`` (None: rosenblatt's global generator, see ``rb.manual_seed``).
"""

from __future__ import annotations

import csv
import gzip
import os
from collections.abc import Callable

import numpy as np

from rosenblatt.data.dataset import TensorDataset

FASHION_MNIST_ROOT = "/usr/share/datasets/fashion-mnist"


def _rng(seed: int | None) -> np.random.Generator:
    from rosenblatt.data.split import _rng as rng

    return rng(seed)


# ---------------------------------------------------------------------------------------------
# Real data
# ---------------------------------------------------------------------------------------------


def load_digits(flatten: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled handwritten digits: 1,797 images of 8x8 pixels, 10 classes.

    No download: the data ships with scikit-learn (the ``data`` extra: ``pip install
    'rosenblatt[data]'``).

    Args:
        flatten: return ``x`` as ``(1797, 64)``; ``False`` gives images ``(1797, 1, 8, 8)``.

    Returns:
        ``(x, y)``: float32 pixels scaled to [0, 1] and int64 labels 0-9.
    """
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError:
        raise ImportError("load_digits needs scikit-learn: pip install 'rosenblatt[data]' "
                          "(or pip install scikit-learn)") from None
    bunch = sklearn_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int64)
    return (x, y) if flatten else (x.reshape(-1, 1, 8, 8), y)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (the MNIST format), gzipped (``.gz``) or not, into a NumPy array."""
    path = os.fspath(path)
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise ValueError(f"read_idx: cannot read '{path}': {exc}") from None
    dtypes = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in dtypes:
        raise ValueError(f"read_idx: '{path}' is not an IDX file (bad magic number)")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4).astype(np.int64)
    dtype = np.dtype(dtypes[raw[2]])
    count = int(np.prod(dims))
    offset = 4 + 4 * ndim
    if len(raw) - offset < count * dtype.itemsize:
        raise ValueError(f"read_idx: '{path}' is truncated: expected {count} values of shape {tuple(dims)}")
    return np.frombuffer(raw, dtype=dtype, count=count, offset=offset).reshape(tuple(dims)).astype(dtype.newbyteorder("="))


def _find_idx(root: str, stem: str, dataset: str = "") -> str:
    candidates = [stem, stem.replace("-idx", ".idx")]
    folders = [root, os.path.join(root, "raw")] + ([os.path.join(root, dataset, "raw")] if dataset else [])
    for folder in folders:
        for name in candidates:
            for suffix in ("", ".gz"):
                path = os.path.join(folder, name + suffix)
                if os.path.isfile(path):
                    return path
    raise FileNotFoundError(f"no IDX file '{stem}[.gz]' in '{root}' (expected the standard MNIST file names)")


def default_data_root() -> str:
    """Where downloaded datasets go when no ``root`` is given: ``$ROSENBLATT_DATA_DIR``, else
    ``~/.cache/rosenblatt/data``."""
    return os.environ.get("ROSENBLATT_DATA_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "rosenblatt",
                                                                  "data")


class MNIST(TensorDataset):
    """The MNIST handwritten digits (LeCun et al., 1998) from IDX files in a folder.

    ``root`` holds the four standard files (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``), gzipped or not, directly, in ``raw/``
    or in ``<ClassName>/raw/``. With ``download=True`` missing files are fetched into
    ``root/<ClassName>/raw/`` (``root=None``: :func:`default_data_root`), SHA-256 checked, atomic
    and resumable; ``ROSENBLATT_DATA_MIRROR`` replaces the host (see :mod:`rosenblatt.data.download`).

    Attributes:
        data: float32 images ``(N, 1, 28, 28)`` scaled to [0, 1] (``(N, 784)`` with ``flatten=True``).
        targets: int64 labels ``(N,)``.
        classes: class names.
    """

    classes = [str(i) for i in range(10)]
    # The gzipped IDX files and their SHA-256 digests, as published by the download scripts of
    # several independent projects that agree with each other (docs/data.md says which).
    base_url = "https://ossci-datasets.s3.amazonaws.com/mnist"
    resources = [
        ("train-images-idx3-ubyte.gz", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
        ("train-labels-idx1-ubyte.gz", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
        ("t10k-images-idx3-ubyte.gz", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
        ("t10k-labels-idx1-ubyte.gz", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
    ]

    def __init__(self, root: str | os.PathLike | None, train: bool = True, flatten: bool = False,
                 download: bool = False) -> None:
        name = type(self).__name__
        if root is None:
            if not download:
                raise FileNotFoundError(f"{name}: give root (the folder of the IDX files), or download=True")
            root = default_data_root()
        root = os.fspath(root)
        prefix = "train" if train else "t10k"
        if download:
            self.download(root)
        if not os.path.isdir(root):
            raise FileNotFoundError(f"{name}: data folder '{root}' does not exist (download=True fetches the data)")
        images = read_idx(_find_idx(root, f"{prefix}-images-idx3-ubyte", name))
        labels = read_idx(_find_idx(root, f"{prefix}-labels-idx1-ubyte", name))
        if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
            raise ValueError(f"{type(self).__name__}: images {images.shape} and labels {labels.shape} in '{root}' do not match")
        data = (images.astype(np.float32) / 255.0)[:, None]
        self.root, self.train = root, train
        self.data = data.reshape(data.shape[0], -1) if flatten else data
        self.targets = labels.astype(np.int64)
        super().__init__(self.data, self.targets)

    @classmethod
    def download(cls, root: str | os.PathLike) -> list[str]:
        """Fetch the four files into ``root/<ClassName>/raw/`` (files already there and intact are
        kept) and return their paths."""
        from rosenblatt.data.download import download_all

        name = cls.__name__
        return download_all(cls.base_url, cls.resources, os.path.join(os.fspath(root), name, "raw"), name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root='{self.root}', train={self.train}, {len(self)} samples)"


class FashionMNIST(MNIST):
    """Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017): 28x28 greyscale pictures of 10 kinds of clothing.

    Same files and layout as :class:`MNIST`. ``root=None`` uses ``/usr/share/datasets/fashion-mnist``
    (Debian's ``dataset-fashion-mnist`` package) when it exists, else (with ``download=True``)
    :func:`default_data_root`. Debian's gzip files are not byte-identical to the originals that
    ``download=True`` checks, so they cannot serve as a download mirror; read them directly.
    """

    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot"]
    base_url = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com"
    resources = [
        ("train-images-idx3-ubyte.gz", "08dc20ab1689590a0bcd66e874647b6ee8464e2d501b5a3f1f78831db19a3fdc"),
        ("train-labels-idx1-ubyte.gz", "b0197879cbda89f3dc7b894f9fd52b858e68ea4182b6947c9d8c2b67e5f18dcc"),
        ("t10k-images-idx3-ubyte.gz", "78dcbbfb5a27efaf1b6c1d616caca68560be8766c5bffcb2791df9273a534229"),
        ("t10k-labels-idx1-ubyte.gz", "42bd18137a62d5998cdeae52bf3a0676ac6b706f5cf8439b47bb5b151ae3dccf"),
    ]

    def __init__(self, root: str | os.PathLike | None = None, train: bool = True, flatten: bool = False,
                 download: bool = False) -> None:
        if root is None:
            if os.path.isdir(FASHION_MNIST_ROOT):
                root = FASHION_MNIST_ROOT
            elif not download:
                raise FileNotFoundError(
                    f"FashionMNIST: no root given and {FASHION_MNIST_ROOT} does not exist "
                    "(download=True, apt-get install dataset-fashion-mnist, or pass the folder of the IDX files)")
        super().__init__(root, train=train, flatten=flatten, download=download)


class CIFAR10(TensorDataset):
    """CIFAR-10 (Krizhevsky, 2009): 60,000 colour images of 32x32 pixels in 10 classes.

    Read from the *binary* version (``cifar-10-binary.tar.gz``: records of one label byte and
    3,072 pixel bytes, never Python pickles). ``root`` holds ``cifar-10-batches-bin/`` (directly or
    under ``CIFAR10/``); with ``download=True`` the archive is fetched into ``root/CIFAR10/``
    (SHA-256 checked, atomic, resumable, ``ROSENBLATT_DATA_MIRROR`` honoured) and its six batch
    files are extracted by name (nothing else in the archive is written).

    Attributes:
        data: float32 images ``(N, 3, 32, 32)`` scaled to [0, 1]; 50,000 for ``train``, else 10,000.
        targets: int64 labels ``(N,)``.
        classes: class names.
    """

    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    base_url = "https://www.cs.toronto.edu/~kriz"
    resources = [("cifar-10-binary.tar.gz", "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd")]
    folder = "cifar-10-batches-bin"
    train_files = [f"data_batch_{i}.bin" for i in range(1, 6)]
    test_files = ["test_batch.bin"]
    record_bytes = 1 + 3 * 32 * 32

    def __init__(self, root: str | os.PathLike | None, train: bool = True, download: bool = False) -> None:
        if root is None:
            if not download:
                raise FileNotFoundError("CIFAR10: give root (the folder of cifar-10-batches-bin), or download=True")
            root = default_data_root()
        root = os.fspath(root)
        if download:
            self.download(root)
        names = self.train_files if train else self.test_files
        folder = self._find_folder(root, names)
        records = [self.read_batch(os.path.join(folder, name)) for name in names]
        images = np.concatenate([r[0] for r in records])
        self.root, self.train = root, train
        self.data = images.astype(np.float32) / 255.0
        self.targets = np.concatenate([r[1] for r in records])
        super().__init__(self.data, self.targets)

    @classmethod
    def _find_folder(cls, root: str, names: list[str]) -> str:
        for folder in (os.path.join(root, cls.folder), os.path.join(root, "CIFAR10", cls.folder), root):
            if all(os.path.isfile(os.path.join(folder, n)) for n in names):
                return folder
        raise FileNotFoundError(f"CIFAR10: no {cls.folder}/ with {', '.join(names)} under '{root}' "
                                "(download=True fetches it)")

    @classmethod
    def read_batch(cls, path: str) -> tuple[np.ndarray, np.ndarray]:
        """One binary batch file: uint8 images ``(N, 3, 32, 32)`` and int64 labels ``(N,)``."""
        raw = np.fromfile(path, dtype=np.uint8)
        if raw.size == 0 or raw.size % cls.record_bytes:
            raise ValueError(f"CIFAR10: '{path}' is not a CIFAR-10 binary batch ({raw.size} bytes is not a multiple "
                             f"of the {cls.record_bytes}-byte record)")
        records = raw.reshape(-1, cls.record_bytes)
        labels = records[:, 0].astype(np.int64)
        if labels.max() > 9:
            raise ValueError(f"CIFAR10: '{path}' has label {labels.max()}; CIFAR-10 labels are 0-9")
        return records[:, 1:].reshape(-1, 3, 32, 32), labels

    @classmethod
    def download(cls, root: str | os.PathLike) -> str:
        """Fetch and unpack the archive into ``root/CIFAR10/``; returns the batch folder."""
        import tarfile

        from rosenblatt.data.download import download_all

        target = os.path.join(os.fspath(root), "CIFAR10")
        folder = os.path.join(target, cls.folder)
        names = cls.train_files + cls.test_files
        if all(os.path.isfile(os.path.join(folder, n)) for n in names):
            return folder
        (archive,) = download_all(cls.base_url, cls.resources, target, "CIFAR10")
        os.makedirs(folder, exist_ok=True)
        with tarfile.open(archive, "r:gz") as tar:
            for name in names:
                # Read members by their known names and write them ourselves: no path in the
                # archive decides where a file lands.
                member = tar.extractfile(f"{cls.folder}/{name}")
                if member is None:
                    raise ValueError(f"CIFAR10: '{archive}' has no {cls.folder}/{name}")
                part = os.path.join(folder, name + ".part")
                with open(part, "wb") as out:
                    out.write(member.read())
                os.replace(part, os.path.join(folder, name))
        return folder

    def __repr__(self) -> str:
        return f"CIFAR10(root='{self.root}', train={self.train}, {len(self)} samples)"


def from_csv(path: str | os.PathLike, target: str | int = -1, delimiter: str = ",",
             header: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read a numeric table: every column but ``target`` becomes a float32 feature.

    Args:
        path: the CSV file.
        target: the label column, by name (needs a header) or by index (default: the last one).
        delimiter: the field separator.
        header: whether the first row holds column names (None: guessed, a header has a
            non-numeric field).

    Returns:
        ``(x, y)``: features ``(N, F)`` float32; labels int64 when every value is an integer or a
        text class name (names are numbered in sorted order), else float32.

    Raises:
        ValueError: naming the line and column of the first empty cell, non-numeric feature, or
            value that is not finite in float32 (``inf``, ``nan``, ``1e400``).
    """
    path = os.fspath(path)
    try:
        with open(path, newline="") as f:
            reader = csv.reader(f, delimiter=delimiter)
            numbered = [(reader.line_num, row) for row in reader if row]  # line numbers for messages
    except OSError as exc:
        raise ValueError(f"from_csv: cannot read '{path}': {exc.strerror or exc}") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"from_csv: '{path}' is not a readable CSV file ({exc})") from None
    if not numbered:
        raise ValueError(f"from_csv: '{path}' is empty")
    lines, rows = [n for n, _ in numbered], [row for _, row in numbered]

    def numeric(field: str) -> bool:
        try:
            float(field)
            return True
        except ValueError:
            return False

    if header is None:
        header = not all(numeric(v) for v in rows[0])
    names = [v.strip() for v in rows[0]] if header else [str(i) for i in range(len(rows[0]))]
    body, lines = (rows[1:], lines[1:]) if header else (rows, lines)
    if not body:
        raise ValueError(f"from_csv: '{path}' has no data rows")
    width = len(names)
    for line, row in zip(lines, body):
        if len(row) != width:
            raise ValueError(f"from_csv: line {line} of '{path}' has {len(row)} fields, expected {width}")

    def cell(row: int, col: int) -> str:
        label = f"column {col + 1}" + (f" ('{names[col]}')" if header else "")
        return f"from_csv: '{path}' line {lines[row]}, {label}"

    if isinstance(target, str):
        if target not in names:
            raise ValueError(f"from_csv: no column '{target}' in '{path}' (columns: {', '.join(names)})")
        column = names.index(target)
    else:
        column = int(target)
        if not -width <= column < width:
            raise ValueError(f"from_csv: target column {column} is out of range for {width} columns")
        column %= width
    table = np.array(body, dtype=object)
    empty = np.argwhere(np.char.str_len(np.char.strip(table.astype(str))) == 0)
    if len(empty):
        raise ValueError(f"{cell(*empty[0])} is empty")
    features = np.delete(table, column, axis=1)
    feature_columns = [c for c in range(width) if c != column]
    try:
        x64 = features.astype(np.float64)
    except ValueError:
        for r, c in np.ndindex(features.shape):
            if not numeric(features[r, c]):
                raise ValueError(f"{cell(r, feature_columns[c])}: {features[r, c]!r} is not a number "
                                 "(the feature columns must be numeric)") from None
        raise
    with np.errstate(over="ignore"):  # values beyond float32 become inf, reported below
        x = x64.astype(np.float32)
    infinite = np.argwhere(~np.isfinite(x))
    if len(infinite):
        r, c = infinite[0]
        raise ValueError(f"{cell(r, feature_columns[c])}: {features[r, c]!r} is not a finite float32 number")
    labels = table[:, column]
    if all(numeric(v) for v in labels):
        values = labels.astype(np.float64)
        with np.errstate(over="ignore"):
            infinite = np.flatnonzero(~np.isfinite(values.astype(np.float32)))
        if len(infinite):
            raise ValueError(f"{cell(infinite[0], column)}: the target {labels[infinite[0]]!r} is not a finite "
                             "float32 number")
        # Whole numbers are class labels; huge ones (beyond 2**31) are surely measurements.
        labels_like = np.all(values == np.round(values)) and np.all(np.abs(values) < 2**31)
        y = values.astype(np.int64) if labels_like else values.astype(np.float32)
    else:
        _, y = np.unique(np.char.strip(labels.astype(str)), return_inverse=True)
        y = y.astype(np.int64)
    return x, y


# ---------------------------------------------------------------------------------------------
# Synthetic data
# ---------------------------------------------------------------------------------------------


def make_moons(n: int = 200, noise: float = 0.1, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles in 2-D (a non-linear binary problem).

    Returns ``(x, y)``: float32 points ``(n, 2)`` and int64 labels ``(n,)`` in {0, 1}.
    """
    rng = _rng(seed)
    n_upper = n // 2
    t = np.pi * rng.random(n)
    upper = np.arange(n) < n_upper
    x = np.where(upper[:, None], np.stack([np.cos(t), np.sin(t)], 1),
                 np.stack([1.0 - np.cos(t), 0.5 - np.sin(t)], 1))
    x = x + noise * rng.standard_normal((n, 2))
    y = (~upper).astype(np.int64)
    order = rng.permutation(n)
    return x[order].astype(np.float32), y[order]


def make_spirals(n: int = 300, classes: int = 2, noise: float = 0.1, turns: float = 1.5,
                 seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``classes`` interleaved spiral arms in 2-D (hard for a linear model, easy for an MLP).

    Returns ``(x, y)``: float32 points ``(n, 2)`` and int64 labels ``(n,)``.
    """
    rng = _rng(seed)
    y = np.arange(n) % classes
    r = rng.random(n)
    theta = 2 * np.pi * (turns * r + y / classes)
    x = np.stack([r * np.cos(theta), r * np.sin(theta)], 1) + noise * r[:, None] * rng.standard_normal((n, 2))
    order = rng.permutation(n)
    return x[order].astype(np.float32), y[order].astype(np.int64)


def make_xor(n: int = 200, noise: float = 0.1, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The XOR problem: four Gaussian blobs at the corners of a square; label = XOR of the signs.

    Returns ``(x, y)``: float32 points ``(n, 2)`` around (±1, ±1) and int64 labels ``(n,)``.
    """
    rng = _rng(seed)
    corners = rng.integers(0, 2, size=(n, 2))
    x = (2.0 * corners - 1.0) + noise * rng.standard_normal((n, 2))
    return x.astype(np.float32), (corners[:, 0] ^ corners[:, 1]).astype(np.int64)


def make_regression_1d(fn: Callable[[np.ndarray], np.ndarray] = np.sin, n: int = 200, low: float = -3.0,
                       high: float = 3.0, noise: float = 0.1, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Samples of ``y = fn(x) + noise`` with ``x`` uniform in ``[low, high]`` (function fitting).

    Returns ``(x, y)``: float32 arrays of shape ``(n, 1)``.
    """
    rng = _rng(seed)
    x = rng.uniform(low, high, size=(n, 1))
    y = np.asarray(fn(x), dtype=np.float64).reshape(n, 1) + noise * rng.standard_normal((n, 1))
    return x.astype(np.float32), y.astype(np.float32)


def adding_problem(T: int = 50, n: int = 1000, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The adding problem (Hochreiter and Schmidhuber, 1997), a long-memory test for RNNs.

    Each sequence has ``T`` steps of two features: a uniform random value and a marker that is 1
    at exactly two steps (one in each half); the target is the sum of the two marked values.

    Returns ``(x, y)``: float32 ``(n, T, 2)`` (batch first) and ``(n, 1)``.
    """
    if T < 2:
        raise ValueError(f"adding_problem: T must be >= 2, got {T}")
    rng = _rng(seed)
    values = rng.random((n, T))
    first = rng.integers(0, T // 2, size=n)
    second = rng.integers(T // 2, T, size=n)
    marker = np.zeros((n, T))
    rows = np.arange(n)
    marker[rows, first] = 1.0
    marker[rows, second] = 1.0
    y = values[rows, first] + values[rows, second]
    return np.stack([values, marker], -1).astype(np.float32), y[:, None].astype(np.float32)


def copy_task(T: int = 10, n: int = 1000, vocab: int = 8, delay: int | None = None,
              seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The copy task: remember ``T`` symbols, then reproduce them after a blank delay.

    Symbols are ``1..vocab``; 0 is the blank and ``vocab + 1`` the "recall now" marker. The input
    is the sequence, ``delay`` blanks (default ``T``) with the marker at the last one, then ``T``
    blanks; the target is blank everywhere except the last ``T`` steps, which repeat the sequence.

    Returns ``(x, y)``: int64 tokens ``(n, 2T + delay)`` and int64 targets of the same shape.
    """
    rng = _rng(seed)
    delay = T if delay is None else delay
    if delay < 1:
        raise ValueError(f"copy_task: delay must be >= 1, got {delay}")
    symbols = rng.integers(1, vocab + 1, size=(n, T))
    length = 2 * T + delay
    x = np.zeros((n, length), dtype=np.int64)
    y = np.zeros((n, length), dtype=np.int64)
    x[:, :T] = symbols
    x[:, T + delay - 1] = vocab + 1
    y[:, T + delay:] = symbols
    return x, y


def sine_sequences(n: int = 500, T: int = 50, freq_range: tuple[float, float] = (0.5, 2.0), noise: float = 0.0,
                   seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Sine waves of random frequency and phase, for next-step prediction.

    Returns ``(x, y)``: float32 ``(n, T, 1)`` inputs and the same sequences shifted by one step.
    """
    rng = _rng(seed)
    freq = rng.uniform(*freq_range, size=(n, 1))
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1))
    t = np.arange(T + 1)[None, :] * 0.1
    wave = np.sin(2 * np.pi * freq * t + phase) + noise * rng.standard_normal((n, T + 1))
    wave = wave.astype(np.float32)[..., None]
    return wave[:, :-1], wave[:, 1:]


def make_shapes(n: int = 500, size: int = 32, min_size: int = 6, max_size: int | None = None, noise: float = 0.0,
                seed: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images with one random filled shape each: circle (class 0) or rectangle (class 1).

    Returns ``(images, labels, boxes)``: float32 ``(n, 1, size, size)`` in [0, 1], int64 classes
    ``(n,)`` and float32 bounding boxes ``(n, 4)`` as ``(x_min, y_min, x_max, y_max)`` in pixels
    (inclusive), for classification and box-regression exercises.
    """
    rng = _rng(seed)
    max_size = max_size or size // 2
    if not 1 <= min_size <= max_size <= size:
        raise ValueError(f"make_shapes: need 1 <= min_size <= max_size <= size, got {min_size}, {max_size}, {size}")
    labels = rng.integers(0, 2, size=n)
    width = rng.integers(min_size, max_size + 1, size=n)
    height = np.where(labels == 0, width, rng.integers(min_size, max_size + 1, size=n))
    x0 = rng.integers(0, size - width + 1)
    y0 = rng.integers(0, size - height + 1)
    rows = np.arange(size)[None, :, None]
    cols = np.arange(size)[None, None, :]
    x0b, y0b = x0[:, None, None], y0[:, None, None]
    wb, hb = width[:, None, None], height[:, None, None]
    rect = (cols >= x0b) & (cols < x0b + wb) & (rows >= y0b) & (rows < y0b + hb)
    cx, cy, radius = x0b + (wb - 1) / 2.0, y0b + (hb - 1) / 2.0, wb / 2.0
    circle = (cols - cx) ** 2 + (rows - cy) ** 2 <= radius ** 2
    images = np.where((labels == 0)[:, None, None], circle & rect, rect).astype(np.float32)
    if noise:
        images = np.clip(images + noise * rng.standard_normal(images.shape), 0.0, 1.0).astype(np.float32)
    boxes = np.stack([x0, y0, x0 + width - 1, y0 + height - 1], 1).astype(np.float32)
    return images[:, None], labels.astype(np.int64), boxes


from rosenblatt.data.hdf5 import HDF5Dataset  # noqa: E402  (the file-format datasets, re-exported here)
from rosenblatt.data.image_folder import ImageFolder  # noqa: E402
from rosenblatt.data.root import ROOTDataset  # noqa: E402

__all__ = ["CIFAR10", "FASHION_MNIST_ROOT", "FashionMNIST", "HDF5Dataset", "ImageFolder", "MNIST", "ROOTDataset",
           "default_data_root", "adding_problem", "copy_task", "from_csv", "load_digits",
           "make_moons", "make_regression_1d", "make_shapes", "make_spirals", "make_xor",
           "read_idx", "sine_sequences"]
