"""Geometry shared by the convolution and pooling families: output sizes, padding and the
validated shape records (:class:`ConvGeometry`, :class:`PoolGeometry`) the kernels take."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence, Tuple, Union

from .._validation import check_bool, check_int, check_pair

_Pair = Union[int, Tuple[int, int], Sequence[int]]

def conv_output_size(size: int, kernel_size: int, stride: int = 1, padding: int | tuple[int, int] = (0, 0),
                     dilation: int = 1, ceil_mode: bool = False) -> int:
    """Length of a convolution or pooling output along one axis.

    ``floor((size + pad_before + pad_after - dilation*(kernel_size-1) - 1) / stride) + 1``;
    with ``ceil_mode`` the division rounds up, but (as in PyTorch) the last window must
    start inside the input or the left padding. Returns a value < 1 when the (dilated)
    kernel is larger than the padded input.

    Parameters
    ----------
    size, kernel_size, stride, dilation : int
    padding : int or (int, int)
        Padding before and after (an int pads both sides equally).
    ceil_mode : bool
    """
    before, after = (padding, padding) if isinstance(padding, int) else padding
    span = size + before + after - dilation * (kernel_size - 1) - 1
    if span < 0:
        return 0
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    if (out - 1) * stride >= size + before:
        out -= 1
    return out


@dataclass(frozen=True)
class ConvGeometry:
    """Validated shape parameters of one convolution (padding as top/bottom/left/right)."""

    N: int
    C_in: int
    H: int
    W: int
    C_out: int
    kh: int
    kw: int
    sh: int
    sw: int
    pad_top: int
    pad_bottom: int
    pad_left: int
    pad_right: int
    dh: int
    dw: int
    groups: int
    OH: int
    OW: int

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        return (self.N, self.C_out, self.OH, self.OW)

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        return (self.C_out, self.C_in // self.groups, self.kh, self.kw)

    @property
    def kernel_args(self) -> tuple[int, int, int, int, int, int]:
        """(sh, sw, pad_top, pad_left, dh, dw): bottom/right padding is implied by OH/OW."""
        return (self.sh, self.sw, self.pad_top, self.pad_left, self.dh, self.dw)

    @property
    def flops(self):
        """Multiply-adds x 2 of the forward pass."""
        return 2 * self.N * self.C_out * self.OH * self.OW * (self.C_in // self.groups) * self.kh * self.kw


def _parse_padding(padding, kernel, dilation, stride):
    """Return (top, bottom, left, right) from an int, a pair, 'valid' or 'same'."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding == "same":
            if stride != (1, 1):
                raise ValueError(
                    f"padding='same' is only supported with stride 1 (as in PyTorch), got stride={stride}"
                )
            pads = []
            for k, d in zip(kernel, dilation):
                total = d * (k - 1)
                pads += [total // 2, total - total // 2]  # extra row/column at the bottom/right
            return tuple(pads)
        raise ValueError(
            f"padding must be an int, a pair of ints, 'valid' or 'same'; got {padding!r}"
        )
    ph, pw = check_pair(padding, "padding", minimum=0)
    return (ph, ph, pw, pw)


def conv_geometry(x_shape: tuple[int, ...], weight_shape: tuple[int, ...], stride: _Pair = 1,
                  padding: _Pair | str = 0, dilation: _Pair = 1, groups: int = 1) -> ConvGeometry:
    """Validate convolution arguments against the shapes and return a :class:`ConvGeometry`."""
    N, C_in, H, W = x_shape
    C_out, cig, kh, kw = weight_shape
    stride = check_pair(stride, "stride")
    dilation = check_pair(dilation, "dilation")
    groups = check_int(groups, "groups")
    if kh < 1 or kw < 1:
        raise ValueError(f"weight must have a positive kernel size, got shape {tuple(weight_shape)}")
    if C_in < 1 or cig < 1:
        raise ValueError(
            f"x and weight must have at least one input channel, got x shape {tuple(x_shape)} "
            f"and weight shape {tuple(weight_shape)}"
        )
    if C_in % groups:
        raise ValueError(f"x channels ({C_in}) must be divisible by groups ({groups})")
    if C_out % groups:
        raise ValueError(f"weight out_channels ({C_out}) must be divisible by groups ({groups})")
    if cig * groups != C_in:
        raise ValueError(
            f"weight of shape {tuple(weight_shape)} expects x to have {cig * groups} channels "
            f"(weight.shape[1] * groups = {cig} * {groups}), but x has {C_in} channels"
        )
    pt, pb, pl, pr = _parse_padding(padding, (kh, kw), dilation, stride)
    OH = conv_output_size(H, kh, stride[0], (pt, pb), dilation[0])
    OW = conv_output_size(W, kw, stride[1], (pl, pr), dilation[1])
    if OH < 1 or OW < 1:
        raise ValueError(
            f"kernel size {(kh, kw)} with dilation {dilation} is larger than the padded input "
            f"({H + pt + pb}, {W + pl + pr}) (x shape {tuple(x_shape)}, padding {(pt, pb, pl, pr)})"
        )
    return ConvGeometry(N, C_in, H, W, C_out, kh, kw, stride[0], stride[1], pt, pb, pl, pr,
                        dilation[0], dilation[1], groups, OH, OW)



def _check_shape4(shape, name):
    if not isinstance(shape, (tuple, list)) or len(shape) != 4:
        raise ValueError(f"{name} must be a tuple of 4 ints (N, C, H, W), got {shape!r}")
    return tuple(check_int(s, name, minimum=0) for s in shape)



@dataclass(frozen=True)
class PoolGeometry:
    """Validated shape parameters of one pooling operation."""

    N: int
    C: int
    H: int
    W: int
    kh: int
    kw: int
    sh: int
    sw: int
    ph: int
    pw: int
    OH: int
    OW: int

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        return (self.N, self.C, self.OH, self.OW)

    @property
    def kernel_args(self) -> tuple[int, int, int, int, int, int]:
        return (self.kh, self.kw, self.sh, self.sw, self.ph, self.pw)


def pool_geometry(x_shape: tuple[int, ...], kernel_size: _Pair, stride: _Pair | None = None,
                  padding: _Pair = 0, ceil_mode: bool = False) -> PoolGeometry:
    """Validate pooling arguments against ``x_shape`` and return a :class:`PoolGeometry`."""
    N, C, H, W = x_shape
    kh, kw = check_pair(kernel_size, "kernel_size")
    sh, sw = (kh, kw) if stride is None else check_pair(stride, "stride")
    ph, pw = check_pair(padding, "padding", minimum=0)
    ceil_mode = check_bool(ceil_mode, "ceil_mode")
    if H == 0 or W == 0:
        # as PyTorch: a window of padding alone has no maximum (nor a meaningful mean)
        raise ValueError(
            f"x must have non-zero H and W (only N and C may be empty), got shape {tuple(x_shape)}"
        )
    if 2 * ph > kh or 2 * pw > kw:
        raise ValueError(
            f"padding should be at most half of kernel_size, got padding {(ph, pw)} for "
            f"kernel_size {(kh, kw)}"
        )
    OH = conv_output_size(H, kh, sh, (ph, ph), 1, ceil_mode)
    OW = conv_output_size(W, kw, sw, (pw, pw), 1, ceil_mode)
    if OH < 1 or OW < 1:
        raise ValueError(
            f"kernel_size {(kh, kw)} is larger than the padded input ({H + 2 * ph}, {W + 2 * pw}) "
            f"(x shape {tuple(x_shape)})"
        )
    return PoolGeometry(N, C, H, W, kh, kw, sh, sw, ph, pw, OH, OW)



def _planes(a):
    """View (N, C, H, W) as (N*C, H, W) for the plane-parallel kernels."""
    return a.reshape(a.shape[0] * a.shape[1], a.shape[2], a.shape[3])

