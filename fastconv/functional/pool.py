"""Max and average pooling and their gradients, as ``torch.nn.functional``'s."""
import numpy as np

from .._kernels import _pooling
from .._parallel import get_num_threads
from .._validation import check_allocation, check_array, check_bool, check_same_dtype
from ._geometry import _check_shape4, _planes, pool_geometry

def max_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, return_indices=False):
    """2-D max pooling, as ``torch.nn.functional.max_pool2d``.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W), float32 or float64
    kernel_size : int or (int, int)
    stride : int or (int, int), optional
        Defaults to ``kernel_size``.
    padding : int or (int, int)
        Implicit -inf padding, at most half the kernel size.
    ceil_mode : bool
        Round the output size up (the last window must start inside the input or left padding).
    return_indices : bool
        Also return the argmax of each window as a flat ``h*W + w`` index into its plane.

    Returns
    -------
    y : ndarray, shape (N, C, OH, OW)
    indices : ndarray of int64, same shape (only if ``return_indices``)

    Notes
    -----
    A window containing NaN yields NaN. On ties, the first maximum in row-major window
    order is returned (and receives the gradient).
    """
    x = check_array(x, "x", 4, "(N, C, H, W)")
    g = pool_geometry(x.shape, kernel_size, stride, padding, ceil_mode)
    return_indices = check_bool(return_indices, "return_indices")
    check_allocation(g.output_shape, x.dtype, "max_pool2d output")
    out, indices = _max_pool2d_unchecked(x, g)
    return (out, indices) if return_indices else out


def _max_pool2d_unchecked(x, g, out=None, indices=None):
    if out is None:
        out = np.empty(g.output_shape, x.dtype)
    if indices is None:
        indices = np.empty(g.output_shape, np.int64)
    if out.size:
        _pooling.max_pool2d_forward(_planes(x), _planes(out), _planes(indices), *g.kernel_args,
                                    get_num_threads())
    return out, indices


def max_pool2d_backward(grad_output, x, kernel_size, stride=None, padding=0, ceil_mode=False,
                        indices=None):
    """Gradient of :func:`max_pool2d` with respect to ``x``.

    Parameters
    ----------
    grad_output : ndarray, shape (N, C, OH, OW)
    x : ndarray, shape (N, C, H, W)
        The forward input (used for the shape, and for the argmax when ``indices`` is None).
    kernel_size, stride, padding, ceil_mode
        As given to :func:`max_pool2d`.
    indices : ndarray of ints, shape (N, C, OH, OW), optional
        From ``max_pool2d(..., return_indices=True)``; recomputed from ``x`` if omitted.

    Returns
    -------
    grad_input : ndarray, shape (N, C, H, W)
        Each output's gradient added at its window's argmax.
    """
    x = check_array(x, "x", 4, "(N, C, H, W)")
    grad_output = check_array(grad_output, "grad_output", 4, "(N, C, OH, OW)")
    check_same_dtype(grad_output=grad_output, x=x)
    g = pool_geometry(x.shape, kernel_size, stride, padding, ceil_mode)
    _check_grad_output_shape(grad_output, g, "max_pool2d")
    if indices is None:
        _, indices = _max_pool2d_unchecked(x, g)
    else:
        indices = _check_indices(indices, g)
    return _max_pool2d_backward_unchecked(grad_output, indices, g)


def _max_pool2d_backward_unchecked(grad_output, indices, g, grad_input=None):
    if not grad_output.size:
        return np.zeros((g.N, g.C, g.H, g.W), grad_output.dtype)
    # The kernel zeroes each plane itself (cache-hot), so no np.zeros pass here.
    if grad_input is None:
        grad_input = np.empty((g.N, g.C, g.H, g.W), grad_output.dtype)
    _pooling.max_pool2d_backward(_planes(grad_output), _planes(indices), _planes(grad_input),
                                 get_num_threads())
    return grad_input


def _check_grad_output_shape(grad_output, g, fname):
    if grad_output.shape != g.output_shape:
        raise ValueError(
            f"grad_output must have shape {g.output_shape} (the {fname} output for input "
            f"{(g.N, g.C, g.H, g.W)}), got {grad_output.shape}"
        )


def _check_indices(indices, g):
    if not isinstance(indices, np.ndarray):
        raise TypeError(f"indices must be a numpy.ndarray of int64, got {type(indices).__name__}")
    if indices.dtype.kind not in "iu":
        raise TypeError(f"indices must have an integer dtype, got {indices.dtype}")
    if indices.shape != g.output_shape:
        raise ValueError(f"indices must have shape {g.output_shape}, got {indices.shape}")
    indices = np.ascontiguousarray(indices, dtype=np.int64)
    if indices.size and (indices.min() < 0 or indices.max() >= g.H * g.W):
        raise ValueError(
            f"indices must be flat positions in [0, H*W) = [0, {g.H * g.W}), "
            f"got values in [{indices.min()}, {indices.max()}]"
        )
    return indices


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """2-D average pooling, as ``torch.nn.functional.avg_pool2d``.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W), float32 or float64
    kernel_size, stride, padding, ceil_mode
        As in :func:`max_pool2d` (zero padding).
    count_include_pad : bool
        Divide by the window size including padding (True) or only the elements inside
        the input (False). As in PyTorch, a ceil_mode window that runs past the padding
        is divided by its size clipped to the padded input.

    Returns
    -------
    y : ndarray, shape (N, C, OH, OW)
    """
    x = check_array(x, "x", 4, "(N, C, H, W)")
    g = pool_geometry(x.shape, kernel_size, stride, padding, ceil_mode)
    count_include_pad = check_bool(count_include_pad, "count_include_pad")
    check_allocation(g.output_shape, x.dtype, "avg_pool2d output")
    out = np.empty(g.output_shape, x.dtype)
    if out.size:
        _pooling.avg_pool2d_forward(_planes(x), _planes(out), *g.kernel_args, count_include_pad,
                                    get_num_threads())
    return out


def avg_pool2d_backward(grad_output, input_shape, kernel_size, stride=None, padding=0,
                        ceil_mode=False, count_include_pad=True):
    """Gradient of :func:`avg_pool2d` with respect to its input.

    Parameters
    ----------
    grad_output : ndarray, shape (N, C, OH, OW)
    input_shape : tuple of 4 ints
        Shape (N, C, H, W) of the forward input.
    kernel_size, stride, padding, ceil_mode, count_include_pad
        As given to :func:`avg_pool2d`.

    Returns
    -------
    grad_input : ndarray, shape input_shape
    """
    grad_output = check_array(grad_output, "grad_output", 4, "(N, C, OH, OW)")
    input_shape = _check_shape4(input_shape, "input_shape")
    g = pool_geometry(input_shape, kernel_size, stride, padding, ceil_mode)
    count_include_pad = check_bool(count_include_pad, "count_include_pad")
    _check_grad_output_shape(grad_output, g, "avg_pool2d")
    check_allocation(input_shape, grad_output.dtype, "grad_input")
    grad_input = np.zeros(input_shape, grad_output.dtype)
    if grad_output.size:
        _pooling.avg_pool2d_backward(_planes(grad_output), _planes(grad_input), *g.kernel_args,
                                     count_include_pad, get_num_threads())
    return grad_input
