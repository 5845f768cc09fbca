"""Batch normalisation layers over :mod:`fastconv.functional.norm`, as ``torch.nn``'s."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..functional import norm as F
from .._typing import DTypeLike, FloatArray
from .._validation import check_array, check_bool, check_int
from .init import _check_dtype
from .module import Module, Parameter


class _BatchNorm(Module):
    """Common part of :class:`BatchNorm1d` and :class:`BatchNorm2d`.

    Parameters
    ----------
    num_features : int
        C, the channels of the input.
    eps : float > 0
        Added to the variance.
    momentum : float in [0, 1] or None
        Weight of each batch in the running statistics; None: their cumulative average
        (factor ``1 / num_batches_tracked``).
    affine : bool
        Learnable ``weight`` (ones) and ``bias`` (zeros); False: none.
    track_running_stats : bool
        Keep the buffers ``running_mean`` (zeros), ``running_var`` (ones) and
        ``num_batches_tracked``; False: they are None and the batch statistics are used in
        evaluation mode too.
    dtype : float32 (default) or float64

    Training mode normalises with the batch's mean and biased variance, updates the running
    statistics (unbiased variance) and counts the batch; evaluation mode normalises with
    the running statistics. ``backward`` returns the input gradient through the batch
    statistics in training mode, the affine one in evaluation mode (None when no input
    gradient is needed), and accumulates ``weight.grad`` / ``bias.grad`` unless frozen.
    """

    _ndims: tuple[int, ...] = (2, 3, 4)
    # Parameters, or None with affine=False; buffers (register_buffer), or None with
    # track_running_stats=False (Any: the code checks the flags, not the attributes)
    weight: Any
    bias: Any
    running_mean: Any
    running_var: Any
    num_batches_tracked: Any

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, *, dtype: DTypeLike = np.float32) -> None:
        super().__init__()
        self.num_features = check_int(num_features, "num_features")
        self.eps = F.check_eps(eps)
        self.momentum = None if momentum is None else F.check_momentum(momentum)
        self.affine = check_bool(affine, "affine")
        self.track_running_stats = check_bool(track_running_stats, "track_running_stats")
        dtype = _check_dtype(dtype)
        C = self.num_features
        if self.affine:
            self.weight = Parameter(np.ones(C, dtype))
            self.bias = Parameter(np.zeros(C, dtype))
        else:
            self.weight = None
            self.bias = None
        if self.track_running_stats:
            self.register_buffer("running_mean", np.zeros(C, dtype))
            self.register_buffer("running_var", np.ones(C, dtype))
            self.register_buffer("num_batches_tracked", np.array(0, np.int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self._saved: Any = None  # (x, mean, invstd, batch statistics?) of the last forward

    def reset_running_stats(self) -> None:
        """Running mean 0, variance 1, no batches tracked."""
        if self.track_running_stats:
            self.running_mean[...] = 0
            self.running_var[...] = 1
            self.num_batches_tracked[...] = 0

    def reset_parameters(self) -> None:
        """The running statistics reset, weight 1 and bias 0."""
        self.reset_running_stats()
        if self.affine:
            self.weight.data[...] = 1
            self.bias.data[...] = 0

    def _check_input(self, x):
        x = F.check_norm_input(x, "x", self._ndims)
        if x.shape[1] != self.num_features:
            raise ValueError(
                f"{type(self).__name__} expects x with {self.num_features} channels "
                f"(N, {self.num_features}, ...), got shape {x.shape}"
            )
        weight = self.weight.data if self.affine else None
        for name, a in (("weight", weight), ("running_mean", self.running_mean)):
            if a is not None and a.dtype != x.dtype:
                raise TypeError(f"x has dtype {x.dtype} but the layer's {name} is {a.dtype}")
        return x

    def _buffer(self, name, dtype, write):
        """A running statistic as the kernels take it (replaced buffers are checked)."""
        a = getattr(self, name)
        if (not isinstance(a, np.ndarray) or a.shape != (self.num_features,) or a.dtype != dtype
                or not a.flags.c_contiguous or (write and not a.flags.writeable)):
            kind = "a writeable" if write else "a"
            raise ValueError(
                f"{name} must be {kind} C-contiguous array of shape ({self.num_features},) "
                f"and dtype {dtype}, got {getattr(a, 'shape', type(a).__name__)} "
                f"{getattr(a, 'dtype', '')}"
            )
        return a

    def forward(self, x: FloatArray) -> FloatArray:
        x = self._check_input(x)
        tracking = self.track_running_stats
        batch_stats = self.training or not tracking
        if batch_stats:
            F.check_training_size(x.shape)
        rm = self._buffer("running_mean", x.dtype, self.training) if tracking else None
        rv = self._buffer("running_var", x.dtype, self.training) if tracking else None
        factor = 0.0
        if self.training and tracking:
            count = self.num_batches_tracked
            count[...] += 1
            factor = 1.0 / float(count) if self.momentum is None else self.momentum
        w = self.weight.data if self.affine else None
        b = self.bias.data if self.affine else None
        out = self._workspace.empty("out", x.shape, x.dtype)
        y, mean, invstd = F.batch_norm_unchecked(x, rm, rv, w, b, batch_stats, factor, self.eps, out)
        object.__setattr__(self, "_saved", (x, mean, invstd, batch_stats))
        return y

    def backward(self, grad_output: FloatArray) -> FloatArray | None:
        if self._saved is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward "
                               "(each forward allows one backward)")
        x, mean, invstd, batch_stats = self._saved
        grad_output = check_array(grad_output, "grad_output", x.ndim, str(x.shape))
        if grad_output.shape != x.shape or grad_output.dtype != x.dtype:
            raise ValueError(
                f"grad_output must have shape {x.shape} and dtype {x.dtype}, "
                f"got {grad_output.shape} {grad_output.dtype}"
            )
        object.__setattr__(self, "_saved", None)  # like PyTorch, free what forward saved
        needs_input = self._input_grad_needed()
        weight = self.weight if self.affine and self.weight.requires_grad else None
        bias = self.bias if self.affine and self.bias.requires_grad else None
        needs_weight = weight is not None or bias is not None
        gi = self._workspace.empty("grad_input", x.shape, x.dtype) if needs_input else None
        gi, sum_g, sum_gxhat = F.batch_norm_backward_unchecked(
            grad_output, x, self.weight.data if self.affine else None, mean, invstd,
            batch_stats, needs_input, needs_weight, gi)
        if weight is not None:
            weight.grad += sum_gxhat
        if bias is not None:
            bias.grad += sum_g
        return gi

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalisation over (N, C) or (N, C, L) input, as ``torch.nn.BatchNorm1d``
    (statistics per channel C over N, or N*L, values). See :class:`BatchNorm2d` for the
    parameters and behaviour."""

    _ndims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalisation over (N, C, H, W) input, as ``torch.nn.BatchNorm2d``
    (statistics per channel C over N*H*W values).

    Parameters
    ----------
    num_features : int
        C, the channels of the input.
    eps : float > 0, default 1e-5
        Added to the variance.
    momentum : float in [0, 1] or None, default 0.1
        ``running = (1 - momentum) * running + momentum * batch``; None: cumulative moving
        average (factor ``1 / num_batches_tracked``).
    affine : bool, default True
        Learnable ``weight`` (ones) and ``bias`` (zeros); False: none.
    track_running_stats : bool, default True
        Keep the buffers ``running_mean`` (zeros), ``running_var`` (ones) and
        ``num_batches_tracked`` (int64 0-d array), saved in :meth:`state_dict` but never
        seen by optimizers; False: they are None and the batch statistics are used in
        evaluation mode too.
    dtype : float32 (default) or float64

    Training mode normalises with the batch's mean and biased variance, updates the running
    statistics (unbiased variance) and increments ``num_batches_tracked``; evaluation mode
    normalises with the running statistics. ``backward`` gives the input gradient through
    the batch statistics in training mode and the affine one ``g * weight * invstd`` in
    evaluation mode (None when no input gradient is needed), and accumulates
    ``weight.grad`` / ``bias.grad`` unless they are frozen (``requires_grad=False``).
    """

    _ndims = (4,)
