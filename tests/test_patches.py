"""``pixel_shuffle``, ``pixel_unshuffle``, ``unfold``, ``fold`` and their layers against PyTorch.

Forward outputs and input gradients are compared with PyTorch on random data (batched, unbatched,
extra leading dimensions, non-square kernels, overlapping blocks with every stride, padding and
dilation combination below); float64 finite differences check the gradients and second
derivatives; every argument error is matched; and the layers' reprs equal PyTorch's. ONNX export
of all four runs in onnxruntime (unfold and fold as grouped convolutions with one-hot kernels).
"""

from __future__ import annotations

import numpy as np
import pytest

import rosenblatt as rb
from rosenblatt import nn
from rosenblatt.nn.functional.patches import (
    FoldFunction,
    UnfoldFunction,
    fold,
    pixel_shuffle,
    pixel_unshuffle,
    unfold,
)
from rosenblatt.nn.patches import Fold, PixelShuffle, PixelUnshuffle, Unfold
from tests.parity import (
    TF,
    assert_close,
    check_grad,
    check_op,
    check_second_order,
    rb_tensor,
    requires_torch,
    to_numpy,
    torch,
)

DTYPES = [np.float32, np.float64]
rng = np.random.default_rng(23)


def r(*shape):
    return rng.standard_normal(shape)


# -- pixel shuffle -------------------------------------------------------------------------------------

