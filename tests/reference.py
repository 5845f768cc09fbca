"""Independent references for the tests: SciPy correlations, NumPy windows, finite differences.

Nothing here imports fastconv's kernels; every test compares fastconv against these.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.signal import correlate2d

# Per-dtype tolerances (relative to the size of the values involved).
TOL = {np.float32: dict(rtol=2e-4, atol=2e-4), np.float64: dict(rtol=1e-10, atol=1e-10)}


def tol(dtype):
    return TOL[np.dtype(dtype).type]


def pad_amounts(padding, kernel, dilation, stride=(1, 1)):
    """(top, bottom, left, right) for an int, a pair, 'valid' or 'same' (PyTorch rules)."""
    if padding == "valid":
        return (0, 0, 0, 0)
    if padding == "same":
        out = []
        for k, d in zip(kernel, dilation):
            total = d * (k - 1)
            out += [total // 2, total - total // 2]
        return tuple(out)
    ph, pw = (padding, padding) if np.isscalar(padding) else padding
    return (ph, ph, pw, pw)


def pair(v):
    return (v, v) if np.isscalar(v) else tuple(v)


def dilate_kernel(w, dilation):
    """Insert dh-1 / dw-1 zeros between kernel taps."""
    dh, dw = dilation
    kh, kw = w.shape
    out = np.zeros(((kh - 1) * dh + 1, (kw - 1) * dw + 1), w.dtype)
    out[::dh, ::dw] = w
    return out


def conv2d_ref(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """conv2d from scipy.signal.correlate2d, computed in float64.

    Explicit np.pad, stride by slicing the stride-1 result, dilation by a zero-dilated kernel.
    """
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    stride, dilation = pair(stride), pair(dilation)
    N, C, H, W = x.shape
    C_out, cig, kh, kw = w.shape
    t, bo, l, r = pad_amounts(padding, (kh, kw), dilation)
    xp = np.pad(x, ((0, 0), (0, 0), (t, bo), (l, r)))
    cog = C_out // groups
    planes = []
    for n in range(N):
        chans = []
        for co in range(C_out):
            g = co // cog
            acc = 0.0
            for c in range(cig):
                acc = acc + correlate2d(xp[n, g * cig + c], dilate_kernel(w[co, c], dilation), "valid")
            acc = acc[:: stride[0], :: stride[1]]
            chans.append(acc + (0.0 if b is None else float(b[co])))
        planes.append(chans)
    return np.array(planes)


def conv2d_grads_ref(gy, x, w, stride=1, padding=0, dilation=1, groups=1):
    """(grad_input, grad_weight) of conv2d for grad_output gy, in float64.

    One kernel tap at a time: the strided window of the padded input under tap (i, j)
    meets gy in one einsum for grad_weight, and gy scatters back through the same window
    for grad_input. Written from the definition, independent of the conv2d_ref route.
    """
    gy, x, w = (np.asarray(a, np.float64) for a in (gy, x, w))
    (sh, sw), (dh, dw) = pair(stride), pair(dilation)
    N, C, H, W = x.shape
    C_out, cig, kh, kw = w.shape
    OH, OW = gy.shape[2:]
    t, bo, l, r = pad_amounts(padding, (kh, kw), (dh, dw))
    xp = np.pad(x, ((0, 0), (0, 0), (t, bo), (l, r)))
    gxp = np.zeros_like(xp)
    gw = np.zeros_like(w)
    cog = C_out // groups
    for g in range(groups):
        ci, co = slice(g * cig, (g + 1) * cig), slice(g * cog, (g + 1) * cog)
        for i in range(kh):
            rows = slice(i * dh, i * dh + sh * (OH - 1) + 1, sh)
            for j in range(kw):
                cols = slice(j * dw, j * dw + sw * (OW - 1) + 1, sw)
                gw[co, :, i, j] = np.einsum("nkhw,nchw->kc", gy[:, co], xp[:, ci, rows, cols])
                gxp[:, ci, rows, cols] += np.einsum("nkhw,kc->nchw", gy[:, co], w[co, :, i, j])
    return gxp[:, :, t:t + H, l:l + W], gw


def _pool_windows(x, kernel, stride, padding, ceil_mode, fill):
    """Windows (N, C, OH, OW, kh, kw) of x padded with `fill`, following PyTorch's sizes."""
    kh, kw = pair(kernel)
    sh, sw = pair(stride if stride is not None else kernel)
    ph, pw = pair(padding)
    N, C, H, W = x.shape

    def out_size(n, k, s, p):
        if ceil_mode:
            o = -(-(n + 2 * p - k) // s) + 1
            if (o - 1) * s >= n + p:
                o -= 1
        else:
            o = (n + 2 * p - k) // s + 1
        return o

    OH, OW = out_size(H, kh, sh, ph), out_size(W, kw, sw, pw)
    # extra bottom/right fill so ceil_mode windows exist; never reaches a real element
    eh = max(0, (OH - 1) * sh + kh - (H + 2 * ph))
    ew = max(0, (OW - 1) * sw + kw - (W + 2 * pw))
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph + eh), (pw, pw + ew)), constant_values=fill)
    win = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw][:, :, :OH, :OW]
    return win, (OH, OW), (eh, ew)


