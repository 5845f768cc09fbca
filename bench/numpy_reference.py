"""NumPy-only conv2d and pooling: the baseline users would write (im2col by sliding windows).

im2col is ``sliding_window_view`` (a view; ``tensordot`` copies it into a GEMM operand), and
the GEMM is ``np.tensordot`` on NumPy's BLAS. Supports stride, int padding, dilation; groups=1.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def _windows(x, kh, kw, stride, padding, dilation):
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding))) if padding else x
    ekh, ekw = dilation * (kh - 1) + 1, dilation * (kw - 1) + 1
    win = sliding_window_view(xp, (ekh, ekw), axis=(2, 3))
    return win[:, :, ::stride, ::stride, ::dilation, ::dilation]  # (N, C, OH, OW, kh, kw)


def conv2d_forward(x, w, b=None, stride=1, padding=0, dilation=1):
    """y (N, C_out, OH, OW) = cross-correlation of x (N, C, H, W) with w (C_out, C, kh, kw)."""
    win = _windows(x, w.shape[2], w.shape[3], stride, padding, dilation)
    y = np.tensordot(win, w, axes=([1, 4, 5], [1, 2, 3]))  # (N, OH, OW, C_out)
    if b is not None:
        y += b
    return np.ascontiguousarray(y.transpose(0, 3, 1, 2))


def conv2d_backward(gy, x, w, stride=1, padding=0, dilation=1):
    """(grad_input, grad_weight, grad_bias) of conv2d_forward."""
    N, C, H, W = x.shape
    _, _, kh, kw = w.shape
    OH, OW = gy.shape[2:]
    win = _windows(x, kh, kw, stride, padding, dilation)
    grad_weight = np.tensordot(gy, win, axes=([0, 2, 3], [0, 2, 3]))  # (C_out, C, kh, kw)
    dcol = np.tensordot(gy, w, axes=([1], [0]))  # (N, OH, OW, C, kh, kw)
    dxp = np.zeros((N, C, H + 2 * padding, W + 2 * padding), x.dtype)
    for i in range(kh):
        for j in range(kw):
            hi, wj = i * dilation, j * dilation
            dxp[:, :, hi : hi + stride * (OH - 1) + 1 : stride, wj : wj + stride * (OW - 1) + 1 : stride] += (
                dcol[:, :, :, :, i, j].transpose(0, 3, 1, 2)
            )
    grad_input = dxp[:, :, padding : padding + H, padding : padding + W]
    return np.ascontiguousarray(grad_input), grad_weight, gy.sum(axis=(0, 2, 3))


def max_pool2d_forward(x, k, stride=None):
    """(y, argmax within window) for non-padded max pooling."""
    s = stride or k
    win = sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::s, ::s]
    flat = win.reshape(*win.shape[:4], k * k)
    arg = flat.argmax(-1)
    return np.take_along_axis(flat, arg[..., None], -1)[..., 0], arg


def max_pool2d_backward(gy, arg, x_shape, k, stride=None):
    s = stride or k
    N, C, OH, OW = gy.shape
    gx = np.zeros(x_shape, gy.dtype)
    i, j = np.divmod(arg, k)
    n, c, oh, ow = np.indices(gy.shape)
    np.add.at(gx, (n, c, oh * s + i, ow * s + j), gy)
    return gx


def avg_pool2d_forward(x, k, stride=None):
    s = stride or k
    return sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::s, ::s].mean(axis=(-2, -1))


def avg_pool2d_backward(gy, x_shape, k, stride=None):
    s = stride or k
    gx = np.zeros(x_shape, gy.dtype)
    OH, OW = gy.shape[2:]
    for i in range(k):
        for j in range(k):
            gx[:, :, i : i + s * (OH - 1) + 1 : s, j : j + s * (OW - 1) + 1 : s] += gy / (k * k)
    return gx
