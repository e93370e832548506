"""Data augmentation and noise injection, vectorised over the batch.

Every transform is a callable on a batch: ``t(x)`` returns the new ``x``, ``t(x, y)`` returns
``(x, y)`` (extra fields, such as sample weights, pass through unchanged). Images are batches in
NCHW layout (``(N, C, H, W)``, or ``(N, H, W)`` for one channel); feature transforms accept any
``(N, ...)``. The input is never modified in place. A transform built with ``seed=`` draws from
its own generator (its state is saved in checkpoints through the DataLoader); without one it
draws from rosenblatt's global generator, so ``rb.manual_seed`` makes it reproducible.

Give a transform (or a :class:`Compose` of several) to ``DataLoader(..., transform=...)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def _as_array(x: Any) -> tuple[np.ndarray, bool]:
    from rosenblatt.core import Tensor

    if isinstance(x, Tensor):
        return x.data, True
    return np.asarray(x), False


def _image_view(x: np.ndarray, name: str) -> np.ndarray:
    """``x`` as ``(N, C, H, W)`` (a view), accepting ``(N, H, W)``."""
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4:
        return x
    raise ValueError(f"{name}: expected a batch of images (N, C, H, W) or (N, H, W), got shape {x.shape}")


def _float(x: np.ndarray, name: str) -> np.ndarray:
    if x.dtype.kind != "f":
        raise TypeError(f"{name}: expected floating-point inputs, got dtype {x.dtype}")
    return x


class Transform:
    """Base class: subclasses implement ``apply(x, y, rng) -> (x, y)`` on NumPy arrays."""

    def __init__(self, seed: int | None = None) -> None:
        if seed is not None and (not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"{type(self).__name__}: seed must be a non-negative integer or None, got {seed!r}")
        self._own_rng = None if seed is None else np.random.Generator(np.random.PCG64(int(seed)))

    @property
    def rng(self) -> np.random.Generator:
        """The generator this transform draws from."""
        if self._own_rng is not None:
            return self._own_rng
        from rosenblatt.random import generator

        return generator()

    def apply(self, x: np.ndarray, y: Any) -> tuple[np.ndarray, Any]:
        """Transform the batch ``x`` (and labels ``y``); subclasses implement it, ``__call__`` handles tensors and seeding."""
        raise NotImplementedError

    def __call__(self, x: Any, y: Any = None, *rest: Any) -> Any:
        array, was_tensor = _as_array(x)
        if array.ndim == 0:
            raise ValueError(f"{type(self).__name__}: expected a batch (N, ...), got a scalar")
        label = None if y is None else _as_array(y)
        new_x, new_y = self.apply(array, None if label is None else label[0])
        if was_tensor:
            from rosenblatt.core import Tensor

            new_x = Tensor(new_x)
        if label is not None and label[1]:
            from rosenblatt.core import Tensor

            new_y = Tensor(new_y)
        if y is None and not rest:
            return new_x
        return (new_x, new_y, *rest)

    def state_dict(self) -> dict[str, Any]:
        """The state of the transform's own generator (empty when it uses the global one)."""
        return {} if self._own_rng is None else {"rng": self._own_rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state returned by :meth:`state_dict`."""
        if self._own_rng is not None and "rng" in state:
            self._own_rng.bit_generator.state = state["rng"]

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({params})"


class Compose(Transform):
    """Apply several transforms in order: ``Compose([RandomCrop(28, 2), GaussianNoise(0.1)])``."""

    def __init__(self, transforms: Sequence[Any]) -> None:
        super().__init__()
        self.transforms = list(transforms)
        for t in self.transforms:
            if not callable(t):
                raise TypeError(f"Compose: expected callables, got {type(t).__name__}")

    def __call__(self, x: Any, y: Any = None, *rest: Any) -> Any:
        out = (x, y, *rest)
        for t in self.transforms:
            if out[1] is None and len(out) == 2:
                out = (t(out[0]), None)
            else:
                result = t(*out)
                out = result if isinstance(result, tuple) else (result, *out[1:])
        return out[0] if (y is None and not rest) else out

    def state_dict(self) -> dict[str, Any]:
        return {"transforms": [t.state_dict() if hasattr(t, "state_dict") else {} for t in self.transforms]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for t, s in zip(self.transforms, state.get("transforms", [])):
            if hasattr(t, "load_state_dict"):
                t.load_state_dict(s)


class Normalize(Transform):
    """``(x - mean) / std`` per channel (images) or per feature (2-D inputs).

    The channel axis is axis 1 of a batch ``(N, C, H, W)`` or of features ``(N, F)``. A 3-D input is
    one image ``(C, H, W)`` as in torchvision (channels on axis 0) when its first axis has one entry
    per mean; otherwise a batch ``(N, C, L)`` (channels on axis 1).

    Args:
        mean, std: scalars, or one value per channel/feature.
    """

    def __init__(self, mean: float | Sequence[float], std: float | Sequence[float]) -> None:
        super().__init__()
        self.mean = np.asarray(mean, dtype=np.float64)
        self.std = np.asarray(std, dtype=np.float64)
        if np.any(self.std <= 0):
            raise ValueError(f"Normalize: std must be positive, got {std!r}")

    def apply(self, x, y):
        """Subtract the per-channel mean and divide by the standard deviation."""
        x = _float(x, "Normalize")
        shape = [1] * x.ndim
        if self.mean.ndim or self.std.ndim:
            size = max(self.mean.size, self.std.size)
            axis = 0 if x.ndim == 3 and x.shape[0] == size else 1
            if x.ndim < 2 or x.shape[axis] != size:
                raise ValueError(f"Normalize: {size} means/stds need {size} channels, on axis 1 of a batch "
                                 f"(N, C, ...) or axis 0 of one image (C, H, W), got input shape {x.shape}")
            shape[axis] = size
        mean = self.mean.reshape(shape).astype(x.dtype) if self.mean.ndim else x.dtype.type(self.mean)
        std = self.std.reshape(shape).astype(x.dtype) if self.std.ndim else x.dtype.type(self.std)
        return (x - mean) / std, y


class RandomCrop(Transform):
    """Pad each image by ``padding`` zeros, then cut a ``size`` window at a random place per image.

    Args:
        size: output ``(height, width)``, or one int for a square.
        padding: zeros added on every side first (the classic CIFAR "pad 4, crop 32").
    """

    def __init__(self, size: int | tuple[int, int], padding: int = 0, seed: int | None = None) -> None:
        super().__init__(seed)
        self.size = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
        self.padding = int(padding)

    def apply(self, x, y):
        """Pad each image, then crop it back at a random offset drawn per sample."""
        images = _image_view(x, "RandomCrop")
        p = self.padding
        if p:
            images = np.pad(images, ((0, 0), (0, 0), (p, p), (p, p)))
        n, _, height, width = images.shape
        h, w = self.size
        if h > height or w > width:
            raise ValueError(f"RandomCrop: crop {self.size} is larger than the padded image {(height, width)}")
        top = self.rng.integers(0, height - h + 1, size=n)
        left = self.rng.integers(0, width - w + 1, size=n)
        windows = np.lib.stride_tricks.sliding_window_view(images, (h, w), axis=(2, 3))
        out = windows[np.arange(n), :, top, left]  # (N, C, h, w): one fancy index for the batch
        return (out[:, 0] if x.ndim == 3 else out), y


class RandomHorizontalFlip(Transform):
    """Mirror each image left-right with probability ``p``."""

    def __init__(self, p: float = 0.5, seed: int | None = None) -> None:
        super().__init__(seed)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p}")
        self.p = p

    def apply(self, x, y):
        """Mirror a random subset of the images left to right."""
        if x.ndim < 3:
            raise ValueError(f"RandomHorizontalFlip: expected images (N, [C,] H, W), got shape {x.shape}")
        flip = self.rng.random(x.shape[0]) < self.p
        return np.where(flip.reshape((-1,) + (1,) * (x.ndim - 1)), x[..., ::-1], x), y


class RandomRotation(Transform):
    """Rotate each image by a random angle (bilinear interpolation, zeros outside).

    Args:
        degrees: angles are drawn uniformly from ``[-degrees, degrees]``, or from ``(low, high)``.
        fill: value of pixels that come from outside the image.
    """

    def __init__(self, degrees: float | tuple[float, float], fill: float = 0.0, seed: int | None = None) -> None:
        super().__init__(seed)
        self.degrees = (-abs(degrees), abs(degrees)) if np.isscalar(degrees) else tuple(degrees)
        self.fill = fill

    def apply(self, x, y):
        """Rotate each image by its own random angle (nearest-neighbour resampling)."""
        images = _image_view(_float(x, "RandomRotation"), "RandomRotation")
        n, c, h, w = images.shape
        angle = np.deg2rad(self.rng.uniform(self.degrees[0], self.degrees[1], size=n))
        cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
        cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
        rows, cols = np.meshgrid(np.arange(h) - cy, np.arange(w) - cx, indexing="ij")
        # Inverse mapping: where in the source image each output pixel comes from.
        src_y = cos * rows - sin * cols + cy
        src_x = sin * rows + cos * cols + cx
        y0, x0 = np.floor(src_y).astype(np.int64), np.floor(src_x).astype(np.int64)
        wy, wx = (src_y - y0).astype(x.dtype), (src_x - x0).astype(x.dtype)
        padded = np.pad(images, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=self.fill)
        # Corners outside the image read the fill border (index 0 or h+1 of the padded image).
        yi0, yi1 = np.clip(y0 + 1, 0, h + 1), np.clip(y0 + 2, 0, h + 1)
        xi0, xi1 = np.clip(x0 + 1, 0, w + 1), np.clip(x0 + 2, 0, w + 1)
        batch = np.arange(n)[:, None, None]

        def at(r, q):  # (N, H, W, C) -> (N, C, H, W)
            return np.moveaxis(padded[batch, :, r, q], -1, 1)

        wy, wx = wy[:, None], wx[:, None]
        out = ((1 - wy) * ((1 - wx) * at(yi0, xi0) + wx * at(yi0, xi1))
               + wy * ((1 - wx) * at(yi1, xi0) + wx * at(yi1, xi1)))
        out = out.astype(x.dtype, copy=False)
        return (out[:, 0] if x.ndim == 3 else out), y


class ColorShift(Transform):
    """Add a random shift per image and per channel (RGB colour nuance), uniform in ``±max_shift``."""

    def __init__(self, max_shift: float = 0.1, seed: int | None = None) -> None:
        super().__init__(seed)
        self.max_shift = float(max_shift)

    def apply(self, x, y):
        """Add a random offset per sample and channel (a colour nuance)."""
        images = _image_view(_float(x, "ColorShift"), "ColorShift")
        n, c = images.shape[:2]
        shift = self.rng.uniform(-self.max_shift, self.max_shift, size=(n, c, 1, 1)).astype(x.dtype)
        out = images + shift
        return (out[:, 0] if x.ndim == 3 else out), y


class ContrastChange(Transform):
    """Scale each image's deviation from its own mean by a factor drawn from ``[low, high]``."""

    def __init__(self, low: float = 0.5, high: float = 1.5, seed: int | None = None) -> None:
        super().__init__(seed)
        if not 0 <= low <= high:
            raise ValueError(f"ContrastChange: expected 0 <= low <= high, got low={low}, high={high}")
        self.low, self.high = low, high

    def apply(self, x, y):
        """Scale each image around its mean by a random contrast factor."""
        x = _float(x, "ContrastChange")
        axes = tuple(range(1, x.ndim))
        factor = self.rng.uniform(self.low, self.high, size=(x.shape[0],) + (1,) * (x.ndim - 1)).astype(x.dtype)
        mean = x.mean(axis=axes, keepdims=True)
        return (x - mean) * factor + mean, y


class BrightnessChange(Transform):
    """Add one random offset per image (all channels), uniform in ``±max_delta``."""

    def __init__(self, max_delta: float = 0.2, seed: int | None = None) -> None:
        super().__init__(seed)
        self.max_delta = float(max_delta)

    def apply(self, x, y):
        """Add a random brightness offset per sample."""
        x = _float(x, "BrightnessChange")
        delta = self.rng.uniform(-self.max_delta, self.max_delta, size=(x.shape[0],) + (1,) * (x.ndim - 1))
        return x + delta.astype(x.dtype), y


class GaussianNoise(Transform):
    """Add independent ``N(0, std²)`` noise to every input value."""

    def __init__(self, std: float = 0.1, seed: int | None = None) -> None:
        super().__init__(seed)
        if std < 0:
            raise ValueError(f"GaussianNoise: std must be >= 0, got {std}")
        self.std = float(std)

    def apply(self, x, y):
        """Add independent Gaussian noise to every value (noise injection)."""
        x = _float(x, "GaussianNoise")
        return x + (self.std * self.rng.standard_normal(x.shape)).astype(x.dtype), y


class RandomOcclusion(Transform):
    """With probability ``p`` per image, paint a random ``size x size`` patch with ``value``.

    ``size=1`` occludes a single pixel; the patch always lies inside the image.
    """

    def __init__(self, size: int = 4, p: float = 0.5, value: float = 0.0, seed: int | None = None) -> None:
        super().__init__(seed)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomOcclusion: p must be in [0, 1], got {p}")
        self.size, self.p, self.value = int(size), p, value

    def apply(self, x, y):
        """Blank out a random patch in a random subset of the images."""
        images = _image_view(x, "RandomOcclusion")
        n, _, h, w = images.shape
        s = self.size
        if s > min(h, w):
            raise ValueError(f"RandomOcclusion: patch size {s} is larger than the image {(h, w)}")
        top = self.rng.integers(0, h - s + 1, size=n)[:, None, None]
        left = self.rng.integers(0, w - s + 1, size=n)[:, None, None]
        hit = (self.rng.random(n) < self.p)[:, None, None]
        rows, cols = np.arange(h)[None, :, None], np.arange(w)[None, None, :]
        mask = hit & (rows >= top) & (rows < top + s) & (cols >= left) & (cols < left + s)
        out = np.where(mask[:, None], images.dtype.type(self.value), images)
        return (out[:, 0] if x.ndim == 3 else out), y


class FeatureDropout(Transform):
    """Set each input feature (pixel, bit) to ``value`` with probability ``p`` (no rescaling).

    Unlike ``nn.Dropout`` this is noise on the data: it models missing or corrupted inputs.
    """

    def __init__(self, p: float = 0.1, value: float = 0.0, seed: int | None = None) -> None:
        super().__init__(seed)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"FeatureDropout: p must be in [0, 1], got {p}")
        self.p, self.value = p, value

    def apply(self, x, y):
        """Zero each input feature (or bit) independently with probability ``p``."""
        drop = self.rng.random(x.shape) < self.p
        return np.where(drop, x.dtype.type(self.value), x), y


