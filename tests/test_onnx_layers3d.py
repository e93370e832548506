"""ONNX export of the volume layers and of GroupNorm/PReLU: onnxruntime gives rosenblatt's outputs."""

from __future__ import annotations

import numpy as np
import pytest

from rosenblatt import nn

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from tests.test_onnx import _randomise_batch_norm, batches, roundtrip  # noqa: E402


def test_3d_cnn_with_group_norm_and_prelu(tmp_path):
    model = nn.Sequential(
        nn.Conv3d(2, 4, 3, padding=1), nn.GroupNorm(2, 4), nn.PReLU(4), nn.MaxPool3d(2, stride=2, padding=1),
        nn.Conv3d(4, 6, (2, 3, 1), stride=(1, 2, 1), padding=(1, 0, 0), groups=2),
        nn.BatchNorm3d(6), nn.PReLU(), nn.AvgPool3d(2, ceil_mode=True, count_include_pad=False),
        nn.Flatten(),
    )
    _randomise_batch_norm(model)
    rng = np.random.default_rng(3)
    for m in model.modules():  # parameters away from their initial 1/0/0.25, so that mistakes show
        if isinstance(m, (nn.GroupNorm, nn.PReLU)):
            m.weight.data[...] = rng.uniform(0.2, 1.5, m.weight.shape)
            if isinstance(m, nn.GroupNorm):
                m.bias.data[...] = rng.normal(size=m.bias.shape)
    model.eval()
    example, run = batches(2, 6, 7, 5)
    proto = roundtrip(model, example, run, tmp_path)
    ops = {n.op_type for n in proto.graph.node}
    assert {"Conv", "InstanceNormalization", "PRelu", "MaxPool", "BatchNormalization", "AveragePool"} <= ops


def test_group_norm_on_sequences_and_images(tmp_path):
    for shape, model in [((6, 9), nn.Sequential(nn.GroupNorm(3, 6), nn.PReLU(6))),
                         ((4, 5, 5), nn.Sequential(nn.GroupNorm(1, 4, affine=False), nn.PReLU(1, init=0.1)))]:
        example, run = batches(*shape)
        roundtrip(model, example, run, tmp_path)
