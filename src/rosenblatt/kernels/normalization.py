"""NumPy (and CuPy) batch-norm kernels: arrays in, arrays out; the reference and the fallback.

Training-mode batch norm normalises with the batch mean and the *biased* batch variance; the
backward pass is the closed form

    dx = invstd * (g - mean(g) - x_hat * mean(g * x_hat)),   g = dy * weight

with the means over every axis but the channel axis 1.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rosenblatt.backend import get_array_module


def _param_shape(ndim: int, channels: int) -> tuple[int, ...]:
    return (1, channels) + (1,) * (ndim - 2)


# Per-channel sums over (N, *spatial). NumPy reduces an NCHW array over axes (0, 2, 3) about three
# times slower than BLAS does: on the (N, C, L) view, ``a @ ones`` sums each row of length L and a
# batched ``(1, L) @ (L, 1)`` matmul gives the row dot products, leaving only an (N, C) sum over N
# (also as accurate as NumPy's pairwise sum, measured against float64).


# An (N, C) array (BatchNorm1d after a linear layer) is summed over N as ``ones(N) @ a`` (BLAS: 3 us
# against NumPy's 6 us on 128x512 float32), and its column dot products are ``einsum("nc,nc->c")``
# (10 us, no product array, against 19 us for ``(a * b).sum(axis=0)``); both add the N terms of a
# column in the input's dtype, as NumPy's axis-0 sum does.


def _channel_sum(a):
    """``a.sum(axis=(0, 2, ...))`` of an ``(N, C, ...)`` array, shape ``(C,)``."""
    xp = get_array_module(a)
    if a.ndim == 2:
        return xp.ones(a.shape[0], dtype=a.dtype) @ a if xp is np else a.sum(axis=0)
    a3 = a.reshape(a.shape[0], a.shape[1], -1)
    return xp.matmul(a3, xp.ones(a3.shape[2], dtype=a.dtype)).sum(axis=0)


def _channel_dot(a, b):
    """``(a * b).sum(axis=(0, 2, ...))`` of two ``(N, C, ...)`` arrays without the product array."""
    xp = get_array_module(a)
    if a.ndim == 2:
        return np.einsum("nc,nc->c", a, b) if xp is np else (a * b).sum(axis=0)
    n, c = a.shape[:2]
    a4 = a.reshape(n, c, 1, -1)
    b4 = b.reshape(n, c, -1, 1)
    return xp.matmul(a4, b4).reshape(n, c).sum(axis=0)


def batch_stats(x: Any) -> tuple[Any, Any, Any]:
    """Per-channel batch mean and biased variance of ``x``, and ``x - mean`` (owned by the caller).

    Two passes (mean, then centred squares) keep the variance accurate when ``|mean| >> std``.
    """
    count = x.size // x.shape[1]
    batch_mean = _channel_sum(x) / count
    centered = x - batch_mean.reshape(_param_shape(x.ndim, x.shape[1]))
    batch_var = _channel_dot(centered, centered) / count
    return batch_mean, batch_var, centered


def batch_norm_train_forward(x: Any, weight: Any, bias: Any, batch_mean: Any, invstd: Any,
                             centered: Any = None) -> tuple[Any, Any]:
    """``(y, x_hat)`` of training-mode batch norm given the batch mean and inverse std.

    ``centered`` (``x - batch_mean``, from :func:`batch_stats`) is reused in place as ``x_hat``,
    saving a pass over ``x``.
    """
    shape = _param_shape(x.ndim, x.shape[1])
    x_hat = x - batch_mean.reshape(shape) if centered is None else centered
    x_hat *= invstd.reshape(shape)
    if weight is None:
        return (x_hat if bias is None else x_hat + bias.reshape(shape)), x_hat
    y = x_hat * weight.reshape(shape)
    if bias is not None:
        y += bias.reshape(shape)
    return y, x_hat


def batch_norm_train_backward(g: Any, x_hat: Any, invstd: Any, weight: Any, need_x: bool = True,
                              need_w: bool = True, need_b: bool = True) -> tuple[Any, Any, Any]:
    """Gradients ``(gx, gweight, gbias)`` of training-mode batch norm (``None`` where not needed)."""
    shape = _param_shape(g.ndim, g.shape[1])
    count = g.size // g.shape[1]
    sum_g = _channel_sum(g)
    sum_g_xhat = _channel_dot(g, x_hat)
    gx = None
    if need_x:
        scale = invstd if weight is None else invstd * weight
        # dx = scale * (g - mean(g) - x_hat * mean(g x_hat)), with weight folded into scale; one new
        # array, four passes (a fresh array costs about twice an in-place pass: 24 us against 13 on
        # 128x512 float32)
        gx = x_hat * (sum_g_xhat / -count).reshape(shape)
        gx += g
        gx -= (sum_g / count).reshape(shape)
        gx *= scale.reshape(shape)
    return gx, (sum_g_xhat if need_w else None), (sum_g if need_b else None)


__all__ = ["batch_norm_train_backward", "batch_norm_train_forward", "batch_stats"]