# (input shape of pixel_shuffle, upscale factor)
SHUFFLES = [
    ((2, 8, 3, 5), 2),
    ((2, 18, 4, 3), 3),
    ((4, 3, 2), 2),  # unbatched
    ((2, 3, 9, 2, 3), 3),  # two leading dimensions
    ((2, 1, 2, 4, 3, 2), 2),  # three leading dimensions
    ((2, 5, 3, 4), 1),
]


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,factor", SHUFFLES)
def test_pixel_shuffle_matches_torch(shape, factor, dtype):
    check_op(lambda t: pixel_shuffle(t, factor), lambda t: TF.pixel_shuffle(t, factor), [r(*shape)], dtype)


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,factor", SHUFFLES)
def test_pixel_unshuffle_matches_torch(shape, factor, dtype):
    *lead, c, h, w = shape
    unshuffled = (*lead, c // (factor * factor), h * factor, w * factor)
    check_op(lambda t: pixel_unshuffle(t, factor), lambda t: TF.pixel_unshuffle(t, factor), [r(*unshuffled)], dtype)


def test_pixel_shuffle_layout():
    """Output pixel ``(c, h*r + i, w*r + j)`` is input channel ``c*r*r + i*r + j`` at ``(h, w)``."""
    x = r(2, 2 * 9, 2, 3)
    y = to_numpy(pixel_shuffle(rb_tensor(x), 3))
    assert y.shape == (2, 2, 6, 9)
    for c, i, j, h, w in [(0, 0, 0, 0, 0), (1, 2, 1, 1, 2), (0, 1, 2, 1, 0), (1, 0, 2, 0, 1)]:
        assert y[1, c, h * 3 + i, w * 3 + j] == x[1, c * 9 + i * 3 + j, h, w]


@pytest.mark.parametrize("shape,factor", SHUFFLES)
def test_pixel_unshuffle_inverts_pixel_shuffle(shape, factor):
    x = r(*shape)
    y = pixel_shuffle(rb_tensor(x), factor)
    np.testing.assert_array_equal(to_numpy(pixel_unshuffle(y, factor)), x)


def test_pixel_shuffle_of_no_channels():
    x = rb_tensor(np.zeros((1, 0, 2, 3)))
    assert pixel_shuffle(x, 2).shape == (1, 0, 4, 6)
    assert pixel_unshuffle(x, 1).shape == (1, 0, 2, 3)


def test_pixel_shuffle_gradcheck():
    check_grad(lambda t: pixel_shuffle(t, 2) ** 2, [r(2, 8, 2, 3)], second_order=True)
    check_grad(lambda t: pixel_unshuffle(t, 3) ** 2, [r(2, 1, 3, 6, 3)], second_order=True)


@requires_torch
def test_pixel_shuffle_second_derivatives_match_torch():
    check_second_order(lambda t: pixel_shuffle(t, 2) ** 3, lambda t: TF.pixel_shuffle(t, 2) ** 3, [r(2, 8, 2, 3)])
    check_second_order(lambda t: pixel_unshuffle(t, 2) ** 3, lambda t: TF.pixel_unshuffle(t, 2) ** 3,
                       [r(1, 2, 4, 6)])


# -- unfold and fold -----------------------------------------------------------------------------------

# (image shape, kernel_size, dilation, padding, stride); most have overlapping blocks (stride < kernel)
PATCHES = [
    ((2, 3, 5, 6), 2, 1, 0, 1),
    ((2, 3, 7, 8), (2, 3), 1, 0, 1),  # non-square kernel
    ((1, 2, 7, 9), (3, 2), (2, 1), (1, 2), (2, 1)),
    ((2, 2, 8, 7), 3, 2, 1, 2),
    ((2, 1, 9, 10), (3, 4), 1, (2, 0), (1, 3)),
    ((3, 2, 6, 6), 2, 1, 0, 2),  # blocks tile the image
    ((2, 2, 7, 5), 3, 1, 0, 3),  # stride > kernel: rows and columns no block covers
    ((2, 4, 5, 5), 1, 1, 1, 1),  # 1x1 kernel with padding
    ((2, 2, 4, 4), 4, 1, 0, 1),  # one block
    ((3, 6, 5), (2, 3), 1, 1, (2, 1)),  # unbatched
]
PATCH_IDS = [f"{s}-k{k}-d{d}-p{p}-s{st}" for s, k, d, p, st in PATCHES]


def _fold_input_shape(shape, k, d, p, s):
    """The shape of ``unfold``'s output for these arguments (the input shape of ``fold``)."""
    k, d, p, s = ((v, v) if isinstance(v, int) else v for v in (k, d, p, s))
    h, w = shape[-2:]
    blocks = [(size + 2 * pi - di * (ki - 1) - 1) // si + 1 for size, ki, di, pi, si in zip((h, w), k, d, p, s)]
    return (*shape[:-3], shape[-3] * k[0] * k[1], blocks[0] * blocks[1])


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,k,d,p,s", PATCHES, ids=PATCH_IDS)
def test_unfold_matches_torch(shape, k, d, p, s, dtype):
    check_op(lambda t: unfold(t, k, d, p, s), lambda t: TF.unfold(t, k, d, p, s), [r(*shape)], dtype)


@requires_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,k,d,p,s", PATCHES, ids=PATCH_IDS)
def test_fold_matches_torch(shape, k, d, p, s, dtype):
    size = shape[-2:]
    check_op(lambda t: fold(t, size, k, d, p, s), lambda t: TF.fold(t, size, k, d, p, s),
             [r(*_fold_input_shape(shape, k, d, p, s))], dtype)


@requires_torch
@pytest.mark.parametrize("shape,k,d,p,s", PATCHES, ids=PATCH_IDS)
def test_fold_of_unfold_matches_torch(shape, k, d, p, s):
    size = shape[-2:]
    check_op(lambda t: fold(unfold(t, k, d, p, s), size, k, d, p, s),
             lambda t: TF.fold(TF.unfold(t, k, d, p, s), size, k, d, p, s), [r(*shape)], np.float64)


def test_unfold_layout():
    """Row ``c*kh*kw + i*kw + j`` of column ``l`` is channel ``c`` at kernel offset ``(i, j)`` of
    block ``l`` (row-major over the block grid), with zeros where the block meets the padding."""
    x = r(2, 3, 5, 6)
    k, d, p, s = (2, 3), (2, 1), (1, 0), (2, 1)
    y = to_numpy(unfold(rb_tensor(x), k, d, p, s))
    bh, bw = (5 + 2 - 2 - 1) // 2 + 1, (6 - 2 - 1) // 1 + 1
    assert y.shape == (2, 3 * 6, bh * bw)
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (0, 0)))
    for n, c, i, j, bi, bj in [(0, 0, 0, 0, 0, 0), (1, 2, 1, 2, 2, 3), (0, 1, 1, 0, 1, 2), (1, 0, 0, 1, 2, 0)]:
        expected = padded[n, c, bi * s[0] + i * d[0], bj * s[1] + j * d[1]]
        assert y[n, c * 6 + i * 3 + j, bi * bw + bj] == expected


