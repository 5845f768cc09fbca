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


class NumpyLeNet5:
    """LeNet-5 (ReLU, max pool) in NumPy only, trained with SGD + Nesterov momentum.

    The same architecture, initialisation scheme and update rule as
    ``fastconv.models.lenet5`` + ``fastconv.optim.SGD``: the baseline for the epoch bench.
    """

    def __init__(self, rng, dtype=np.float32, lr=0.03, momentum=0.9):
        def uniform(shape, fan_in):
            b = 1 / np.sqrt(fan_in)
            return rng.uniform(-b, b, shape).astype(dtype)

        self.p = {
            "c1w": uniform((6, 1, 5, 5), 25), "c1b": uniform((6,), 25),
            "c3w": uniform((16, 6, 5, 5), 150), "c3b": uniform((16,), 150),
            "f5w": uniform((120, 400), 400), "f5b": uniform((120,), 400),
            "f6w": uniform((84, 120), 120), "f6b": uniform((84,), 120),
            "f7w": uniform((10, 84), 84), "f7b": uniform((10,), 84),
        }
        self.buf = {k: np.zeros_like(v) for k, v in self.p.items()}
        self.lr, self.momentum = lr, momentum

    def train_step(self, x, labels):
        p = self.p
        a1 = conv2d_forward(x, p["c1w"], p["c1b"], 1, 2)
        r1 = np.maximum(a1, 0)
        m1, arg1 = max_pool2d_forward(r1, 2)
        a3 = conv2d_forward(m1, p["c3w"], p["c3b"])
        r3 = np.maximum(a3, 0)
        m3, arg3 = max_pool2d_forward(r3, 2)
        h = m3.reshape(len(x), -1)
        a5 = h @ p["f5w"].T + p["f5b"]
        r5 = np.maximum(a5, 0)
        a6 = r5 @ p["f6w"].T + p["f6b"]
        r6 = np.maximum(a6, 0)
        logits = r6 @ p["f7w"].T + p["f7b"]
        z = logits - logits.max(1, keepdims=True)
        prob = np.exp(z) / np.exp(z).sum(1, keepdims=True)
        n = len(x)
        loss = -np.log(prob[np.arange(n), labels]).mean()
        g = prob
        g[np.arange(n), labels] -= 1
        g /= n
        grads = {"f7w": g.T @ r6, "f7b": g.sum(0)}
        g = (g @ p["f7w"]) * (a6 > 0)
        grads.update(f6w=g.T @ r5, f6b=g.sum(0))
        g = (g @ p["f6w"]) * (a5 > 0)
        grads.update(f5w=g.T @ h, f5b=g.sum(0))
        g = (g @ p["f5w"]).reshape(m3.shape)
        g = max_pool2d_backward(g, arg3, r3.shape, 2) * (a3 > 0)
        gx, grads["c3w"], grads["c3b"] = conv2d_backward(g, m1, p["c3w"])
        g = max_pool2d_backward(gx, arg1, r1.shape, 2) * (a1 > 0)
        _, grads["c1w"], grads["c1b"] = conv2d_backward(g, x, p["c1w"], 1, 2)
        for k, gk in grads.items():
            b = self.buf[k]
            b *= self.momentum
            b += gk
            p[k] -= self.lr * (gk + self.momentum * b)
        return float(loss)
