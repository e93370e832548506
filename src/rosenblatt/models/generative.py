"""Generative models: variational autoencoders and deep convolutional GANs, each optionally
class-conditional.

D. P. Kingma and M. Welling, "Auto-encoding variational Bayes", ICLR 2014 (the VAE, the
reparametrisation trick and the bound ``E[log p(x|z)] - KL(q(z|x) || N(0, I))``).
K. Sohn, H. Lee and X. Yan, "Learning structured output representation using deep conditional
generative models", NeurIPS 2015 (the conditional VAE: encoder and decoder both see the label).
A. Radford, L. Metz and S. Chintala, "Unsupervised representation learning with deep convolutional
generative adversarial networks", ICLR 2016 (DCGAN); I. Goodfellow et al., "Generative adversarial
nets", NeurIPS 2014 (the adversarial game and the non-saturating generator loss); M. Mirza and
S. Osindero, "Conditional generative adversarial nets", 2014 (the label given to both networks).

A class-conditional model (``num_classes=K``) takes integer labels ``y`` beside its inputs: dense
layers get the one-hot label appended to their input, convolutions get it as ``K`` constant
feature maps. ``sample(n, y=None)`` then draws ``n`` samples of the given classes (by default the
classes in turn, ``0, 1, ..., K-1, 0, ...``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

import rosenblatt as rb
from rosenblatt.core import Tensor
from rosenblatt.nn import functional as F
from rosenblatt.nn.activation import LeakyReLU, ReLU, Sigmoid, Tanh
from rosenblatt.nn.conv import Conv2d, ConvTranspose2d
from rosenblatt.nn.linear import Flatten, Linear, Unflatten
from rosenblatt.nn.module import Module, Sequential
from rosenblatt.nn.normalization import BatchNorm1d, BatchNorm2d


def _as_input(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(np.asarray(x, dtype=np.float32))


def _param_dtype(module: Module) -> Any:
    return next(iter(module.parameters())).data.dtype


class _Conditional(Module):
    """Label handling shared by the generative models."""

    num_classes: int | None

    def _labels(self, y: Any, n: int) -> np.ndarray | None:
        name = type(self).__name__
        if self.num_classes is None:
            if y is not None:
                raise ValueError(f"{name}: labels were given but the model is not class-conditional "
                                 "(build it with num_classes=)")
            return None
        if y is None:
            raise ValueError(f"{name}: this model is class-conditional (num_classes={self.num_classes}); "
                             "pass the labels y")
        labels = np.asarray(y.numpy() if isinstance(y, Tensor) else y)
        if labels.shape != (n,) or labels.dtype.kind not in "iu":
            raise ValueError(f"{name}: expected y to be {n} integer labels, got shape {labels.shape} "
                             f"of {labels.dtype}")
        if labels.size and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(f"{name}: labels must be in [0, {self.num_classes}), got "
                             f"[{labels.min()}, {labels.max()}]")
        return labels.astype(np.int64)

    def _one_hot(self, labels: np.ndarray, like: Tensor) -> Tensor:
        out = np.zeros((len(labels), self.num_classes), dtype=like.data.dtype)
        out[np.arange(len(labels)), labels] = 1
        return Tensor(out)

    def _append_label(self, h: Tensor, y: Any) -> Tensor:
        labels = self._labels(y, h.shape[0])
        if labels is None:
            return h
        onehot = self._one_hot(labels, h)
        if h.ndim == 2:
            return rb.cat([h, onehot], 1)
        maps = Tensor(np.broadcast_to(onehot.data[:, :, None, None],
                                      (h.shape[0], self.num_classes, h.shape[2], h.shape[3])).copy())
        return rb.cat([h, maps], 1)

    def _sample_labels(self, n: int, y: Any) -> np.ndarray | None:
        if self.num_classes is None:
            return self._labels(y, n)
        if y is None:
            return np.arange(n) % self.num_classes
        return self._labels(y, n)


class _VAEBase(_Conditional):
    latent_dim: int

    def encode(self, x: Any, y: Any = None) -> tuple[Tensor, Tensor]:
        """``(mu, logvar)`` of the approximate posterior ``q(z | x)``, each ``(N, latent_dim)``."""
        h = self.encoder(self._append_label(self._check(_as_input(x)), y))
        return self.fc_mu(h), self.fc_logvar(h)

    def decode(self, z: Any, y: Any = None) -> Tensor:
        """Bernoulli means ``p(x | z)`` in [0, 1], shaped as the input."""
        return self.decoder(self._append_label(_as_input(z), y))

    def reparameterize(self, mu: Tensor, logvar: Tensor) -> Tensor:
        """``z = mu + exp(logvar / 2) * eps`` with ``eps ~ N(0, I)`` (differentiable in ``mu``, ``logvar``)."""
        eps = rb.randn(*mu.shape, dtype=mu.data.dtype)
        return mu + (logvar * 0.5).exp() * eps

    def forward(self, x: Any, y: Any = None) -> tuple[Tensor, Tensor, Tensor]:
        """``(reconstruction, mu, logvar)``. In training mode ``z`` is sampled from ``q(z | x)``;
        in eval mode it is the mean ``mu`` (a deterministic reconstruction)."""
        mu, logvar = self.encode(x, y)
        z = self.reparameterize(mu, logvar) if self.training else mu
        return self.decode(z, y), mu, logvar

    def loss_terms(self, x: Any, out: tuple[Tensor, Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        """``(reconstruction, kl)``, each summed over features and averaged over the batch: the
        binary cross-entropy ``-log p(x | z)`` and ``KL(N(mu, exp(logvar)) || N(0, I)) =
        -1/2 sum(1 + logvar - mu^2 - exp(logvar))``."""
        recon, mu, logvar = out
        x = _as_input(x)
        if tuple(x.shape) != tuple(recon.shape):
            raise ValueError(f"{type(self).__name__}.loss: x has shape {tuple(x.shape)}, the reconstruction "
                             f"{tuple(recon.shape)}")
        n = x.shape[0]
        rec = F.binary_cross_entropy(recon, x, reduction="sum") / n
        kl = (1 + logvar - mu * mu - logvar.exp()).sum() * (-0.5 / n)
        return rec, kl

    def loss(self, x: Any, out: tuple[Tensor, Tensor, Tensor], beta: float = 1.0) -> Tensor:
        """The negative evidence lower bound per example, ``reconstruction + beta * kl``
        (``beta = 1`` is Kingma & Welling's bound; other values give the beta-VAE weighting)."""
        rec, kl = self.loss_terms(x, out)
        return rec + kl * float(beta)

    def sample(self, n: int, y: Any = None) -> Tensor:
        """``n`` samples ``decode(z)`` with ``z ~ N(0, I)`` (of classes ``y`` if conditional), no gradient."""
        labels = self._sample_labels(int(n), y)
        dtype = _param_dtype(self)
        with rb.no_grad():
            return self.decode(rb.randn(int(n), self.latent_dim, dtype=dtype), labels)


class VAE(_VAEBase):
    """A dense variational autoencoder (Kingma & Welling, 2014), optionally class-conditional
    (Sohn et al., 2015).

    The encoder maps ``x`` (with the one-hot label, if conditional) through ``hidden`` ReLU layers
    to the mean and log-variance of a diagonal Gaussian ``q(z | x)``; the decoder maps ``z`` (with
    the label) back through the hidden widths in reverse to sigmoid outputs, the means of
    independent Bernoulli pixels. Train it on data in [0, 1] with ``model.loss(x, model(x))``.

    Args:
        in_features: size of a (flat) input.
        latent_dim: size of the code ``z``.
        hidden: widths of the hidden layers of the encoder (the decoder mirrors them).
        num_classes: if given, the model is conditional and every call takes labels ``y``.

    Shape:
        input ``(N, in_features)``; ``mu``, ``logvar`` ``(N, latent_dim)``; reconstruction and
        ``sample(n)`` ``(N, in_features)``.
    """

    def __init__(self, in_features: int, latent_dim: int, hidden: Sequence[int] = (400,),
                 num_classes: int | None = None) -> None:
        super().__init__()
        hidden = [int(h) for h in hidden]
        if in_features < 1 or latent_dim < 1 or any(h < 1 for h in hidden):
            raise ValueError(f"VAE: in_features, latent_dim and hidden widths must be positive, got "
                             f"{in_features}, {latent_dim}, {hidden}")
        if num_classes is not None and num_classes < 2:
            raise ValueError(f"VAE: num_classes must be at least 2 (or None), got {num_classes}")
        self.in_features, self.latent_dim, self.hidden, self.num_classes = in_features, latent_dim, hidden, num_classes
        k = num_classes or 0
        enc: list[Module] = []
        width = in_features + k
        for h in hidden:
            enc += [Linear(width, h), ReLU()]
            width = h
        self.encoder = Sequential(*enc)
        self.fc_mu = Linear(width, latent_dim)
        self.fc_logvar = Linear(width, latent_dim)
        dec: list[Module] = []
        width = latent_dim + k
        for h in hidden[::-1]:
            dec += [Linear(width, h), ReLU()]
            width = h
        self.decoder = Sequential(*dec, Linear(width, in_features), Sigmoid())

    def _check(self, x: Tensor) -> Tensor:
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"VAE: expected input of shape (N, {self.in_features}), got {tuple(x.shape)}")
        return x

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, latent_dim={self.latent_dim}, num_classes={self.num_classes}"