@pytest.mark.parametrize("shape,k,d,p,s", PATCHES, ids=PATCH_IDS)
def test_fold_is_the_adjoint_of_unfold(shape, k, d, p, s):
    """``<unfold(x), y> == <x, fold(y)>`` for random ``x`` and ``y``."""
    x = r(*shape)
    y = r(*_fold_input_shape(shape, k, d, p, s))
    lhs = np.sum(to_numpy(unfold(rb_tensor(x), k, d, p, s)) * y)
    rhs = np.sum(x * to_numpy(fold(rb_tensor(y), shape[-2:], k, d, p, s)))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-12)


def test_fold_of_unfold_counts_covering_blocks():
    ones = rb_tensor(np.ones((1, 1, 4, 5)))
    counts = to_numpy(fold(unfold(ones, 2), (4, 5), 2))[0, 0]
    expected = np.array([[1, 2, 2, 2, 1], [2, 4, 4, 4, 2], [2, 4, 4, 4, 2], [1, 2, 2, 2, 1]])
    np.testing.assert_array_equal(counts, expected)
    x = r(2, 3, 6, 4)  # blocks that tile the image: fold undoes unfold
    np.testing.assert_array_equal(to_numpy(fold(unfold(rb_tensor(x), (3, 2), stride=(3, 2)), (6, 4), (3, 2),
                                                stride=(3, 2))), x)


def test_unfold_accepts_numpy_ints_and_lists():
    x = rb_tensor(r(2, 3, 6, 7))
    expected = to_numpy(unfold(x, (2, 3), 1, (1, 0), 2))
    got = to_numpy(unfold(x, [np.int64(2), np.int32(3)], np.int64(1), [1, 0], np.int16(2)))
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("shape,k,d,p,s", PATCHES[1:5], ids=PATCH_IDS[1:5])
def test_unfold_fold_gradcheck(shape, k, d, p, s):
    check_grad(lambda t: unfold(t, k, d, p, s), [r(*shape)])
    size = shape[-2:]
    check_grad(lambda t: fold(t, size, k, d, p, s), [r(*_fold_input_shape(shape, k, d, p, s))])
    # squared, so that the second derivatives go through the backward Functions
    check_grad(lambda t: unfold(t, k, d, p, s) ** 2, [r(*shape)], second_order=True)
    check_grad(lambda t: fold(t, size, k, d, p, s) ** 2, [r(*_fold_input_shape(shape, k, d, p, s))],
               second_order=True)


@requires_torch
@pytest.mark.parametrize("shape,k,d,p,s", [PATCHES[2], PATCHES[3], PATCHES[9]], ids=[PATCH_IDS[i] for i in (2, 3, 9)])
def test_unfold_fold_second_derivatives_match_torch(shape, k, d, p, s):
    size = shape[-2:]
    check_second_order(lambda t: unfold(t, k, d, p, s) ** 3, lambda t: TF.unfold(t, k, d, p, s) ** 3, [r(*shape)])
    check_second_order(lambda t: fold(t, size, k, d, p, s) ** 3, lambda t: TF.fold(t, size, k, d, p, s) ** 3,
                       [r(*_fold_input_shape(shape, k, d, p, s))])


