"""Batch normalisation and its gradients, as ``torch.nn.functional.batch_norm``.

Inputs are (N, C), (N, C, L) or (N, C, H, W); statistics are per channel C, over the
M = N*L or N*H*W values of each channel. The kernels see a (N, C, S) view
(``fastconv._kernels._norm``).
"""
from __future__ import annotations

import functools
import numbers
from typing import Any, Literal, overload

import numpy as np

from .._kernels import _norm
from .._parallel import get_num_threads
from .._typing import FloatArray, NDArray
from .._validation import check_allocation, check_array, check_bool, check_same_dtype

# Below this many elements one thread: a parallel region costs more than the passes.
PARALLEL_MIN = 32768

_SHAPES = {2: "(N, C)", 3: "(N, C, L)", 4: "(N, C, H, W)"}
_SHAPES_DOC = "(N, C), (N, C, L) or (N, C, H, W)"
# Stand-ins for absent arrays (the kernels take an empty array for "none").
_EMPTY: dict[np.dtype[Any], NDArray[Any]] = {np.dtype(t): np.empty(0, t) for t in (np.float32, np.float64)}
_EMPTY3: dict[np.dtype[Any], NDArray[Any]] = {np.dtype(t): np.empty((0, 0, 0), t) for t in (np.float32, np.float64)}


def check_norm_input(x, name="x", ndims=(2, 3, 4)):
    """``x`` as a C-contiguous float array of one of ``ndims`` dimensions."""
    if not isinstance(x, np.ndarray):
        doc = " or ".join(_SHAPES[d] for d in ndims)
        raise TypeError(f"{name} must be a numpy.ndarray of shape {doc}, got {type(x).__name__}")
    if x.ndim not in ndims:
        dims = ", ".join(f"{d}-D" for d in ndims[:-1]) + (" or " if len(ndims) > 1 else "") + f"{ndims[-1]}-D"
        doc = " or ".join(_SHAPES[d] for d in ndims)
        raise ValueError(f"{name} must be {dims} with shape {doc}, got shape {x.shape}")
    return check_array(x, name, x.ndim, _SHAPES[x.ndim])


