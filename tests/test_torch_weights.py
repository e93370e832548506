"""PyTorch weights into rosenblatt models: ``rb.io.from_torch_state_dict``.

For each model family a small PyTorch twin with the same layer names is built here (torchvision is
not needed); its ``state_dict`` - as torch tensors, and as a ``.safetensors`` file written by the
``safetensors`` package - is loaded into the rosenblatt model, and both must compute the same outputs.
"""

from __future__ import annotations

import numpy as np
import pytest

import rosenblatt as rb
from rosenblatt.io import from_torch_state_dict
from tests.parity import HAVE_TORCH, requires_torch

if HAVE_TORCH:
    import torch
    import torch.nn as tnn
    import torch.nn.functional as tF

pytestmark = requires_torch


# -- PyTorch twins (the layer names are rosenblatt's) ----------------------------------------------------


def torch_mlp(sizes):
    class MLP(tnn.Module):
        def __init__(self):
            super().__init__()
            self.hidden = tnn.ModuleList(
                tnn.Sequential(tnn.Linear(a, b), tnn.BatchNorm1d(b), tnn.ReLU()) for a, b in zip(sizes[:-2], sizes[1:-1]))
            self.output = tnn.Linear(sizes[-2], sizes[-1])

        def forward(self, x):
            for block in self.hidden:
                x = block(x)
            return self.output(x)

    return MLP()


def torch_lenet5():
    class LeNet5(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.act1, self.pool1 = tnn.Conv2d(1, 6, 5, padding=2), tnn.Tanh(), tnn.AvgPool2d(2)
            self.conv2, self.act2, self.pool2 = tnn.Conv2d(6, 16, 5), tnn.Tanh(), tnn.AvgPool2d(2)
            self.flatten = tnn.Flatten()
            self.fc1, self.act3 = tnn.Linear(400, 120), tnn.Tanh()
            self.fc2, self.act4 = tnn.Linear(120, 84), tnn.Tanh()
            self.fc3 = tnn.Linear(84, 10)

        def forward(self, x):
            x = self.pool1(self.act1(self.conv1(x)))
            x = self.pool2(self.act2(self.conv2(x)))
            return self.fc3(self.act4(self.fc2(self.act3(self.fc1(self.flatten(x))))))

    return LeNet5()


class _PadShortcut(tnn.Module if HAVE_TORCH else object):
    def __init__(self, extra):
        super().__init__()
        self.extra = extra

    def forward(self, x):
        return tF.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))


class _BasicBlock(tnn.Module if HAVE_TORCH else object):
    def __init__(self, cin, cout, stride, downsample):
        super().__init__()
        self.conv1 = tnn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(cout)
        self.relu = tnn.ReLU()
        self.conv2 = tnn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = tnn.BatchNorm2d(cout)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))) + identity)


