"""``Conv2d -> BatchNorm2d (-> ReLU) (+ residual)`` run as one node under the oneDNN kernels.

Every case runs under both kernel sets against the same layers in PyTorch: the forward output,
the input and every parameter gradient, the running statistics and ``num_batches_tracked`` over
two training steps. Under oneDNN the tests also check that the fused node really ran (and that
it stays out of the way where the modules must run one by one: hooks, evaluation mode, no
affine parameters); under NumPy that it never runs.
"""

from __future__ import annotations

import numpy as np
import pytest

import rosenblatt as rb
from rosenblatt import nn
from rosenblatt.kernels.onednn import library as L
from rosenblatt.models.resnet import BasicBlock
from rosenblatt.nn import _fusion
from tests.parity import assert_close, requires_torch

if True:  # the oracle, imported lazily by tests.parity
    from tests.parity import torch

ONEDNN_OK, ONEDNN_WHY = L.load()
TOL = dict(rtol=2e-4, atol=2e-4)  # float32, sums over a few thousand products


@pytest.fixture(params=["numpy", "onednn"])
def kernel_set(request, monkeypatch):
    """Runs the test under each kernel set; the oneDNN kernels also take the tiny test shapes."""
    if request.param == "onednn":
        if not ONEDNN_OK:
            pytest.skip(f"oneDNN unavailable: {ONEDNN_WHY}")
        from rosenblatt.kernels.onednn import conv as dnn_conv

        monkeypatch.setattr(dnn_conv, "MIN_MACS", 0)
    before = rb.kernels.active()
    rb.kernels.set_kernels(request.param)
    L.clear_cache()
    yield request.param
    rb.kernels.set_kernels(before)


def _fused(y: rb.Tensor) -> bool:
    return type(y.grad_fn).__name__ in ("ConvBatchNormFn", "ResidualBlockFn", "LayerChainFn")


def _copy_into(torch_module, module) -> None:
    torch_module.load_state_dict({k: torch.from_numpy(np.array(v.numpy())) for k, v in module.state_dict().items()})


def _randomise_bn(module, rng) -> None:
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d) and m.affine:
            m.weight.data[:] = rng.uniform(0.5, 1.5, m.num_features).astype(np.float32)
            m.bias.data[:] = rng.standard_normal(m.num_features).astype(np.float32)


def _compare(module, twin, shape, steps: int = 2, seed: int = 0) -> list[bool]:
    """Train-mode forward + backward ``steps`` times on both; compare everything; return the nodes' names."""
    rng = np.random.default_rng(seed)
    fused = []
    for _ in range(steps):
        x = rng.standard_normal(shape).astype(np.float32)
        rx, tx = rb.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        y, ty = module(rx), twin(tx)
        fused.append(type(y.grad_fn).__name__)
        gy = rng.standard_normal(y.shape).astype(np.float32)
        y.backward(rb.tensor(gy))
        ty.backward(torch.from_numpy(gy))
        assert_close(y.numpy(), ty.detach().numpy(), "output", **TOL)
        assert_close(rx.grad.numpy(), tx.grad.numpy(), "input grad", **TOL)
        for (name, p), (_, tp) in zip(module.named_parameters(), twin.named_parameters()):
            # gradients are sums over the batch: compare relative to their size
            scale = float(np.abs(tp.grad.numpy()).max()) + 1.0
            assert_close(p.grad.numpy() / scale, tp.grad.numpy() / scale, f"{name} grad", **TOL)
        for (name, b), (_, tb) in zip(module.named_buffers(), twin.named_buffers()):
            assert_close(b.numpy(), tb.numpy(), name, **TOL)
        module.zero_grad()
        twin.zero_grad()
    return fused


def _fused_and_unfused(run):
    """``[run(True), run(False)]``: ``run(enabled)`` with the fused paths on, then off."""
    results = []
    for enabled in (True, False):
        _fusion.ENABLED = enabled
        try:
            results.append(run(enabled))
        finally:
            _fusion.ENABLED = True
    return results