def _check_image_size(name: str, image_size: int, levels: int) -> int:
    step = 2 ** levels
    if image_size < step or image_size % step:
        raise ValueError(f"{name}: image_size must be a positive multiple of {step} (2 ** len(channels)), "
                         f"got {image_size}")
    return image_size // step


class ConvVAE(_VAEBase):
    """A convolutional variational autoencoder (Kingma & Welling, 2014), optionally
    class-conditional (Sohn et al., 2015).

    Encoder: for each entry of ``channels`` a 4x4 convolution of stride 2 (halving the size) and
    ReLU, then linear maps to ``mu`` and ``logvar``. Decoder: a linear layer back to the smallest
    feature map, then 4x4 transposed convolutions of stride 2 (doubling it) with ReLU, the last one
    to ``in_channels`` sigmoid outputs (Bernoulli means).

    Args:
        in_channels: channels of the images.
        image_size: height and width of the square images; a multiple of ``2 ** len(channels)``
            (28 with two levels, 8 with two or three).
        latent_dim: size of the code ``z``.
        channels: feature maps after each halving.
        num_classes: if given, the model is conditional and every call takes labels ``y``.

    Shape:
        input ``(N, in_channels, image_size, image_size)``; ``mu``, ``logvar`` ``(N, latent_dim)``;
        reconstruction and ``sample(n)`` shaped as the input.
    """

    def __init__(self, in_channels: int = 1, image_size: int = 28, latent_dim: int = 16,
                 channels: Sequence[int] = (32, 64), num_classes: int | None = None) -> None:
        super().__init__()
        channels = [int(c) for c in channels]
        if not channels or any(c < 1 for c in channels) or in_channels < 1 or latent_dim < 1:
            raise ValueError(f"ConvVAE: in_channels, latent_dim and channels must be positive, got "
                             f"{in_channels}, {latent_dim}, {channels}")
        if num_classes is not None and num_classes < 2:
            raise ValueError(f"ConvVAE: num_classes must be at least 2 (or None), got {num_classes}")
        small = _check_image_size("ConvVAE", image_size, len(channels))
        self.in_channels, self.image_size, self.latent_dim = in_channels, image_size, latent_dim
        self.channels, self.num_classes = channels, num_classes
        k = num_classes or 0
        enc: list[Module] = []
        c_in = in_channels + k
        for c in channels:
            enc += [Conv2d(c_in, c, 4, stride=2, padding=1), ReLU()]
            c_in = c
        flat = channels[-1] * small * small
        self.encoder = Sequential(*enc, Flatten())
        self.fc_mu = Linear(flat, latent_dim)
        self.fc_logvar = Linear(flat, latent_dim)
        dec: list[Module] = [Linear(latent_dim + k, flat), ReLU(), Unflatten(1, (channels[-1], small, small))]
        rev = channels[::-1] + [in_channels]
        for i, (a, b) in enumerate(zip(rev[:-1], rev[1:])):
            dec.append(ConvTranspose2d(a, b, 4, stride=2, padding=1))
            dec.append(ReLU() if i < len(rev) - 2 else Sigmoid())
        self.decoder = Sequential(*dec)

    def _check(self, x: Tensor) -> Tensor:
        s = self.image_size
        if x.ndim != 4 or tuple(x.shape[1:]) != (self.in_channels, s, s):
            raise ValueError(f"ConvVAE: expected input of shape (N, {self.in_channels}, {s}, {s}), "
                             f"got {tuple(x.shape)}")
        return x

    def extra_repr(self) -> str:
        return (f"in_channels={self.in_channels}, image_size={self.image_size}, latent_dim={self.latent_dim}, "
                f"num_classes={self.num_classes}")


