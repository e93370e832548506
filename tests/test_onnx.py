"""ONNX export: every exported layer and model runs in onnxruntime and gives rosenblatt's outputs.

Each model is exported from an example batch of 3 and run at a batch of 5 (the dynamic batch axis),
and onnxruntime's outputs must equal rosenblatt's forward pass on the same batch (atol 1e-4).
"""

from __future__ import annotations

import numpy as np
import pytest

import rosenblatt as rb
from rosenblatt import nn

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from rosenblatt.io.onnx_export import UnsupportedOperatorError, export_onnx  # noqa: E402

EXAMPLE_BATCH, RUN_BATCH = 3, 5


def _flatten(value):
    if isinstance(value, (tuple, list)):
        return [leaf for v in value for leaf in _flatten(v)]
    return [value]


def roundtrip(model, example, run_inputs, tmp_path, atol=1e-4, rtol=1e-4, **kwargs):
    """Export with ``example``, run ``run_inputs`` in onnxruntime and in rosenblatt, compare."""
    path = tmp_path / "model.onnx"
    export_onnx(model, example, path, **kwargs)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    run_inputs = list(run_inputs) if isinstance(run_inputs, (tuple, list)) else [run_inputs]
    feeds = {i.name: np.asarray(x) for i, x in zip(session.get_inputs(), run_inputs)}
    got = session.run(None, feeds)
    model.eval()
    with rb.no_grad():
        expected = _flatten(model(*[rb.tensor(np.asarray(x)) for x in run_inputs]))
    assert len(got) == len(expected)
    for i, (g, e) in enumerate(zip(got, expected)):
        assert g.shape == e.shape, f"output {i}: onnxruntime shape {g.shape}, rosenblatt {e.shape}"
        np.testing.assert_allclose(g, e.numpy(), atol=atol, rtol=rtol, err_msg=f"output {i}")
    return onnx.load(str(path))


def randn(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def batches(*shape):
    """The example batch and a differently sized batch to run (the batch axis first)."""
    return randn(EXAMPLE_BATCH, *shape, seed=1), randn(RUN_BATCH, *shape, seed=2)


def needs(*names):
    missing = [n for n in names if not hasattr(nn, n)]
    if missing:
        pytest.skip(f"rb.nn has no {', '.join(missing)} yet")


def _randomise_batch_norm(model):
    # running statistics away from 0/1, so that exporting them wrongly cannot pass
    rng = np.random.default_rng(5)
    for m in model.modules():
        if getattr(m, "running_mean", None) is not None and hasattr(m, "num_features"):
            m.running_mean.data[...] = rng.normal(size=m.num_features) * 0.1
            m.running_var.data[...] = rng.uniform(0.5, 1.5, size=m.num_features)
            if m.weight is not None:
                m.weight.data[...] = rng.uniform(0.5, 1.5, size=m.num_features)
                m.bias.data[...] = rng.normal(size=m.num_features) * 0.1
    return model


# -- layers ------------------------------------------------------------------------------------------


def test_mlp_with_batch_norm_layer_norm_dropout(tmp_path):
    model = _randomise_batch_norm(nn.Sequential(
        nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.5), nn.LayerNorm(16), nn.Linear(16, 4),
        nn.LogSoftmax(axis=-1)))
    example, run = batches(6)
    model.train()
    export_onnx(model, example, None)
    assert model.training, "the export must give the model its training mode back"
    proto = roundtrip(model, example, run, tmp_path)
    ops = {n.op_type for n in proto.graph.node}
    assert {"BatchNormalization", "LayerNormalization", "LogSoftmax"} <= ops
    assert "Dropout" not in ops
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"


@pytest.mark.parametrize("activation", ["ReLU", "LeakyReLU", "ELU", "SELU", "GELU", "SiLU", "Softplus", "Sigmoid",
                                        "Tanh", "Softmax", "LogSoftmax", "Step", "ReLU6", "Hardtanh", "Hardswish",
                                        "Hardsigmoid", "Mish"])
