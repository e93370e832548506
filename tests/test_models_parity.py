"""AlexNet, VGG, GoogLeNet (with its auxiliary classifiers) and UNet against PyTorch twins written
out layer by layer (torchvision is not a test dependency): the same float64 weights give the same
training-mode outputs, input and parameter gradients, BatchNorm running statistics, and eval-mode
outputs (``_compare_with_twin``)."""

from __future__ import annotations

import numpy as np
import pytest

import rosenblatt as rb
from rosenblatt import models
from tests.parity import HAVE_TORCH, requires_torch
from tests.test_models_cnn import _compare_with_twin

if HAVE_TORCH:
    import torch
    import torch.nn as tnn
else:
    torch = tnn = None


def images(n: int, c: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, c, size, size))


if HAVE_TORCH:

    def sequential_twin(seq) -> tnn.Sequential:
        """The PyTorch layers of a rosenblatt ``Sequential`` of plain layers, with the same indices."""
        layers = []
        for m in seq:
            name = type(m).__name__
            if name == "Conv2d":
                layers.append(tnn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
                                         bias=m.bias is not None))
            elif name == "Linear":
                layers.append(tnn.Linear(m.in_features, m.out_features, bias=m.bias is not None))
            elif name == "BatchNorm2d":
                layers.append(tnn.BatchNorm2d(m.num_features, eps=m.eps, momentum=m.momentum))
            elif name == "MaxPool2d":
                layers.append(tnn.MaxPool2d(m.kernel_size, m.stride, m.padding, ceil_mode=m.ceil_mode))
            elif name == "Dropout":
                layers.append(tnn.Dropout(m.p))
            elif name == "ReLU":
                layers.append(tnn.ReLU())
            else:
                raise TypeError(name)
        return tnn.Sequential(*layers)

    class TorchClassifierNet(tnn.Module):
        """AlexNet and VGG: ``classifier(flatten(avgpool(features(x))))``."""

        def __init__(self, model):
            super().__init__()
            self.features = sequential_twin(model.features)
            self.avgpool = tnn.AdaptiveAvgPool2d(model.avgpool.output_size)
            self.classifier = sequential_twin(model.classifier)

        def forward(self, x):
            return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))

    class TorchBasicConv2d(tnn.Module):
        def __init__(self, m):
            super().__init__()
            c = m.conv
            self.conv = tnn.Conv2d(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding, bias=False)
            self.bn = tnn.BatchNorm2d(c.out_channels, eps=0.001)

        def forward(self, x):
            return torch.relu(self.bn(self.conv(x)))

    class TorchInception(tnn.Module):
        def __init__(self, m):
            super().__init__()
            self.branch1 = TorchBasicConv2d(m.branch1)
            self.branch2 = tnn.Sequential(TorchBasicConv2d(m.branch2[0]), TorchBasicConv2d(m.branch2[1]))
            self.branch3 = tnn.Sequential(TorchBasicConv2d(m.branch3[0]), TorchBasicConv2d(m.branch3[1]))
            self.branch4 = tnn.Sequential(tnn.MaxPool2d(3, 1, 1, ceil_mode=True), TorchBasicConv2d(m.branch4[1]))

        def forward(self, x):
            return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)

    class TorchInceptionAux(tnn.Module):
        def __init__(self, m):
            super().__init__()
            self.conv = TorchBasicConv2d(m.conv)
            self.fc1 = tnn.Linear(2048, 1024)
            self.fc2 = tnn.Linear(1024, m.fc2.out_features)
            self.dropout = tnn.Dropout(m.dropout.p)

        def forward(self, x):
            x = self.conv(tnn.functional.adaptive_avg_pool2d(x, (4, 4)))
            x = torch.relu(self.fc1(torch.flatten(x, 1)))
            return self.fc2(self.dropout(x))

    class TorchGoogLeNet(tnn.Module):
        """torchvision's GoogLeNet layout (the small-input stem when ``model.small_input``)."""

        def __init__(self, model):
            super().__init__()
            self.conv1 = TorchBasicConv2d(model.conv1)
            self.maxpool1 = tnn.Identity() if model.small_input else tnn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv2 = TorchBasicConv2d(model.conv2)
            self.conv3 = TorchBasicConv2d(model.conv3)
            self.maxpool2 = tnn.Identity() if model.small_input else tnn.MaxPool2d(3, 2, ceil_mode=True)
            for name in ("inception3a", "inception3b", "inception4a", "inception4b", "inception4c", "inception4d",
                         "inception4e", "inception5a", "inception5b"):
                setattr(self, name, TorchInception(getattr(model, name)))
            self.maxpool3 = tnn.MaxPool2d(3, 2, ceil_mode=True)
            self.maxpool4 = tnn.MaxPool2d(2, 2, ceil_mode=True)
            self.aux1 = TorchInceptionAux(model.aux1) if model.aux1 is not None else None
            self.aux2 = TorchInceptionAux(model.aux2) if model.aux2 is not None else None
            self.dropout = tnn.Dropout(model.dropout.p)
            self.fc = tnn.Linear(1024, model.fc.out_features)

        def forward(self, x):
            x = self.maxpool1(self.conv1(x))
            x = self.maxpool2(self.conv3(self.conv2(x)))
            x = self.maxpool3(self.inception3b(self.inception3a(x)))
            x = self.inception4a(x)
            aux1 = self.aux1(x) if self.aux1 is not None and self.training else None
            x = self.inception4d(self.inception4c(self.inception4b(x)))
            aux2 = self.aux2(x) if self.aux2 is not None and self.training else None
            x = self.maxpool4(self.inception4e(x))
            x = self.inception5b(self.inception5a(x))
            x = self.fc(self.dropout(torch.flatten(tnn.functional.adaptive_avg_pool2d(x, 1), 1)))
            return (x, aux2, aux1) if aux1 is not None else x

    class TorchUNet(tnn.Module):
        def __init__(self, model):
            super().__init__()
            self.inc = sequential_twin(model.inc)
            self.downs = tnn.ModuleList([sequential_twin(d) for d in model.downs])
            self.ups = tnn.ModuleList([tnn.ConvTranspose2d(u.in_channels, u.out_channels, 2, 2) for u in model.ups])
            self.up_convs = tnn.ModuleList([sequential_twin(c) for c in model.up_convs])
            self.outc = tnn.Conv2d(model.outc.in_channels, model.outc.out_channels, 1)

        def forward(self, x):
            x = self.inc(x)
            skips = [x]
            for down in self.downs:
                x = down(tnn.functional.max_pool2d(x, 2))
                skips.append(x)
            skips.pop()
            for up, conv in zip(self.ups, self.up_convs):
                x = conv(torch.cat([skips.pop(), up(x)], 1))
            return self.outc(x)