def plan(N, C, S, n_threads):
    """(threads, channel block, chunks per block) for an (N, C, S) input.

    S > 1: one channel per block; S == 1: blocks of at least 16 channels (the loops run
    along the channels). A block is split into chunks of rows only when there are fewer
    blocks than threads, or too few to share out evenly (fewer than 4 per thread and not
    a multiple of the thread count).
    """
    nt = n_threads if N * C * S >= PARALLEL_MIN else 1
    if S == 1:
        block = C if nt == 1 else min(C, max(16, (-(-C // nt) + 15) // 16 * 16))
    else:
        block = 1
    blocks = -(-C // block) if C else 1
    if blocks >= 4 * nt or blocks % nt == 0:
        chunks = 1
    else:
        chunks = max(1, min(N, -(-4 * nt // blocks)))
    return nt, block, chunks


def _check_stat(a, name, C, dtype):
    if a is None:
        return None
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray of shape ({C},) or None, got {type(a).__name__}")
    if a.ndim != 1 or a.shape[0] != C:
        raise ValueError(f"{name} must have shape ({C},) (one value per channel of x), got {a.shape}")
    a = check_array(a, name, 1, f"({C},)")
    check_same_dtype(x=np.empty(0, dtype), **{name: a})
    return a


def _check_real(value, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def check_eps(eps):
    eps = _check_real(eps, "eps")
    if eps <= 0:
        raise ValueError(f"eps must be positive, got {eps}")
    return eps


def check_momentum(momentum):
    momentum = _check_real(momentum, "momentum")
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"momentum must be in [0, 1], got {momentum}")
    return momentum


def values_per_channel(shape):
    M = shape[0]
    for s in shape[2:]:
        M *= s
    return M


def check_training_size(shape):
    if values_per_channel(shape) <= 1:
        raise ValueError(f"Expected more than 1 value per channel when training, got input size {tuple(shape)}")


@overload
def batch_norm(x: FloatArray, running_mean: FloatArray | None = ..., running_var: FloatArray | None = ...,
               weight: FloatArray | None = ..., bias: FloatArray | None = ..., training: bool = ...,
               momentum: float | None = ..., eps: float = ...,
               return_stats: Literal[False] = ...) -> FloatArray: ...
@overload
def batch_norm(x: FloatArray, running_mean: FloatArray | None = ..., running_var: FloatArray | None = ...,
               weight: FloatArray | None = ..., bias: FloatArray | None = ..., training: bool = ...,
               momentum: float | None = ..., eps: float = ..., *,
               return_stats: Literal[True]) -> tuple[FloatArray, FloatArray, FloatArray]: ...
@overload
def batch_norm(x: FloatArray, running_mean: FloatArray | None = ..., running_var: FloatArray | None = ...,
               weight: FloatArray | None = ..., bias: FloatArray | None = ..., training: bool = ...,
               momentum: float | None = ..., eps: float = ...,
               return_stats: bool = ...) -> FloatArray | tuple[FloatArray, FloatArray, FloatArray]: ...
def batch_norm(x: FloatArray, running_mean: FloatArray | None = None, running_var: FloatArray | None = None,
               weight: FloatArray | None = None, bias: FloatArray | None = None, training: bool = False,
               momentum: float | None = 0.1, eps: float = 1e-5,
               return_stats: bool = False) -> FloatArray | tuple[FloatArray, FloatArray, FloatArray]:
    """Batch normalisation, as ``torch.nn.functional.batch_norm``.

    ``y = (x - mean) / sqrt(var + eps) * weight + bias`` per channel, with the batch's mean
    and biased variance (``training=True``) or the running statistics (``training=False``).

    Parameters
    ----------
    x : ndarray, shape (N, C), (N, C, L) or (N, C, H, W), float32 or float64
    running_mean, running_var : ndarray, shape (C,), same dtype as x, optional
        Both or neither. Required when ``training=False``. In training mode they are
        updated IN PLACE: ``running = (1 - momentum) * running + momentum * batch``, with the
        unbiased batch variance for ``running_var``.
    weight, bias : ndarray, shape (C,), same dtype as x, optional
        The affine transform (default: weight 1, bias 0).
    training : bool
        Normalise with the batch statistics (and update the running ones).
    momentum : float in [0, 1]
        Weight of the batch statistics in the running-statistics update.
    eps : float > 0
        Added to the variance.
    return_stats : bool
        Also return the statistics used, for :func:`batch_norm_backward`.

    Returns
    -------
    y : ndarray, same shape and dtype as x
    save_mean, save_invstd : ndarray of float64, shape (C,) (only if ``return_stats``)
        The mean and ``1 / sqrt(var + eps)`` x was normalised with: the batch's (biased
        variance) in training mode, the running ones in evaluation mode.

    Raises
    ------
    ValueError
        Training with one value per channel (``N * H * W == 1``), as PyTorch:
        "Expected more than 1 value per channel when training"; bad shapes, eps <= 0,
        momentum outside [0, 1]; a read-only running statistic in training mode.
    TypeError
        Non-arrays, non-float or mixed dtypes.

    Notes
    -----
    Statistics are accumulated in float64 for float32 input too (shifted by the channel's
    first value, so large means keep their accuracy). The result is bitwise reproducible
    for a fixed thread count.
    """
    x = check_norm_input(x)
    training = check_bool(training, "training")
    return_stats = check_bool(return_stats, "return_stats")
    momentum = check_momentum(momentum)
    eps = check_eps(eps)
    C = x.shape[1]
    originals = (running_mean, running_var)
    if (running_mean is None) != (running_var is None):
        raise ValueError("running_mean and running_var must both be given or both be None")
    rm = _check_stat(running_mean, "running_mean", C, x.dtype)
    rv = _check_stat(running_var, "running_var", C, x.dtype)
    w = _check_stat(weight, "weight", C, x.dtype)
    b = _check_stat(bias, "bias", C, x.dtype)
    if training:
        check_training_size(x.shape)
        for name, a in zip(("running_mean", "running_var"), originals):
            if a is not None and not a.flags.writeable:
                raise ValueError(f"{name} must be writeable: training mode updates it in place")
    elif rm is None:
        raise ValueError("running_mean and running_var are required when training=False "
                         "(evaluation normalises with the running statistics)")
    check_allocation(x.shape, x.dtype, "batch_norm output")
    y, save_mean, save_invstd = batch_norm_unchecked(x, rm, rv, w, b, training, momentum, eps)
    if training:
        for original, used in zip(originals, (rm, rv)):
            if original is not None and used is not original:  # updated a contiguous copy
                original[...] = used
    return (y, save_mean, save_invstd) if return_stats else y


def batch_norm_unchecked(x, running_mean, running_var, weight, bias, training, momentum, eps,
                         out=None):
    """:func:`batch_norm` on validated arguments (C-contiguous, one dtype; running
    statistics C-contiguous and writeable in training). Returns (y, save_mean, save_invstd)."""
    if out is None:
        out = np.empty(x.shape, x.dtype)
    C = x.shape[1]
    if x.size == 0:
        save = np.empty((2, C))
        if not training and C:
            save[0] = running_mean
            save[1] = 1.0 / np.sqrt(running_var.astype(np.float64) + eps)
        return out, save[0], save[1]
    shape3, nt, block, chunks = _plan_for(x.shape, get_num_threads())
    # rows 0, 1: the statistics returned; the rest: the kernel's work table
    table = np.empty((2 * chunks + 6, C))
    empty = _EMPTY[x.dtype]
    w = empty if weight is None else weight
    b = empty if bias is None else bias
    x3, y3 = x.reshape(shape3), out.reshape(shape3)
    if training:
        rm = empty if running_mean is None else running_mean
        rv = empty if running_var is None else running_var
        _norm.batch_norm_train_forward(x3, y3, w, b, rm, rv, momentum, eps, table[0], table[1],
                                       table[2:], block, chunks, nt)
    else:
        _norm.batch_norm_eval_forward(x3, y3, w, b, running_mean, running_var, eps, table[0],
                                      table[1], table[2:], block, chunks, nt)
    return out, table[0], table[1]


@functools.lru_cache(maxsize=256)
def _plan_for(shape, n_threads):
    """((N, C, S), threads, channel block, chunks) for an input of ``shape``."""
    S = 1
    for s in shape[2:]:
        S *= s
    shape3 = (shape[0], shape[1], S)
    return (shape3,) + plan(*shape3, n_threads)


def _check_saved(a, name, C):
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray of shape ({C},), got {type(a).__name__}")
    if a.ndim != 1 or a.shape[0] != C:
        raise ValueError(f"{name} must have shape ({C},) (one value per channel of x), got {a.shape}")
    if a.dtype.kind != "f":
        raise TypeError(f"{name} must be a float array, got {a.dtype}")
    return np.ascontiguousarray(a, dtype=np.float64)


def batch_norm_backward(grad_output: FloatArray, x: FloatArray, weight: FloatArray | None,
                        save_mean: FloatArray, save_invstd: FloatArray, training: bool = True,
                        needs_input_grad: bool = True, needs_weight_grad: bool = True,
                        ) -> tuple[FloatArray | None, FloatArray | None, FloatArray | None]:
    """Gradients of :func:`batch_norm`.

    Parameters
    ----------
    grad_output : ndarray, same shape and dtype as x
    x : ndarray, shape (N, C), (N, C, L) or (N, C, H, W), float32 or float64
        The forward input.
    weight : ndarray, shape (C,), same dtype as x, or None
        The forward weight (None: 1).
    save_mean, save_invstd : ndarray, shape (C,), float
        The statistics x was normalised with, as returned by
        ``batch_norm(..., return_stats=True)``.
    training : bool
        True: the forward pass used the batch statistics, and the input gradient flows
        through them, ``grad_input = weight*invstd/M * (M*g - sum(g) - xhat*sum(g*xhat))``
        with ``xhat = (x - mean)*invstd`` and M the values per channel. False: fixed
        (running) statistics, ``grad_input = g * weight * invstd``.
    needs_input_grad, needs_weight_grad : bool
        Which gradients to compute (the others are returned as None).

    Returns
    -------
    grad_input : ndarray, same shape and dtype as x, or None
    grad_weight : ndarray, shape (C,), or None
        ``sum(g * xhat)`` per channel, in x's dtype (computed even when weight is None).
    grad_bias : ndarray, shape (C,), or None
        ``sum(g)`` per channel.
    """
    x = check_norm_input(x)
    grad_output = check_norm_input(grad_output, "grad_output")
    check_same_dtype(grad_output=grad_output, x=x)
    if grad_output.shape != x.shape:
        raise ValueError(f"grad_output must have the shape of x {x.shape}, got {grad_output.shape}")
    C = x.shape[1]
    w = _check_stat(weight, "weight", C, x.dtype)
    save_mean = _check_saved(save_mean, "save_mean", C)
    save_invstd = _check_saved(save_invstd, "save_invstd", C)
    training = check_bool(training, "training")
    needs_input_grad = check_bool(needs_input_grad, "needs_input_grad")
    needs_weight_grad = check_bool(needs_weight_grad, "needs_weight_grad")
    if needs_input_grad:
        check_allocation(x.shape, x.dtype, "grad_input")
    gi, sum_g, sum_gxhat = batch_norm_backward_unchecked(
        grad_output, x, w, save_mean, save_invstd, training, needs_input_grad, needs_weight_grad)
    if not needs_weight_grad:
        return gi, None, None
    return gi, sum_gxhat.astype(x.dtype), sum_g.astype(x.dtype)


def batch_norm_backward_unchecked(grad_output, x, weight, save_mean, save_invstd, training,
                                  needs_input_grad, needs_weight_grad, grad_input=None):
    """:func:`batch_norm_backward` on validated arguments (C-contiguous, one dtype,
    float64 statistics). Returns (grad_input or None, sum_g or None, sum_gxhat or None),
    the sums in float64."""
    C = x.shape[1]
    if needs_input_grad and grad_input is None:
        grad_input = np.empty(x.shape, x.dtype)
    if not x.size or not (needs_input_grad or needs_weight_grad):
        if needs_input_grad:
            grad_input[...] = 0
        sums = np.zeros((2, C)) if needs_weight_grad else None
    else:
        shape3, nt, block, chunks = _plan_for(x.shape, get_num_threads())
        # rows 0, 1: the sums returned (written for every channel); the rest: work
        table = np.empty((2 * chunks + 6, C))
        sums = table[:2] if needs_weight_grad else None
        gi3 = grad_input.reshape(shape3) if needs_input_grad else _EMPTY3[x.dtype]
        _norm.batch_norm_backward(grad_output.reshape(shape3), x.reshape(shape3),
                                  _EMPTY[x.dtype] if weight is None else weight, save_mean,
                                  save_invstd, training, gi3, needs_input_grad, needs_weight_grad,
                                  table[0], table[1], table[2:], block, chunks, nt)
    if not needs_input_grad:
        grad_input = None
    if sums is None:
        return grad_input, None, None
    return grad_input, sums[0], sums[1]