def test_activations(activation, tmp_path):
    kwargs = {"LeakyReLU": dict(negative_slope=0.2), "ELU": dict(alpha=0.7),
              "Hardtanh": dict(min_val=-0.5, max_val=0.75)}.get(activation, {})
    model = nn.Sequential(nn.Linear(5, 7), getattr(nn, activation)(**kwargs))
    roundtrip(model, *batches(5), tmp_path)


@pytest.mark.parametrize("activation", ["ReLU", "LeakyReLU", "ELU", "SELU", "SiLU", "ReLU6", "Hardtanh", "Hardswish",
                                        "Hardsigmoid", "Mish"])
def test_in_place_activations(activation, tmp_path):
    """``inplace=True`` writes into its input outside a graph; the export still has the activation."""
    model = nn.Sequential(nn.Linear(5, 7), getattr(nn, activation)(inplace=True), nn.Linear(7, 3),
                          nn.Dropout(0.5, inplace=True))
    model.eval()
    proto = roundtrip(model, *batches(5), tmp_path)
    assert len(proto.graph.node) > 2


HARD_ACTIVATIONS = [("ReLU6", (), {"Clip"}), ("Hardtanh", (-2.0, 3.0), {"Clip"}),
                    ("Hardswish", (), {"HardSwish"}), ("Hardsigmoid", (), {"HardSigmoid"}),
                    ("Mish", (), {"Softplus", "Tanh", "Mul"})]


@pytest.mark.parametrize("opset", [17, 18])
@pytest.mark.parametrize("activation, args, ops", HARD_ACTIVATIONS, ids=[a for a, _, _ in HARD_ACTIVATIONS])
def test_hard_activations_at_their_kinks_and_far_out(activation, args, ops, opset, tmp_path):
    """Exactly at the kinks, beside them and at large magnitudes; Mish is one ONNX op from opset 18."""
    kinks = np.array([-3.0, -2.0, 0.0, 3.0, 6.0], np.float32)
    row = np.concatenate([kinks, kinks - 1e-3, kinks + 1e-3, [-1000.0, -50.0, -20.0, 20.0, 50.0, 1000.0],
                          np.linspace(-8.0, 8.0, 17)]).astype(np.float32)
    example, run = np.stack([row, -row, 0.5 * row]), np.stack([row, 0.25 * row, -row, 2.0 * row, row + 0.5])
    proto = roundtrip(nn.Sequential(getattr(nn, activation)(*args)), example, run, tmp_path, atol=1e-5, rtol=1e-5,
                      opset=opset)
    expected = {"Mish"} if activation == "Mish" and opset >= 18 else ops
    assert expected <= {n.op_type for n in proto.graph.node}


def test_flatten_unflatten_and_tensor_ops(tmp_path):
    class Mixer(nn.Module):
        """Residual add, concatenation, slicing, padding, transposes and reductions in forward."""

        def __init__(self):
            super().__init__()
            self.unflatten = nn.Unflatten(1, (2, 3, 4))
            self.flatten = nn.Flatten()
            self.fc = nn.Linear(24, 24)

        def forward(self, x):
            h = self.fc(x) + x                                   # residual addition
            y = self.unflatten(h)                                # (N, 2, 3, 4)
            y = rb.cat([y, y[:, :, ::-1, 1:3].transpose(0, 1, 2, 3) * 0.5], axis=3)  # slices and concat
            y = rb.pad(y, (1, 0, 0, 1)) - y.mean(axis=(2, 3), keepdims=True).sum() / 10
            z = rb.tanh(self.flatten(y[:, 1]))                   # integer index drops an axis
            return rb.stack([rb.amax(z, axis=1), rb.sqrt(rb.exp(z) + 1.0).amin(axis=1)], axis=1), y.permute(0, 3, 1, 2)

    roundtrip(Mixer(), *batches(24), tmp_path)