def _second_derivatives(module, x, kernel_set, node=None):
    """The first and second derivatives of ``sum(module(x)**2)`` in ``x``, fused and unfused (checking
    that the fused run made a ``node`` where oneDNN runs)."""
    def run(enabled):
        rx = rb.tensor(x, requires_grad=True)
        y = module(rx)
        if node is not None:
            assert (type(y.grad_fn).__name__ == node) == (enabled and kernel_set == "onednn")
        (g,) = rb.autograd.grad((y * y).sum(), [rx], create_graph=True)
        (gg,) = rb.autograd.grad((g * g).sum(), [rx])
        return g.numpy(), gg.numpy()

    return _fused_and_unfused(run)


CASES = [
    dict(bias=False, stride=1, relu=True, momentum=0.1),
    dict(bias=True, stride=2, relu=False, momentum=None),
    dict(bias=True, stride=1, relu=True, momentum=0.3),
]


@requires_torch
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("node", ["LayerChainFn", "ConvBatchNormFn"])
def test_sequential_conv_bn_relu_matches_torch(kernel_set, case, node, monkeypatch):
    """A Sequential runs the pair as a layer chain; with chains off, as the conv-bn node."""
    from rosenblatt.kernels.onednn import chain

    monkeypatch.setattr(chain, "ENABLED", node == "LayerChainFn")
    rb.manual_seed(0)
    tail = [nn.ReLU()] if case["relu"] else []
    seq = nn.Sequential(nn.Conv2d(6, 16, 3, stride=case["stride"], padding=1, bias=case["bias"]),
                        nn.BatchNorm2d(16, momentum=case["momentum"]), *tail)
    t_tail = [torch.nn.ReLU()] if case["relu"] else []
    twin = torch.nn.Sequential(torch.nn.Conv2d(6, 16, 3, stride=case["stride"], padding=1, bias=case["bias"]),
                               torch.nn.BatchNorm2d(16, momentum=case["momentum"]), *t_tail)
    _randomise_bn(seq, np.random.default_rng(1))
    _copy_into(twin, seq)
    names = _compare(seq, twin, (4, 6, 9, 9))
    assert all(n == node for n in names) == (kernel_set == "onednn")
    assert node not in names or kernel_set == "onednn"


def _torch_block(cin, c, stride):
    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = torch.nn.Conv2d(cin, c, 3, stride, 1, bias=False)
            self.bn1 = torch.nn.BatchNorm2d(c)
            self.relu = torch.nn.ReLU()
            self.conv2 = torch.nn.Conv2d(c, c, 3, 1, 1, bias=False)
            self.bn2 = torch.nn.BatchNorm2d(c)
            self.downsample = None
            if stride != 1 or cin != c:
                self.downsample = torch.nn.Sequential(torch.nn.Conv2d(cin, c, 1, stride, bias=False),
                                                      torch.nn.BatchNorm2d(c))

        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            return self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))) + identity)

    return Block()


@requires_torch
@pytest.mark.parametrize("cin, c, stride", [(16, 16, 1), (16, 32, 2), (8, 8, 1)])
def test_residual_block_matches_torch(kernel_set, cin, c, stride):
    rb.manual_seed(0)
    down = None
    if stride != 1 or cin != c:
        down = nn.Sequential(nn.Conv2d(cin, c, 1, stride, bias=False), nn.BatchNorm2d(c))
    block = BasicBlock(cin, c, stride, down)
    twin = _torch_block(cin, c, stride)
    _randomise_bn(block, np.random.default_rng(2))
    _copy_into(twin, block)
    names = _compare(block, twin, (4, cin, 8, 8))
    if kernel_set == "numpy":
        assert not any(n in ("ConvBatchNormFn", "ResidualBlockFn") for n in names)
    elif cin == 16:  # a layout both convolutions share: the whole block is one node
        assert all(n == "ResidualBlockFn" for n in names)
    else:  # 8 channels: one node per convolution (or the whole block, where the layouts allow it)
        assert all(n in ("ConvBatchNormFn", "ResidualBlockFn") for n in names)


