"""rb.data: DataLoader, splits, KFold, datasets and generators."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

import rosenblatt as rb
from rosenblatt.data import DataLoader, Dataset, KFold, TensorDataset, random_split, train_val_test_split
from rosenblatt.data import datasets as D


def _epoch_indices(loader):
    return np.concatenate([b[0].numpy().reshape(-1) for b in loader])


@pytest.mark.parametrize("n,batch,drop_last", [(10, 3, False), (10, 3, True), (12, 4, False), (1, 5, False)])
def test_loader_covers_every_sample_once_per_epoch(n, batch, drop_last):
    loader = DataLoader(TensorDataset(np.arange(n), np.arange(n) * 2), batch_size=batch, shuffle=True,
                        drop_last=drop_last, seed=3)
    expected = n - n % batch if drop_last else n
    assert len(loader) == (n // batch if drop_last else -(-n // batch))
    for _ in range(3):
        seen = _epoch_indices(loader)
        assert seen.shape[0] == expected
        assert len(np.unique(seen)) == expected
        if not drop_last:
            assert sorted(seen) == list(range(n))
    for x, y in loader:
        assert np.array_equal(y.numpy(), 2 * x.numpy())
        assert x.shape[0] <= batch


def test_shuffle_differs_per_epoch_and_is_reproducible():
    data = TensorDataset(np.arange(50))
    a = DataLoader(data, batch_size=50, shuffle=True, seed=7)
    b = DataLoader(data, batch_size=50, shuffle=True, seed=7)
    first, second = _epoch_indices(a), _epoch_indices(a)
    assert not np.array_equal(first, second)
    assert np.array_equal(first, _epoch_indices(b)) and np.array_equal(second, _epoch_indices(b))
    assert np.array_equal(_epoch_indices(DataLoader(data, batch_size=50)), np.arange(50))
    # A loader restored from state continues with the same order.
    c = DataLoader(data, batch_size=50, shuffle=True, seed=7)
    c.load_state_dict(b.state_dict())
    assert np.array_equal(_epoch_indices(c), _epoch_indices(b))


def test_unseeded_shuffle_follows_manual_seed():
    data = TensorDataset(np.arange(30))
    rb.manual_seed(5)
    a = _epoch_indices(DataLoader(data, batch_size=30, shuffle=True))
    rb.manual_seed(5)
    b = _epoch_indices(DataLoader(data, batch_size=30, shuffle=True))
    assert np.array_equal(a, b)


class _Squares(Dataset):
    def __len__(self):
        return 7

    def __getitem__(self, i):
        assert isinstance(i, int)  # read sample by sample
        return np.array([i, i * i], dtype=np.float32), i


def test_generic_dataset_collate_and_transform():
    batches = list(DataLoader(_Squares(), batch_size=3, transform=lambda x, y: (x * 2, y)))
    assert [b[0].shape for b in batches] == [(3, 2), (3, 2), (1, 2)]
    assert np.array_equal(batches[1][0].numpy(), 2 * np.array([[3, 9], [4, 16], [5, 25]], dtype=np.float32))
    assert np.array_equal(batches[2][1].numpy(), [6])


def test_batched_indexing_is_used_for_arrays(monkeypatch):
    data = TensorDataset(np.arange(100).reshape(50, 2), np.arange(50))
    calls = []
    original = TensorDataset.__getitem__

    def spy(self, index):
        calls.append(np.shape(index))
        return original(self, index)

    monkeypatch.setattr(TensorDataset, "__getitem__", spy)
    list(DataLoader(data, batch_size=20))
    assert calls == [(20,), (20,), (10,)]  # one fancy-indexing call per batch


def test_loader_rejects_bad_arguments():
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(TensorDataset(np.arange(3)), batch_size=0)
    with pytest.raises(TypeError, match="DataLoader"):
        DataLoader(42)
    with pytest.raises(ValueError, match="same length"):
        TensorDataset(np.arange(3), np.arange(4))


def test_random_split_sizes_and_disjointness():
    data = TensorDataset(np.arange(103))
    parts = random_split(data, [0.7, 0.2, 0.1], seed=0)
    assert [len(p) for p in parts] == [73, 21, 9] or sum(len(p) for p in parts) == 103
    ids = np.concatenate([p.indices for p in parts])
    assert sorted(ids) == list(range(103))
    a, b = random_split(data, [100, 3], seed=1)
    assert (len(a), len(b)) == (100, 3)
    assert np.array_equal(b[np.arange(3)][0], data.arrays[0][b.indices])
    with pytest.raises(ValueError, match="sum"):
        random_split(data, [50, 50])


def test_train_val_test_split_sizes_and_stratification():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], [500, 300, 200])
    x = rng.normal(size=(1000, 3)).astype(np.float32)
    x[:, 0] = np.arange(1000)  # identifies the row
    (xtr, ytr), (xva, yva), (xte, yte) = train_val_test_split(x, y, val=0.1, test=0.2, stratify=y, seed=0)
    assert (len(ytr), len(yva), len(yte)) == (700, 100, 200)
    for labels, n in ((ytr, 700), (yva, 100), (yte, 200)):
        assert np.array_equal(np.bincount(labels), np.array([500, 300, 200]) * n // 1000)
    rows = np.concatenate([xtr[:, 0], xva[:, 0], xte[:, 0]])
    assert sorted(rows.astype(int)) == list(range(1000))
    assert np.array_equal(y[xva[:, 0].astype(int)], yva)  # x and y stay paired
    again = train_val_test_split(x, y, val=0.1, test=0.2, stratify=True, seed=0)
    assert np.array_equal(again[1][1], yva)
    # Without stratification, a 10% validation part of sorted labels is not the last rows.
    _, (_, yv), _ = train_val_test_split(x, y, val=0.1, test=0, seed=0)
    assert len(np.unique(yv)) == 3
    with pytest.raises(ValueError, match="val"):
        train_val_test_split(x, y, val=0.6, test=0.5)


def test_kfold_partitions():
    folds = list(KFold(4, seed=0).split(10))
    assert len(folds) == 4
    vals = np.concatenate([v for _, v in folds])
    assert sorted(vals) == list(range(10))
    for train, val in folds:
        assert len(np.intersect1d(train, val)) == 0 and len(train) + len(val) == 10
    assert [len(v) for _, v in folds] == [3, 3, 2, 2]
    with pytest.raises(ValueError):
        KFold(1)


def test_load_digits():
    x, y = D.load_digits()
    assert x.shape == (1797, 64) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    assert y.dtype == np.int64 and set(np.unique(y)) == set(range(10))
    images, _ = D.load_digits(flatten=False)
    assert images.shape == (1797, 1, 8, 8)


def _write_idx(path, array, gz):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    blob = header + array.astype(np.uint8).tobytes()
    with (gzip.open if gz else open)(path, "wb") as f:
        f.write(blob)


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_reads_idx_files(tmp_path, gz):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 28, 28))
    labels = np.array([3, 1, 4, 1, 5])
    suffix = ".gz" if gz else ""
    _write_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", images, gz)
    _write_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", labels, gz)
    ds = D.MNIST(tmp_path, train=False)
    assert ds.data.shape == (5, 1, 28, 28) and np.allclose(ds.data[:, 0] * 255, images)
    assert np.array_equal(ds.targets, labels) and len(ds) == 5
    with pytest.raises(FileNotFoundError, match="train-images"):
        D.MNIST(tmp_path, train=True)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "t10k-images-idx3-ubyte").write_bytes(b"garbage!")
    _write_idx(tmp_path / "bad" / "t10k-labels-idx1-ubyte", labels, False)
    with pytest.raises(ValueError, match="IDX"):
        D.MNIST(tmp_path / "bad", train=False)


@pytest.mark.skipif(not __import__("os").path.isdir(D.FASHION_MNIST_ROOT), reason="dataset-fashion-mnist not installed")
def test_fashion_mnist_default_root():
    test = D.FashionMNIST(train=False)
    assert test.data.shape == (10000, 1, 28, 28) and np.array_equal(np.bincount(test.targets), [1000] * 10)


def test_from_csv(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b,label\n1,2,cat\n3,4.5,dog\n5,6,cat\n")
    x, y = D.from_csv(path, target="label")
    assert x.shape == (3, 2) and x.dtype == np.float32 and np.array_equal(y, [0, 1, 0])
    with pytest.raises(ValueError, match="numeric"):
        D.from_csv(path, target="b")
    numbers = tmp_path / "n.csv"
    numbers.write_text("1,2,0.5\n3,4,1.5\n")
    x, y = D.from_csv(numbers)
    assert x.shape == (2, 2) and y.dtype == np.float32 and np.allclose(y, [0.5, 1.5])
    with pytest.raises(ValueError, match="no column 'z'"):
        D.from_csv(path, target="z")
    with pytest.raises(ValueError, match="cannot read"):
        D.from_csv(tmp_path / "missing.csv")


def test_generators_shapes_and_seeds():
    x, y = D.make_moons(100, seed=0)
    assert x.shape == (100, 2) and set(np.unique(y)) == {0, 1}
    assert np.array_equal(D.make_moons(100, seed=0)[0], x)
    x, y = D.make_spirals(90, classes=3, seed=0)
    assert x.shape == (90, 2) and np.array_equal(np.bincount(y), [30, 30, 30])
    x, y = D.make_xor(64, noise=0.0, seed=0)
    assert np.array_equal(y, (x[:, 0] > 0) ^ (x[:, 1] > 0))
    x, y = D.make_regression_1d(np.cos, n=20, noise=0.0, seed=0)
    assert np.allclose(y, np.cos(x), atol=1e-6)
    x, y = D.adding_problem(T=20, n=8, seed=0)
    assert x.shape == (8, 20, 2) and np.all(x[:, :, 1].sum(1) == 2)
    assert np.allclose(y[:, 0], (x[:, :, 0] * x[:, :, 1]).sum(1), atol=1e-6)
    x, y = D.copy_task(T=5, n=4, vocab=6, seed=0)
    assert x.shape == y.shape == (4, 15) and np.array_equal(y[:, 10:], x[:, :5])
    x, y = D.sine_sequences(n=3, T=10, seed=0)
    assert x.shape == (3, 10, 1) and np.array_equal(x[:, 1:], y[:, :-1])
    images, labels, boxes = D.make_shapes(20, size=16, seed=0)
    assert images.shape == (20, 1, 16, 16) and boxes.shape == (20, 4)
    for img, box in zip(images[:, 0], boxes.astype(int)):
        rows, cols = np.nonzero(img)
        assert (cols.min(), rows.min(), cols.max(), rows.max()) == tuple(box) or img.sum() > 0
        assert cols.min() >= box[0] and rows.min() >= box[1] and cols.max() <= box[2] and rows.max() <= box[3]
    rect = images[labels == 1, 0]
    assert np.allclose(rect.sum((1, 2)), ((boxes[labels == 1, 2] - boxes[labels == 1, 0] + 1)
                                          * (boxes[labels == 1, 3] - boxes[labels == 1, 1] + 1)))


@pytest.mark.parametrize("text,needle", [
    ("a,b,label\n1,2,0\n3,,1\n", r"line 3, column 2 \('b'\) is empty"),
    ("a,b,label\n1,2,0\n3,4,\n", r"line 3, column 3 \('label'\) is empty"),
    ("a,b,label\n1,x,0\n", r"line 2, column 2 \('b'\): 'x' is not a number"),
    ("a,b,label\n1,inf,0\n", r"line 2, column 2 \('b'\): 'inf' is not a finite"),
    ("a,b,label\n\n1,2,0\nNaN,2,1\n", r"line 4, column 1 \('a'\): 'NaN' is not a finite"),
    ("a,b,label\n1,1e400,0\n", r"column 2 \('b'\): '1e400'"),
    ("a,b,label\n1,1e39,0\n", r"'1e39' is not a finite float32"),
    ("a,b,label\n1,2,1e400\n", r"column 3 \('label'\): the target '1e400'"),
    ("1,2\n3,4,5\n", r"line 2 of .* has 3 fields, expected 2"),
])
def test_from_csv_names_line_and_column_of_bad_cells(tmp_path, text, needle):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=needle):
        D.from_csv(path, target=-1)