@pytest.mark.parametrize("mode", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("bidirectional,batch_first", [(False, False), (True, True)])
def test_recurrent_layers(mode, bidirectional, batch_first, tmp_path):
    layer = getattr(nn, mode)(4, 6, num_layers=2, bidirectional=bidirectional, batch_first=batch_first)
    example, run = randn(EXAMPLE_BATCH, 7, 4, seed=1), randn(RUN_BATCH, 7, 4, seed=2)
    if not batch_first:
        example, run = example.transpose(1, 0, 2).copy(), run.transpose(1, 0, 2).copy()
    proto = roundtrip(layer, example, run, tmp_path, batch_axis=0 if batch_first else 1)
    assert sum(n.op_type == mode for n in proto.graph.node) == 2  # one ONNX node per layer


def test_lstm_with_initial_state_inputs(tmp_path):
    layer = nn.LSTM(3, 5, num_layers=2)

    class WithState(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = layer

        def forward(self, x, h0, c0):
            out, (h, c) = self.lstm(x, (h0, c0))
            return out, h, c

    def inputs(n, seed):
        return randn(6, n, 3, seed=seed), randn(2, n, 5, seed=seed + 1), randn(2, n, 5, seed=seed + 2)

    roundtrip(WithState(), inputs(EXAMPLE_BATCH, 1), inputs(RUN_BATCH, 10), tmp_path, batch_axis=1)


def test_embedding_into_gru_classifier(tmp_path):
    class Classifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(20, 8, padding_idx=0)
            self.gru = nn.GRU(8, 6, batch_first=True, bidirectional=True)
            self.head = nn.Linear(12, 3)

        def forward(self, ids):
            out, h = self.gru(self.embedding(ids))
            return self.head(out[:, -1])

    rng = np.random.default_rng(0)
    example, run = rng.integers(0, 20, (EXAMPLE_BATCH, 5)), rng.integers(0, 20, (RUN_BATCH, 5))
    proto = roundtrip(Classifier(), example, run, tmp_path)
    assert "Gather" in {n.op_type for n in proto.graph.node}


def test_convolutions_and_pools(tmp_path):
    needs("Conv2d", "Conv1d", "ConvTranspose2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d")

    class ConvNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, stride=1, padding=1)
            self.grouped = nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=4, bias=False)
            self.pool = nn.MaxPool2d(2)
            self.up = nn.ConvTranspose2d(8, 4, 3, stride=2, padding=1, output_padding=1)
            self.avg = nn.AvgPool2d(3, stride=2, padding=1)
            self.conv1d = nn.Conv1d(4, 5, 3, stride=2, padding=1)
            self.gap = nn.AdaptiveAvgPool2d(2)

        def forward(self, x):
            x = self.pool(rb.relu(self.grouped(self.conv(x))))      # (N, 8, 4, 4)
            x = self.avg(self.up(x))                                  # (N, 4, 4, 4)
            seq = self.conv1d(x.reshape(x.shape[0], 4, 16))           # (N, 5, 8)
            return self.gap(x), seq

    roundtrip(_randomise_batch_norm(ConvNet()), *batches(3, 8, 8), tmp_path)


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_upsample(mode, tmp_path):
    needs("Upsample", "Conv2d")
    model = nn.Sequential(nn.Conv2d(2, 3, 1), nn.Upsample(scale_factor=2, mode=mode))
    roundtrip(model, *batches(2, 4, 5), tmp_path)


# -- every registered model ----------------------------------------------------------------------------