def torch_resnet(widths, blocks, cifar, num_classes=5):
    """resnet20 (``cifar``: option-A shortcuts, three stages) or a small-input resnet18 (1x1 projections)."""

    class ResNet(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = tnn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(widths[0])
            self.relu = tnn.ReLU()
            if not cifar:
                self.maxpool = tnn.Identity()
            channels = widths[0]
            for i, width in enumerate(widths):
                stride = 1 if i == 0 else 2
                layers = []
                for b in range(blocks):
                    downsample = None
                    if b == 0 and (stride != 1 or channels != width):
                        downsample = _PadShortcut(width - channels) if cifar else tnn.Sequential(
                            tnn.Conv2d(channels, width, 1, stride, bias=False), tnn.BatchNorm2d(width))
                    layers.append(_BasicBlock(channels, width, stride if b == 0 else 1, downsample))
                    channels = width
                setattr(self, f"layer{i + 1}", tnn.Sequential(*layers))
            self.avgpool = tnn.AdaptiveAvgPool2d((1, 1))
            self.fc = tnn.Linear(channels, num_classes)

        def forward(self, x):
            x = self.relu(self.bn1(self.conv1(x)))
            for i in range(len(widths)):
                x = getattr(self, f"layer{i + 1}")(x)
            return self.fc(torch.flatten(self.avgpool(x), 1))

    return ResNet()


def torch_autoencoder(sizes):
    class Autoencoder(tnn.Module):
        def __init__(self):
            super().__init__()

            def stack(widths):
                layers = []
                for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
                    layers.append(tnn.Linear(a, b))
                    if i < len(widths) - 2:
                        layers.append(tnn.ReLU())
                return tnn.Sequential(*layers)

            self.encoder = stack(list(sizes))
            self.decoder = stack(list(sizes)[::-1])

        def forward(self, x):
            return self.decoder(self.encoder(x))

    return Autoencoder()


def torch_seq2seq(src_vocab, tgt_vocab, embedding_dim, hidden, layers):
    class Part(tnn.Module):
        def __init__(self, vocab, with_output):
            super().__init__()
            self.embedding = tnn.Embedding(vocab, embedding_dim)
            self.rnn = tnn.LSTM(embedding_dim, hidden, num_layers=layers, batch_first=True)
            if with_output:
                self.out = tnn.Linear(hidden, vocab)

    class Seq2Seq(tnn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = Part(src_vocab, False)
            self.decoder = Part(tgt_vocab, True)

        def forward(self, src, tgt):
            _, state = self.encoder.rnn(self.encoder.embedding(src))
            out, _ = self.decoder.rnn(self.decoder.embedding(tgt), state)
            return self.decoder.out(out)

    return Seq2Seq()


def _randomise(torch_model):
    """Random weights and batch-norm statistics, so that a mis-loaded tensor cannot pass."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, t in torch_model.state_dict().items():
            if t.dtype.is_floating_point:
                if name.endswith("running_var"):
                    t.copy_(torch.rand(t.shape, generator=g) + 0.5)
                else:
                    t.copy_(torch.randn(t.shape, generator=g) * 0.3)
    return torch_model.eval()


rng = np.random.default_rng(0)
CASES = {
    "mlp": (lambda: torch_mlp((6, 16, 16, 4)), dict(sizes=(6, 16, 16, 4), batch_norm=True),
            lambda: [rng.normal(size=(5, 6))]),
    "lenet5": (torch_lenet5, dict(), lambda: [rng.normal(size=(2, 1, 28, 28))]),
    "resnet20": (lambda: torch_resnet([4, 8, 16], 3, cifar=True), dict(num_classes=5, width=4),
                 lambda: [rng.normal(size=(2, 3, 8, 8))]),
    "resnet18": (lambda: torch_resnet([8, 16, 32, 64], 2, cifar=False),
                 dict(num_classes=5, small_input=True, width=8), lambda: [rng.normal(size=(2, 3, 8, 8))]),
    "autoencoder": (lambda: torch_autoencoder((12, 8, 4)), dict(sizes=(12, 8, 4)),
                    lambda: [rng.normal(size=(5, 12))]),
    "seq2seq": (lambda: torch_seq2seq(11, 9, 6, 8, 2),
                dict(src_vocab=11, tgt_vocab=9, embedding_dim=6, hidden_size=8, num_layers=2),
                lambda: [rng.integers(0, 11, (3, 7)), rng.integers(0, 9, (3, 5))]),
}


def _outputs_equal(torch_model, rb_model, inputs):
    rb_model.eval()
    with torch.no_grad():
        expected = torch_model(*[torch.from_numpy(np.asarray(x, dtype=np.float32) if x.dtype.kind == "f" else x)
                                 for x in inputs]).numpy()
    with rb.no_grad():
        got = rb_model(*[rb.tensor(np.asarray(x, dtype=np.float32) if x.dtype.kind == "f" else x)
                         for x in inputs]).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", sorted(CASES))
def test_torch_state_dict_loads_and_gives_the_same_outputs(name, tmp_path):
    if name not in rb.models.MODELS:
        pytest.skip(f"rb.models has no {name}")
    make_torch, kwargs, make_inputs = CASES[name]
    torch_model = _randomise(make_torch())
    inputs = make_inputs()

    rb_model = rb.models.get_model(name, **kwargs)
    assert from_torch_state_dict(torch_model.state_dict(), rb_model) is rb_model
    _outputs_equal(torch_model, rb_model, inputs)

    # the same weights through a .safetensors file written from the torch tensors
    from safetensors.torch import save_file

    path = tmp_path / f"{name}.safetensors"
    save_file({k: v.contiguous() for k, v in torch_model.state_dict().items()}, str(path))
    from_file = from_torch_state_dict(path, rb.models.get_model(name, **kwargs))
    _outputs_equal(torch_model, from_file, inputs)


def test_returns_arrays_and_strips_wrapper_prefixes():
    layer = tnn.Linear(3, 2)
    arrays = from_torch_state_dict({f"module.{k}": v for k, v in layer.state_dict().items()})
    assert sorted(arrays) == ["bias", "weight"]
    assert isinstance(arrays["weight"], np.ndarray) and arrays["weight"].shape == (2, 3)
    np.testing.assert_array_equal(arrays["weight"], layer.weight.detach().numpy())
    nested = from_torch_state_dict({"state_dict": layer.state_dict(), "epoch": 3})
    assert sorted(nested) == ["bias", "weight"]
    half = from_torch_state_dict({"w": torch.ones(2, dtype=torch.bfloat16), "n": np.arange(3)})
    assert half["w"].dtype == np.float32 and half["n"].tolist() == [0, 1, 2]


def test_mismatches_are_reported():
    model = rb.nn.Linear(3, 2)
    with pytest.raises(ValueError, match=r"weight: expected shape \(2, 3\), got \(2, 4\)"):
        from_torch_state_dict(tnn.Linear(4, 2).state_dict(), model)
    with pytest.raises(ValueError, match="missing keys: bias"):
        from_torch_state_dict({"weight": torch.zeros(2, 3)}, model)
    with pytest.warns(UserWarning, match="missing keys"):
        from_torch_state_dict({"weight": torch.zeros(2, 3)}, model, strict=False)
    np.testing.assert_array_equal(model.weight.numpy(), np.zeros((2, 3)))
    with pytest.raises(TypeError, match="'weight' holds a str"):
        from_torch_state_dict({"weight": "nope"})


def test_pickled_files_are_refused(tmp_path):
    path = tmp_path / "weights.pt"
    path.write_bytes(b"\x80\x04not read")
    with pytest.raises(ValueError, match="never loads"):
        from_torch_state_dict(path)
    with pytest.raises(FileNotFoundError):
        from_torch_state_dict(tmp_path / "absent.safetensors")