@requires_torch
@pytest.mark.parametrize("channels, blocks", [(16, 3), (16, 2), (8, 3)])
def test_residual_stage_matches_torch(kernel_set, channels, blocks):
    """Consecutive identity blocks in a Sequential: one node under oneDNN where the layouts chain
    (16 channels), block by block otherwise; the same numbers as PyTorch either way."""
    rb.manual_seed(0)
    stage = nn.Sequential(*[BasicBlock(channels, channels) for _ in range(blocks)])
    twin = torch.nn.Sequential(*[_torch_block(channels, channels, 1) for _ in range(blocks)])
    _randomise_bn(stage, np.random.default_rng(3))
    _copy_into(twin, stage)
    names = _compare(stage, twin, (4, channels, 8, 8), steps=3)
    if kernel_set == "numpy":
        assert "ResidualStageFn" not in names
    elif channels == 16:
        assert all(n == "ResidualStageFn" for n in names)


@requires_torch
def test_residual_stage_starting_with_a_projection_matches_torch(kernel_set):
    """A stage whose first block changes the shape (1x1 convolution + batch norm shortcut, stride 2):
    one node under oneDNN, PyTorch's numbers for the input, every parameter (the shortcut's too)
    and the running statistics."""
    rb.manual_seed(0)
    down = nn.Sequential(nn.Conv2d(16, 32, 1, 2, bias=False), nn.BatchNorm2d(32))
    stage = nn.Sequential(BasicBlock(16, 32, 2, down), BasicBlock(32, 32), BasicBlock(32, 32))
    twin = torch.nn.Sequential(_torch_block(16, 32, 2), _torch_block(32, 32, 1), _torch_block(32, 32, 1))
    _randomise_bn(stage, np.random.default_rng(15))
    _copy_into(twin, stage)
    names = _compare(stage, twin, (4, 16, 8, 8), steps=2)
    assert all(n == "ResidualStageFn" for n in names) == (kernel_set == "onednn"), names


def test_residual_stage_with_subsampling_shortcuts_matches_the_blocks(kernel_set):
    """ResNet-20's option-A stages (subsample and zero channels, no parameters): the fused stages give
    the block-by-block gradients and statistics; with ``create_graph`` too."""
    from rosenblatt.models.resnet import PadShortcut

    rb.manual_seed(0)
    stage = nn.Sequential(BasicBlock(16, 32, 2, PadShortcut(16, 32)), BasicBlock(32, 32), BasicBlock(32, 32))
    _randomise_bn(stage, np.random.default_rng(16))
    start = {k: v.numpy().copy() for k, v in stage.state_dict().items()}
    x = np.random.default_rng(17).standard_normal((3, 16, 8, 8)).astype(np.float32)
    def run(enabled):
        stage.load_state_dict({k: rb.tensor(v) for k, v in start.items()})
        rx = rb.tensor(x, requires_grad=True)
        y = stage(rx)
        assert (type(y.grad_fn).__name__ == "ResidualStageFn") == (enabled and kernel_set == "onednn")
        (y * y).sum().backward()
        (g,) = rb.autograd.grad((stage(rx) ** 2).sum(), [rx], create_graph=True)
        (gg,) = rb.autograd.grad((g * g).sum(), [rx])
        result = ([rx.grad.numpy(), y.numpy(), gg.numpy()] + [p.grad.numpy() for p in stage.parameters()]
                  + [b.numpy().copy() for b in stage.buffers()])
        stage.zero_grad()
        return result

    results = _fused_and_unfused(run)
    for i, (a, b) in enumerate(zip(*results)):
        scale = float(np.abs(b).max()) + 1.0
        assert_close(a / scale, b / scale, f"item {i}", rtol=1e-3, atol=1e-3)