class DCGANGenerator(_Conditional):
    """DCGAN's generator: ``z`` (with the one-hot label) -> linear projection to the smallest
    feature map, batch norm, ReLU -> 4x4 transposed convolutions of stride 2 with batch norm and
    ReLU -> ``tanh`` images in [-1, 1] (Radford et al., 2016).

    Shape:
        input ``(N, latent_dim)``; output ``(N, out_channels, image_size, image_size)``.
    """

    def __init__(self, latent_dim: int, out_channels: int, image_size: int, channels: Sequence[int],
                 num_classes: int | None = None) -> None:
        super().__init__()
        self.latent_dim, self.num_classes = latent_dim, num_classes
        small = _check_image_size("DCGAN", image_size, len(channels))
        rev = list(channels)[::-1]  # widest first
        flat = rev[0] * small * small
        self.project = Sequential(Linear(latent_dim + (num_classes or 0), flat, bias=False), BatchNorm1d(flat),
                                  ReLU(), Unflatten(1, (rev[0], small, small)))
        layers: list[Module] = []
        widths = rev + [out_channels]
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            last = i == len(widths) - 2
            layers.append(ConvTranspose2d(a, b, 4, stride=2, padding=1, bias=last))
            layers += [Tanh()] if last else [BatchNorm2d(b), ReLU()]
        self.net = Sequential(*layers)

    def forward(self, z: Any, y: Any = None) -> Tensor:
        z = _as_input(z)
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"DCGAN generator: expected z of shape (N, {self.latent_dim}), got {tuple(z.shape)}")
        return self.net(self.project(self._append_label(z, y)))


