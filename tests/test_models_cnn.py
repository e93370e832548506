"""The convolutional model zoo: shapes, forward and backward, torchvision parameter counts, PyTorch
twins that load our state_dict and give the same outputs and gradients, a learning test, the
registry and the CNN plots."""

from __future__ import annotations

import numpy as np
import pytest

import rosenblatt as rb
from rosenblatt import models, nn
from tests.parity import HAVE_TORCH, assert_close, rb_tensor, requires_torch, to_numpy

if HAVE_TORCH:
    import torch
    import torch.nn as tnn
    import torch.nn.functional as tF


def num_params(model: nn.Module) -> int:
    return sum(int(np.prod(p.shape)) for p in model.parameters())


def forward_backward(model: nn.Module, x: np.ndarray, out_shape: tuple[int, ...]) -> None:
    """Forward gives ``out_shape``; backward reaches every parameter and the input with finite values."""
    xt = rb_tensor(x.astype(np.float32), requires_grad=True)
    out = model(xt)
    assert out.shape == out_shape
    (out * out).mean().backward()
    assert xt.grad is not None and np.isfinite(to_numpy(xt.grad)).all()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert np.isfinite(to_numpy(p.grad)).all(), name


def images(n: int, c: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, c, size, size)).astype(np.float32)


# -- every model builds, runs forward and backward (tiny widths and inputs) ----------------------

def test_lenet5_forward_backward():
    for activation, pooling in (("tanh", "avg"), ("relu", "max")):
        model = models.LeNet5(num_classes=10, activation=activation, pooling=pooling)
        forward_backward(model, images(3, 1, 28), (3, 10))
    assert num_params(models.LeNet5()) == 61706  # the classic 28x28-with-padding LeNet-5
    forward_backward(models.LeNet5(num_classes=4, in_channels=3, input_size=16), images(2, 3, 16), (2, 4))


def test_alexnet_small_forward_backward():
    model = models.AlexNet(num_classes=5, in_channels=1, small_input=True, hidden_features=32)
    forward_backward(model, images(2, 1, 16), (2, 5))


def test_vgg_small_forward_backward():
    model = models.VGG([8, "M", 16, "M", 16, "M"], batch_norm=True, num_classes=3, in_channels=1, small_input=True,
                       hidden_features=16)
    forward_backward(model, images(2, 1, 8), (2, 3))
    model = models.VGG([4, "M", 8, "M"], num_classes=3, in_channels=3, hidden_features=8)
    forward_backward(model, images(1, 3, 8), (1, 3))  # adaptive pool 2x2 -> 7x7 in the standard head


def test_inception_module_shape_and_grad():
    block = models.InceptionModule(6, 4, 3, 5, 2, 3, 2)
    forward_backward(block, images(2, 6, 5), (2, 4 + 5 + 3 + 2, 5, 5))


def test_googlenet_small_forward():
    model = models.googlenet(num_classes=10, in_channels=1, small_input=True).eval()
    with rb.no_grad():
        out = model(rb_tensor(images(1, 1, 8)))
    assert out.shape == (1, 10) and np.isfinite(to_numpy(out)).all()


def test_googlenet_aux_logits_in_training():
    model = models.GoogLeNet(num_classes=7, small_input=True, aux_logits=True)
    out = model(rb_tensor(images(2, 3, 8)))
    assert isinstance(out, tuple) and [o.shape for o in out] == [(2, 7)] * 3
    assert model.eval()(rb_tensor(images(2, 3, 8))).shape == (2, 7)


def test_resnet_blocks_forward_backward():
    model = models.ResNet(models.BasicBlock, [1, 1, 1, 1], num_classes=6, in_channels=1, small_input=True, width=4)
    forward_backward(model, images(2, 1, 8), (2, 6))
    model = models.ResNet(models.Bottleneck, [1, 2, 1, 1], num_classes=6, width=4)
    forward_backward(model, images(2, 3, 32), (2, 6))


@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_resnet20_forward_backward(shortcut):
    model = models.CifarResNet(n=1, num_classes=10, in_channels=1, shortcut=shortcut, width=4)
    forward_backward(model, images(2, 1, 8), (2, 10))
    full = models.resnet20(shortcut=shortcut)
    assert len([m for m in full.modules() if isinstance(m, nn.Conv2d)]) == 19 + (2 if shortcut == "B" else 0)