@requires_torch
def test_alexnet_small_matches_torch_twin():
    rb.manual_seed(0)
    model = models.AlexNet(num_classes=5, small_input=True, dropout=0.0, hidden_features=32)
    _compare_with_twin(model, TorchClassifierNet(model), images(2, 3, 8))


@requires_torch
@pytest.mark.parametrize("batch_norm", [False, True])
def test_vgg_small_matches_torch_twin(batch_norm):
    rb.manual_seed(0)
    model = models.VGG([8, "M", 16, 16, "M", 16, "M"], batch_norm=batch_norm, num_classes=4, small_input=True,
                       dropout=0.0, hidden_features=16)
    _compare_with_twin(model, TorchClassifierNet(model), images(2, 3, 8))


@requires_torch
def test_vgg_standard_head_matches_torch_twin():
    rb.manual_seed(0)
    model = models.VGG([4, "M", 8, "M"], num_classes=3, dropout=0.0, hidden_features=8)  # 7x7 adaptive pool
    _compare_with_twin(model, TorchClassifierNet(model), images(2, 3, 16))


@pytest.mark.slow
@requires_torch
def test_googlenet_with_aux_classifiers_matches_torch_twin():
    rb.manual_seed(0)
    model = models.GoogLeNet(num_classes=6, in_channels=1, small_input=True, aux_logits=True, dropout=0.0,
                             dropout_aux=0.0)
    twin = TorchGoogLeNet(model)
    model.double()
    twin.double()
    ours = {k: v.numpy() for k, v in model.state_dict().items()}
    assert list(ours) == list(twin.state_dict())
    twin.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in ours.items()})
    x = images(2, 1, 16)
    xr = rb.tensor(x, requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    outs, touts = model(xr), twin(xt)
    assert len(outs) == len(touts) == 3  # (logits, aux2, aux1) in training mode
    g = np.random.default_rng(2)
    total, ttotal = 0, 0
    for o, t in zip(outs, touts):
        np.testing.assert_allclose(o.numpy(), t.detach().numpy(), rtol=1e-7, atol=1e-9)
        u = g.standard_normal(o.shape)
        total = total + (o * rb.tensor(u)).sum()
        ttotal = ttotal + (t * torch.tensor(u)).sum()
    total.backward()
    ttotal.backward()
    np.testing.assert_allclose(xr.grad.numpy(), xt.grad.numpy(), rtol=1e-6, atol=1e-8)
    tparams = dict(twin.named_parameters())
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tparams[name].grad.numpy(), rtol=1e-6, atol=1e-8, err_msg=name)
    model.eval()
    twin.eval()
    with rb.no_grad(), torch.no_grad():
        np.testing.assert_allclose(model(rb.tensor(x)).numpy(), twin(torch.tensor(x)).numpy(), rtol=1e-7, atol=1e-9)


@requires_torch
@pytest.mark.parametrize("batch_norm", [True, False])
def test_unet_matches_torch_twin(batch_norm):
    rb.manual_seed(0)
    model = models.UNet(in_channels=2, out_channels=3, depth=2, base_channels=4, batch_norm=batch_norm)
    _compare_with_twin(model, TorchUNet(model), images(2, 2, 8))


@requires_torch
def test_alexnet_standard_matches_torch_twin():
    rb.manual_seed(0)
    model = models.AlexNet(num_classes=3, dropout=0.0, hidden_features=16)  # 11x11 stride-4 stem, 6x6 pool
    _compare_with_twin(model, TorchClassifierNet(model), images(1, 3, 63))
