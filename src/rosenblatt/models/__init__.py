"""``rb.models``: ready-made networks, each citing the paper it comes from, and a registry of them.

``get_model(name, **kwargs)`` builds a registered model by name (``MODELS`` maps names to
factories), so a command line can pick any of them: the convolutional factories all take
``num_classes=``, ``in_channels=`` and ``small_input=``.

Smallest square input of each convolutional model (smaller inputs raise ``ValueError``; 8x8
digits are to be resized or padded by the caller):

=============================  ====================  =============================
model                          ``small_input=True``  standard (224x224 intended)
=============================  ====================  =============================
lenet5                         its ``input_size`` (28 by default; any >= 12)
alexnet                        8                     63
vgg11 / vgg13 / vgg16 / vgg19  16                    32
googlenet                      8                     32
resnet18 / resnet34 / resnet50 any (>= 8 useful)     any (>= 32 useful)
resnet20                       4 (32 intended)
densenet121                    8                     32
densenet_bc                    4                     16
unet                           a multiple of 4 (``2**depth``)
=============================  ====================  =============================
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rosenblatt.models.alexnet import AlexNet, alexnet
from rosenblatt.models.autoencoder import (
    Autoencoder,
    ConvAutoencoder,
    DenoisingAutoencoder,
    autoencoder,
    conv_autoencoder,
    denoising_autoencoder,
)
from rosenblatt.models.densenet import DenseBlock, DenseLayer, DenseNet, Transition, densenet121, densenet_bc
from rosenblatt.models.generative import DCGAN, VAE, ConvVAE, DCGANDiscriminator, DCGANGenerator
from rosenblatt.models.googlenet import BasicConv2d, GoogLeNet, InceptionAux, InceptionModule, googlenet
from rosenblatt.models.lenet import LeNet5, lenet5
from rosenblatt.models.mlp import MLP, mlp
from rosenblatt.models.perceptron import Perceptron, PerceptronHistory, perceptron
from rosenblatt.models.resnet import (
    BasicBlock,
    Bottleneck,
    CifarResNet,
    PadShortcut,
    ResNet,
    resnet18,
    resnet20,
    resnet34,
    resnet50,
)
from rosenblatt.models.seq2seq import Decoder, Encoder, Seq2Seq, seq2seq
from rosenblatt.models.unet import UNet, unet
from rosenblatt.models.vgg import VGG, vgg11, vgg13, vgg16, vgg19

MODELS: dict[str, Callable[..., Any]] = {
    "perceptron": perceptron,
    "mlp": mlp,
    "lenet5": lenet5,
    "alexnet": alexnet,
    "vgg11": vgg11,
    "vgg13": vgg13,
    "vgg16": vgg16,
    "vgg19": vgg19,
    "googlenet": googlenet,
    "resnet18": resnet18,
    "resnet34": resnet34,
    "resnet50": resnet50,
    "resnet20": resnet20,
    "densenet121": densenet121,
    "densenet_bc": densenet_bc,
    "unet": unet,
    "autoencoder": autoencoder,
    "denoising_autoencoder": denoising_autoencoder,
    "conv_autoencoder": conv_autoencoder,
    "seq2seq": seq2seq,
}


def get_model(name: str, **kwargs: Any) -> Any:
    """Build the registered model ``name`` (a key of ``MODELS``) with ``kwargs``."""
    if name not in MODELS:
        raise ValueError(f"get_model: unknown model {name!r}; known: {sorted(MODELS)}")
    return MODELS[name](**kwargs)


__all__ = [
    "Autoencoder", "ConvAutoencoder", "Decoder", "DenoisingAutoencoder", "Encoder", "Seq2Seq", "autoencoder",
    "conv_autoencoder", "denoising_autoencoder", "seq2seq",
    "VAE", "ConvVAE", "DCGAN", "DCGANGenerator", "DCGANDiscriminator",
    "MLP", "Perceptron", "PerceptronHistory", "mlp", "perceptron",
    "MODELS", "AlexNet", "BasicBlock", "BasicConv2d", "Bottleneck", "CifarResNet", "DenseBlock", "DenseLayer",
    "DenseNet", "GoogLeNet", "InceptionAux", "InceptionModule", "LeNet5", "PadShortcut", "ResNet", "Transition",
    "UNet", "VGG", "alexnet", "densenet121", "densenet_bc", "get_model", "googlenet", "lenet5", "resnet18",
    "resnet20", "resnet34", "resnet50", "unet", "vgg11", "vgg13", "vgg16", "vgg19",
]