def test_pad_shortcut_is_subsample_and_zero_channels():
    x = images(2, 3, 5)
    out = to_numpy(models.PadShortcut(3, 8, stride=2)(rb_tensor(x)))
    assert out.shape == (2, 8, 3, 3)
    np.testing.assert_array_equal(out[:, 2:5], x[:, :, ::2, ::2])
    assert not out[:, :2].any() and not out[:, 5:].any()


def test_densenet_forward_backward():
    model = models.DenseNet(growth_rate=4, block_config=(2, 2), num_init_features=8, bn_size=2, num_classes=5,
                            in_channels=1, small_input=True)
    forward_backward(model, images(2, 1, 8), (2, 5))
    block = models.DenseBlock(3, 5, bn_size=2, growth_rate=4)
    forward_backward(block, images(2, 5, 4), (2, 5 + 3 * 4, 4, 4))
    forward_backward(models.Transition(6, 3), images(2, 6, 4), (2, 3, 2, 2))


@pytest.mark.parametrize("depth", [1, 2])
def test_unet_forward_backward(depth):
    model = models.UNet(in_channels=2, out_channels=3, depth=depth, base_channels=4)
    forward_backward(model, images(2, 2, 8), (2, 3, 8, 8))


def test_unet_rejects_sizes_it_cannot_halve():
    model = models.UNet(1, 1, depth=2, base_channels=2)
    with pytest.raises(ValueError, match="UNet"):
        model(rb_tensor(images(1, 1, 10)))


def test_bad_input_names_the_model():
    with pytest.raises(ValueError, match="LeNet5"):
        models.LeNet5()(rb_tensor(images(1, 3, 28)))
    with pytest.raises(ValueError, match="LeNet5"):
        models.LeNet5()(rb_tensor(images(1, 1, 32)))
    with pytest.raises(ValueError, match="VGG"):
        models.VGG("vgg99")
    with pytest.raises(ValueError, match="CifarResNet"):
        models.resnet20(shortcut="C")
    with pytest.raises(ValueError, match="get_model"):
        models.get_model("resnet1000")


# -- parameter counts equal torchvision's published numbers -------------------------------------

@pytest.mark.parametrize("name, expected", [
    ("resnet18", 11_689_512), ("resnet34", 21_797_672), ("resnet50", 25_557_032),
    ("googlenet", 6_624_904), ("densenet121", 7_978_856),
])
def test_parameter_counts_match_torchvision(name, expected):
    assert num_params(models.get_model(name, num_classes=1000)) == expected


@pytest.mark.slow
@pytest.mark.parametrize("name, expected", [
    ("alexnet", 61_100_840), ("vgg11", 132_863_336), ("vgg16", 138_357_544),
])
def test_parameter_counts_match_torchvision_large(name, expected):
    # building is the slow part (10^8 random draws): skip VGG's second, torchvision-style initialisation
    kwargs = {"init_weights": False} if name.startswith("vgg") else {}
    assert num_params(models.get_model(name, num_classes=1000, **kwargs)) == expected


def test_parameter_counts_cifar_models():
    assert num_params(models.resnet20()) == 269_722  # He et al. 2016, Table 6: 0.27 M
    assert num_params(models.resnet20(shortcut="B")) == 269_722 + 16 * 32 + 32 * 64 + 2 * (32 + 64)


# -- the registry: every name builds for 1x28x28; documented minimum input sizes hold ------------

# the smallest square input each registered model accepts with small_input=True, in_channels=1
MIN_SIZES = {"lenet5": 28, "alexnet": 8, "vgg11": 16, "vgg13": 16, "vgg16": 16, "vgg19": 16, "googlenet": 8,
             "resnet18": 1, "resnet34": 1, "resnet50": 1, "resnet20": 4, "densenet121": 8, "densenet_bc": 4,
             "unet": 4}


def test_registry_names():
    assert set(MIN_SIZES) <= set(models.MODELS)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MIN_SIZES))
def test_registry_builds_for_28x28(name):
    model = models.get_model(name, num_classes=10, in_channels=1, small_input=True).eval()
    with rb.no_grad():
        out = model(rb_tensor(images(1, 1, 28)))
    assert out.shape == ((1, 10, 28, 28) if name == "unet" else (1, 10))


@pytest.mark.parametrize("name", ["lenet5", "alexnet", "vgg11", "resnet18", "resnet20", "densenet_bc", "unet"])
def test_minimum_input_size(name):
    model = models.get_model(name, num_classes=3, in_channels=1, small_input=True).eval()
    size = MIN_SIZES[name]
    with rb.no_grad():
        assert model(rb_tensor(images(1, 1, size))).shape[:2] == (1, 3)
        if size > 1:
            with pytest.raises(ValueError):
                model(rb_tensor(images(1, 1, size - 1)))


