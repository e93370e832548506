"""Generative models (``VAE``, ``ConvVAE``, ``DCGAN``): shapes, conditional labels, the losses against
a hand computation and PyTorch, gradients against PyTorch and finite differences, and learning
tests on the 8x8 digits that a wrong gradient cannot pass."""

from __future__ import annotations

import numpy as np
import pytest

import rosenblatt as rb
from rosenblatt.experiments._generative import as_images, gan_images, train_gan, train_vae
from tests.parity import HAVE_TORCH, assert_close, requires_torch, tol

if HAVE_TORCH:
    import torch
else:
    torch = None


def _torch_sequential(seq: rb.nn.Sequential):
    """The same layers in PyTorch, with the same weights."""
    layers = []
    for m in seq:
        name = type(m).__name__
        if name == "Linear":
            t = torch.nn.Linear(m.in_features, m.out_features, bias=m.bias is not None)
        elif name == "Conv2d":
            t = torch.nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
                                bias=m.bias is not None)
        elif name == "ConvTranspose2d":
            t = torch.nn.ConvTranspose2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
                                         bias=m.bias is not None)
        elif name in ("BatchNorm1d", "BatchNorm2d"):
            t = getattr(torch.nn, name)(m.num_features)
        elif name == "LeakyReLU":
            t = torch.nn.LeakyReLU(m.negative_slope)
        elif name == "Unflatten":
            t = torch.nn.Unflatten(m.dim, m.unflattened_size)
        else:
            t = getattr(torch.nn, name)()
        t.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in m.state_dict().items()}, strict=False)
        layers.append(t)
    return torch.nn.Sequential(*layers)


def _digits(n: int = 1000):
    x, y = rb.data.load_digits()
    return np.asarray(x[:n], np.float32), np.asarray(y[:n], np.int64)


@pytest.mark.parametrize("num_classes", [None, 10])
def test_shapes_and_sampling(num_classes):
    y = None if num_classes is None else np.arange(5) % 10
    x = np.random.default_rng(0).random((5, 64)).astype(np.float32)
    vae = rb.models.VAE(64, 4, hidden=(32, 16), num_classes=num_classes)
    recon, mu, logvar = vae(x, y)
    assert recon.shape == (5, 64) and mu.shape == logvar.shape == (5, 4)
    assert 0 <= recon.numpy().min() and recon.numpy().max() <= 1
    assert vae.sample(7).shape == (7, 64)
    cvae = rb.models.ConvVAE(1, 8, latent_dim=3, channels=(4, 8), num_classes=num_classes)
    recon, mu, logvar = cvae(x.reshape(5, 1, 8, 8), y)
    assert recon.shape == (5, 1, 8, 8) and mu.shape == (5, 3)
    assert cvae.sample(2).shape == (2, 1, 8, 8)
    gan = rb.models.DCGAN(latent_dim=6, out_channels=1, image_size=8, channels=(4, 8), num_classes=num_classes)
    images = gan.sample(3)
    assert images.shape == (3, 1, 8, 8) and np.abs(images.numpy()).max() <= 1
    assert gan.discriminator(images, None if y is None else y[:3]).shape == (3,)
    assert gan.generator.training  # sample() restores the mode


def test_conditional_labels_are_checked():
    vae = rb.models.VAE(4, 2, hidden=(3,), num_classes=3)
    x = np.zeros((2, 4), np.float32)
    with pytest.raises(ValueError, match="class-conditional.*pass the labels"):
        vae(x)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
        vae(x, np.array([0, 3]))
    with pytest.raises(ValueError, match="2 integer labels"):
        vae(x, np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="not class-conditional"):
        rb.models.VAE(4, 2)(x, np.array([0, 1]))
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 4\)"):
        vae(np.zeros((2, 5), np.float32), np.array([0, 1]))
    with pytest.raises(ValueError, match="multiple of 4"):
        rb.models.ConvVAE(1, 10, channels=(4, 8))
    with pytest.raises(ValueError, match="multiple of 8"):
        rb.models.DCGAN(image_size=28, channels=(4, 8, 16))
    # sample() draws the classes in turn unless told
    assert rb.models.VAE(4, 2, num_classes=3)._sample_labels(5, None).tolist() == [0, 1, 2, 0, 1]


def test_vae_loss_is_the_negative_elbo():
    rng = np.random.default_rng(1)
    vae = rb.models.VAE(6, 3, hidden=(5,))
    x = rng.random((4, 6)).astype(np.float32)
    recon, mu, logvar = vae(x)
    r, m, lv = recon.numpy().astype(np.float64), mu.numpy().astype(np.float64), logvar.numpy().astype(np.float64)
    bce = -(x * np.log(r) + (1 - x) * np.log(1 - r)).sum() / 4
    kl = -0.5 * (1 + lv - m ** 2 - np.exp(lv)).sum() / 4
    rec_t, kl_t = vae.loss_terms(x, (recon, mu, logvar))
    assert rec_t.item() == pytest.approx(bce, rel=1e-5) and kl_t.item() == pytest.approx(kl, rel=1e-5)
    assert vae.loss(x, (recon, mu, logvar), beta=0.5).item() == pytest.approx(bce + 0.5 * kl, rel=1e-5)


