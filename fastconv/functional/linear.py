"""Fully connected products (``nn.Linear``'s forward and backward): AVX-512 kernels for
float32 where the CPU has them, otherwise BLAS, split between two threads when that pays."""
import math

import numpy as np

from .._kernels import _direct, _gemm
from .._parallel import blas_single_thread, get_num_threads
from .conv import _INT32_MAX

# thread: the parallel region would cost more than it saves.
_GEMM_PAIR_MIN = 1 << 17


def _gemm_pair_fits(dims, min_macs, arrays):
    """Whether products of sizes ``dims`` over ``arrays`` go to the two-thread kernel: two or
    more threads, at least ``min_macs`` multiply-adds, 32-bit BLAS sizes, and operands of
    one float dtype, C-contiguous."""
    dtype = arrays[0].dtype
    return (get_num_threads() > 1 and math.prod(dims) >= min_macs
            and max(dims) <= _INT32_MAX and dtype in (np.float32, np.float64)
            and all(a.dtype == dtype and a.flags.c_contiguous for a in arrays))


def _linear_avx512_fits(dims, arrays):
    """Whether Linear's products go to the AVX-512 kernels of ``_gemm``: the CPU has
    AVX-512 (and ``_direct.use_avx512()`` is on), float32 C-contiguous operands, every
    dimension >= 1.

    At LeNet-5's 64 x 400 x 120, 1 / 2 threads (medians, us; OpenBLAS 0.3.30 one-threaded
    in brackets, two-thread split in the second): forward 35 / 19 (55 / 42), both
    backward products 57 / 34 (105 / 66).
    """
    return (min(dims) >= 1 and _direct.use_avx512()
            and all(a.dtype == np.float32 and a.flags.c_contiguous for a in arrays))


def _linear_forward_unchecked(x, weight, bias=None):
    """Linear's x @ weight.T + bias: (N, in) x (out, in) (+ (out,)) -> (N, out).

    float32 on an AVX-512 CPU: blocks of the result shared between the threads. Otherwise
    BLAS; with two or more threads and operands the kernel takes, the two halves of the
    batch run on their own threads. Each element of the result is computed whole by one
    thread either way.
    """
    n, in_features = x.shape
    out_features = weight.shape[0]
    dims = (n, out_features, in_features)
    if _linear_avx512_fits(dims, (x, weight) if bias is None else (x, weight, bias)):
        out = np.empty((n, out_features), np.float32)
        _gemm.linear_forward_avx512(x, weight, bias, out, get_num_threads())
        return out
    # one product split in two pays off later than two independent ones: LeNet's
    # 64 x 120 x 84 (0.6M multiply-adds) got slower, its 64 x 400 x 120 (3M) faster
    if n < 2 or not _gemm_pair_fits(dims, 8 * _GEMM_PAIR_MIN, (x, weight)):
        with blas_single_thread():
            out = x @ weight.T
    else:
        out = np.empty((n, out_features), x.dtype)
        h = n // 2
        with blas_single_thread():
            _gemm.gemm_pair(x[:h], False, weight, True, out[:h], 0.0,
                            x[h:], False, weight, True, out[h:], 0.0, 2)
    if bias is not None:
        out += bias
    return out


def _linear_backward_unchecked(grad_output, x, weight, grad_weight, grad_bias=None):
    """Linear's backward: grad_weight += grad_output.T @ x, grad_bias (if given) += the
    column sums of grad_output; returns grad_output @ weight.

    grad_output: (N, out), x: (N, in), weight and grad_weight: (out, in). float32 on an
    AVX-512 CPU: the blocks of both products shared between the threads in one parallel
    region. Otherwise BLAS; the two products are independent, so with two or more threads
    and operands the kernel takes (one float dtype, C-contiguous, big enough), each runs on
    its own thread.
    """
    n, out_features = grad_output.shape
    in_features = x.shape[1]
    dims = (n, out_features, in_features)
    arrays = (grad_output, x, weight, grad_weight)
    written = (grad_weight,) if grad_bias is None else (grad_weight, grad_bias)
    if (all(a.flags.writeable for a in written)
            and _linear_avx512_fits(dims, arrays + written[1:])):
        grad_input = np.empty((n, in_features), np.float32)
        _gemm.linear_backward_avx512(grad_output, x, weight, grad_weight, grad_bias, grad_input,
                                     get_num_threads())
        return grad_input
    if grad_bias is not None:
        grad_bias += grad_output.sum(axis=0)
    if not (grad_weight.flags.writeable and _gemm_pair_fits(dims, _GEMM_PAIR_MIN, arrays)):
        with blas_single_thread():
            grad_weight += grad_output.T @ x
            return grad_output @ weight
    grad_input = np.empty((n, in_features), x.dtype)
    with blas_single_thread():
        _gemm.gemm_pair(grad_output, True, x, False, grad_weight, 1.0,
                        grad_output, False, weight, False, grad_input, 0.0, 2)
    return grad_input



def _linear_backward_partial(grad_output, x, weight, grad_weight, grad_bias, needs_input):
    """Linear's backward when part of it is not needed (frozen weights, or no input gradient
    wanted): accumulates into ``grad_weight`` / ``grad_bias`` where given (None: skipped)
    and returns ``grad_output @ weight`` if ``needs_input``, else None."""
    if grad_bias is not None:
        grad_bias += grad_output.sum(axis=0)
    with blas_single_thread():
        if grad_weight is not None:
            grad_weight += grad_output.T @ x
        return grad_output @ weight if needs_input else None