@requires_torch
def test_residual_stage_leaves_out_blocks_it_cannot_run(kernel_set):
    """A projection block, a hooked block or eval mode ends a stage; the rest still matches PyTorch."""
    rb.manual_seed(0)
    down = nn.Sequential(nn.Conv2d(8, 16, 1, 2, bias=False), nn.BatchNorm2d(16))
    stage = nn.Sequential(BasicBlock(8, 16, 2, down), BasicBlock(16, 16), BasicBlock(16, 16), BasicBlock(16, 16))
    twin = torch.nn.Sequential(_torch_block(8, 16, 2), *[_torch_block(16, 16, 1) for _ in range(3)])
    _randomise_bn(stage, np.random.default_rng(4))
    _copy_into(twin, stage)
    seen = []
    stage[3].register_forward_hook(lambda m, i, o: seen.append(o))  # runs: the last block is on its own
    _compare(stage, twin, (2, 8, 8, 8))
    assert len(seen) == 2
    if kernel_set == "onednn":
        x = rb.tensor(np.ones((2, 8, 8, 8), np.float32), requires_grad=True)
        nodes = set()
        stage[2].register_forward_hook(lambda m, i, o: nodes.add(type(i[0].grad_fn).__name__))
        stage(x)
        assert nodes == {"ResidualBlockFn"}  # blocks 2 and 3 are hooked: block 1 alone is no stage
        stage.eval()
        with rb.no_grad():
            y = stage(x)
        assert y.grad_fn is None


@requires_torch
def test_residual_stage_double_backward(kernel_set):
    """``create_graph=True`` through a fused stage: the same second derivatives as block by block."""
    rb.manual_seed(0)
    stage = nn.Sequential(BasicBlock(16, 16), BasicBlock(16, 16))
    _randomise_bn(stage, np.random.default_rng(6))
    x = np.random.default_rng(7).standard_normal((2, 16, 6, 6)).astype(np.float32)
    (g, gg), (g0, gg0) = _second_derivatives(stage, x, kernel_set, "ResidualStageFn")
    assert_close(g, g0, "first derivative", **TOL)
    assert_close(gg, gg0, "second derivative", rtol=1e-3, atol=1e-3)


def _twin_sequential(seq):
    """The PyTorch Sequential with the same layers (and arguments) as ``seq``."""
    layers = []
    for m in seq:
        if isinstance(m, nn.Conv2d):
            layers.append(torch.nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
                                          m.dilation, m.groups, m.bias is not None))
        elif isinstance(m, nn.BatchNorm2d):
            layers.append(torch.nn.BatchNorm2d(m.num_features, m.eps, m.momentum))
        elif isinstance(m, nn.MaxPool2d):
            layers.append(torch.nn.MaxPool2d(m.kernel_size, m.stride, m.padding, m.dilation, ceil_mode=m.ceil_mode))
        elif isinstance(m, nn.AvgPool2d):
            layers.append(torch.nn.AvgPool2d(m.kernel_size, m.stride, m.padding, m.ceil_mode, m.count_include_pad))
        else:
            layers.append(getattr(torch.nn, type(m).__name__)())
    return torch.nn.Sequential(*layers)


CHAINS = {
    "vgg": (lambda: nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                                  nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16, momentum=None), nn.ReLU(),
                                  nn.MaxPool2d(2), nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32),
                                  nn.ReLU(), nn.MaxPool2d(3, 2, 1)), (4, 3, 12, 12)),
    "lenet": (lambda: nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.Tanh(), nn.AvgPool2d(2), nn.Conv2d(6, 16, 5),
                                    nn.Tanh(), nn.AvgPool2d(2)), (3, 1, 16, 16)),
    "mixed": (lambda: nn.Sequential(nn.Conv2d(4, 8, 3, stride=2, padding=2, dilation=2, groups=2), nn.ReLU(),
                                    nn.AvgPool2d(3, 2, 1, count_include_pad=False), nn.Conv2d(8, 8, 1),
                                    nn.BatchNorm2d(8), nn.MaxPool2d(2, ceil_mode=True), nn.Tanh()), (2, 4, 15, 15)),
}