class DCGANDiscriminator(_Conditional):
    """DCGAN's discriminator: 4x4 convolutions of stride 2 with LeakyReLU(0.2), batch norm on all
    but the first (Radford et al., 2016), then a linear layer to one logit (real vs generated).
    A conditional one sees the label as constant feature maps.

    Shape:
        input ``(N, in_channels, image_size, image_size)``; output ``(N,)`` logits.
    """

    def __init__(self, in_channels: int, image_size: int, channels: Sequence[int],
                 num_classes: int | None = None) -> None:
        super().__init__()
        self.in_channels, self.image_size, self.num_classes = in_channels, image_size, num_classes
        small = _check_image_size("DCGAN", image_size, len(channels))
        layers: list[Module] = []
        c_in = in_channels + (num_classes or 0)
        for i, c in enumerate(channels):
            layers.append(Conv2d(c_in, c, 4, stride=2, padding=1, bias=i == 0))
            if i > 0:
                layers.append(BatchNorm2d(c))
            layers.append(LeakyReLU(0.2))
            c_in = c
        self.net = Sequential(*layers, Flatten(), Linear(channels[-1] * small * small, 1))

    def forward(self, x: Any, y: Any = None) -> Tensor:
        x = _as_input(x)
        s = self.image_size
        if x.ndim != 4 or tuple(x.shape[1:]) != (self.in_channels, s, s):
            raise ValueError(f"DCGAN discriminator: expected input of shape (N, {self.in_channels}, {s}, {s}), "
                             f"got {tuple(x.shape)}")
        return self.net(self._append_label(x, y)).reshape(-1)