def max_pool2d_ref(x, kernel, stride=None, padding=0, ceil_mode=False):
    """(output, flat argmax indices) by sliding windows, PyTorch's rules: only elements
    inside the input are candidates; the first NaN wins, else the first maximum."""
    x = np.asarray(x)
    win, (OH, OW), _ = _pool_windows(x, kernel, stride, padding, ceil_mode, -np.inf)
    inside, _, _ = _pool_windows(np.ones(x.shape, bool), kernel, stride, padding, ceil_mode, False)
    N, C, H, W = x.shape
    kh, kw = pair(kernel)
    sh, sw = pair(stride if stride is not None else kernel)
    ph, pw = pair(padding)
    flat = win.reshape(N, C, OH, OW, kh * kw)
    inside = inside.reshape(N, C, OH, OW, kh * kw)
    nan_inside = np.isnan(flat) & inside
    best = np.where(inside, flat, -np.inf).max(-1, keepdims=True)
    first_max = (inside & (flat == best)).argmax(-1)  # argmax of bools: first True
    arg = np.where(nan_inside.any(-1), nan_inside.argmax(-1), first_max)
    out = np.take_along_axis(flat, arg[..., None], -1)[..., 0]
    i, j = np.divmod(arg, kw)
    oh = np.arange(OH)[:, None]
    ow = np.arange(OW)[None, :]
    ih = oh * sh - ph + i
    iw = ow * sw - pw + j
    return out, (ih * W + iw).astype(np.int64)


