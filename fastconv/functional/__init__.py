"""Functional API: validate at the boundary, allocate outputs, pick an algorithm, call kernels.

One module per op family (``conv``, ``linear``, ``pool``, ...), over the shared geometry in
``_geometry``; this package re-exports their public names (``fastconv.functional.conv2d``)
and the validated fast paths the layers call (``conv2d_forward_unchecked`` and friends).
Semantics follow PyTorch (``torch.nn.functional``): NCHW layout, cross-correlation.
"""
from ._geometry import ConvGeometry, PoolGeometry, conv_geometry, conv_output_size, pool_geometry
from .conv import (
    ALGORITHMS,
    IM2COL_CHUNK_BYTES,
    _im2col_rows_per_chunk,
    choose_algorithm,
    col2im,
    conv2d,
    conv2d_backward,
    conv2d_backward_unchecked,
    conv2d_forward_unchecked,
    im2col,
    im2col_workspace_bytes,
)
from .linear import _linear_backward_partial, _linear_backward_unchecked, _linear_forward_unchecked
from .norm import batch_norm, batch_norm_backward, batch_norm_backward_unchecked, batch_norm_unchecked
from .filter import filter2d
from .pad import (
    CONV_PADDING_MODES,
    PadGeometry,
    check_padding_mode,
    conv_padding,
    pad,
    pad_backward,
    pad_backward_unchecked,
    pad_geometry,
    pad_unchecked,
)
from .pool import (
    _max_pool2d_backward_unchecked,
    _max_pool2d_unchecked,
    avg_pool2d,
    avg_pool2d_backward,
    max_pool2d,
    max_pool2d_backward,
)
from .activation import (
    _softmax_backward_unchecked,
    _softmax_unchecked,
    log_softmax,
    log_softmax_backward,
    softmax,
    softmax_backward,
)
from .pool import (
    AdaptivePoolGeometry,
    _adaptive_avg_pool2d_backward_unchecked,
    _adaptive_avg_pool2d_unchecked,
    _adaptive_max_pool2d_unchecked,
    _maxout_backward_unchecked,
    _maxout_unchecked,
    adaptive_avg_pool2d,
    adaptive_avg_pool2d_backward,
    adaptive_max_pool2d,
    adaptive_max_pool2d_backward,
    adaptive_pool_geometry,
    maxout,
    maxout_backward,
)

__all__ = [
    "conv2d",
    "conv2d_backward",
    "max_pool2d",
    "max_pool2d_backward",
    "avg_pool2d",
    "avg_pool2d_backward",
    "adaptive_avg_pool2d",
    "adaptive_avg_pool2d_backward",
    "adaptive_max_pool2d",
    "adaptive_max_pool2d_backward",
    "adaptive_pool_geometry",
    "AdaptivePoolGeometry",
    "maxout",
    "maxout_backward",
    "softmax",
    "softmax_backward",
    "log_softmax",
    "log_softmax_backward",
    "batch_norm",
    "batch_norm_backward",
    "im2col",
    "col2im",
    "pad",
    "pad_backward",
    "filter2d",
    "pad_geometry",
    "PadGeometry",
    "conv_output_size",
    "conv_geometry",
    "pool_geometry",
    "choose_algorithm",
    "ConvGeometry",
    "PoolGeometry",
    "ALGORITHMS",
    "IM2COL_CHUNK_BYTES",
]