@requires_torch
@pytest.mark.parametrize("kind", ["vae", "conv_vae"])
def test_vae_matches_torch_in_eval_mode(kind):
    rng = np.random.default_rng(2)
    if kind == "vae":
        model = rb.models.VAE(12, 3, hidden=(7, 5), num_classes=4)
        x = rng.random((5, 12)).astype(np.float32)
    else:
        model = rb.models.ConvVAE(1, 8, latent_dim=3, channels=(4, 6), num_classes=4)
        x = rng.random((5, 1, 8, 8)).astype(np.float32)
    y = np.array([0, 1, 2, 3, 1])
    model.eval()  # z = mu: deterministic
    out = model(x, y)
    loss = model.loss(x, out, beta=0.7)
    loss.backward()

    enc, mu_h, lv_h, dec = (_torch_sequential(model.encoder), _torch_sequential(rb.nn.Sequential(model.fc_mu)),
                            _torch_sequential(rb.nn.Sequential(model.fc_logvar)), _torch_sequential(model.decoder))
    tx = torch.from_numpy(x)
    onehot = torch.nn.functional.one_hot(torch.from_numpy(y), 4).float()
    if kind == "vae":
        h = enc(torch.cat([tx, onehot], 1))
    else:
        h = enc(torch.cat([tx, onehot[:, :, None, None].expand(5, 4, 8, 8)], 1))
    mu, lv = mu_h(h), lv_h(h)
    recon = dec(torch.cat([mu, onehot], 1))
    tloss = (torch.nn.functional.binary_cross_entropy(recon, tx, reduction="sum") / 5
             - 0.7 * 0.5 * (1 + lv - mu ** 2 - lv.exp()).sum() / 5)
    tloss.backward()
    assert_close(out[0], recon, **tol(np.float32))
    assert_close(loss, tloss, **tol(np.float32))
    assert_close(model.encoder[0].weight.grad, enc[0].weight.grad, **tol(np.float32, 10))
    assert_close(model.fc_logvar.weight.grad, lv_h[0].weight.grad, **tol(np.float32, 10))
    assert_close(model.decoder[0].weight.grad, dec[0].weight.grad, **tol(np.float32, 10))


def test_vae_gradcheck_float64():
    vae = rb.models.VAE(5, 2, hidden=(4,), num_classes=2).double().eval()
    x = np.random.default_rng(3).random((3, 5))
    y = np.array([0, 1, 1])

    def f(w):
        h = vae.encoder(rb.cat([rb.tensor(x), rb.tensor(np.eye(2)[y])], 1))
        mu = h @ w.T + vae.fc_mu.bias
        return vae.loss(x, (vae.decode(mu, y), mu, vae.fc_logvar(h)))

    assert rb.autograd.gradcheck(f, (rb.tensor(vae.fc_mu.weight.numpy(), requires_grad=True),))


@requires_torch
def test_dcgan_losses_and_generator_match_torch():
    gan = rb.models.DCGAN(latent_dim=5, out_channels=1, image_size=8, channels=(4, 6))
    z = np.random.default_rng(4).standard_normal((3, 5)).astype(np.float32)
    gan.eval()
    img = gan.generator(z)
    timg = _torch_sequential(gan.generator.net).eval()(_torch_sequential(gan.generator.project).eval()(
        torch.from_numpy(z)))
    assert_close(img, timg, **tol(np.float32))
    real, fake = rb.tensor([1.5, -0.3, 0.2]), rb.tensor([-2.0, 0.4, 0.1])
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    tr, tf = torch.tensor([1.5, -0.3, 0.2]), torch.tensor([-2.0, 0.4, 0.1])
    assert gan.discriminator_loss(real, fake).item() == pytest.approx(
        (bce(tr, torch.ones(3)) + bce(tf, torch.zeros(3))).item(), rel=1e-6)
    assert gan.generator_loss(fake).item() == pytest.approx(bce(tf, torch.ones(3)).item(), rel=1e-6)
    weights = np.concatenate([m.weight.numpy().ravel() for m in gan.modules() if type(m).__name__ == "Conv2d"])
    assert abs(weights.std() - 0.02) < 0.005  # Radford et al.'s N(0, 0.02) initialisation


def test_vae_learns_digits():
    rb.manual_seed(0)
    x, _ = _digits()
    vae = rb.models.VAE(64, 8, hidden=(128,))
    history = train_vae(vae, x, None, 15, np.random.default_rng(0))
    # negative ELBO per digit: ~41 nats in the first epoch, ~23 after 15; a wrong gradient stays near 40
    assert history[0] > 35 and history[-1] < 27


def _digit_classifier(x, y):
    clf = rb.nn.Sequential(rb.nn.Linear(64, 64), rb.nn.ReLU(), rb.nn.Linear(64, 10))
    opt = rb.optim.Adam(clf.parameters(), lr=1e-2)
    for _ in range(150):
        loss = rb.nn.functional.cross_entropy(clf(rb.tensor(x)), rb.tensor(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return clf


def test_conditional_vae_samples_belong_to_their_class():
    rb.manual_seed(0)
    x, y = _digits(1200)
    clf = _digit_classifier(x, y)
    vae = rb.models.VAE(64, 8, hidden=(128,), num_classes=10)
    train_vae(vae, x, y, 20, np.random.default_rng(0))
    labels = np.arange(300) % 10
    with rb.no_grad():
        pred = clf(vae.sample(300, labels)).numpy().argmax(1)
    assert np.mean(pred == labels) > 0.85  # chance is 0.1


@pytest.mark.slow
def test_conditional_dcgan_samples_belong_to_their_class():
    rb.manual_seed(0)
    x, y = _digits(1200)
    clf = _digit_classifier(x, y)
    gan = rb.models.DCGAN(latent_dim=16, out_channels=1, image_size=8, channels=(32, 64), num_classes=10)
    train_gan(gan, as_images(x, 8), y, 12, np.random.default_rng(0))
    labels = np.arange(300) % 10
    with rb.no_grad():
        pred = clf(rb.tensor(gan_images(gan, 300, labels).reshape(300, 64))).numpy().argmax(1)
    assert np.mean(pred == labels) > 0.7