def test_unfold_and_fold_are_each_others_backward():
    x = rb_tensor(r(2, 3, 5, 6), requires_grad=True)
    y = unfold(x, (2, 3), padding=1, stride=2)
    assert isinstance(y.grad_fn, UnfoldFunction)
    (gx,) = rb.grad(y, x, rb_tensor(r(*y.shape), requires_grad=True), create_graph=True)
    assert isinstance(gx.grad_fn, FoldFunction)
    cols = rb_tensor(r(*y.shape), requires_grad=True)
    z = fold(cols, (5, 6), (2, 3), padding=1, stride=2)
    assert isinstance(z.grad_fn, FoldFunction)
    (gc,) = rb.grad(z, cols, rb_tensor(r(*z.shape), requires_grad=True), create_graph=True)
    assert isinstance(gc.grad_fn, UnfoldFunction)


def test_unfold_fold_backward_arrays_match_backward():
    """The array gradients (a plain backward) equal the recorded ones (``create_graph=True``)."""
    x = rb_tensor(r(2, 3, 7, 6), requires_grad=True)
    y = unfold(x, 3, dilation=(1, 2), padding=(2, 1), stride=(1, 2))
    g = rb_tensor(r(*y.shape))
    (plain,) = rb.grad(y, x, g, retain_graph=True)
    (recorded,) = rb.grad(y, x, g, create_graph=True)
    assert_close(plain, recorded, "unfold gradient", rtol=0, atol=0)
    cols = rb_tensor(r(*y.shape), requires_grad=True)
    z = fold(cols, (7, 6), 3, dilation=(1, 2), padding=(2, 1), stride=(1, 2))
    g = rb_tensor(r(*z.shape))
    (plain,) = rb.grad(z, cols, g, retain_graph=True)
    (recorded,) = rb.grad(z, cols, g, create_graph=True)
    assert_close(plain, recorded, "fold gradient", rtol=0, atol=0)


# -- layers ----------------------------------------------------------------------------------------------


@requires_torch
def test_layers_match_torch():
    x = r(2, 8, 3, 4)
    check_op(PixelShuffle(2), torch.nn.PixelShuffle(2), [x])
    check_op(PixelUnshuffle(2), torch.nn.PixelUnshuffle(2), [r(2, 3, 4, 6)])
    kw = dict(kernel_size=(2, 3), dilation=(2, 1), padding=1, stride=(1, 2))
    check_op(Unfold(**kw), torch.nn.Unfold(**kw), [r(2, 3, 7, 8)])
    check_op(Unfold(**kw), torch.nn.Unfold(**kw), [r(3, 7, 8)])
    cols = r(*_fold_input_shape((2, 3, 7, 8), (2, 3), (2, 1), 1, (1, 2)))
    check_op(Fold((7, 8), **kw), torch.nn.Fold((7, 8), **kw), [cols])
    check_op(Fold(output_size=(7, 8), **kw), torch.nn.Fold(output_size=(7, 8), **kw), [cols[0]])
    check_op(Fold(6, 3, stride=3), torch.nn.Fold(6, 3, stride=3), [r(2, 9, 4)])


@requires_torch
def test_layer_reprs_match_torch():
    pairs = [
        (PixelShuffle(3), torch.nn.PixelShuffle(3)),
        (PixelUnshuffle(2), torch.nn.PixelUnshuffle(2)),
        (Unfold(3), torch.nn.Unfold(3)),
        (Unfold((2, 3), dilation=2, padding=(1, 0), stride=(2, 1)),
         torch.nn.Unfold((2, 3), dilation=2, padding=(1, 0), stride=(2, 1))),
        (Fold((4, 5), 2), torch.nn.Fold((4, 5), 2)),
        (Fold(6, (3, 2), dilation=(1, 2), padding=1, stride=2),
         torch.nn.Fold(6, (3, 2), dilation=(1, 2), padding=1, stride=2)),
    ]
    for layer, reference in pairs:
        assert repr(layer) == repr(reference)