@requires_torch
@pytest.mark.parametrize("name", sorted(CHAINS))
@pytest.mark.parametrize("post_ops", [True, False], ids=["post-ops", "separate"])
def test_layer_chain_matches_torch(kernel_set, name, post_ops, monkeypatch):
    """Convolution, batch norm, ReLU/tanh and pooling layers in a Sequential: one node under oneDNN
    (activations kept in its layouts; an activation after a convolution applied by it, or on its
    own), the same numbers as PyTorch under both kernel sets."""
    from rosenblatt.kernels.onednn import chain

    monkeypatch.setattr(chain, "POST_OPS", post_ops)
    rb.manual_seed(0)
    build, shape = CHAINS[name]
    seq = build()
    twin = _twin_sequential(seq)
    _randomise_bn(seq, np.random.default_rng(8))
    _copy_into(twin, seq)
    names = _compare(seq, twin, shape, steps=2)
    assert all(n == "LayerChainFn" for n in names) == (kernel_set == "onednn"), names


@requires_torch
def test_layer_chain_double_backward_and_inference(kernel_set):
    """``create_graph=True`` through a chain gives the layer-by-layer second derivatives; without a
    gradient the chain runs forward only; evaluation-mode batch norm ends a chain."""
    rb.manual_seed(0)
    seq, shape = CHAINS["vgg"][0](), CHAINS["vgg"][1]
    _randomise_bn(seq, np.random.default_rng(9))
    x = np.random.default_rng(10).standard_normal(shape).astype(np.float32)
    state = {k: v.numpy().copy() for k, v in seq.state_dict().items()}

    def forward_only(enabled):
        seq.load_state_dict({k: rb.tensor(v) for k, v in state.items()})  # the same running statistics
        with rb.no_grad():
            plain = seq(rb.tensor(x)).numpy()
        seq.eval()
        evaluated = seq(rb.tensor(x)).numpy()
        seq.train()
        return plain, evaluated

    results = [d + f for d, f in zip(_second_derivatives(seq, x, kernel_set, "LayerChainFn"),
                                     _fused_and_unfused(forward_only))]
    for a, b, what in zip(results[0], results[1], ("first derivative", "second derivative", "no_grad", "eval")):
        assert_close(a, b, what, rtol=1e-3, atol=1e-3)


@requires_torch
@pytest.mark.parametrize("name", sorted(CHAINS))
def test_layer_chain_inference_matches_torch(kernel_set, name, monkeypatch):
    """Evaluation mode without gradients: batch norm folded into the convolution before it, the
    whole Sequential one chain where the kernels allow; PyTorch's numbers, batch 1 and 3."""
    rb.manual_seed(0)
    build, shape = CHAINS[name]
    seq = build()
    _randomise_bn(seq, np.random.default_rng(12))
    for m in seq.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.data[:] = np.random.default_rng(13).standard_normal(m.num_features).astype(np.float32)
            m.running_var.data[:] = np.random.default_rng(14).uniform(0.5, 2.0, m.num_features).astype(np.float32)
    twin = _twin_sequential(seq)
    _copy_into(twin, seq)
    seq.eval()
    twin.eval()
    covered = []
    original = _fusion.layer_chain
    monkeypatch.setattr(_fusion, "layer_chain",
                        lambda mods, x: (lambda r: covered.append(0 if r is None else r[1]) or r)(original(mods, x)))
    for batch in (1, 3):
        x = np.random.default_rng(batch).standard_normal((batch,) + shape[1:]).astype(np.float32)
        with rb.no_grad(), torch.no_grad():
            assert_close(seq(rb.tensor(x)), twin(torch.from_numpy(x)), f"batch {batch}", **TOL)
    if kernel_set == "onednn":
        assert max(covered) == len(seq)


@requires_torch
def test_layer_chain_stops_at_a_hooked_layer(kernel_set):
    """A hook on a layer in the middle ends the chain there (the hook sees that layer's output);
    the whole still matches PyTorch."""
    rb.manual_seed(0)
    seq = CHAINS["lenet"][0]()
    twin = _twin_sequential(seq)
    _copy_into(twin, seq)
    seen = []
    seq[2].register_forward_hook(lambda m, i, o: seen.append(o.shape))
    nodes = []
    seq[3].register_forward_pre_hook(lambda m, i: nodes.append(type(i[0].grad_fn).__name__))
    _compare(seq, twin, CHAINS["lenet"][1], steps=1)
    assert seen == [(3, 6, 8, 8)]
    assert nodes and nodes[0] != "LayerChainFn"