MODEL_CASES = {
    "perceptron": (dict(in_features=4), (4,)),
    "mlp": (dict(sizes=(6, 16, 16, 4), batch_norm=True, dropout=0.1, residual=True), (6,)),
    "lenet5": (dict(), (1, 28, 28)),
    "alexnet": (dict(num_classes=5, small_input=True, hidden_features=32), (3, 8, 8)),
    "vgg11": (dict(num_classes=5, small_input=True, hidden_features=16, batch_norm=True), (3, 16, 16)),
    "vgg13": (dict(num_classes=5, small_input=True, hidden_features=16), (3, 16, 16)),
    "vgg16": (dict(num_classes=5, small_input=True, hidden_features=16), (3, 16, 16)),
    "vgg19": (dict(num_classes=5, small_input=True, hidden_features=16), (3, 16, 16)),
    "googlenet": (dict(num_classes=5, small_input=True), (3, 8, 8)),
    "resnet18": (dict(num_classes=5, small_input=True, width=8), (3, 8, 8)),
    "resnet34": (dict(num_classes=5, small_input=True, width=8), (3, 8, 8)),
    "resnet50": (dict(num_classes=5, small_input=True, width=8), (3, 8, 8)),
    "resnet20": (dict(num_classes=5), (3, 8, 8)),
    "densenet121": (dict(num_classes=5, small_input=True), (3, 8, 8)),
    "densenet_bc": (dict(num_classes=5, growth_rate=4, block_config=(2, 2, 2)), (3, 8, 8)),
    "unet": (dict(num_classes=2, depth=2, base_channels=4), (1, 8, 8)),
    "autoencoder": (dict(sizes=(12, 8, 4)), (12,)),
    "denoising_autoencoder": (dict(sizes=(12, 8, 4)), (12,)),
    "conv_autoencoder": (dict(in_channels=1), (1, 8, 8)),
    "seq2seq": (dict(src_vocab=11, tgt_vocab=9, embedding_dim=6, hidden_size=8, num_layers=2), "tokens"),
}
SLOW_MODELS = {"vgg13", "vgg16", "vgg19", "resnet50", "densenet121", "googlenet"}


def _model_names():
    try:
        names = sorted(rb.models.MODELS)
    except Exception:  # the model zoo failed to import: the test below reports it
        return ["<registry>"]
    return [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_MODELS else n for n in names]


@pytest.mark.parametrize("name", _model_names())
def test_every_registered_model_exports(name, tmp_path):
    if name not in MODEL_CASES:
        pytest.fail(f"rb.models registers {name!r}, which has no ONNX test case yet: add one to MODEL_CASES")
    kwargs, shape = MODEL_CASES[name]
    try:
        model = rb.models.get_model(name, **kwargs)
    except AttributeError as err:  # a layer the model needs has not landed in rb.nn yet
        pytest.skip(f"{name} cannot be built yet: {err}")
    if shape == "tokens":  # (source, target) token ids
        rng = np.random.default_rng(0)
        example = (rng.integers(0, 11, (EXAMPLE_BATCH, 6)), rng.integers(0, 9, (EXAMPLE_BATCH, 4)))
        run = (rng.integers(0, 11, (RUN_BATCH, 6)), rng.integers(0, 9, (RUN_BATCH, 4)))
    else:
        example, run = batches(*shape)
    roundtrip(_randomise_batch_norm(model), example, run, tmp_path, atol=2e-4)


def test_gru_seq2seq(tmp_path):
    model = rb.models.get_model("seq2seq", src_vocab=7, embedding_dim=4, hidden_size=5, cell="gru")
    rng = np.random.default_rng(1)
    example = (rng.integers(0, 7, (EXAMPLE_BATCH, 4)), rng.integers(0, 7, (EXAMPLE_BATCH, 3)))
    run = (rng.integers(0, 7, (RUN_BATCH, 4)), rng.integers(0, 7, (RUN_BATCH, 3)))
    roundtrip(model, example, run, tmp_path)


# -- errors and options ---------------------------------------------------------------------------------


def test_unsupported_operation_is_named(tmp_path):
    class Cumulative(nn.Module):
        def forward(self, x):
            return rb.cumsum(x, axis=1)

    with pytest.raises(UnsupportedOperatorError, match="Cumsum"):
        export_onnx(Cumulative(), randn(2, 3), tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_fixed_batch_export(tmp_path):
    model = nn.Sequential(nn.Linear(3, 2), nn.Tanh())
    proto = export_onnx(model, randn(4, 3), tmp_path / "m.onnx", dynamic_batch=False)
    dims = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [4, 3]
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    x = randn(4, 3, seed=3)
    np.testing.assert_allclose(session.run(None, {"input": x})[0], model(rb.tensor(x)).numpy(), atol=1e-6)
    with pytest.raises(Exception):  # noqa: B017 - onnxruntime's own error type for a wrong shape
        session.run(None, {"input": randn(5, 3)})


def test_one_dimensional_pools_and_adaptive_max_pool(tmp_path):
    needs("Conv1d", "MaxPool1d", "AvgPool1d", "AdaptiveMaxPool2d", "Dropout2d")
    sequence_model = nn.Sequential(nn.Conv1d(2, 4, 3, padding=1), nn.MaxPool1d(2), nn.AvgPool1d(2, stride=1, padding=1))
    roundtrip(sequence_model, *batches(2, 8), tmp_path)
    image_model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.Dropout2d(0.3), nn.AdaptiveMaxPool2d(1), nn.Flatten())
    proto = roundtrip(image_model, *batches(2, 6, 6), tmp_path)
    assert "GlobalMaxPool" in {n.op_type for n in proto.graph.node}


