"""Convolutional models from ``rb.models`` against the same networks written in PyTorch: one SGD
training step (forward, cross-entropy, backward, momentum update) and batch-1 inference, with the
same initial weights on both sides (our ``state_dict`` is loaded into the PyTorch twin)."""

from __future__ import annotations

import numpy as np
from common import Workload

import rosenblatt as rb
from rosenblatt import models

SMALL_VGG = [32, 32, "M", 64, 64, "M", 128, 128, "M"]


def _torch_twin(name: str):
    """The PyTorch network with the same layout and ``state_dict`` keys as ``_rb_model(name)``."""
    import torch
    from torch import nn

    if name == "lenet5":
        class LeNet5(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv1, self.act1, self.pool1 = nn.Conv2d(1, 6, 5, padding=2), nn.Tanh(), nn.AvgPool2d(2)
                self.conv2, self.act2, self.pool2 = nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2)
                self.flatten = nn.Flatten()
                self.fc1, self.act3 = nn.Linear(400, 120), nn.Tanh()
                self.fc2, self.act4 = nn.Linear(120, 84), nn.Tanh()
                self.fc3 = nn.Linear(84, 10)

            def forward(self, x):
                x = self.pool1(self.act1(self.conv1(x)))
                x = self.pool2(self.act2(self.conv2(x)))
                x = self.act4(self.fc2(self.act3(self.fc1(self.flatten(x)))))
                return self.fc3(x)

        return LeNet5()

    if name == "vgg":
        layers, channels = [], 3
        for item in SMALL_VGG[:-1]:  # small_input drops the last pool for global average pooling
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(channels, item, 3, padding=1), nn.BatchNorm2d(item), nn.ReLU()]
                channels = item

        class SmallVGG(nn.Module):
            def __init__(self):
                super().__init__()
                self.features = nn.Sequential(*layers)
                self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
                self.classifier = nn.Sequential(nn.Linear(128, 256), nn.ReLU(), nn.Dropout(0.5), nn.Linear(256, 256),
                                                nn.ReLU(), nn.Dropout(0.5), nn.Linear(256, 10))

            def forward(self, x):
                return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))

        return SmallVGG()

    return _hand_written_resnet20(nn)


