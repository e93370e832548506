"""Autoencoders: networks trained to reproduce their input through a narrow code.

G. E. Hinton and R. R. Salakhutdinov, "Reducing the dimensionality of data with neural networks",
Science 313:504-507, 2006 (deep dense autoencoders, a configurable bottleneck).
P. Vincent, H. Larochelle, Y. Bengio and P.-A. Manzagol, "Extracting and composing robust features
with denoising autoencoders", ICML 2008 (corrupt the input, reconstruct the clean one).
J. Masci, U. Meier, D. Ciresan and J. Schmidhuber, "Stacked convolutional auto-encoders for
hierarchical feature extraction", ICANN 2011 (the convolutional form).

Every model here has ``encode(x)`` (the code), ``decode(z)`` (the reconstruction) and
``forward(x) = decode(encode(x))``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rosenblatt import random as _random
from rosenblatt.backend import get_array_module
from rosenblatt.core import Tensor, constant
from rosenblatt.models.mlp import make_activation
from rosenblatt.nn.conv import Conv2d, ConvTranspose2d
from rosenblatt.nn.linear import Flatten, Linear, Unflatten
from rosenblatt.nn.module import Module, Sequential

_OUTPUT_ACTIVATIONS = (None, "sigmoid", "tanh", "relu")


def _output_activation(name: str | None, model: str) -> list[Module]:
    if name not in _OUTPUT_ACTIVATIONS:
        raise ValueError(f"{model}: output_activation must be one of {_OUTPUT_ACTIVATIONS}, got {name!r}")
    return [] if name is None else [make_activation(name)]


def _as_input(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


class Autoencoder(Module):
    """A dense autoencoder (Hinton & Salakhutdinov, 2006).

    ``sizes = [in, h1, ..., code]`` gives the encoder ``Linear -> activation`` for each hidden width
    and a linear layer into the code (the bottleneck); the decoder mirrors it
    (``code -> ... -> h1 -> in``), ending in ``output_activation`` (``None`` for real-valued data,
    ``"sigmoid"`` for data in [0, 1]).

    Shape:
        input ``(N, in)``; code ``(N, sizes[-1])``; output ``(N, in)``.
    """

    def __init__(self, sizes: Sequence[int], activation: str = "relu", output_activation: str | None = None) -> None:
        super().__init__()
        sizes = [int(s) for s in sizes]
        name = type(self).__name__
        if len(sizes) < 2 or any(s < 1 for s in sizes):
            raise ValueError(f"{name}: sizes must list at least two positive widths [in, ..., code], got {sizes}")
        self.sizes = sizes
        self.encoder = Sequential(*self._stack(sizes, activation))
        self.decoder = Sequential(*self._stack(sizes[::-1], activation), *_output_activation(output_activation, name))

    @staticmethod
    def _stack(sizes: list[int], activation: str) -> list[Module]:
        layers: list[Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(Linear(a, b))
            if i < len(sizes) - 2:  # no activation on the code or on the raw reconstruction
                layers.append(make_activation(activation))
        return layers

    def _check(self, x: Tensor) -> Tensor:
        if x.ndim != 2 or x.shape[1] != self.sizes[0]:
            raise ValueError(f"{type(self).__name__}: expected input of shape (N, {self.sizes[0]}), got {tuple(x.shape)}")
        return x

    def encode(self, x: Any) -> Tensor:
        """The code of ``x``: ``(N, in) -> (N, code)``."""
        return self.encoder(self._check(_as_input(x)))

    def decode(self, z: Any) -> Tensor:
        """The reconstruction from a code: ``(N, code) -> (N, in)``."""
        z = _as_input(z)
        if z.ndim != 2 or z.shape[1] != self.sizes[-1]:
            raise ValueError(f"{type(self).__name__}.decode: expected codes of shape (N, {self.sizes[-1]}), "
                             f"got {tuple(z.shape)}")
        return self.decoder(z)

    def forward(self, x: Any) -> Tensor:
        return self.decode(self.encode(x))


class DenoisingAutoencoder(Autoencoder):
    """A denoising autoencoder (Vincent et al. 2008): in training the input is corrupted and the
    network learns to reconstruct the clean input (the loss compares the output with the clean
    ``x``). In eval mode no noise is added.

    Args:
        sizes, activation, output_activation: as in :class:`Autoencoder`.
        noise: ``"masking"`` (the paper's corruption: each input is set to 0 with probability
            ``noise_level``) or ``"gaussian"`` (add N(0, ``noise_level``^2)).
        noise_level: the masking probability or the noise standard deviation.

    Shape:
        input ``(N, in)``; output ``(N, in)``.
    """

    def __init__(self, sizes: Sequence[int], noise: str = "masking", noise_level: float = 0.25,
                 activation: str = "relu", output_activation: str | None = None) -> None:
        super().__init__(sizes, activation, output_activation)
        if noise not in ("masking", "gaussian"):
            raise ValueError(f"DenoisingAutoencoder: noise must be 'masking' or 'gaussian', got {noise!r}")
        if noise_level < 0 or (noise == "masking" and noise_level >= 1):
            raise ValueError(f"DenoisingAutoencoder: noise_level {noise_level} out of range for {noise} noise")
        self.noise = noise
        self.noise_level = float(noise_level)

    def corrupt(self, x: Any) -> Tensor:
        """``x`` with the training corruption applied (always, whatever the mode)."""
        x = _as_input(x)
        xp = get_array_module(x.data)
        if self.noise == "masking":
            keep = _random.bernoulli_mask(1.0 - self.noise_level, x.shape, x.dtype)
            return x * constant(xp.asarray(keep))
        noise = _random.normal_array(0.0, self.noise_level, x.shape, x.dtype)
        return x + constant(xp.asarray(noise))

    def forward(self, x: Any) -> Tensor:
        x = _as_input(x)
        if self.training and self.noise_level > 0:
            x = self.corrupt(x)
        return self.decode(self.encode(x))

    def extra_repr(self) -> str:
        return f"noise={self.noise!r}, noise_level={self.noise_level}"


class ConvAutoencoder(Module):
    """A convolutional autoencoder (Masci et al. 2011).

    The encoder halves the resolution at every stage (``Conv2d(3x3, stride 2) -> activation``); the
    decoder mirrors it with ``ConvTranspose2d(3x3, stride 2)``. With ``latent_dim`` the feature map
    is flattened into a dense code of that size (``input_size`` is then required), which gives a
    low-dimensional latent space to plot.

    Args:
        in_channels: image channels.
        channels: the widths of the encoder stages.
        latent_dim: size of a dense code, or None to keep the feature map as the code.
        input_size: ``(H, W)`` of the images; needed with ``latent_dim``, and to reproduce odd sizes
            exactly (otherwise H and W should be divisible by ``2 ** len(channels)``).
        output_activation: ``None``, ``"sigmoid"`` (images in [0, 1]), ``"tanh"`` or ``"relu"``.

    Shape:
        input ``(N, C, H, W)``; code ``(N, channels[-1], H / 2^k, W / 2^k)`` or ``(N, latent_dim)``;
        output ``(N, C, H, W)``.
    """

    def __init__(self, in_channels: int = 1, channels: Sequence[int] = (16, 32), latent_dim: int | None = None,
                 input_size: Sequence[int] | None = None, activation: str = "relu",
                 output_activation: str | None = None) -> None:
        super().__init__()
        channels = [int(c) for c in channels]
        if in_channels < 1 or not channels or any(c < 1 for c in channels):
            raise ValueError(f"ConvAutoencoder: expected positive in_channels and channels, got {in_channels}, {channels}")
        if latent_dim is not None and input_size is None:
            raise ValueError("ConvAutoencoder: latent_dim needs input_size=(H, W) to size the dense code")
        self.in_channels = int(in_channels)
        self.latent_dim = latent_dim
        self.input_size = tuple(int(s) for s in input_size) if input_size is not None else None
        # spatial size after each stride-2 stage: ceil(s / 2)
        sizes = [self.input_size] if self.input_size else None
        if sizes:
            for _ in channels:
                h, w = sizes[-1]
                sizes.append(((h + 1) // 2, (w + 1) // 2))
        widths = [self.in_channels, *channels]
        encoder: list[Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            encoder += [Conv2d(a, b, 3, stride=2, padding=1), make_activation(activation)]
        decoder: list[Module] = []
        if latent_dim is not None:
            h, w = sizes[-1]
            flat = channels[-1] * h * w
            encoder += [Flatten(), Linear(flat, latent_dim)]
            decoder += [Linear(latent_dim, flat), make_activation(activation), Unflatten(1, (channels[-1], h, w))]
        for k in range(len(channels), 0, -1):
            # ConvTranspose2d(3, stride 2, padding 1) gives 2h - 1 + output_padding: choose the
            # padding that restores the encoder's size at this stage
            output_padding = 1
            if sizes:
                (big_h, big_w), (small_h, small_w) = sizes[k - 1], sizes[k]
                output_padding = (big_h - 2 * small_h + 1, big_w - 2 * small_w + 1)
            decoder.append(ConvTranspose2d(widths[k], widths[k - 1], 3, stride=2, padding=1,
                                           output_padding=output_padding))
            if k > 1:
                decoder.append(make_activation(activation))
        decoder += _output_activation(output_activation, "ConvAutoencoder")
        self.encoder = Sequential(*encoder)
        self.decoder = Sequential(*decoder)

    def encode(self, x: Any) -> Tensor:
        """The code of a batch of images."""
        x = _as_input(x)
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"ConvAutoencoder: expected images of shape (N, {self.in_channels}, H, W), "
                             f"got {tuple(x.shape)}")
        if self.input_size is not None and tuple(x.shape[2:]) != self.input_size:
            raise ValueError(f"ConvAutoencoder: built for {self.input_size} images, got {tuple(x.shape[2:])}")
        return self.encoder(x)

    def decode(self, z: Any) -> Tensor:
        """Images from codes."""
        return self.decoder(_as_input(z))

    def forward(self, x: Any) -> Tensor:
        return self.decode(self.encode(x))


def reconstruction_error(model: Module, x: Any) -> np.ndarray:
    """Per-sample mean squared reconstruction error (eval mode, no graph): the anomaly score of an
    autoencoder."""
    from rosenblatt.core import no_grad

    was_training = model.training
    model.eval()
    try:
        with no_grad():
            x = _as_input(x)
            err = (model(x) - x) ** 2
            return err.numpy().reshape(x.shape[0], -1).mean(axis=1)
    finally:
        model.train(was_training)


def autoencoder(sizes: Sequence[int] = (64, 32, 16), **kwargs: Any) -> Autoencoder:
    """``Autoencoder`` factory for the models registry (digits-sized by default)."""
    return Autoencoder(sizes, **kwargs)


def denoising_autoencoder(sizes: Sequence[int] = (64, 32, 16), **kwargs: Any) -> DenoisingAutoencoder:
    """``DenoisingAutoencoder`` factory for the models registry."""
    return DenoisingAutoencoder(sizes, **kwargs)


def conv_autoencoder(in_channels: int = 1, **kwargs: Any) -> ConvAutoencoder:
    """``ConvAutoencoder`` factory for the models registry."""
    return ConvAutoencoder(in_channels, **kwargs)


__all__ = ["Autoencoder", "ConvAutoencoder", "DenoisingAutoencoder", "autoencoder", "conv_autoencoder",
           "denoising_autoencoder", "reconstruction_error"]