# -- attention ---------------------------------------------------------------------------------------


class _MaskedEncoder(nn.Module):
    """An encoder called with a fixed causal mask (masks are exported as constants)."""

    def __init__(self, encoder, length):
        super().__init__()
        self.encoder = encoder
        self.mask = np.triu(np.ones((length, length), dtype=bool), 1)

    def forward(self, x):
        return self.encoder(x, mask=self.mask)


class _AttentionWithWeights(nn.Module):
    def __init__(self, average):
        super().__init__()
        self.attention = nn.MultiheadAttention(8, 2, batch_first=True)
        self.average = average

    def forward(self, x, memory):
        return self.attention(x, memory, memory, average_attn_weights=self.average)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_transformer_encoder(norm_first, activation, batch_first, tmp_path):
    layer = nn.TransformerEncoderLayer(8, 2, 16, activation=activation, batch_first=batch_first, norm_first=norm_first)
    model = nn.TransformerEncoder(layer, 2).eval()
    example, run = randn(EXAMPLE_BATCH, 6, 8, seed=1), randn(RUN_BATCH, 6, 8, seed=2)
    if not batch_first:
        example, run = example.transpose(1, 0, 2).copy(), run.transpose(1, 0, 2).copy()
        roundtrip(model, example, run, tmp_path, batch_axis=1)
    else:
        roundtrip(model, example, run, tmp_path)


def test_transformer_encoder_with_causal_mask(tmp_path):
    model = _MaskedEncoder(nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, batch_first=True), 2), 6)
    roundtrip(model.eval(), *batches(6, 8), tmp_path)


@pytest.mark.parametrize("average", [True, False])
def test_multihead_attention_with_weights(average, tmp_path):
    model = _AttentionWithWeights(average).eval()
    roundtrip(model, [randn(EXAMPLE_BATCH, 4, 8, seed=1), randn(EXAMPLE_BATCH, 5, 8, seed=2)],
              [randn(RUN_BATCH, 4, 8, seed=3), randn(RUN_BATCH, 5, 8, seed=4)], tmp_path)


@pytest.mark.parametrize("track_running_stats", [False, True])
@pytest.mark.parametrize("affine", [False, True])
def test_instance_norm(affine, track_running_stats, tmp_path):
    """Input statistics export as InstanceNormalization, running statistics as BatchNormalization;
    an unbatched input keeps its shape."""
    norm = nn.InstanceNorm2d(4, affine=affine, track_running_stats=track_running_stats)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), norm, nn.ReLU())
    if affine:
        norm.weight.data[...] = randn(4, seed=5) + 1.5
        norm.bias.data[...] = randn(4, seed=6)
    model.train()
    for seed in range(3):  # move the running statistics away from (0, 1)
        model(rb.tensor(randn(2, 3, 6, 7, seed=seed) * 2 + 1))
    example, run = batches(3, 6, 7)
    roundtrip(model, example, run, tmp_path)
    one = nn.InstanceNorm1d(5, affine=affine, track_running_stats=track_running_stats)
    roundtrip(one, randn(5, 9, seed=3), randn(5, 9, seed=4), tmp_path)