class DCGAN(_Conditional):
    """A deep convolutional GAN (Radford et al., 2016), optionally class-conditional (Mirza &
    Osindero, 2014): ``generator`` maps noise ``z ~ N(0, I)`` to images in [-1, 1],
    ``discriminator`` maps images to a logit of "real". Scale the data to [-1, 1] (``2 x - 1``).

    Following the paper: strided (transposed) convolutions instead of pooling, batch norm in both
    networks (not on the generator's output or the discriminator's input), ReLU in the generator
    with ``tanh`` output, LeakyReLU(0.2) in the discriminator; Adam with ``lr=2e-4, betas=(0.5,
    0.999)`` and weights initialised from N(0, 0.02) (done here). ``train_step`` does one
    discriminator and one generator update with the non-saturating loss of Goodfellow et al.

    Args:
        latent_dim: size of the noise ``z``.
        out_channels: channels of the images.
        image_size: height and width; a multiple of ``2 ** len(channels)``.
        channels: the discriminator's feature maps after each halving (the generator mirrors them).
        num_classes: if given, both networks take labels ``y``.

    Shape:
        ``generator``: ``(N, latent_dim) -> (N, out_channels, image_size, image_size)``;
        ``discriminator``: images ``-> (N,)`` logits; ``sample(n)`` ``(n, out_channels, image_size, image_size)``.
    """

    def __init__(self, latent_dim: int = 32, out_channels: int = 1, image_size: int = 28,
                 channels: Sequence[int] = (32, 64), num_classes: int | None = None) -> None:
        super().__init__()
        channels = [int(c) for c in channels]
        if not channels or any(c < 1 for c in channels) or latent_dim < 1 or out_channels < 1:
            raise ValueError(f"DCGAN: latent_dim, out_channels and channels must be positive, got "
                             f"{latent_dim}, {out_channels}, {channels}")
        if num_classes is not None and num_classes < 2:
            raise ValueError(f"DCGAN: num_classes must be at least 2 (or None), got {num_classes}")
        self.latent_dim, self.out_channels, self.image_size, self.num_classes = (latent_dim, out_channels,
                                                                                image_size, num_classes)
        self.generator = DCGANGenerator(latent_dim, out_channels, image_size, channels, num_classes)
        self.discriminator = DCGANDiscriminator(out_channels, image_size, channels, num_classes)
        for m in self.modules():
            if isinstance(m, (Conv2d, ConvTranspose2d, Linear)):
                rb.nn.init.normal_(m.weight, 0.0, 0.02)
            elif isinstance(m, (BatchNorm1d, BatchNorm2d)):
                rb.nn.init.normal_(m.weight, 1.0, 0.02)

    def forward(self, z: Any, y: Any = None) -> Tensor:
        """The generator's images for noise ``z`` (and labels ``y``)."""
        return self.generator(z, y)

    def sample(self, n: int, y: Any = None) -> Tensor:
        """``n`` generated images in [-1, 1] (of classes ``y`` if conditional), generator in eval
        mode (batch norm with running statistics), no gradient."""
        labels = self._sample_labels(int(n), y)
        was = self.generator.training
        self.generator.eval()
        with rb.no_grad():
            out = self.generator(rb.randn(int(n), self.latent_dim, dtype=_param_dtype(self)), labels)
        self.generator.train(was)
        return out

    @staticmethod
    def discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        """``-log D(x) - log(1 - D(G(z)))``, averaged: binary cross-entropy with real = 1, fake = 0."""
        ones = Tensor(np.ones(real_logits.shape, real_logits.data.dtype))
        zeros = Tensor(np.zeros(fake_logits.shape, fake_logits.data.dtype))
        return (F.binary_cross_entropy_with_logits(real_logits, ones)
                + F.binary_cross_entropy_with_logits(fake_logits, zeros))

    @staticmethod
    def generator_loss(fake_logits: Tensor) -> Tensor:
        """The non-saturating generator loss ``-log D(G(z))``, averaged."""
        ones = Tensor(np.ones(fake_logits.shape, fake_logits.data.dtype))
        return F.binary_cross_entropy_with_logits(fake_logits, ones)

    def train_step(self, real: Any, g_optimizer: Any, d_optimizer: Any, y: Any = None) -> tuple[float, float]:
        """One discriminator step on ``real`` (in [-1, 1]) against as many generated images, then
        one generator step; returns ``(discriminator_loss, generator_loss)``."""
        real = _as_input(real)
        n = real.shape[0]
        labels = self._labels(y, n)
        z = rb.randn(n, self.latent_dim, dtype=_param_dtype(self))
        fake = self.generator(z, labels)
        d_loss = self.discriminator_loss(self.discriminator(real, labels), self.discriminator(fake.detach(), labels))
        d_optimizer.zero_grad()
        d_loss.backward()
        d_optimizer.step()
        g_loss = self.generator_loss(self.discriminator(fake, labels))
        g_optimizer.zero_grad()
        g_loss.backward()
        g_optimizer.step()
        return float(d_loss.item()), float(g_loss.item())

    def extra_repr(self) -> str:
        return (f"latent_dim={self.latent_dim}, out_channels={self.out_channels}, image_size={self.image_size}, "
                f"num_classes={self.num_classes}")


__all__ = ["VAE", "ConvVAE", "DCGAN", "DCGANGenerator", "DCGANDiscriminator"]