@pytest.mark.parametrize("build, size", [
    (lambda: models.googlenet(num_classes=3), 32),
    (lambda: models.densenet121(num_classes=3), 32),
    (lambda: models.VGG([4, "M", 8, "M"], num_classes=3, hidden_features=8), 4),
])
def test_minimum_input_size_of_standard_variants(build, size):
    model = build().eval()
    with rb.no_grad():
        assert model(rb_tensor(images(1, 3, size))).shape == (1, 3)
        with pytest.raises(ValueError):
            model(rb_tensor(images(1, 3, size - 1)))


# -- PyTorch twins: same layout, our state_dict loads, same outputs and gradients ----------------

if HAVE_TORCH:
    class TorchBasicBlock(tnn.Module):
        def __init__(self, cin, c, stride=1):
            super().__init__()
            self.conv1 = tnn.Conv2d(cin, c, 3, stride, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(c)
            self.relu = tnn.ReLU()
            self.conv2 = tnn.Conv2d(c, c, 3, 1, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(c)
            self.downsample = None
            if stride != 1 or cin != c:
                self.downsample = tnn.Sequential(tnn.Conv2d(cin, c, 1, stride, bias=False), tnn.BatchNorm2d(c))

        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            return self.relu(self.bn2(self.conv2(out)) + identity)

    class TorchResNet18(tnn.Module):
        """torchvision.models.resnet18, written out (torchvision is not a test dependency);
        ``width`` 64 is torchvision's network."""

        def __init__(self, num_classes=1000, width=64):
            super().__init__()
            self.conv1 = tnn.Conv2d(3, width, 7, 2, 3, bias=False)
            self.bn1 = tnn.BatchNorm2d(width)
            self.relu = tnn.ReLU()
            self.maxpool = tnn.MaxPool2d(3, 2, 1)
            cin = width
            for i, c in enumerate((width, 2 * width, 4 * width, 8 * width)):
                stride = 1 if i == 0 else 2
                setattr(self, f"layer{i + 1}", tnn.Sequential(TorchBasicBlock(cin, c, stride), TorchBasicBlock(c, c)))
                cin = c
            self.avgpool = tnn.AdaptiveAvgPool2d((1, 1))
            self.fc = tnn.Linear(8 * width, num_classes)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch.flatten(self.avgpool(x), 1))

    class TorchLeNet5(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = tnn.Conv2d(1, 6, 5, padding=2)
            self.conv2 = tnn.Conv2d(6, 16, 5)
            self.fc1 = tnn.Linear(400, 120)
            self.fc2 = tnn.Linear(120, 84)
            self.fc3 = tnn.Linear(84, 10)

        def forward(self, x):
            x = tF.avg_pool2d(torch.tanh(self.conv1(x)), 2)
            x = tF.avg_pool2d(torch.tanh(self.conv2(x)), 2)
            x = torch.tanh(self.fc1(torch.flatten(x, 1)))
            return self.fc3(torch.tanh(self.fc2(x)))

    class TorchDenseLayer(tnn.Module):
        def __init__(self, cin, growth, bn_size):
            super().__init__()
            self.norm1 = tnn.BatchNorm2d(cin)
            self.relu1 = tnn.ReLU()
            self.conv1 = tnn.Conv2d(cin, bn_size * growth, 1, bias=False)
            self.norm2 = tnn.BatchNorm2d(bn_size * growth)
            self.relu2 = tnn.ReLU()
            self.conv2 = tnn.Conv2d(bn_size * growth, growth, 3, padding=1, bias=False)

        def forward(self, features):
            x = self.conv1(self.relu1(self.norm1(torch.cat(features, 1))))
            return self.conv2(self.relu2(self.norm2(x)))

    class TorchDenseBlock(tnn.ModuleDict):
        def __init__(self, n, cin, bn_size, growth):
            super().__init__()
            for i in range(n):
                self[f"denselayer{i + 1}"] = TorchDenseLayer(cin + i * growth, growth, bn_size)

        def forward(self, x):
            features = [x]
            for layer in self.values():
                features.append(layer(features))
            return torch.cat(features, 1)

    class TorchDenseNetBC(tnn.Module):
        """torchvision's DenseNet with the CIFAR stem (3x3 conv0, no pooling)."""

        def __init__(self, growth=12, blocks=(6, 6, 6), num_classes=10, in_channels=3):
            super().__init__()
            self.features = tnn.Sequential()
            self.features.add_module("conv0", tnn.Conv2d(in_channels, 2 * growth, 3, padding=1, bias=False))
            c = 2 * growth
            for i, n in enumerate(blocks):
                self.features.add_module(f"denseblock{i + 1}", TorchDenseBlock(n, c, 4, growth))
                c += n * growth
                if i != len(blocks) - 1:
                    trans = tnn.Sequential()
                    trans.add_module("norm", tnn.BatchNorm2d(c))
                    trans.add_module("relu", tnn.ReLU())
                    trans.add_module("conv", tnn.Conv2d(c, c // 2, 1, bias=False))
                    trans.add_module("pool", tnn.AvgPool2d(2, 2))
                    self.features.add_module(f"transition{i + 1}", trans)
                    c //= 2
            self.features.add_module(f"norm{len(blocks) + 1}", tnn.BatchNorm2d(c))
            self.classifier = tnn.Linear(c, num_classes)

        def forward(self, x):
            x = tF.adaptive_avg_pool2d(tF.relu(self.features(x)), 1)
            return self.classifier(torch.flatten(x, 1))


def _compare_with_twin(model: nn.Module, twin, x: np.ndarray, rtol: float = 1e-7, atol: float = 1e-9) -> None:
    """Load our float64 weights into the twin; compare training-mode outputs, every parameter and
    input gradient, the updated BatchNorm running statistics, then eval-mode outputs."""
    model.double()
    twin.double()
    ours = {k: to_numpy(v) for k, v in model.state_dict().items()}
    theirs = twin.state_dict()
    assert list(ours) == list(theirs), "state_dict keys differ from the torchvision layout"
    twin.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in ours.items()})
    x = x.astype(np.float64)
    upstream = np.random.default_rng(1).standard_normal
    xr, xt = rb_tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out, tout = model(xr), twin(xt)
    assert_close(out, tout, "training-mode output", rtol=rtol, atol=atol)
    g = upstream(tuple(out.shape))
    (out * rb_tensor(g)).sum().backward()
    (tout * torch.tensor(g)).sum().backward()
    assert_close(xr.grad, xt.grad, "input gradient", rtol=rtol * 10, atol=atol * 10)
    tparams = dict(twin.named_parameters())
    for name, p in model.named_parameters():
        # a gradient entry that sums terms of ~1e3 and cancels to ~1e-2 keeps only the absolute
        # precision of its terms: scale the absolute tolerance with the gradient's magnitude
        scale = max(1.0, float(tparams[name].grad.abs().max()))
        assert_close(p.grad, tparams[name].grad, f"gradient of {name}", rtol=rtol * 10, atol=atol * 10 * scale)
    tbuffers = dict(twin.named_buffers())
    for name, b in model.named_buffers():
        assert_close(b, tbuffers[name], f"buffer {name}", rtol=rtol, atol=atol)
    model.eval()
    twin.eval()
    with rb.no_grad(), torch.no_grad():
        assert_close(model(rb_tensor(x)), twin(torch.tensor(x)), "eval-mode output", rtol=rtol, atol=atol)


@requires_torch
def test_narrow_resnet18_matches_torchvision_layout_twin():
    torch.manual_seed(0)
    _compare_with_twin(models.resnet18(num_classes=7, width=8), TorchResNet18(num_classes=7, width=8),
                       images(2, 3, 32))


@pytest.mark.slow
@requires_torch
def test_resnet18_matches_torchvision_layout_twin():
    torch.manual_seed(0)
    _compare_with_twin(models.resnet18(num_classes=7), TorchResNet18(num_classes=7), images(2, 3, 32))


@requires_torch
def test_lenet5_matches_torch_twin():
    torch.manual_seed(0)
    _compare_with_twin(models.LeNet5(), TorchLeNet5(), images(4, 1, 28))


@requires_torch
def test_densenet_bc_matches_torch_twin():
    torch.manual_seed(0)
    model = models.densenet_bc(num_classes=10, in_channels=3, growth_rate=4, block_config=(2, 3))
    _compare_with_twin(model, TorchDenseNetBC(growth=4, blocks=(2, 3)), images(2, 3, 8))


@requires_torch
def test_torch_state_dict_loads_into_resnet18():
    # the other direction: weights trained in PyTorch (torchvision layout) load and give the same logits
    torch.manual_seed(0)
    twin = TorchResNet18(num_classes=5).eval()
    for m in twin.modules():  # non-trivial running statistics
        if isinstance(m, tnn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    model = models.resnet18(num_classes=5).eval()
    model.load_state_dict({k: v.numpy() for k, v in twin.state_dict().items()})
    x = images(2, 3, 32)
    with rb.no_grad(), torch.no_grad():
        assert_close(model(rb_tensor(x)), twin(torch.tensor(x)), "eval-mode logits", rtol=1e-4, atol=1e-5)


# -- learning: a wrong gradient cannot reach this ------------------------------------------------

def test_lenet5_learns_digits():
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]
    x = np.pad(x, ((0, 0), (0, 0), (4, 4), (4, 4)))  # 8x8 -> 16x16, LeNet5's input_size=16
    x = (x - x.mean()) / x.std()
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(x))
    train, test = order[:1200], order[1200:]
    model = models.LeNet5(num_classes=10, activation="relu", pooling="max", input_size=16)
    optimizer = rb.optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = nn.CrossEntropyLoss()
    rng = np.random.default_rng(1)
    for _ in range(6):
        for batch in np.array_split(rng.permutation(train), len(train) // 32):
            optimizer.zero_grad()
            loss = loss_fn(model(rb.tensor(x[batch])), rb.tensor(y[batch]))
            loss.backward()
            optimizer.step()
    model.eval()
    with rb.no_grad():
        accuracy = (to_numpy(model(rb.tensor(x[test]))).argmax(axis=1) == y[test]).mean()
    # 0.95-0.97 over seeds; with the convolutions frozen at their initial weights (a conv weight
    # gradient of zero) the same run reaches only 0.81-0.86
    assert accuracy >= 0.93, accuracy


# -- plots ---------------------------------------------------------------------------------------

def test_plot_filters_writes_png(tmp_path):
    from rosenblatt.viz import plot_filters

    conv = nn.Conv2d(3, 10, 5)
    path = tmp_path / "filters.png"
    plot_filters(conv, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    plot_filters(np.zeros((4, 1, 3, 3)), tmp_path / "flat.png", channel=0)  # constant kernels draw grey
    assert (tmp_path / "flat.png").stat().st_size > 0
    with pytest.raises(ValueError, match="plot_filters"):
        plot_filters(np.zeros((4, 3)), tmp_path / "bad.png")


def test_plot_feature_maps_writes_png_and_removes_hooks(tmp_path):
    from rosenblatt.viz import capture_feature_maps, plot_feature_maps

    model = models.LeNet5().eval()
    x = rb_tensor(images(2, 1, 28))
    maps = capture_feature_maps(model, x)
    assert {k: v.shape for k, v in maps.items()} == {"conv1": (2, 6, 28, 28), "conv2": (2, 16, 10, 10)}
    path = tmp_path / "maps.png"
    plot_feature_maps(model, x, layer_names=["conv1", "pool2", "fc3"], path=path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert all(not m._forward_hooks for m in model.modules())
    with pytest.raises(ValueError, match="no sub-module"):
        plot_feature_maps(model, x, layer_names=["conv9"])


# -- the examples run (quick mode) and print their results -----------------------------------------

FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


@pytest.mark.slow
@pytest.mark.parametrize("script, expected", [
    ("sobel_edges.py", "max abs difference"),
    ("two_headed_cnn.py", "mean IoU"),
    ("unet_denoising.py", "PSNR on 200 held-out images"),
    ("lenet5_fashion_mnist.py", "final test accuracy"),
    ("resnet20_fashion_mnist.py", "final test accuracy"),
])
def test_cnn_examples_run_quick(script, expected, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    if "fashion" in script and not os.path.isdir(FASHION_MNIST):
        pytest.skip("Fashion-MNIST files not installed (apt-get install dataset-fashion-mnist)")
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root / "src"), MPLBACKEND="Agg")
    args = [sys.executable, str(root / "examples" / script), "--quick"]
    if script in ("sobel_edges.py", "unet_denoising.py"):
        args += ["--out", str(tmp_path)]
    result = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert expected in result.stdout, result.stdout
    if script == "sobel_edges.py":
        difference = float(result.stdout.split("max abs difference")[1].split()[0])
        assert difference < 1e-5 and (tmp_path / "sobel_edges.png").exists()