@pytest.mark.parametrize("shape", [(4, 16), (2, 5, 16)])
def test_functional_layer_norm(kernel_set, shape, tmp_path):
    """``F.layer_norm`` called from a model's forward: the oneDNN node or the NumPy one."""

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(rb.tensor(randn(16, seed=7)))
            self.bias = nn.Parameter(rb.tensor(randn(16, seed=8)))

        def forward(self, x):
            return rb.nn.functional.layer_norm(x * 3.0, (16,), self.weight, self.bias), \
                rb.nn.functional.layer_norm(x, (16,))

    roundtrip(Model(), randn(*shape, seed=1), randn(*shape, seed=2), tmp_path)


FUNCTIONAL_POOLS = {
    "max": lambda x: rb.nn.functional.max_pool2d(x, 2),
    "max strided padded ceil": lambda x: rb.nn.functional.max_pool2d(x, 3, stride=2, padding=1, ceil_mode=True),
    "max dilated": lambda x: rb.nn.functional.max_pool2d(x, 2, dilation=2),
    "avg padded": lambda x: rb.nn.functional.avg_pool2d(x, 3, stride=2, padding=1),
    "avg padded excluded": lambda x: rb.nn.functional.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False),
    "adaptive avg": lambda x: rb.nn.functional.adaptive_avg_pool2d(x, 3),
    "1-d": lambda x: rb.nn.functional.max_pool1d(rb.nn.functional.avg_pool1d(x.flatten(2), 2), 3),
}


@pytest.mark.parametrize("name", list(FUNCTIONAL_POOLS))
def test_functional_pooling(name, tmp_path):
    """Pooling called from a model's own forward (``F.max_pool2d(F.relu(self.conv(x)), 2)``)."""

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)

        def forward(self, x):
            return FUNCTIONAL_POOLS[name](rb.nn.functional.relu(self.conv(x)))

    example, run = batches(3, 9, 12)
    roundtrip(Model(), example, run, tmp_path)


def test_functional_avg_pool_divisor_override_is_named(tmp_path):
    class Model(nn.Module):
        def forward(self, x):
            return rb.nn.functional.avg_pool2d(x, 2, divisor_override=3)

    with pytest.raises(UnsupportedOperatorError, match="divisor_override"):
        export_onnx(Model(), randn(2, 3, 8, 8), tmp_path / "m.onnx")


@pytest.mark.parametrize("mask", ["none", "causal", "additive"])
def test_functional_scaled_dot_product_attention(mask, tmp_path):
    """``F.scaled_dot_product_attention`` in a model's own attention block."""

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv = nn.Linear(8, 24)
            self.bias = rb.tensor(randn(6, 6, seed=9))

        def forward(self, x):  # (N, L, 8) -> 2 heads of 4
            n, length = x.shape[0], x.shape[1]
            q, k, v = (t.reshape(n, length, 2, 4).transpose(1, 2) for t in self.qkv(x).chunk(3, axis=-1))
            kw = {"is_causal": True} if mask == "causal" else {"attn_mask": self.bias} if mask == "additive" else {}
            return rb.nn.functional.scaled_dot_product_attention(q, k, v, **kw)

    example, run = batches(6, 8)
    roundtrip(Block(), example, run, tmp_path)