@requires_torch
def test_declines_where_the_modules_must_run(kernel_set):
    rb.manual_seed(0)
    seq = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
    x = rb.tensor(np.random.default_rng(3).standard_normal((2, 3, 6, 6)).astype(np.float32))
    assert _fused(seq(x)) == (kernel_set == "onednn")
    seen = []
    handle = seq[1].register_forward_hook(lambda m, i, o: seen.append(o.shape))
    assert not _fused(seq(x)) and seen == [(2, 8, 6, 6)]
    handle.remove()
    seq.eval()
    assert not _fused(seq(x))
    seq.train()
    plain = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8, affine=False))
    assert not _fused(plain(x))
    reflect = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, padding_mode="reflect"), nn.BatchNorm2d(8))
    assert not _fused(reflect(x))
    with pytest.raises(ValueError, match="channels"):  # the module's own error, not a fused one
        seq(rb.tensor(np.zeros((2, 4, 6, 6), np.float32)))


@requires_torch
def test_double_backward_through_the_fused_node(kernel_set):
    """``create_graph=True`` differentiates the composite chain: same second derivatives as unfused."""
    rb.manual_seed(0)
    seq = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
    x = np.random.default_rng(4).standard_normal((3, 3, 5, 5)).astype(np.float32)
    (g, gg), (g0, gg0) = _second_derivatives(seq, x, kernel_set)
    assert_close(g, g0, "first derivative", **TOL)
    assert_close(gg, gg0, "second derivative", rtol=1e-3, atol=1e-3)


def test_composite_gradcheck_float64():
    """The chain the fused node stands for (its create_graph backward), by finite differences."""
    from rosenblatt.nn.functional.conv import _conv_geometry

    rng = np.random.default_rng(5)
    geom = _conv_geometry("conv2d", (5, 5), (3, 3), 1, 1, 1, 1)

    def fn(x, w, gamma, beta, res):
        return _fusion._composite(x, w, None, gamma, beta, res, geom, 1e-5, True)

    arrays = [rng.standard_normal((2, 2, 5, 5)), rng.standard_normal((3, 2, 3, 3)), rng.uniform(0.5, 1.5, 3),
              rng.standard_normal(3), rng.standard_normal((2, 3, 5, 5))]
    assert rb.autograd.gradcheck(fn, [rb.tensor(a, requires_grad=True) for a in arrays])


@requires_torch
def test_block_double_backward_and_retained_graph(kernel_set):
    """A whole fused block: second derivatives as unfused, and a retained graph runs backward twice."""
    rb.manual_seed(0)
    block = BasicBlock(16, 16)
    _randomise_bn(block, np.random.default_rng(6))
    x = np.random.default_rng(7).standard_normal((2, 16, 6, 6)).astype(np.float32)
    derivatives = _second_derivatives(block, x, kernel_set, "ResidualBlockFn")

    def retained(enabled):
        rx = rb.tensor(x, requires_grad=True)
        loss = (block(rx) ** 2).sum()
        loss.backward(retain_graph=True)
        first = rx.grad.numpy().copy()
        loss.backward()
        return first, rx.grad.numpy()

    fused, unfused = (d + r for d, r in zip(derivatives, _fused_and_unfused(retained)))
    assert_close(fused[0], unfused[0], "first derivative", **TOL)
    assert_close(fused[1], unfused[1], "second derivative", rtol=1e-3, atol=1e-3)
    assert_close(fused[3], 2 * fused[2], "second backward of a retained graph", **TOL)
    assert_close(fused[2], unfused[2], "input grad", rtol=1e-3, atol=1e-3)