def test_layer_reprs():
    assert repr(PixelShuffle(2)) == "PixelShuffle(upscale_factor=2)"
    assert repr(PixelUnshuffle(4)) == "PixelUnshuffle(downscale_factor=4)"
    assert repr(Unfold((2, 3), stride=2)) == "Unfold(kernel_size=(2, 3), dilation=1, padding=0, stride=2)"
    assert repr(Fold((4, 5), 2, padding=1)) == \
        "Fold(output_size=(4, 5), kernel_size=2, dilation=1, padding=1, stride=1)"


def test_layers_have_no_parameters_and_compose():
    model = nn.Sequential(PixelUnshuffle(2), PixelShuffle(2), Unfold(2, stride=2), Fold((4, 6), 2, stride=2))
    assert list(model.parameters()) == []
    x = r(2, 3, 4, 6)
    np.testing.assert_array_equal(to_numpy(model(rb_tensor(x))), x)


# -- errors ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("call,error,match", [
    (lambda x: pixel_shuffle(x.numpy(), 2), TypeError, r"pixel_shuffle: expected a Tensor input, got ndarray"),
    (lambda x: pixel_shuffle(x[0, 0], 2), ValueError,
     r"pixel_shuffle: expected an input of shape \(\*, C, H, W\) with at least 3 dimensions, got shape \(4, 6\)"),
    (lambda x: pixel_shuffle(x, 0), ValueError, r"pixel_shuffle: upscale_factor must be a positive int, got 0"),
    (lambda x: pixel_shuffle(x, -2), ValueError, r"upscale_factor must be a positive int, got -2"),
    (lambda x: pixel_shuffle(x, 2.0), ValueError, r"upscale_factor must be a positive int, got 2\.0"),
    (lambda x: pixel_shuffle(x, True), ValueError, r"upscale_factor must be a positive int, got True"),
    (lambda x: pixel_shuffle(x, 2), ValueError,
     r"pixel_shuffle: the 3 channels of input shape \(2, 3, 4, 6\) must be divisible by upscale_factor\*\*2 = 4"),
    (lambda x: pixel_unshuffle([1, 2], 2), TypeError, r"pixel_unshuffle: expected a Tensor input, got list"),
    (lambda x: pixel_unshuffle(x[0, 0], 2), ValueError,
     r"pixel_unshuffle: expected an input of shape \(\*, C, H, W\) with at least 3 dimensions"),
    (lambda x: pixel_unshuffle(x, 0), ValueError, r"pixel_unshuffle: downscale_factor must be a positive int, got 0"),
    (lambda x: pixel_unshuffle(x, 4), ValueError,
     r"pixel_unshuffle: the height 4 and width 6 of input shape \(2, 3, 4, 6\) must be divisible by "
     r"downscale_factor = 4"),
    (lambda x: pixel_unshuffle(x, 3), ValueError, r"the height 4 and width 6 .* divisible by downscale_factor = 3"),
    (lambda x: unfold(x.numpy(), 2), TypeError, r"unfold: expected a Tensor input, got ndarray"),
    (lambda x: unfold(x[0, 0], 2), ValueError,
     r"unfold: expected a 3-D \(C, H, W\) or 4-D \(N, C, H, W\) input, got shape \(4, 6\)"),
    (lambda x: unfold(x.reshape(1, 2, 3, 4, 6), 2), ValueError, r"unfold: expected a 3-D .* got shape \(1, 2, 3, 4, 6\)"),
    (lambda x: unfold(x, 0), ValueError, r"unfold: kernel_size must be a positive int or a pair of positive ints, got 0"),
    (lambda x: unfold(x, (2, 3, 1)), ValueError, r"unfold: kernel_size must be .* got \(2, 3, 1\)"),
    (lambda x: unfold(x, 2.5), ValueError, r"unfold: kernel_size must be .* got 2\.5"),
    (lambda x: unfold(x, 2, dilation=(1, 0)), ValueError,
     r"unfold: dilation must be a positive int or a pair of positive ints, got \(1, 0\)"),
    (lambda x: unfold(x, 2, padding=-1), ValueError,
     r"unfold: padding must be a non-negative int or a pair of non-negative ints, got -1"),
    (lambda x: unfold(x, 2, stride=0), ValueError, r"unfold: stride must be a positive int .* got 0"),
    (lambda x: unfold(x, (5, 2)), ValueError,
     r"unfold: input size \(4, 6\) with padding \(0, 0\) is smaller than the dilated kernel \(5, 2\) "
     r"\(kernel_size \(5, 2\), dilation \(1, 1\)\): no block fits"),
    (lambda x: unfold(x, 3, dilation=(1, 3)), ValueError, r"unfold: input size \(4, 6\) .* dilated kernel \(3, 7\)"),
    (lambda x: fold(x.numpy(), 4, 2), TypeError, r"fold: expected a Tensor input, got ndarray"),
    (lambda x: fold(x, (4, 6), 2), ValueError,
     r"fold: expected a 2-D \(C\*kh\*kw, L\) or 3-D \(N, C\*kh\*kw, L\) input, got shape \(2, 3, 4, 6\)"),
    (lambda x: fold(x[0, 0, 0], 4, 2), ValueError, r"fold: expected a 2-D .* got shape \(6,\)"),
    (lambda x: fold(x.reshape(9, 16), (4, 6), 2), ValueError,
     r"fold: the size 9 of dimension 0 of input shape \(9, 16\) must be divisible by the kernel's kh\*kw = 4 "
     r"\(kernel_size \(2, 2\)\)"),
    (lambda x: fold(x.reshape(2, 12, 6), (4, 6), (1, 5)), ValueError,
     r"fold: the size 12 of dimension 1 .* divisible by the kernel's kh\*kw = 5"),
    (lambda x: fold(x.reshape(2, 12, 6), (4, 6), 2), ValueError,
     r"fold: expected L = 15 blocks \(3 x 5\) in the last dimension of input shape \(2, 12, 6\) for output_size "
     r"\(4, 6\), got L = 6"),
    (lambda x: fold(x.reshape(2, 12, 6), 0, 2), ValueError,
     r"fold: output_size must be a positive int or a pair of positive ints, got 0"),
    (lambda x: fold(x.reshape(2, 12, 6), (3, 3, 3), 2), ValueError, r"fold: output_size must be .* got \(3, 3, 3\)"),
    (lambda x: fold(x.reshape(2, 12, 6), (1, 6), 2), ValueError,
     r"fold: output_size \(1, 6\) with padding \(0, 0\) is smaller than the dilated kernel \(2, 2\)"),
    (lambda x: fold(x.reshape(2, 12, 6), 4, 2, padding=(0, -1)), ValueError, r"fold: padding must be a non-negative"),
    (lambda x: fold(x.reshape(2, 12, 6), 4, 2, stride=-1), ValueError, r"fold: stride must be a positive"),
])
def test_errors(call, error, match):
    with pytest.raises(error, match=match):
        call(rb_tensor(r(2, 3, 4, 6)))