class LabelFlip(Transform):
    """Replace each label, with probability ``p``, by a different class drawn uniformly (label noise).

    Labels may be class indices ``(N,)``, binary ``{0, 1}`` values (``num_classes=2``, also as
    floats ``(N, 1)``) or one-hot rows ``(N, num_classes)``.
    """

    def __init__(self, p: float = 0.1, num_classes: int = 2, seed: int | None = None) -> None:
        super().__init__(seed)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"LabelFlip: p must be in [0, 1], got {p}")
        if num_classes < 2:
            raise ValueError(f"LabelFlip: num_classes must be >= 2, got {num_classes}")
        self.p, self.num_classes = p, int(num_classes)

    def __call__(self, x: Any, y: Any = None, *rest: Any) -> Any:
        if y is None:
            raise ValueError("LabelFlip: needs labels; call it as transform(x, y)")
        return super().__call__(x, y, *rest)

    def apply(self, x, y):
        """Replace a random fraction of the labels by other classes (label noise); ``x`` is unchanged."""
        k = self.num_classes
        one_hot = y.ndim == 2 and y.shape[1] == k and k > 1
        labels = y.argmax(axis=1) if one_hot else y.reshape(y.shape[0], -1)[:, 0].astype(np.int64)
        flip = self.rng.random(labels.shape[0]) < self.p
        # A uniform *different* class: add 1..k-1 modulo k.
        new = np.where(flip, (labels + self.rng.integers(1, k, size=labels.shape[0])) % k, labels)
        if one_hot:
            out = np.zeros_like(y)
            out[np.arange(y.shape[0]), new] = 1
            return x, out
        return x, new.astype(y.dtype).reshape(y.shape)


__all__ = ["BrightnessChange", "ColorShift", "Compose", "ContrastChange", "FeatureDropout", "GaussianNoise",
           "LabelFlip", "Normalize", "RandomCrop", "RandomHorizontalFlip", "RandomOcclusion", "RandomRotation",
           "Transform"]