@requires_torch
@pytest.mark.parametrize("kind", ["sequential", "block", "identity block"])
def test_inference_folds_batch_norm_into_the_convolution(kernel_set, kind, monkeypatch):
    rb.manual_seed(0)
    rng = np.random.default_rng(4)
    if kind == "sequential":
        module = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        twin = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU())
        shape = (2, 3, 6, 6)
    elif kind == "block":
        down = nn.Sequential(nn.Conv2d(8, 16, 1, 2, bias=False), nn.BatchNorm2d(16))
        module, twin, shape = BasicBlock(8, 16, 2, down), _torch_block(8, 16, 2), (2, 8, 8, 8)
    else:  # the residual is the input itself
        module, twin, shape = BasicBlock(8, 8, 1), _torch_block(8, 8, 1), (1, 8, 6, 6)
    _randomise_bn(module, rng)
    for m in module.modules():  # running statistics far from the initial (0, 1)
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.data[:] = rng.standard_normal(m.num_features).astype(np.float32)
            m.running_var.data[:] = rng.uniform(0.5, 2.0, m.num_features).astype(np.float32)
    _copy_into(twin, module)
    module.eval()
    twin.eval()
    folded = []  # the convolutions whose batch norm was folded in (a layer chain, a block, a pair)
    original = _fusion._folded_parameters
    monkeypatch.setattr(_fusion, "_folded_parameters", lambda conv, *a: folded.append(conv) or original(conv, *a))
    x = np.random.default_rng(5).standard_normal(shape).astype(np.float32)
    for _ in range(2):  # the second time through the cached plans
        with rb.no_grad(), torch.no_grad():
            assert_close(module(rb.tensor(x)), twin(torch.from_numpy(x)), "eval-mode output", **TOL)
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    assert set(folded) == (set(convs) if kernel_set == "onednn" else set())
    folded.clear()
    y = module(rb.tensor(x))  # gradients recorded: the modules run one by one
    assert not folded and not _fused(y)


def test_a_pruned_convolution_runs_its_mask(kernel_set):
    # pruning applies weight = weight_orig * weight_mask in a pre-forward hook: the fused path must
    # not skip it, in training (gradients reach weight_orig) and in inference
    rb.manual_seed(0)
    seq = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
    nn.utils.prune.l1_unstructured(seq[0], "weight", amount=0.5)
    x = rb.tensor(np.random.default_rng(6).standard_normal((2, 3, 6, 6)).astype(np.float32))
    seq(x).sum().backward()
    assert seq[0].weight_orig.grad is not None
    with rb.no_grad():
        seq[0].weight_orig.data *= 2.0  # the next forward must see the new weights through the mask
    seq.eval()
    with rb.no_grad():
        y = seq(x).numpy()
    w = seq[0].weight_orig.numpy() * seq[0].weight_mask.numpy()
    seq[0].weight.data[...] = w  # the reference: the same mask, applied by hand
    ref = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
    ref.load_state_dict({"0.weight": w, "0.bias": seq[0].bias.numpy(),
                         **{k: v.numpy() for k, v in seq.state_dict().items() if k.startswith("1.")}})
    ref.eval()
    _fusion_state = _fusion.ENABLED
    _fusion.ENABLED = False
    try:
        with rb.no_grad():
            expected = ref(x).numpy()
    finally:
        _fusion.ENABLED = _fusion_state
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_folded_weights_are_reused_until_a_parameter_changes(kernel_set):
    # eval-mode inference folds batch norm into the convolution once and reuses the result; every
    # way of changing a parameter or a running statistic must be seen by the next forward
    rb.manual_seed(0)
    rng = np.random.default_rng(7)
    seq = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
    _randomise_bn(seq, rng)
    x = rb.tensor(rng.standard_normal((1, 3, 6, 6)).astype(np.float32))

    def check() -> None:
        seq.eval()
        with rb.no_grad():
            y = seq(x).numpy()
        _fusion.ENABLED = False
        try:
            with rb.no_grad():
                expected = seq(x).numpy()
        finally:
            _fusion.ENABLED = True
        np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)

    check()
    folded = _fusion._folded_cache.get(seq[0])
    assert (folded is not None) == (kernel_set == "onednn")
    check()
    assert _fusion._folded_cache.get(seq[0]) is folded  # nothing changed: reused
    opt = rb.optim.SGD(seq.parameters(), lr=0.1)
    seq.train()
    seq(x + 1.0).sum().backward()  # moves the running statistics too
    opt.step()
    check()
    with rb.no_grad():
        seq[1].bias.copy_(rng.standard_normal(8).astype(np.float32))
    check()
    state = {k: v.numpy() * 0.5 for k, v in seq.state_dict().items() if k != "1.num_batches_tracked"}
    seq.load_state_dict({**state, "1.num_batches_tracked": seq[1].num_batches_tracked.numpy()})
    check()
    seq[0].weight = nn.Parameter(rng.standard_normal((8, 3, 3, 3)).astype(np.float32))
    check()
    seq[1].running_var.data = rng.uniform(0.5, 2.0, 8).astype(np.float32)  # a new array
    check()
    seq[1].eps = 0.1
    check()
    # writes into the arrays themselves move no version counter: the values are compared
    for p in seq.parameters():
        p.data -= 0.05 * np.sign(p.data)  # a hand-written update loop
    check()
    seq[0].weight.data[seq[0].weight.data > 0.1] = 0.0  # hand-made pruning
    check()
    np.multiply(seq[1].running_mean.data, 3.0, out=seq[1].running_mean.data)
    check()
    x = rb.tensor(rng.standard_normal((2, 3, 7, 5)).astype(np.float32))  # another input shape
    check()
    if kernel_set == "onednn":
        assert _fusion._folded_cache.get(seq[0]) is not folded