def test_fold_accepts_the_block_count_of_its_arguments():
    cols = rb_tensor(r(2, 12, 6))  # an (4, 6) image has 2 x 3 blocks of 2x2 with stride 2
    assert fold(cols, (4, 6), 2, stride=2).shape == (2, 3, 4, 6)
    assert fold(cols[0], (4, 6), 2, stride=2).shape == (3, 4, 6)
    assert fold(cols, (5, 7), 2, stride=2).shape == (2, 3, 5, 7)  # the last row and column are in no block


def test_layer_errors_name_the_op():
    x = rb_tensor(r(2, 3, 4, 6))
    with pytest.raises(ValueError, match=r"pixel_shuffle: the 3 channels"):
        PixelShuffle(2)(x)
    with pytest.raises(ValueError, match=r"pixel_unshuffle: downscale_factor must be a positive int"):
        PixelUnshuffle(0)(x)
    with pytest.raises(ValueError, match=r"unfold: stride must be a positive int"):
        Unfold(2, stride=0)(x)
    with pytest.raises(ValueError, match=r"fold: expected L = 15 blocks"):
        Fold((4, 6), 2)(rb_tensor(r(2, 12, 6)))


# -- ONNX export -----------------------------------------------------------------------------------------


def _onnx_roundtrip(model, shape, run_batch, tmp_path):
    """Export ``model`` with an example of ``shape``, run a batch of another size in onnxruntime,
    compare with rosenblatt; returns onnxruntime's outputs."""
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from rosenblatt.io.onnx_export import export_onnx

    model.eval()
    path = tmp_path / "model.onnx"
    export_onnx(model, np.random.default_rng(1).normal(size=shape).astype(np.float32), path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(2).normal(size=(run_batch,) + tuple(shape[1:])).astype(np.float32)
    got = session.run(None, {session.get_inputs()[0].name: x})
    with rb.no_grad():
        expected = model(rb.tensor(x))
    for g, e in zip(got, expected):
        assert g.shape == e.shape
        np.testing.assert_allclose(g, e.numpy(), rtol=1e-5, atol=1e-5)
    return got


class _ShuffleNet(nn.Module):
    """A sub-pixel upsampler followed by the inverse rearrangement."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 12, 3, padding=1)
        self.shuffle = PixelShuffle(2)
        self.unshuffle = PixelUnshuffle(2)

    def forward(self, x):
        y = self.shuffle(self.conv(x))
        return y, self.unshuffle(y * 2.0)


def test_onnx_export_of_pixel_shuffle(tmp_path):
    got = _onnx_roundtrip(_ShuffleNet(), (3, 2, 4, 5), 5, tmp_path)
    assert [g.shape for g in got] == [(5, 3, 8, 10), (5, 12, 4, 5)]


class _Blocks(nn.Module):
    """Unfold, scale the columns, fold back: both ops in one graph."""

    def __init__(self, size, **kw):
        super().__init__()
        self.unfold, self.fold = Unfold(**kw), Fold(size, **kw)

    def forward(self, x):
        cols = self.unfold(x)
        return cols, self.fold(cols * 1.5)


@pytest.mark.parametrize("kw", [
    dict(kernel_size=3),
    dict(kernel_size=(2, 3), stride=2, padding=1),
    dict(kernel_size=3, dilation=2, stride=(1, 2)),
    dict(kernel_size=2, stride=3),  # blocks that leave the image's last rows and columns out
], ids=["plain", "strided-padded", "dilated", "gaps"])
def test_onnx_export_of_unfold_and_fold(tmp_path, kw):
    _onnx_roundtrip(_Blocks((9, 11), **kw), (2, 3, 9, 11), 4, tmp_path)


@requires_torch
def test_unfold_fold_non_contiguous_inputs_match_torch():
    """A channels-last image and a transposed column array give PyTorch's results."""
    image = np.ascontiguousarray(r(2, 5, 6, 3).astype(np.float32)).transpose(0, 3, 1, 2)
    kw = dict(kernel_size=(2, 3), padding=1, stride=(2, 1))
    y = unfold(rb_tensor(image), **kw)
    assert_close(y, TF.unfold(torch.tensor(np.ascontiguousarray(image)), **kw), "unfold", rtol=0, atol=0)
    cols = np.ascontiguousarray(r(2, 12, 18).astype(np.float32).transpose(0, 2, 1)).transpose(0, 2, 1)
    z = fold(rb_tensor(cols), (5, 6), **kw)
    assert_close(z, TF.fold(torch.tensor(np.ascontiguousarray(cols)), (5, 6), **kw), "fold", rtol=1e-6, atol=1e-6)