def _hand_written_resnet20(nn):
    """ResNet-20 for CIFAR (He et al., 2016) as a PyTorch user writes it, for ``nn`` = ``torch.nn``
    or ``rosenblatt.nn``: each block's ``forward`` calls its layers one by one."""
    class PadShortcut(nn.Module):
        def __init__(self, cin, cout):
            super().__init__()
            self.extra = cout - cin

        def forward(self, x):
            e = self.extra
            return nn.functional.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, e // 2, e - e // 2))

    class BasicBlock(nn.Module):
        def __init__(self, cin, c, stride):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(cin, c, 3, stride, 1, bias=False), nn.BatchNorm2d(c)
            self.relu = nn.ReLU()
            self.conv2, self.bn2 = nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c)
            self.downsample = PadShortcut(cin, c) if stride != 1 or cin != c else None

        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            return self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))) + identity)

    class ResNet20(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1, self.relu = nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()
            cin = 16
            for i, c in enumerate((16, 32, 64)):
                blocks = [BasicBlock(cin, c, 1 if i == 0 else 2), BasicBlock(c, c, 1), BasicBlock(c, c, 1)]
                setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
                cin = c
            self.avgpool, self.fc = nn.AdaptiveAvgPool2d((1, 1)), nn.Linear(64, 10)

        def forward(self, x):
            x = self.relu(self.bn1(self.conv1(x)))
            x = self.layer3(self.layer2(self.layer1(x)))
            x = self.avgpool(x)
            return self.fc(x.reshape(x.shape[0], -1))

    return ResNet20()


def _rb_model(name: str):
    if name == "lenet5":
        return models.LeNet5(num_classes=10)
    if name == "vgg":
        return models.VGG(SMALL_VGG, batch_norm=True, num_classes=10, in_channels=3, small_input=True,
                          hidden_features=256)
    if name == "resnet20 hand-written":
        return _hand_written_resnet20(rb.nn)
    return models.resnet20(num_classes=10, in_channels=3)


def _pair(name: str):
    import torch

    rb.manual_seed(0)
    model = _rb_model(name)
    twin = _torch_twin(name)
    twin.load_state_dict({k: torch.from_numpy(np.array(v.numpy())) for k, v in model.state_dict().items()})
    return model, twin


def _layer_by_layer(model) -> None:
    """Replace a VGG's ``forward`` by one that calls every layer on its own, as a hand-written
    ``forward`` does (no ``nn.Sequential``: no fused chains on the rosenblatt side)."""
    def forward(x):
        for layer in model.features:
            x = layer(x)
        x = model.avgpool(x)
        x = x.reshape(x.shape[0], -1)
        for layer in model.classifier:
            x = layer(x)
        return x

    model.forward = forward


def _train_setup(name: str, batch: int, shape: tuple[int, int, int], layer_by_layer: bool = False):
    def setup():
        import torch

        model, twin = _pair(name)
        if layer_by_layer:
            _layer_by_layer(model)
            _layer_by_layer(twin)
        rng = np.random.default_rng(0)
        x = rng.standard_normal((batch, *shape)).astype(np.float32)
        y = rng.integers(0, 10, batch)
        rx, ry, tx, ty = rb.tensor(x), rb.tensor(y), torch.tensor(x), torch.tensor(y)
        optimizer = rb.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        t_optimizer = torch.optim.SGD(twin.parameters(), lr=0.01, momentum=0.9)
        loss_fn, t_loss_fn = rb.nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss()

        def rb_step():
            optimizer.zero_grad()
            loss = loss_fn(model(rx), ry)
            loss.backward()
            optimizer.step()

        def torch_step():
            t_optimizer.zero_grad()
            loss = t_loss_fn(twin(tx), ty)
            loss.backward()
            t_optimizer.step()

        return rb_step, torch_step

    return setup


def _inference_setup(name: str, shape: tuple[int, int, int]):
    def setup():
        import torch

        model, twin = _pair(name)
        model.eval()
        twin.eval()
        x = np.random.default_rng(0).standard_normal((1, *shape)).astype(np.float32)
        rx, tx = rb.tensor(x), torch.tensor(x)

        def rb_step():
            with rb.no_grad():
                return model(rx)

        def torch_step():
            with torch.no_grad():
                return twin(tx)

        return rb_step, torch_step

    return setup


MNIST_SHAPE, CIFAR_SHAPE = (1, 28, 28), (3, 32, 32)

WORKLOADS = [
    Workload("LeNet-5 train step (SGD), batch 64, 1x28x28", "cnn", _train_setup("lenet5", 64, MNIST_SHAPE)),
    Workload("small VGG (6 conv + BN) train step (SGD), batch 64, 3x32x32", "cnn",
             _train_setup("vgg", 64, CIFAR_SHAPE)),
    Workload("small VGG, forward calling each layer (no nn.Sequential), train step (SGD), batch 64, 3x32x32",
             "cnn", _train_setup("vgg", 64, CIFAR_SHAPE, layer_by_layer=True)),
    Workload("ResNet-20 train step (SGD), batch 64, 3x32x32", "cnn", _train_setup("resnet20", 64, CIFAR_SHAPE)),
    Workload("ResNet-20 written as PyTorch users write it (blocks calling their layers), train step (SGD), "
             "batch 64, 3x32x32", "cnn", _train_setup("resnet20 hand-written", 64, CIFAR_SHAPE)),
    Workload("ResNet-20 train step (SGD), batch 128, 3x32x32", "cnn", _train_setup("resnet20", 128, CIFAR_SHAPE),
             memory=True, notes="peak memory comparison"),
    Workload("LeNet-5 inference, batch 1", "cnn", _inference_setup("lenet5", MNIST_SHAPE)),
    Workload("small VGG inference, batch 1", "cnn", _inference_setup("vgg", CIFAR_SHAPE)),
    Workload("ResNet-20 inference, batch 1", "cnn", _inference_setup("resnet20", CIFAR_SHAPE)),
]