def test_block_inference_plan_sees_every_change(kernel_set):
    """A residual block in inference reuses what its last call resolved; every change of a parameter,
    a statistic, eps, the input's shape or the shortcut, and a new hook must be seen by the next call."""
    rb.manual_seed(0)
    rng = np.random.default_rng(11)
    down = nn.Sequential(nn.Conv2d(8, 16, 1, 2, bias=False), nn.BatchNorm2d(16))
    blocks = [BasicBlock(16, 16), BasicBlock(8, 16, 2, down)]
    for block in blocks:
        _randomise_bn(block, rng)
    inputs = [rb.tensor(rng.standard_normal((1, 16, 8, 8)).astype(np.float32)),
              rb.tensor(rng.standard_normal((1, 8, 8, 8)).astype(np.float32))]

    def check(block, x) -> None:
        block.eval()
        with rb.no_grad():
            y = block(x).numpy()
        _fusion.ENABLED = False
        try:
            with rb.no_grad():
                expected = block(x).numpy()
        finally:
            _fusion.ENABLED = True
        assert_close(y, expected, "block output", **TOL)

    for block, x in zip(blocks, inputs):
        check(block, x)
        assert (_fusion._block_plans.get(block.conv1) is not None) == (kernel_set == "onednn")
        check(block, x)
        opt = rb.optim.SGD(block.parameters(), lr=0.1)
        block.train()
        block(x + 1.0).sum().backward()  # moves the running statistics too
        opt.step()
        check(block, x)
        with rb.no_grad():
            block.bn2.bias.copy_(rng.standard_normal(16).astype(np.float32))
        check(block, x)
        block.bn1.running_var.data = rng.uniform(0.5, 2.0, 16).astype(np.float32)  # a new array
        check(block, x)
        block.conv2.weight = nn.Parameter(rng.standard_normal((16, 16, 3, 3)).astype(np.float32))
        check(block, x)
        block.bn2.eps = 0.1
        check(block, x)
        for p in block.parameters():  # writes into the arrays themselves: compared by value
            p.data -= 0.05 * np.sign(p.data)
        check(block, x)
        block.conv1.weight.data[0] = 0.0
        check(block, x)
        block.bn1.running_mean.data[3] += 1.0
        check(block, x)
        x = rb.tensor(rng.standard_normal((2,) + x.shape[1:]).astype(np.float32))  # another batch size
        check(block, x)
        seen = []
        block.bn2.register_forward_hook(lambda m, i, o, seen=seen: seen.append(1))
        check(block, x)
        assert seen

