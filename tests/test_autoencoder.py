"""Autoencoders and the sequence-to-sequence model: shapes, modes, consistency between the fused and
step-by-step paths, learning on real data, and the plots."""

from __future__ import annotations

import numpy as np
import pytest

import rosenblatt as rb
from rosenblatt.models import (
    Autoencoder,
    ConvAutoencoder,
    Decoder,
    DenoisingAutoencoder,
    Encoder,
    Seq2Seq,
)
from rosenblatt.models.autoencoder import reconstruction_error
from tests.parity import assert_close


def _digits():
    pytest.importorskip("sklearn")
    return rb.data.datasets.load_digits()


def _train(model, x, steps, lr=0.01, batch=128, seed=0):
    optimizer = rb.optim.Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        xb = rb.tensor(x[rng.integers(0, len(x), batch)])
        loss = ((model(xb) - xb) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def test_autoencoder_reconstructs_digits_far_better_than_the_mean_image():
    x, _ = _digits()
    train, test = x[:1400], x[1400:]
    baseline = float(((test - train.mean(axis=0)) ** 2).mean())
    model = Autoencoder([64, 48, 16], output_activation="sigmoid")
    _train(model, train, steps=200, lr=0.02)
    mse = float(reconstruction_error(model, test).mean())
    assert mse < 0.35 * baseline, f"reconstruction MSE {mse:.4f} vs mean-image baseline {baseline:.4f}"


def test_conv_autoencoder_reconstructs_digits():
    x, _ = _digits()
    images = x.reshape(-1, 1, 8, 8)
    train, test = images[:1400], images[1400:]
    baseline = float(((test - train.mean(axis=0)) ** 2).mean())
    model = ConvAutoencoder(1, channels=(16, 32), output_activation="sigmoid")
    _train(model, train, steps=150, lr=0.01, batch=64)
    mse = float(reconstruction_error(model, test).mean())
    assert mse < 0.6 * baseline, f"reconstruction MSE {mse:.4f} vs mean-image baseline {baseline:.4f}"


def test_autoencoder_shapes_and_structure():
    model = Autoencoder([10, 6, 2])
    x = rb.randn(4, 10)
    assert model.encode(x).shape == (4, 2)
    assert model.decode(rb.randn(4, 2)).shape == (4, 10)
    assert model(x).shape == (4, 10)
    # mirrored decoder: Linear(2, 6) -> act -> Linear(6, 10)
    assert [tuple(p.shape) for p in model.decoder.parameters()] == [(6, 2), (6,), (10, 6), (10,)]
    with pytest.raises(ValueError, match="Autoencoder: expected input of shape \\(N, 10\\)"):
        model(rb.randn(4, 9))
    with pytest.raises(ValueError, match="sizes"):
        Autoencoder([10])


def test_conv_autoencoder_shapes_with_dense_code_and_odd_sizes():
    model = ConvAutoencoder(1, channels=(4, 8), latent_dim=2, input_size=(8, 8))
    x = rb.randn(3, 1, 8, 8)
    assert model.encode(x).shape == (3, 2)
    assert model(x).shape == (3, 1, 8, 8)
    odd = ConvAutoencoder(3, channels=(4, 8), input_size=(7, 9))
    assert odd(rb.randn(2, 3, 7, 9)).shape == (2, 3, 7, 9)
    with pytest.raises(ValueError, match="latent_dim needs input_size"):
        ConvAutoencoder(1, latent_dim=2)
    with pytest.raises(ValueError, match="ConvAutoencoder: expected images"):
        model(rb.randn(3, 8, 8))


def test_denoising_autoencoder_adds_noise_only_in_training():
    model = DenoisingAutoencoder([16, 8, 4], noise="masking", noise_level=0.5)
    x = rb.rand(64, 16) + 0.5
    model.eval()
    clean = model.decode(model.encode(x)).numpy()
    np.testing.assert_array_equal(model(x).numpy(), clean)
    model.train()
    assert not np.allclose(model(x).numpy(), clean)
    dropped = float((model.corrupt(x).numpy() == 0).mean())
    assert 0.4 < dropped < 0.6
    gaussian = DenoisingAutoencoder([16, 8, 4], noise="gaussian", noise_level=0.1)
    noise = gaussian.corrupt(x).numpy() - x.numpy()
    assert 0.08 < noise.std() < 0.12
    with pytest.raises(ValueError, match="noise"):
        DenoisingAutoencoder([16, 8], noise="salt")


def test_denoising_autoencoder_removes_noise_from_digits():
    x, _ = _digits()
    train, test = x[:1400], x[1400:]
    model = DenoisingAutoencoder([64, 48, 24], noise="gaussian", noise_level=0.2, output_activation="sigmoid")
    _train(model, train, steps=300)
    noisy = test + np.random.default_rng(1).normal(0, 0.2, test.shape).astype(np.float32)
    model.eval()
    with rb.no_grad():
        denoised = model(rb.tensor(noisy)).numpy()
    assert ((denoised - test) ** 2).mean() < 0.5 * ((noisy - test) ** 2).mean()


# -- seq2seq -------------------------------------------------------------------------------------

def _seq2seq(cell="lstm", vocab=7, hidden=8):
    return Seq2Seq(Encoder(vocab, 5, hidden, cell=cell), Decoder(vocab, 5, hidden, cell=cell))


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_seq2seq_teacher_forcing_equals_step_by_step(cell):
    model = _seq2seq(cell).to(rb.float64)
    src = np.random.default_rng(0).integers(0, 7, (3, 4))
    tgt = np.random.default_rng(1).integers(0, 7, (3, 5))
    logits = model(src, tgt)
    assert logits.shape == (3, 5, 7)
    _, state = model.encoder(src)
    for t in range(5):
        step, state = model.decoder(tgt[:, t:t + 1], state)
        assert_close(logits[:, t:t + 1], step, f"step {t}", rtol=1e-10, atol=1e-12)


def test_seq2seq_free_running_equals_greedy_decode():
    model = _seq2seq("gru").to(rb.float64)
    src = np.random.default_rng(2).integers(0, 7, (4, 6))
    tgt = np.zeros((4, 5), dtype=np.int64)  # only the start token is read at ratio 0
    logits = model(src, tgt, teacher_forcing_ratio=0.0)
    generated = model.greedy_decode(src, max_len=5, start_token=0)
    np.testing.assert_array_equal(logits.numpy().argmax(-1), generated)
    assert model.generate == model.greedy_decode


def test_seq2seq_end_token_and_checks():
    model = _seq2seq()
    src = np.random.default_rng(3).integers(0, 7, (2, 3))
    out = model.greedy_decode(src, max_len=6, start_token=0, end_token=int(model.greedy_decode(src, 1, 0)[0, 0]))
    assert out.shape[1] <= 6
    with pytest.raises(ValueError, match="hidden_size"):
        Seq2Seq(Encoder(5, 4, 8), Decoder(5, 4, 6))
    with pytest.raises(ValueError, match="cell"):
        Seq2Seq(Encoder(5, 4, 8, cell="gru"), Decoder(5, 4, 8, cell="lstm"))
    with pytest.raises(ValueError, match="teacher_forcing_ratio"):
        model(src, src, teacher_forcing_ratio=1.5)
    with pytest.raises(ValueError, match="integer token ids"):
        model(rb.randn(2, 3), src)


def test_seq2seq_learns_to_reverse_short_strings():
    rb.manual_seed(0)
    rng = np.random.default_rng(0)
    digits, length, start = 6, 4, 6  # tokens 0-5, start token 6
    model = Seq2Seq(Encoder(digits, 16, 64), Decoder(digits + 1, 16, 64))
    optimizer = rb.optim.Adam(model.parameters(), lr=0.01)
    loss_fn = rb.nn.CrossEntropyLoss()
    for _ in range(300):
        src = rng.integers(0, digits, (64, length))
        target = src[:, ::-1]
        decoder_in = np.concatenate([np.full((64, 1), start), target[:, :-1]], axis=1)
        logits = model(src, decoder_in)
        loss = loss_fn(logits.reshape(-1, digits + 1), rb.tensor(target.reshape(-1)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    src = rng.integers(0, digits, (256, length))
    predicted = model.greedy_decode(src, max_len=length, start_token=start)
    accuracy = float((predicted == src[:, ::-1]).all(axis=1).mean())
    assert accuracy > 0.8, f"exact-sequence accuracy {accuracy:.2f}"


def test_models_registry_builds_them():
    assert isinstance(rb.models.get_model("autoencoder"), Autoencoder)
    assert isinstance(rb.models.get_model("denoising_autoencoder"), DenoisingAutoencoder)
    assert isinstance(rb.models.get_model("conv_autoencoder"), ConvAutoencoder)
    assert isinstance(rb.models.get_model("seq2seq", src_vocab=5), Seq2Seq)


# -- plots ----------------------------------------------------------------------------------------

def test_plots_write_files(tmp_path):
    pytest.importorskip("matplotlib")
    model = Autoencoder([64, 16, 3])
    x = np.random.default_rng(0).random((30, 64)).astype(np.float32)
    labels = np.arange(30) % 3
    rb.viz.plot_reconstructions(model, x, tmp_path / "recon.png", n=5)
    rb.viz.plot_latent_space(model, x, labels, tmp_path / "latent.png")
    conv = ConvAutoencoder(1, channels=(4,), latent_dim=2, input_size=(8, 8))
    rb.viz.plot_latent_space(conv, x.reshape(-1, 1, 8, 8), labels, tmp_path / "latent2.png")
    rb.viz.plot_reconstructions(conv, x.reshape(-1, 1, 8, 8), tmp_path / "recon2.png")
    for name in ("recon.png", "latent.png", "latent2.png", "recon2.png"):
        assert (tmp_path / name).stat().st_size > 1000
    assert model.training  # the plots restore the mode
    with pytest.raises(ValueError, match="image shape"):
        rb.viz.plot_reconstructions(Autoencoder([10, 2]), np.zeros((2, 10), np.float32))
