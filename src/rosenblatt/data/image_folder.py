"""``ImageFolder``: a folder of images sorted into one sub-folder per class (Pillow)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from rosenblatt.data.dataset import Dataset

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def _require_pillow() -> Any:
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("ImageFolder needs Pillow: pip install 'rosenblatt[images]' (or pip install Pillow)") from None
    return Image


class ImageFolder(Dataset):
    """Images in ``root/<class name>/<file>``, labelled by their folder (torchvision's layout).

    Classes are the sub-folder names in sorted order (``classes``, ``class_to_idx``); images are
    every file with an image extension below a class folder, in sorted order (``samples``:
    ``(path, class index)`` pairs; ``targets``). Each sample is ``(x, y)``: ``x`` a float32 array
    ``(C, H, W)`` scaled to [0, 1], ``y`` the int64 class index. Images are read when indexed.

    Args:
        root: the folder of class folders.
        transform: called on each image array ``(C, H, W)``; returns the array to use.
        mode: the Pillow mode images are converted to: ``"RGB"`` (3 channels, the default) or
            ``"L"`` (greyscale, 1 channel), ``"RGBA"``...
        extensions: the file name endings that count as images.
    """

    def __init__(self, root: str | os.PathLike, transform: Callable[[np.ndarray], Any] | None = None, *,
                 mode: str = "RGB", extensions: Sequence[str] = IMAGE_EXTENSIONS) -> None:
        _require_pillow()
        self.root = os.fspath(root)
        if not os.path.isdir(self.root):
            raise FileNotFoundError(f"ImageFolder: folder '{self.root}' does not exist")
        self.classes = sorted(e.name for e in os.scandir(self.root) if e.is_dir())
        if not self.classes:
            raise ValueError(f"ImageFolder: '{self.root}' has no class sub-folders (expected root/<class>/<image>)")
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}
        extensions = tuple(e.lower() for e in extensions)
        self.samples: list[tuple[str, int]] = []
        for name in self.classes:
            folder = os.path.join(self.root, name)
            for directory, subdirs, files in sorted(os.walk(folder, followlinks=True)):
                subdirs.sort()
                for file in sorted(files):
                    if file.lower().endswith(extensions):
                        self.samples.append((os.path.join(directory, file), self.class_to_idx[name]))
        if not self.samples:
            raise ValueError(f"ImageFolder: no images ({', '.join(extensions)}) under '{self.root}'")
        self.targets = np.array([label for _, label in self.samples], dtype=np.int64)
        self.transform = transform
        self.mode = mode

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, path: str) -> np.ndarray:
        """One image file as a float32 ``(C, H, W)`` array in [0, 1]."""
        Image = _require_pillow()
        try:
            with Image.open(path) as image:
                array = np.asarray(image.convert(self.mode))
        except OSError as exc:
            raise ValueError(f"ImageFolder: cannot read image '{path}': {exc}") from None
        if array.ndim == 2:
            array = array[:, :, None]
        scale = 65535.0 if array.dtype == np.uint16 else 255.0
        return np.ascontiguousarray(array.transpose(2, 0, 1), dtype=np.float32) / np.float32(scale)

    def __getitem__(self, index: int) -> tuple[Any, np.int64]:
        path, label = self.samples[index]
        x = self.load(path)
        if self.transform is not None:
            x = self.transform(x)
        return x, np.int64(label)

    def __repr__(self) -> str:
        return f"ImageFolder('{self.root}', {len(self)} images, {len(self.classes)} classes, mode={self.mode!r})"


__all__ = ["IMAGE_EXTENSIONS", "ImageFolder"]
