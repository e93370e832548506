"""rb.data.transforms: seeded, shape-preserving, vectorised, and doing what they say."""

from __future__ import annotations

import numpy as np
import pytest

import rosenblatt as rb
from rosenblatt.data import DataLoader, TensorDataset
from rosenblatt.data import transforms as T

IMAGE_TRANSFORMS = [
    lambda s: T.RandomCrop(8, padding=2, seed=s),
    lambda s: T.RandomHorizontalFlip(0.5, seed=s),
    lambda s: T.RandomRotation(30, seed=s),
    lambda s: T.ColorShift(0.2, seed=s),
    lambda s: T.ContrastChange(0.5, 1.5, seed=s),
    lambda s: T.BrightnessChange(0.3, seed=s),
    lambda s: T.GaussianNoise(0.1, seed=s),
    lambda s: T.RandomOcclusion(3, p=0.7, seed=s),
    lambda s: T.FeatureDropout(0.3, seed=s),
]


def _images(n=16, c=3, h=8, w=8):
    return np.random.default_rng(0).random((n, c, h, w)).astype(np.float32)


@pytest.mark.parametrize("make", IMAGE_TRANSFORMS)
def test_seeded_shape_preserving_and_not_in_place(make):
    x = _images()
    before = x.copy()
    a, b = make(1)(x), make(1)(x)
    assert a.shape == x.shape and a.dtype == x.dtype
    assert np.array_equal(a, b)  # same seed, same result
    assert not np.array_equal(make(2)(x), a)  # another seed, another result
    assert np.array_equal(x, before)
    t = make(3)
    assert not np.array_equal(t(x), t(x))  # the generator advances
    # (N, H, W) batches work too.
    assert make(1)(x[:, 0]).shape == x[:, 0].shape


def test_global_generator_when_unseeded():
    x = _images()
    rb.manual_seed(4)
    a = T.GaussianNoise(0.1)(x)
    rb.manual_seed(4)
    assert np.array_equal(T.GaussianNoise(0.1)(x), a)


def test_crop_without_padding_and_flip_exact():
    x = _images(n=5)
    assert np.array_equal(T.RandomCrop(8)(x), x)
    crop = T.RandomCrop((4, 5), seed=0)(x)
    assert crop.shape == (5, 3, 4, 5)
    for i in range(5):  # every crop is a window of its own image
        windows = np.lib.stride_tricks.sliding_window_view(x[i], (4, 5), axis=(1, 2))
        assert any(np.array_equal(windows[:, r, c], crop[i]) for r in range(5) for c in range(4))
    flipped = T.RandomHorizontalFlip(1.0)(x)
    assert np.array_equal(flipped, x[..., ::-1])
    assert np.array_equal(T.RandomHorizontalFlip(0.0)(x), x)


def test_rotation_by_right_angle_is_exact():
    x = _images(n=2, c=1)
    rotated = T.RandomRotation((90, 90))(x)
    options = [np.rot90(x, k, axes=(2, 3)) for k in (1, -1)]
    assert any(np.allclose(rotated, o, atol=1e-5) for o in options)
    assert np.allclose(T.RandomRotation((0, 0))(x), x, atol=1e-6)


def test_value_transforms():
    x = _images(n=64)
    assert np.allclose(T.Normalize([0.5] * 3, [0.25] * 3)(x), (x - 0.5) / 0.25)
    # One image (C, H, W), as torchvision's Normalize takes it: channels on axis 0.
    mean, std = np.array([0.1, 0.2, 0.3]), np.array([0.5, 1.0, 2.0])
    image = x[0]
    assert np.allclose(T.Normalize(mean, std)(image), (image - mean[:, None, None]) / std[:, None, None], atol=1e-6)
    with pytest.raises(ValueError, match="Normalize: 3 means/stds need 3 channels.*got input shape \\(2, 5, 5\\)"):
        T.Normalize(mean, std)(x[:2, 0, :5, :5])
    shifted = T.ColorShift(0.2, seed=0)(x) - x  # one constant per image and channel
    assert np.allclose(shifted, shifted[:, :, :1, :1], atol=1e-6) and np.abs(shifted).max() <= 0.2
    bright = T.BrightnessChange(0.3, seed=0)(x) - x
    assert np.allclose(bright, bright[:, :1, :1, :1], atol=1e-6)
    contrast = T.ContrastChange(0.5, 1.5, seed=0)(x)
    assert np.allclose(contrast.mean(axis=(1, 2, 3)), x.mean(axis=(1, 2, 3)), atol=1e-5)
    noise = T.GaussianNoise(0.5, seed=0)(np.zeros((200, 50), np.float32))
    assert abs(noise.std() - 0.5) < 0.02
    dropped = T.FeatureDropout(0.3, seed=0)(np.ones((100, 100), np.float32))
    assert abs((dropped == 0).mean() - 0.3) < 0.02
    occluded = T.RandomOcclusion(3, p=1.0, seed=0)(np.ones((10, 1, 8, 8), np.float32))
    assert np.all((occluded == 0).sum(axis=(1, 2, 3)) == 9)


def test_label_flip():
    x = np.zeros((1000, 2), np.float32)
    y = np.random.default_rng(0).integers(0, 5, size=1000)
    x2, y2 = T.LabelFlip(0.3, num_classes=5, seed=0)(x, y)
    assert x2 is x or np.array_equal(x2, x)
    changed = y2 != y
    assert abs(changed.mean() - 0.3) < 0.05 and y2.min() >= 0 and y2.max() < 5
    one_hot = np.eye(5)[y]
    _, flipped = T.LabelFlip(1.0, num_classes=5, seed=0)(x, one_hot)
    assert np.all(flipped.sum(1) == 1) and not np.any(flipped.argmax(1) == y)
    binary = np.ones((100, 1), np.float32)
    _, b = T.LabelFlip(1.0, num_classes=2, seed=0)(np.zeros((100, 1)), binary)
    assert np.all(b == 0) and b.dtype == np.float32
    with pytest.raises(ValueError, match="labels"):
        T.LabelFlip(0.1)(x)


def test_compose_in_a_loader_is_reproducible_and_resumable():
    x, y = _images(n=20), np.arange(20)

    def make():
        aug = T.Compose([T.RandomCrop(8, padding=1, seed=0), T.RandomHorizontalFlip(seed=1), T.GaussianNoise(0.05, seed=2)])
        return DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True, seed=0, transform=aug)

    a, b = make(), make()
    first = [batch[0].numpy() for batch in a]
    assert all(np.array_equal(p, q[0].numpy()) for p, q in zip(first, b))
    state = a.state_dict()
    c = make()
    c.load_state_dict(state)
    assert all(np.array_equal(p[0].numpy(), q[0].numpy()) for p, q in zip(a, c))


def test_bad_inputs():
    with pytest.raises(ValueError, match="RandomCrop"):
        T.RandomCrop(10)(_images())
    with pytest.raises(ValueError, match="images"):
        T.RandomRotation(10)(np.zeros((4, 5), np.float32))
    with pytest.raises(ValueError, match="p must"):
        T.RandomHorizontalFlip(2.0)
    with pytest.raises(TypeError, match="floating"):
        T.GaussianNoise(0.1)(np.zeros((2, 3), np.int64))