def avg_pool2d_ref(x, kernel, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """Average pool by sliding windows with PyTorch's divisor rules."""
    x = np.asarray(x, np.float64)
    win, (OH, OW), (eh, ew) = _pool_windows(x, kernel, stride, padding, ceil_mode, 0.0)
    sums = win.sum(axis=(-2, -1))
    N, C, H, W = x.shape
    ph, pw = pair(padding)
    ones = np.ones((1, 1, H, W))
    if count_include_pad:
        # positions inside the padded input (not the ceil_mode overhang) count
        inside = np.pad(ones, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=1.0)
        counter = np.pad(inside, ((0, 0), (0, 0), (0, eh), (0, ew)))
    else:
        counter = np.pad(ones, ((0, 0), (0, 0), (ph, ph + eh), (pw, pw + ew)))
    kh, kw = pair(kernel)
    sh, sw = pair(stride if stride is not None else kernel)
    cw = sliding_window_view(counter, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw][:, :, :OH, :OW]
    return sums / cw.sum(axis=(-2, -1))


def numerical_grad(f, x, eps=1e-6):
    """Central finite differences of the scalar f() with respect to every entry of x (in place)."""
    return numerical_grad_at(f, x, range(x.size), eps).reshape(x.shape)


def random_array(rng, shape, dtype=np.float64, layout="C"):
    """Random normal data in a given memory layout: 'C', 'F' or 'strided' (non-contiguous)."""
    if layout == "strided":
        big = rng.standard_normal(tuple(s * 2 for s in shape)).astype(dtype)
        return big[tuple(slice(None, None, 2) for _ in shape)]
    a = rng.standard_normal(shape).astype(dtype)
    return np.asfortranarray(a) if layout == "F" else a


def numerical_grad_at(f, x, flat_indices, eps=1e-6):
    """Central differences of scalar f() w.r.t. the given flat entries of x only."""
    flat = x.reshape(-1)
    out = np.empty(len(flat_indices))
    for k, i in enumerate(flat_indices):
        old = flat[i]
        flat[i] = old + eps
        fp = f()
        flat[i] = old - eps
        fm = f()
        flat[i] = old
        out[k] = (fp - fm) / (2 * eps)
    return out


def sgd_steps_ref(p0, grads, lr, momentum=0.0, weight_decay=0.0, nesterov=False):
    """PyTorch's SGD rule (dampening 0) in float64, applied once per gradient in ``grads``;
    returns the parameter after the last step."""
    p = np.array(p0, np.float64)
    buf = None
    for g in grads:
        d = np.asarray(g, np.float64) + weight_decay * p
        if momentum:
            buf = d.copy() if buf is None else momentum * buf + d
            d = d + momentum * buf if nesterov else buf
        p = p - lr * d
    return p


def adam_steps_ref(p0, grads, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    """Adam with bias correction (Kingma & Ba; PyTorch's rule) in float64, applied once per
    gradient in ``grads``; returns the parameter after the last step."""
    p = np.array(p0, np.float64)
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        d = np.asarray(g, np.float64) + weight_decay * p
        m = betas[0] * m + (1 - betas[0]) * d
        v = betas[1] * v + (1 - betas[1]) * d * d
        p = p - lr * (m / (1 - betas[0] ** t)) / (np.sqrt(v / (1 - betas[1] ** t)) + eps)
    return p


def write_idx(path, array, magic):
    """Write a uint8 array as an IDX file (gzip-compressed if path ends in .gz)."""
    import gzip

    array = np.ascontiguousarray(array, np.uint8)
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + array.tobytes()
    if str(path).endswith(".gz"):
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        with open(path, "wb") as f:
            f.write(data)
    return data


def synthetic_digits(n, rng, size=28):
    """n uint8 images of 10 easily separable classes (a bar whose position is the label)."""
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = (rng.random((n, size, size)) * 40).astype(np.uint8)
    for k, y in enumerate(labels):
        r = 2 + 2 * int(y)
        images[k, r : r + 3, 4:24] = 255
    return images, labels


def input_support(f, x, out_index, delta=1.0):
    """Which input pixels output element ``out_index`` (an index without the batch axis)
    of ``f`` depends on, by perturbation.

    ``x`` has shape (1, C, *spatial); every spatial position (all channels at once) is
    perturbed by ``delta`` in one batched forward call of ``f`` (float64). Returns, per
    spatial axis, the ``(first, last)`` indices of the positions whose perturbation changes
    the output: the receptive field of that output element, as it lies in the input.
    """
    x = np.asarray(x, np.float64)
    spatial = x.shape[2:]
    n = int(np.prod(spatial))
    batch = np.repeat(x, n + 1, axis=0)
    for k, pos in enumerate(np.ndindex(*spatial)):
        batch[(k + 1, slice(None)) + pos] += delta
    y = np.asarray(f(batch), np.float64)
    changed = np.abs(y[(slice(1, None),) + tuple(out_index)] - y[(0,) + tuple(out_index)]) > 1e-12
    where = np.argwhere(changed.reshape(spatial))
    if where.size == 0:
        return None
    return tuple((int(lo), int(hi)) for lo, hi in zip(where.min(0), where.max(0)))


def _channel_axes(x):
    """The axes batch normalisation reduces over (all but the channel axis 1)."""
    return (0,) + tuple(range(2, x.ndim))


def _per_channel(v, ndim):
    return np.asarray(v, np.float64).reshape((1, -1) + (1,) * (ndim - 2))


def batch_norm_ref(x, running_mean=None, running_var=None, weight=None, bias=None,
                   training=False, momentum=0.1, eps=1e-5):
    """Batch normalisation from its definition in float64 (np.mean/np.var over N and the
    spatial axes): returns (y, new_running_mean, new_running_var), the running statistics
    updated with the unbiased batch variance in training mode (None where not given)."""
    x = np.asarray(x, np.float64)
    axes = _channel_axes(x)
    if training:
        mean, var = x.mean(axes), x.var(axes)
        if running_mean is not None:
            running_mean = (1 - momentum) * np.asarray(running_mean, np.float64) + momentum * mean
            running_var = ((1 - momentum) * np.asarray(running_var, np.float64)
                           + momentum * x.var(axes, ddof=1))  # unbiased: sum / (M - 1)
    else:
        mean, var = np.asarray(running_mean, np.float64), np.asarray(running_var, np.float64)
    y = (x - _per_channel(mean, x.ndim)) / np.sqrt(_per_channel(var, x.ndim) + eps)
    if weight is not None:
        y = y * _per_channel(weight, x.ndim)
    if bias is not None:
        y = y + _per_channel(bias, x.ndim)
    return y, running_mean, running_var


def batch_norm_grads_ref(gy, x, weight=None, training=True, running_mean=None,
                         running_var=None, eps=1e-5):
    """(grad_input, grad_weight, grad_bias) of batch_norm_ref in float64, from the chain
    rule written out: through the batch mean and variance in training mode, with fixed
    running statistics otherwise."""
    gy, x = np.asarray(gy, np.float64), np.asarray(x, np.float64)
    axes = _channel_axes(x)
    M = x.size // x.shape[1]
    if training:
        mean, var = x.mean(axes, keepdims=True), x.var(axes, keepdims=True)
    else:
        mean, var = _per_channel(running_mean, x.ndim), _per_channel(running_var, x.ndim)
    w = np.ones_like(mean) if weight is None else _per_channel(weight, x.ndim)
    xc = x - mean
    std = np.sqrt(var + eps)
    xhat = xc / std
    grad_weight, grad_bias = (gy * xhat).sum(axes), gy.sum(axes)
    gxhat = gy * w
    if not training:
        return gxhat / std, grad_weight, grad_bias
    # y depends on x directly and through mean and var = mean(xc^2)
    gvar = (gxhat * xc).sum(axes, keepdims=True) * -0.5 * std ** -3
    gmean = -(gxhat / std).sum(axes, keepdims=True) + gvar * (-2.0 * xc).mean(axes, keepdims=True)
    return gxhat / std + gvar * 2.0 * xc / M + gmean / M, grad_weight, grad_bias


# np.pad's names for the padding modes of torch.nn.functional.pad
NP_PAD_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def pad_ref(x, pad, mode="constant", value=0.0):
    """torch.nn.functional.pad of an (N, C, H, W) array from np.pad and slicing.

    ``pad`` is (left, right[, top, bottom]). Negative pads crop, as PyTorch 2.x: modes
    constant/reflect/replicate pad by the positive amounts, then crop; circular crops
    first and wraps around what is left.
    """
    left, right, top, bottom = tuple(pad) + (0, 0) * (len(pad) == 2)
    positive = ((0, 0), (0, 0), (max(top, 0), max(bottom, 0)), (max(left, 0), max(right, 0)))

    def crop(a):
        H, W = a.shape[2:]
        return a[:, :, max(-top, 0):H - max(-bottom, 0), max(-left, 0):W - max(-right, 0)]

    if mode == "circular":
        return np.pad(crop(x), positive, "wrap")
    kw = {"constant_values": value} if mode == "constant" else {}
    return crop(np.pad(x, positive, NP_PAD_MODES[mode], **kw))


def pad_matrix_ref(hw, pad, mode):
    """The padding of one (H, W) plane as a 0/1 matrix P (OH*OW, H*W): pad(x) = P @ x.ravel()
    and the adjoint (pad's backward) is P.T @ g.ravel(). Built by padding the plane's flat
    indices with :func:`pad_ref` (-1 marks the constant)."""
    H, W = hw
    idx = pad_ref(np.arange(H * W, dtype=np.float64).reshape(1, 1, H, W), pad, mode, value=-1.0)
    src = idx.reshape(-1).astype(np.int64)
    P = np.zeros((src.size, H * W))
    rows = np.flatnonzero(src >= 0)
    P[rows, src[rows]] = 1.0
    return P, idx.shape[2:]


def pad_backward_ref(g, input_shape, pad, mode):
    """Gradient of pad_ref with respect to x (float64): each output's gradient added to the
    input element it copies, through :func:`pad_matrix_ref`."""
    N, C, H, W = input_shape
    P, _ = pad_matrix_ref((H, W), pad, mode)
    g = np.asarray(g, np.float64).reshape(N, C, -1)
    return (g @ P).reshape(N, C, H, W)


def conv2d_padding_mode_ref(x, w, b=None, stride=1, padding=0, dilation=1, groups=1,
                            padding_mode="zeros"):
    """conv2d with torch.nn.Conv2d's padding_mode: x padded by np.pad in that mode
    (:func:`pad_ref`; "same" puts the extra row/column at the bottom/right), then
    :func:`conv2d_ref` without padding."""
    if padding_mode == "zeros":
        return conv2d_ref(x, w, b, stride, padding, dilation, groups)
    t, bo, l, r = pad_amounts(padding, w.shape[2:], pair(dilation))
    xp = pad_ref(np.asarray(x, np.float64), (l, r, t, bo), padding_mode)
    return conv2d_ref(xp, w, b, stride, 0, dilation, groups)


def adaptive_bins(size, out_size):
    """PyTorch's adaptive pooling bins along one axis: [floor(i*size/out), ceil((i+1)*size/out))."""
    return [(i * size // out_size, -(-(i + 1) * size // out_size)) for i in range(out_size)]


def _adaptive_sizes(x_shape, output_size):
    H, W = x_shape[2:]
    OH, OW = (output_size, output_size) if np.isscalar(output_size) else output_size
    return (H if OH is None else OH), (W if OW is None else OW)


def adaptive_avg_pool2d_ref(x, output_size):
    """Adaptive average pooling by explicit loops over the bins, in float64."""
    x = np.asarray(x, np.float64)
    N, C, H, W = x.shape
    OH, OW = _adaptive_sizes(x.shape, output_size)
    out = np.empty((N, C, OH, OW))
    for i, (h0, h1) in enumerate(adaptive_bins(H, OH)):
        for j, (w0, w1) in enumerate(adaptive_bins(W, OW)):
            out[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
    return out


def adaptive_max_pool2d_ref(x, output_size):
    """(output, flat h*W + w argmax) of adaptive max pooling by loops over bins: the first
    NaN of a bin wins, else its first maximum in row-major order."""
    x = np.asarray(x)
    N, C, H, W = x.shape
    OH, OW = _adaptive_sizes(x.shape, output_size)
    out = np.empty((N, C, OH, OW), x.dtype)
    idx = np.empty((N, C, OH, OW), np.int64)
    for i, (h0, h1) in enumerate(adaptive_bins(H, OH)):
        for j, (w0, w1) in enumerate(adaptive_bins(W, OW)):
            win = x[:, :, h0:h1, w0:w1].reshape(N, C, -1)
            nan = np.isnan(win)
            # argmax returns the first True / the first maximum
            k = np.where(nan.any(-1), nan.argmax(-1), np.where(nan, 0, win).argmax(-1))
            out[:, :, i, j] = np.take_along_axis(win, k[..., None], -1)[..., 0]
            dh, dw = np.divmod(k, w1 - w0)
            idx[:, :, i, j] = (h0 + dh) * W + (w0 + dw)
    return out, idx


def softmax_ref(x, dim, log=False):
    """softmax / log_softmax along dim in float64 by the max-shifted formula."""
    x = np.asarray(x, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = x - x.max(axis=dim, keepdims=True)
        s = np.exp(z).sum(axis=dim, keepdims=True)
        return z - np.log(s) if log else np.exp(z) / s


def maxout_ref(x, k):
    """(output, winning piece) of maxout by reshaping (N, C*k, ...) to (N, C, k, ...): the
    first NaN of a run wins, else its first maximum."""
    x = np.asarray(x)
    N, Ck = x.shape[:2]
    r = x.reshape((N, Ck // k, k) + x.shape[2:])
    nan = np.isnan(r)
    arg = np.where(nan.any(axis=2), nan.argmax(axis=2), np.where(nan, -np.inf, r).argmax(axis=2))
    return np.take_along_axis(r, arg[:, :, None], axis=2)[:, :, 0], arg.astype(np.int64)


def sgd_torch_ref(p0, grads, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
    """torch.optim.SGD's rule (with dampening) in float64, once per gradient in ``grads``:
    d = g + wd*p; buf = d on the first step, else momentum*buf + (1-dampening)*d;
    step = d + momentum*buf (Nesterov) or buf; p -= lr*step. Returns (p, buf)."""
    p = np.array(p0, np.float64)
    buf = None
    for g in grads:
        d = np.asarray(g, np.float64) + weight_decay * p
        if momentum:
            buf = d.copy() if buf is None else momentum * buf + (1 - dampening) * d
            d = d + momentum * buf if nesterov else buf
        p = p - lr * d
    return p, buf


def adam_torch_ref(p0, grads, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                   amsgrad=False, decoupled=False):
    """torch.optim.Adam (decoupled=False: L2 term added to the gradient) or torch.optim.AdamW
    (decoupled=True: p *= 1 - lr*wd first) in float64, once per gradient in ``grads``, with
    bias correction and optional AMSGrad (running max of v in the denominator).
    Returns (p, m, v, vmax)."""
    p = np.array(p0, np.float64)
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    vmax = np.zeros_like(p)
    b1, b2 = betas
    for t, g in enumerate(grads, start=1):
        g = np.asarray(g, np.float64)
        if decoupled:
            p = p * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        vmax = np.maximum(vmax, v)
        vhat = (vmax if amsgrad else v) / (1 - b2**t)
        p = p - lr * (m / (1 - b1**t)) / (np.sqrt(vhat) + eps)
    return p, m, v, vmax


# --- ndimage / edge filters (fastconv.ndimage, fastconv.filters) ---
#: ndimage mode -> np.pad mode (half-sample 'reflect' is NumPy's 'symmetric', whole-sample
#: 'mirror' is NumPy's 'reflect')
NDIMAGE_PAD = {"reflect": "symmetric", "grid-mirror": "symmetric", "mirror": "reflect", "nearest": "edge",
               "wrap": "wrap", "grid-wrap": "wrap", "constant": "constant", "grid-constant": "constant"}


def ndimage_pad_ref(x, before, after, mode, cval=0.0):
    """x extended per axis by ``before[k]``/``after[k]`` samples under an ndimage mode
    (np.pad, repeated for extensions longer than the axis; 'mirror' of one sample repeats it)."""
    pad = NDIMAGE_PAD[mode]
    width = list(zip(before, after))
    if pad == "constant":
        return np.pad(x, width, mode="constant", constant_values=cval)
    if pad == "reflect" and 1 in x.shape:  # NumPy refuses to reflect one sample: it repeats
        width1 = [w if s == 1 else (0, 0) for w, s in zip(width, x.shape)]
        x = np.pad(x, width1, mode="edge")
        width = [(0, 0) if s == 1 else w for w, s in zip(width, x.shape)]
    return np.pad(x, width, mode=pad)


def ndimage_correlate_ref(x, w, mode="reflect", cval=0.0, origin=0, skip_zero=True):
    """scipy.ndimage.correlate by a NumPy loop over the taps (float64): out[i] = sum_p
    w[p] * ext[i + p - (k // 2 + origin)]; taps with |w| <= eps skipped when ``skip_zero``."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    origin = [origin] * x.ndim if np.isscalar(origin) else list(origin)
    before = [k // 2 + o for k, o in zip(w.shape, origin)]
    after = [k - 1 - b for k, b in zip(w.shape, before)]
    xe = ndimage_pad_ref(x, before, after, mode, cval)
    y = np.zeros(x.shape)
    for p in np.ndindex(*w.shape):
        if skip_zero and abs(w[p]) <= np.finfo(np.float64).eps:
            continue
        y += w[p] * xe[tuple(slice(q, q + s) for q, s in zip(p, x.shape))]
    return y


def edge_filter_ref(image, smooth, axis=None, mode="reflect", cval=0.0):
    """scikit-image's sobel/prewitt/scharr (2-D, float64) from the 3x3 product kernels:
    derivative [-1, 0, 1] (correlation) along the edge axis times ``smooth`` along the other,
    magnitude sqrt(mean of the squares over both axes)."""
    smooth = np.asarray(smooth, dtype=np.float64)
    edge = np.array([-1.0, 0.0, 1.0])
    parts = []
    for ax in ((0, 1) if axis is None else (axis,)):
        k = np.outer(edge, smooth) if ax == 0 else np.outer(smooth, edge)
        parts.append(ndimage_correlate_ref(image, k, mode, cval))
    if axis is not None:
        return parts[0]
    return np.sqrt((parts[0] ** 2 + parts[1] ** 2) / 2)


def roberts_ref(image):
    """(pos, neg) diagonals of Roberts' cross, 'reflect' past the last row/column:
    x[i+1, j+1] - x[i, j] and x[i+1, j] - x[i, j+1]."""
    xe = ndimage_pad_ref(np.asarray(image, dtype=np.float64), (0, 0), (1, 1), "reflect")
    H, W = np.shape(image)
    return xe[1:, 1:] - xe[:H, :W], xe[1:, :W] - xe[:H, 1:]
