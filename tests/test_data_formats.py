"""Users' file formats read back exactly: HDF5 (h5py), ROOT ntuples (uproot + awkward, jagged
branches padded with a mask), folders of images (Pillow); and the DataLoader's background
prefetching, which must give the very batches, in the very order, of ``num_workers=0``."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import rosenblatt as rb
from rosenblatt.data import DataLoader
from rosenblatt.data.datasets import HDF5Dataset, ImageFolder, ROOTDataset

# -- HDF5 -----------------------------------------------------------------------------------------


@pytest.fixture
def h5_file(tmp_path):
    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((103, 2, 4, 4)).astype(np.float32)
    y = rng.integers(0, 5, 103).astype(np.int64)
    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("group/x", data=x, chunks=(8, 2, 4, 4))
        f.create_dataset("y", data=y)
        f.create_dataset("short", data=y[:10])
    return path, x, y


def test_hdf5_dataset_reads_back_exactly(h5_file):
    path, x, y = h5_file
    data = HDF5Dataset(path, "group/x", "y")
    assert len(data) == 103 and "group/x: (103, 2, 4, 4)" in repr(data)
    xi, yi = data[7]
    np.testing.assert_array_equal(xi, x[7])
    assert yi == y[7]
    np.testing.assert_array_equal(data[-1][0], x[-1])
    for index in (np.array([5, 3, 3, 90, 0]), np.arange(10, 20), np.array([], dtype=np.int64),
                  np.array([100, 2, 51])):  # unsorted, repeated, dense, empty, sparse
        xb, yb = data[index]
        np.testing.assert_array_equal(xb, x[index])
        np.testing.assert_array_equal(yb, y[index])
    loader = DataLoader(data, batch_size=16, shuffle=True, seed=3)
    xs, ys = zip(*[(b[0].numpy(), b[1].numpy()) for b in loader])
    order = np.random.Generator(np.random.PCG64([3, 0])).permutation(103)
    np.testing.assert_array_equal(np.concatenate(xs), x[order])
    np.testing.assert_array_equal(np.concatenate(ys), y[order])
    inputs_only = HDF5Dataset(path, "group/x")
    np.testing.assert_array_equal(inputs_only[[1, 2]], x[[1, 2]])
    data.close()
    np.testing.assert_array_equal(data[3][0], x[3])  # reopens


def test_hdf5_dataset_is_lazy(h5_file, monkeypatch):
    path, x, _ = h5_file
    data = HDF5Dataset(path, "group/x", "y")
    reads = []
    dataset_cls = type(data._datasets()[0])
    original = dataset_cls.__getitem__

    def spy(self, key):
        out = original(self, key)
        reads.append(np.asarray(out).size)
        return out

    monkeypatch.setattr(dataset_cls, "__getitem__", spy)
    data[np.array([4, 6])]
    assert max(reads) <= 3 * 32  # a few rows, never the whole (103 x 32) dataset


def test_hdf5_dataset_errors(h5_file, tmp_path):
    path, _, _ = h5_file
    with pytest.raises(ValueError, match=r"has no dataset 'nope' \(datasets: group/x, short, y\)"):
        HDF5Dataset(path, "nope")
    with pytest.raises(ValueError, match=r"differ in length"):
        HDF5Dataset(path, "group/x", "short")
    (tmp_path / "bad.h5").write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match=r"cannot open .* as HDF5"):
        HDF5Dataset(tmp_path / "bad.h5", "x")
    with pytest.raises(IndexError, match=r"index 103 is out of range"):
        HDF5Dataset(path, "group/x")[103]


# -- ROOT -----------------------------------------------------------------------------------------


@pytest.fixture
def root_file(tmp_path):
    uproot = pytest.importorskip("uproot")
    ak = pytest.importorskip("awkward")
    rng = np.random.default_rng(1)
    counts = np.array([3, 0, 5, 1, 7, 2])
    pt = ak.unflatten(rng.uniform(1, 50, counts.sum()).astype(np.float32), counts)
    eta = ak.unflatten(rng.normal(size=counts.sum()), counts)
    other = ak.unflatten(rng.normal(size=counts.sum() + 1), np.append(counts[:-1], counts[-1] + 1))
    events = {
        "pt": pt, "eta": eta, "other": other,
        "mass": rng.uniform(10, 100, 6).astype(np.float64),
        "ntrk": counts.astype(np.int32),
        "label": np.array([0, 1, 1, 0, 1, 0], dtype=np.int32),
        "weight": rng.uniform(0, 1, 6),
    }
    path = tmp_path / "jets.root"
    with uproot.recreate(path) as f:
        f["jets"] = events
    return path, events, counts


def test_root_dataset_flat_branches(root_file):
    path, events, _ = root_file
    data = ROOTDataset(path, "jets", ["mass", "ntrk"], target="label")
    x, y = data[np.arange(6)]
    np.testing.assert_array_equal(x, np.stack([events["mass"], events["ntrk"]], 1).astype(np.float32))
    np.testing.assert_array_equal(y, events["label"])
    assert x.dtype == np.float32 and y.dtype == np.int64
    _, w = ROOTDataset(path, "jets", "mass", target="weight")[2]
    assert w.dtype == np.float32 and w == np.float32(events["weight"][2])


def test_root_dataset_pads_jagged_branches_with_a_mask(root_file):
    path, events, counts = root_file
    data = ROOTDataset(path, "jets", ["pt", "eta"], target="label")
    assert data.max_len == 7 and len(data) == 6
    x, mask, y = data[np.arange(6)]
    assert x.shape == (6, 7, 2) and mask.shape == (6, 7) and mask.dtype == np.bool_
    for i, n in enumerate(counts):
        np.testing.assert_array_equal(mask[i], np.arange(7) < n)
        np.testing.assert_array_equal(x[i, :n, 0], np.asarray(events["pt"][i], dtype=np.float32))
        np.testing.assert_array_equal(x[i, :n, 1], np.asarray(events["eta"][i], dtype=np.float32))
        assert np.all(x[i, n:] == 0)
    np.testing.assert_array_equal(y, events["label"])
    # cut to max_len, with flat features beside the jagged ones
    x, mask, scalars, y = ROOTDataset(path, "jets", ["pt", "mass"], target="label", max_len=4)[np.arange(6)]
    assert x.shape == (6, 4, 1) and mask.sum(1).tolist() == np.minimum(counts, 4).tolist()
    np.testing.assert_array_equal(x[4, :, 0], np.asarray(events["pt"][4][:4], dtype=np.float32))
    np.testing.assert_array_equal(scalars[:, 0], events["mass"].astype(np.float32))
    batches = list(DataLoader(ROOTDataset(path, "jets", ["pt"]), batch_size=4))
    assert [tuple(t.shape) for t in batches[0]] == [(4, 7, 1), (4, 7)]


def test_root_dataset_errors(root_file):
    path, _, _ = root_file
    with pytest.raises(ValueError, match=r"has no tree 'events' \(trees: jets\)"):
        ROOTDataset(path, "events", ["pt"])
    with pytest.raises(ValueError, match=r"tree 'jets' has no branch 'nope'"):
        ROOTDataset(path, "jets", ["pt", "nope"])
    with pytest.raises(ValueError, match=r"jagged branches 'pt' and 'other' differ in length"):
        ROOTDataset(path, "jets", ["pt", "other"])
    with pytest.raises(ValueError, match=r"target 'pt' must be a flat branch"):
        ROOTDataset(path, "jets", ["mass"], target="pt")


# -- image folders --------------------------------------------------------------------------------


def test_image_folder_reads_back_exactly(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(2)
    written = {}
    for cls in ("dog", "cat"):
        (tmp_path / cls / "sub").mkdir(parents=True)
        for i in range(3):
            pixels = rng.integers(0, 256, (5, 6, 3), dtype=np.uint8)
            name = tmp_path / cls / ("sub" if i == 2 else "") / f"{i}.png"
            Image.fromarray(pixels).save(name)
            written[str(name)] = pixels
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    data = ImageFolder(tmp_path)
    assert data.classes == ["cat", "dog"] and data.class_to_idx == {"cat": 0, "dog": 1}
    assert len(data) == 6 and data.targets.tolist() == [0, 0, 0, 1, 1, 1]
    for i, (path, label) in enumerate(data.samples):
        x, y = data[i]
        assert x.dtype == np.float32 and x.shape == (3, 5, 6) and y == label
        np.testing.assert_array_equal(np.round(x * 255).astype(np.uint8), written[path].transpose(2, 0, 1))
    grey = ImageFolder(tmp_path, transform=lambda x: x[:, :4, :4], mode="L")
    assert grey[0][0].shape == (1, 4, 4)
    xb, yb = next(iter(DataLoader(data, batch_size=4)))
    assert xb.shape == (4, 3, 5, 6) and yb.numpy().tolist() == [0, 0, 0, 1]


def test_image_folder_errors(tmp_path):
    pytest.importorskip("PIL")
    with pytest.raises(FileNotFoundError, match=r"does not exist"):
        ImageFolder(tmp_path / "missing")
    with pytest.raises(ValueError, match=r"no class sub-folders"):
        ImageFolder(tmp_path)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"cannot read image"):
        ImageFolder(tmp_path)[0]


# -- DataLoader prefetching -----------------------------------------------------------------------


class _SlowDataset(rb.data.Dataset):
    """Reads take a little while and remember which thread did them."""

    def __init__(self, n):
        self.x = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
        self.threads = set()

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        self.threads.add(threading.current_thread().name)
        time.sleep(0.001)
        return self.x[i], np.int64(i % 4)


@pytest.mark.parametrize("num_workers", [1, 3])
def test_prefetching_gives_the_same_batches_in_the_same_order(num_workers):
    def run(workers, dataset, transform=None):
        loader = DataLoader(dataset, batch_size=7, shuffle=True, seed=5, num_workers=workers, transform=transform)
        return [[[t.numpy() for t in batch] for batch in loader] for _ in range(2)]  # two epochs

    dataset = _SlowDataset(40)
    expected = run(0, dataset)
    assert dataset.threads == {threading.current_thread().name}
    dataset.threads.clear()
    got = run(num_workers, dataset)
    assert all(name.startswith("rosenblatt-loader") for name in dataset.threads)
    assert len(got) == len(expected) == 2
    for epoch_got, epoch_expected in zip(got, expected):
        assert len(epoch_got) == len(epoch_expected) == 6
        for a, b in zip(epoch_got, epoch_expected):
            for u, v in zip(a, b):
                np.testing.assert_array_equal(u, v)
    # a random transform draws its numbers in the calling thread, in batch order
    from rosenblatt.data.transforms import GaussianNoise

    noisy = run(num_workers, dataset, GaussianNoise(0.1, seed=1))
    noisy0 = run(0, dataset, GaussianNoise(0.1, seed=1))
    for a, b in zip(noisy[0], noisy0[0]):
        np.testing.assert_array_equal(a[0], b[0])


def test_prefetching_stops_cleanly_when_the_loop_breaks():
    before = threading.active_count()
    loader = DataLoader(_SlowDataset(100), batch_size=2, num_workers=2)
    for i, _ in enumerate(loader):
        if i == 3:
            break
    import gc

    gc.collect()
    deadline = time.time() + 5
    while threading.active_count() > before and time.time() < deadline:
        time.sleep(0.01)
    assert threading.active_count() <= before
    with pytest.raises(ValueError, match=r"num_workers must be an integer >= 0"):
        DataLoader(_SlowDataset(3), num_workers=-1)