# Functional forms called from a model's own forward, on a 4-D (N, 4, 8, 8) input or, marked "2-D",
# an (N, 16) one. Each must export (the modules' converters do not cover them).
_F = rb.nn.functional
FUNCTIONAL_OPS = {
    "relu": _F.relu, "gelu": _F.gelu, "silu": _F.silu, "elu": _F.elu, "selu": _F.selu,
    "leaky_relu": lambda x: _F.leaky_relu(x, 0.1), "softplus": _F.softplus, "sigmoid": _F.sigmoid,
    "tanh": _F.tanh, "relu6": _F.relu6, "hardtanh": _F.hardtanh, "hardsigmoid": _F.hardsigmoid,
    "hardswish": _F.hardswish, "mish": _F.mish, "softmax": lambda x: _F.softmax(x, dim=1),
    "log_softmax": lambda x: _F.log_softmax(x, dim=1),
    "prelu": lambda x: _F.prelu(x, rb.tensor(np.linspace(0.1, 0.4, 4).astype(np.float32))),
    "batch_norm": lambda x: _F.batch_norm(x, rb.tensor(np.arange(4, dtype=np.float32)),
                                          rb.tensor(np.arange(1, 5, dtype=np.float32)), training=False),
    "group_norm": lambda x: _F.group_norm(x, 2), "instance_norm": _F.instance_norm,
    "pad": lambda x: _F.pad(x, (1, 1, 2, 2)), "pixel_shuffle": lambda x: _F.pixel_shuffle(x, 2),
    "pixel_unshuffle": lambda x: _F.pixel_unshuffle(x, 2), "unfold": lambda x: _F.unfold(x, 3),
    "interpolate nearest": lambda x: _F.interpolate(x, scale_factor=2),
    "interpolate bilinear": lambda x: _F.interpolate(x, scale_factor=2, mode="bilinear"),
    "adaptive_avg_pool2d": lambda x: _F.adaptive_avg_pool2d(x, 1),
    "scaled_dot_product_attention": lambda x: _F.scaled_dot_product_attention(x, x, x),
    "2-D layer_norm": lambda x: _F.layer_norm(x, (16,)),
    "2-D dropout (eval)": lambda x: _F.dropout(x, 0.5, training=False),
    "2-D linear": lambda x: _F.linear(x, rb.tensor(randn(5, 16, seed=3))),
    "2-D step": _F.step,
}


@pytest.mark.parametrize("name", list(FUNCTIONAL_OPS))
def test_functional_ops_export(name, tmp_path):
    class Model(nn.Module):
        def forward(self, x):
            return FUNCTIONAL_OPS[name](x * 1.5 - 0.25)

    example, run = batches(16) if name.startswith("2-D") else batches(4, 8, 8)
    roundtrip(Model(), example, run, tmp_path)


@pytest.mark.parametrize("name, fn", [
    ("RegressionLossFn", lambda x: _F.mse_loss(x, rb.zeros((EXAMPLE_BATCH, 16)))),
    ("CrossEntropyFn", lambda x: _F.cross_entropy(x, rb.tensor(np.zeros(EXAMPLE_BATCH, dtype=np.int64)))),
])
def test_functional_ops_without_export_are_named(name, fn, tmp_path):
    class Model(nn.Module):
        def forward(self, x):
            return fn(x)

    with pytest.raises(UnsupportedOperatorError, match=name):
        export_onnx(Model(), randn(EXAMPLE_BATCH, 16), tmp_path / "m.onnx")


def test_where_with_a_condition_from_the_input_is_refused(tmp_path):
    """Comparisons are not traced: a mask computed from the input would be exported as this
    example's constant, so export refuses it and says why."""

    class Masked(nn.Module):
        def forward(self, x):
            return rb.where(x > 0, x, x * 0.1)

    with pytest.raises(UnsupportedOperatorError, match="condition of its input's shape"):
        export_onnx(Masked(), randn(3, 4), tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_temporary_constants_keep_their_own_values(tmp_path):
    """Constant tensors made inside ``forward`` and freed at once each export as their own
    initializer: the exporter remembers initializers by tensor id, so it keeps the tensors alive
    (a freed one's id could come back for the next constant, with the wrong initializer)."""
    import gc
    import weakref

    class Model(nn.Module):
        def forward(self, x):
            first = rb.tensor(np.eye(4, dtype=np.float32) * 2)
            x = x @ first
            self.first = weakref.ref(first)
            del first
            gc.collect()
            self.kept = self.first() is not None  # alive here only while an export traces
            for k in range(3, 6):
                x = x @ rb.tensor(np.eye(4, dtype=np.float32) * k)
            return x @ rb.tensor(np.arange(8, dtype=np.float32).reshape(4, 2))

    model = Model()
    roundtrip(model, *batches(4), tmp_path)  # (its last, plain call reset kept)
    export_onnx(model, randn(2, 4), tmp_path / "again.onnx")
    assert model.kept
