"""Direct (no column buffer) convolution: forward, grad_input and grad_weight.

The forward pass and grad_weight are register-blocked kernels: the AVX-512 tiles of
``_conv_avx512.h`` where the CPU has AVX-512 (:func:`forward_tile`,
:func:`grad_weight_tile` choose them), else the portable ones of ``_conv_blocked.h``. The
forward entry point runs a table of jobs, each writing a strided part of its output, so
the caller also computes grad_input with it, one job per stride phase (flipped,
channel-swapped sub-kernels). With fewer than 4 input channels grad_input instead uses
row-wise loops over the range where the input index is inside the image, computed once,
so padding costs no branches; each of its tasks owns one input plane, so no two threads
write the same place. Callers (``fastconv.functional``) validate everything; these trust
their arguments.
"""
from cython cimport floating
from cython.parallel cimport parallel, prange, threadid
from libc.string cimport memcpy, memset

from ._common cimport gemm_rm, valid_lo, valid_hi

cdef extern from "_conv_blocked.h":
    int fc_blocked_owb(Py_ssize_t cb, int is_double) noexcept nogil
    int FC_WGRAD_MAX_JB

# The kernels' entry points: an AVX2 forward tile (tile >= FC_AVX2_TILE_BASE), an AVX-512
# tile (tile >= 0) or the portable kernel with cb channels per block (tile -1), as
# forward_tile / grad_weight_tile choose.
cdef extern from "_conv_avx512.h":
    int fc_have_avx512() noexcept nogil
    int fc_have_avx2() noexcept nogil
    int FC_AVX2_TILE_BASE
    int FC_AVX2_N_TILES
    int FC_AVX2_PIXEL_TILE
    const int fc_avx2_tiles[][4]
    int FC_AVX2_TRANSPOSED_BASE
    int FC_AVX2_N_TTILES
    const int fc_avx2_ttiles[][3]
    int FC_AVX2_N_WGRAD_TILES
    const int fc_avx2_wgrad_tiles[][3]
    int FC_AVX512_N_TILES
    int FC_AVX512_PIXEL_TILE
    int FC_AVX512_ROWS2_TILE
    int FC_AVX512_N_WGRAD_TILES
    const int fc_avx512_tiles[][3]
    const int fc_avx512_wgrad_tiles[][3]
    void fc_conv_tile_f(int tile, Py_ssize_t cb, const float* xpad, Py_ssize_t C,
                        Py_ssize_t Hp, Py_ssize_t Wp, const float* wpack, const float* bias,
                        Py_ssize_t cout, float* out, Py_ssize_t OH, Py_ssize_t OW,
                        Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                        Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t ocs, Py_ssize_t ors,
                        Py_ssize_t ops) noexcept nogil
    void fc_conv_tile_d(int tile, Py_ssize_t cb, const double* xpad, Py_ssize_t C,
                        Py_ssize_t Hp, Py_ssize_t Wp, const double* wpack, const double* bias,
                        Py_ssize_t cout, double* out, Py_ssize_t OH, Py_ssize_t OW,
                        Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                        Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t ocs, Py_ssize_t ors,
                        Py_ssize_t ops) noexcept nogil
    void fc_wgrad_tile_f(int tile, Py_ssize_t cb, const float* xpad, Py_ssize_t C,
                         Py_ssize_t Hp, Py_ssize_t Wp, const float* gyt, Py_ssize_t n_blocks,
                         float* gw, Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t kh, Py_ssize_t kw,
                         Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t dh, Py_ssize_t dw) noexcept nogil
    void fc_wgrad_tile_d(int tile, Py_ssize_t cb, const double* xpad, Py_ssize_t C,
                         Py_ssize_t Hp, Py_ssize_t Wp, const double* gyt, Py_ssize_t n_blocks,
                         double* gw, Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t kh, Py_ssize_t kw,
                         Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t dh, Py_ssize_t dw) noexcept nogil

    void fc_wgrad_pixels_f(const float* xpad, Py_ssize_t C, Py_ssize_t Hp, Py_ssize_t Wp,
                           const float* gy, Py_ssize_t cog, float* vpart, Py_ssize_t OH,
                           Py_ssize_t OW, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh,
                           Py_ssize_t dh, Py_ssize_t dw) noexcept nogil
    void fc_channel_sums_f(const float* gy, Py_ssize_t cog, Py_ssize_t P,
                           double* bias) noexcept nogil
    void fc_wgrad_pixels_avx2_f(const float* xpad, Py_ssize_t C, Py_ssize_t Hp, Py_ssize_t Wp,
                                const float* gy, Py_ssize_t cog, float* vpart, Py_ssize_t OH,
                                Py_ssize_t OW, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh,
                                Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t ow_valid) noexcept nogil
    void fc_wgrad_pixels_avx2_d(const double* xpad, Py_ssize_t C, Py_ssize_t Hp, Py_ssize_t Wp,
                                const double* gy, Py_ssize_t cog, double* vpart, Py_ssize_t OH,
                                Py_ssize_t OW, Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh,
                                Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t ow_valid) noexcept nogil
    void fc_channel_sums_avx2_f(const float* gy, Py_ssize_t cog, Py_ssize_t P,
                                double* bias) noexcept nogil
    void fc_channel_sums_avx2_d(const double* gy, Py_ssize_t cog, Py_ssize_t P,
                                double* bias) noexcept nogil
    void fc_channel_minor_avx2_f(const float* src, Py_ssize_t cog, Py_ssize_t P, Py_ssize_t ld,
                                 float* dst) noexcept nogil
    void fc_channel_minor_avx2_d(const double* src, Py_ssize_t cog, Py_ssize_t P,
                                 Py_ssize_t ld, double* dst) noexcept nogil

#: Kernel columns per grad_weight register block: the padded input needs
#: (WGRAD_MAX_JB - 1) * dilation zeroed elements of slack after it.
WGRAD_MAX_JB = FC_WGRAD_MAX_JB


#: Whether this CPU (and build) runs the AVX-512 tiles of ``_conv_avx512.h``.
AVX512_AVAILABLE = bool(fc_have_avx512())
#: The tile index of the pixel tile (see forward_tile).
PIXEL_TILE = FC_AVX512_PIXEL_TILE
#: The tile index of the two-row tile (2 vectors of channels x 2 rows of 7 pixels).
ROWS2_TILE = FC_AVX512_ROWS2_TILE
cdef bint _use_avx512 = AVX512_AVAILABLE
#: Whether the running CPU has AVX2 and FMA and this build has the AVX2 tiles of
#: ``_conv_avx2.h`` (used where the AVX-512 tiles are not).
AVX2_AVAILABLE = bool(fc_have_avx2())
cdef bint _use_avx2 = AVX2_AVAILABLE


def use_avx512(enabled=None):
    """Query or switch the AVX-512 tiles (where available); returns the previous setting.

    For tests and benchmarks of the portable path on an AVX-512 machine.
    """
    global _use_avx512
    previous = bool(_use_avx512)
    if enabled is not None:
        _use_avx512 = bool(enabled) and AVX512_AVAILABLE
    return previous


def use_avx2(enabled=None):
    """Query or switch the AVX2 kernels (where available): the forward tiles, the pixel
    grad_weight and the scatter grad_input; returns the previous setting. They run where
    the AVX-512 tiles are off or absent (``use_avx512``); with both off the portable
    kernels of ``_conv_blocked.h`` run. For tests and benchmarks."""
    global _use_avx2
    previous = bool(_use_avx2)
    if enabled is not None:
        _use_avx2 = bool(enabled) and AVX2_AVAILABLE
    return previous


def kernel_isa():
    """The forward tiles in use: ``"avx512"``, ``"avx2"`` or ``"portable"`` (part of every
    autotuning key: a choice measured with one set of tiles says nothing of another)."""
    return "avx512" if _use_avx512 else "avx2" if _use_avx2 else "portable"


def avx2_tiles():
    """The AVX2 forward tile table: one ``(tile, nv, owb, kw, sw)`` per tile, ``tile`` the
    index :func:`forward_tile` returns (from ``AVX2_TILE_BASE``), nv vectors of 8 float32
    (4 float64) channels x owb pixels; kw, sw 0 for any kernel and stride, or the kernel
    width and stride of a row-reuse tile (no dilation). Empty where the build has no AVX2
    tiles."""
    if not AVX2_AVAILABLE:
        return []
    return [(FC_AVX2_TILE_BASE + t,) + tuple(fc_avx2_tiles[t][k] for k in range(4))
            for t in range(FC_AVX2_N_TILES)]


#: The first AVX2 tile index (see :func:`avx2_tiles`).
AVX2_TILE_BASE = FC_AVX2_TILE_BASE
#: The AVX2 pixel tile's index (float32, up to 8 channels x 8 pixels of a row, stride 1):
#: forward_tile returns it with cb 8, owb 8.
AVX2_PIXEL_TILE = FC_AVX2_TILE_BASE + FC_AVX2_PIXEL_TILE


def pixel_tiles_fit(bint is_double, Py_ssize_t cout_per_group, Py_ssize_t sw):
    """Whether the pixel kernels (16 pixels of a channel to a vector) take a convolution:
    float32 on an AVX-512 CPU (and ``use_avx512()``), up to 8 output channels per group,
    stride 1 along rows. The forward tile (:func:`forward_tile`) and
    :func:`conv2d_direct_grad_weight_pixels` share this rule."""
    return bool(_use_avx512 and not is_double and sw == 1 and cout_per_group <= 8)


def grad_weight_pixels_fit(bint is_double, Py_ssize_t cout_per_group, Py_ssize_t sw,
                           Py_ssize_t out_width=0):
    """Whether :func:`conv2d_direct_grad_weight_pixels` takes a grad_weight: up to 8 output
    channels per group at stride 1 along rows, float32 with the AVX-512 tiles
    (:func:`pixel_tiles_fit`); with the AVX2 ones (vectors of 8 float32 / 4 float64 pixels)
    where rounding ``out_width`` up to whole vectors adds at most a quarter, and for
    float64 where the blocked kernel's 4-channel blocks would not be full.

    Measured on one AMD Zen 1 core (float32 ms, blocked / pixels): 6 -> 6 channels 5x5 at
    OW 28 (lenet_c1) 1.19 / 0.68, 1 -> 8 at 28 1.23 / 0.91, 4 -> 8 3x3 at 56 3.7 / 3.2, but
    6 -> 6 at OW 10 (16 lanes for 10) 0.70 / 0.96; float64 6 channels at 28 1.63 / 1.16,
    8 channels 3x3 at 56 4.8 / 6.5, 4 channels at 14 1.22 / 1.31.
    """
    if pixel_tiles_fit(is_double, cout_per_group, sw):
        return True
    cdef Py_ssize_t lanes = 4 if is_double else 8
    cdef Py_ssize_t padded = (out_width + lanes - 1) // lanes * lanes
    if is_double and cout_per_group % 4 == 0:
        return False
    return (_avx2_pixel_grad_weight_takes(cout_per_group, sw) and out_width > 0
            and 4 * padded <= 5 * out_width)


cdef bint _avx2_pixel_grad_weight_takes(Py_ssize_t cout_per_group, Py_ssize_t sw):
    """What the AVX2 pixel grad_weight kernels can run (any width: the caller pads)."""
    return _use_avx2 and not _use_avx512 and sw == 1 and cout_per_group <= 8


def forward_tile(bint is_double, Py_ssize_t cout_per_group, Py_ssize_t out_width,
                 Py_ssize_t kw=0, Py_ssize_t sw=0, Py_ssize_t dw=0):
    """Register tile of the forward kernel: (tile, cb, owb).

    tile >= 0 indexes the AVX-512 table (from ``AVX2_TILE_BASE``: the AVX2 one, where the
    AVX-512 tiles are off; see :func:`avx2_tiles`), -1 is the portable kernel; cb output channels x
    owb output pixels per block. The caller pads the input to whole pixel blocks and packs
    the weights in blocks of cb channels. With kernel width kw, stride sw and dilation dw
    given, one-vector blocks may use the row-reuse tiles (stride 1, no dilation, kw 3 or 5),
    and float32 with up to 8 channels at stride 1 the pixel tile (``PIXEL_TILE``).
    """
    cdef Py_ssize_t lanes = 8 if is_double else 16
    cdef Py_ssize_t nv, owb, best = -1, best_cost = 0, cost, t
    cdef Py_ssize_t rows_kw = kw if sw == 1 and dw == 1 and (kw == 3 or kw == 5) else 0
    cdef Py_ssize_t want_kw
    # Up to 8 channels at stride 1 (float32): the pixel tile, 16 pixels of a channel to a
    # vector (lenet_c1 forward 0.117 -> 0.082 ms, lenet_c3 grad_input 0.37 -> 0.24).
    if pixel_tiles_fit(is_double, cout_per_group, sw):
        return (FC_AVX512_PIXEL_TILE, 8, 16)
    # Few channels leave most lanes of a wide tile empty: the portable half-width tiles
    # win there, except against the row-reuse tiles (lenet_c1, 6 channels: 0.17 -> 0.13 ms).
    if _use_avx512 and (cout_per_group > lanes // 2 or rows_kw):
        # two vectors of channels when there are more than one vector's worth; among the
        # pixel widths, the least padding waste (ties: the first, widest, tile)
        nv = 2 if cout_per_group > lanes else 1
        # images at most 7 pixels wide, kernels at least 3 wide: two rows of 7 (28
        # accumulators, not 14; 32->64 3x3 stride 2 to 7x7, batch 128, 1 thread: 3.11 ->
        # 3.04 ms). Not for the 1- and 2-tap stride phases of grad_input: there the
        # second row's stores outweighed it (5.9 -> 6.5 ms).
        if nv == 2 and out_width <= 7 and kw >= 3:
            return (FC_AVX512_ROWS2_TILE, 2 * lanes, 7)
        want_kw = rows_kw if nv == 1 else 0
        for t in range(FC_AVX512_N_TILES):
            if fc_avx512_tiles[t][0] != nv or fc_avx512_tiles[t][2] != want_kw:
                continue
            owb = fc_avx512_tiles[t][1]
            cost = (out_width + owb - 1) // owb * owb
            if best < 0 or cost < best_cost:
                best, best_cost = t, cost
        return (best, nv * lanes, fc_avx512_tiles[best][1])
    if _use_avx2 and not _use_avx512:
        t = _avx2_forward_tile(is_double, cout_per_group, out_width, kw, sw, dw)
        if t >= 0:
            nv = fc_avx2_tiles[t][0]
            return (FC_AVX2_TILE_BASE + t, nv * (4 if is_double else 8), fc_avx2_tiles[t][1])
    cb = (8 if cout_per_group > 4 else 4) if is_double else (16 if cout_per_group > 8 else 8)
    return (-1, cb, fc_blocked_owb(cb, is_double))


def avx2_transposed_tiles():
    """The AVX2 transposed tiles (stride-2 grad_input columns): one ``(tile, nv, owb, r)``
    per tile, ``tile`` the index :func:`transposed_tile` returns, r the column offset
    (2 * the copy's left zero columns + pad_left) the tile is built for. Empty where the
    build has no AVX2 tiles."""
    if not AVX2_AVAILABLE:
        return []
    return [(FC_AVX2_TILE_BASE + FC_AVX2_TRANSPOSED_BASE + t,) +
            tuple(fc_avx2_ttiles[t][k] for k in range(3)) for t in range(FC_AVX2_N_TTILES)]


def transposed_tile(bint is_double, Py_ssize_t cin_per_group, Py_ssize_t width,
                    Py_ssize_t kw, Py_ssize_t sw, Py_ssize_t dw, Py_ssize_t pad_left):
    """The AVX2 transposed tile for grad_input's columns, or None: ``(tile, cb, owb,
    left, span)`` where the convolution is 3 wide at column stride 2 without column dilation,
    pad_left 0-2, more than half a vector of input channels per group, and the AVX2 tiles
    are in use. The job's padded gradient copy gets ``left`` zero columns; a block of owb
    output pixels at ow0 reads the span columns from ow0 / 2 (see _conv_avx2.h). Among
    the widths, the least padding waste (ties: the widest).

    Measured on AMD Zen 1, float32, batch 128, ms at 1 / 2 threads (the four stride phases
    on the general tiles -> the transposed tile): ResNet-8's 16 -> 32 3x3 stride 2 (28^2
    inputs) 13.6 / 7.0 -> 9.2 / 4.9; 32 -> 64 (14^2) 12.2 / 7.2 -> 9.9 / 5.4 (im2col 10.9 /
    5.7).
    """
    cdef Py_ssize_t lanes = 4 if is_double else 8, t, owb, cost, best = -1, best_cost = 0
    cdef Py_ssize_t left, r
    if (not (_use_avx2 and not _use_avx512) or kw != 3 or sw != 2 or dw != 1
            or not 0 <= pad_left <= 2 or 2 * cin_per_group <= lanes):
        return None
    left = 1 if pad_left < 2 else 0
    r = 2 * left + pad_left
    for t in range(FC_AVX2_N_TTILES):
        if fc_avx2_ttiles[t][2] != r:
            continue
        owb = fc_avx2_ttiles[t][1]
        cost = (width + owb - 1) // owb * owb
        if best < 0 or cost < best_cost:
            best, best_cost = t, cost
    if best < 0:
        return None
    owb = fc_avx2_ttiles[best][1]
    return (FC_AVX2_TILE_BASE + FC_AVX2_TRANSPOSED_BASE + best, fc_avx2_ttiles[best][0] * lanes,
            owb, left, (owb - 1 + r) // 2 + 1)


cdef Py_ssize_t _avx2_forward_tile(bint is_double, Py_ssize_t cout_per_group,
                                   Py_ssize_t out_width, Py_ssize_t kw, Py_ssize_t sw,
                                   Py_ssize_t dw):
    """The AVX2 table's tile for a forward convolution, or -1 (none fits): the row-reuse
    tiles (one vector of channels) where the table has the kernel width and stride (no
    dilation), else the general ones, two vectors of channels for more than one vector's
    worth; among the pixel widths the least padding waste (ties: the first, widest).
    Measured on AMD Zen 1: see _conv_avx2.h."""
    cdef Py_ssize_t lanes = 4 if is_double else 8
    cdef Py_ssize_t t, owb, cost, best = -1, best_cost = 0, rows_kw = 0, rows_sw = 0, nv
    for t in range(FC_AVX2_N_TILES):
        if dw == 1 and fc_avx2_tiles[t][2] == kw and fc_avx2_tiles[t][3] == sw:
            rows_kw, rows_sw = kw, sw
    nv = 2 if cout_per_group > lanes and not rows_kw else 1
    for t in range(FC_AVX2_N_TILES):
        if (fc_avx2_tiles[t][0] != nv or fc_avx2_tiles[t][2] != rows_kw
                or fc_avx2_tiles[t][3] != rows_sw):
            continue
        owb = fc_avx2_tiles[t][1]
        cost = (out_width + owb - 1) // owb * owb
        if best < 0 or cost < best_cost:
            best, best_cost = t, cost
    return best


def grad_weight_tile(bint is_double, Py_ssize_t cout_per_group, Py_ssize_t kh, Py_ssize_t kw,
                     bint avx2_tile=True):
    """Register tile of grad_weight: (tile, cb); tile -1 is the portable kernel.

    With the AVX2 kernels in use (and not the AVX-512 ones), ``avx2_tile`` allows the AVX2
    whole-kernel tile (3x3 kernels, one vector of channels; from ``AVX2_TILE_BASE``), which
    is faster than the portable kernel on some CPUs and slower on others: the caller
    decides (``functional.conv`` measures it once per machine)."""
    cdef Py_ssize_t lanes = 8 if is_double else 16
    cdef Py_ssize_t nv = 2 if cout_per_group > lanes else 1, t
    if _use_avx512 and cout_per_group > lanes // 2:
        for t in range(FC_AVX512_N_WGRAD_TILES):
            if (fc_avx512_wgrad_tiles[t][0] == nv and fc_avx512_wgrad_tiles[t][1] == kh
                    and fc_avx512_wgrad_tiles[t][2] == kw):
                return (t, nv * lanes)
    if avx2_tile and _use_avx2 and not _use_avx512 and cout_per_group > lanes // 4:
        for t in range(FC_AVX2_N_WGRAD_TILES):
            if fc_avx2_wgrad_tiles[t][1] == kh and fc_avx2_wgrad_tiles[t][2] == kw:
                return (FC_AVX2_TILE_BASE + t, fc_avx2_wgrad_tiles[t][0] * lanes // 2)
    cb = (8 if cout_per_group > 4 else 4) if is_double else (16 if cout_per_group > 8 else 8)
    return (-1, cb)


def pack_weight_blocked(const floating[:, :, :, :, :] w5, floating[:, ::1] packed,
                        Py_ssize_t cb, int n_threads):
    """packed[g][block][c][i][j][l] = w5[g, block*cb + l, c, i, j], zero past C_out/g.

    w5: (groups, C_out/g, C_in/g, kh, kw), any strides (grad_input passes a flipped,
    channel-swapped view); packed: (groups, n_blocks*C_in/g*kh*kw*cb). The cb weights one
    input tap gives a block of output channels end up contiguous: one vector load.
    """
    cdef Py_ssize_t G = w5.shape[0], co = w5.shape[1], ci = w5.shape[2]
    cdef Py_ssize_t kh = w5.shape[3], kw = w5.shape[4]
    cdef Py_ssize_t n_blocks = (co + cb - 1) // cb, t, g, b, c, i, j, l, o
    cdef floating* dst
    with nogil:
        for t in prange(G * n_blocks, schedule="static", num_threads=n_threads):
            g = t // n_blocks
            b = t % n_blocks
            dst = &packed[g, b * ci * kh * kw * cb]
            for c in range(ci):
                for i in range(kh):
                    for j in range(kw):
                        for l in range(cb):
                            o = b * cb + l
                            dst[((c * kh + i) * kw + j) * cb + l] = w5[g, o, c, i, j] if o < co else 0


cdef void pad_rows(const floating* src, Py_ssize_t rows, Py_ssize_t width, floating* dst,
                   Py_ssize_t padded_width) noexcept nogil:
    """dst (rows, padded_width) <- src (rows, width), zeros in the columns past width."""
    cdef Py_ssize_t r
    for r in range(rows):
        memcpy(&dst[r * padded_width], &src[r * width], width * sizeof(floating))
        memset(&dst[r * padded_width + width], 0, (padded_width - width) * sizeof(floating))


cdef void pad_image(const floating* x, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W,
                    floating* xp, Py_ssize_t Hp, Py_ssize_t Wp,
                    Py_ssize_t pt, Py_ssize_t pl) noexcept nogil:
    """xp (C, Hp, Wp) <- x (C, H, W) shifted by (pt, pl), zeros elsewhere, clipped to xp.

    A negative shift crops the input (grad_input's stride phases need both). Each byte of
    xp is written once: at vgg sizes a memset of the whole buffer first cost 7% of the
    convolution.
    """
    cdef Py_ssize_t c, r, ih
    cdef Py_ssize_t src_col = max(0, -pl), dst_col = max(0, pl)
    cdef Py_ssize_t ncols = max(0, min(W - src_col, Wp - dst_col))
    cdef Py_ssize_t tail = Wp - dst_col - ncols
    cdef floating* row
    for c in range(C):
        for r in range(Hp):
            row = xp + (c * Hp + r) * Wp
            ih = r - pt
            if ih < 0 or ih >= H or ncols == 0:
                memset(row, 0, Wp * sizeof(floating))
                continue
            memset(row, 0, dst_col * sizeof(floating))
            memcpy(row + dst_col, x + (c * H + ih) * W + src_col, ncols * sizeof(floating))
            memset(row + dst_col + ncols, 0, tail * sizeof(floating))


# One row of the ``jobs`` table of conv2d_direct_forward: a convolution writing a strided
# part of ``out`` (the whole output, or one stride phase of grad_input).
cdef enum:
    J_TILE, J_CB, J_HP, J_WP, J_KH, J_KW, J_SH, J_SW, J_PT, J_PL, J_DH, J_DW, J_OH, J_OW
    J_OUT_OFFSET, J_OUT_ROW_STRIDE, J_OUT_PIXEL_STRIDE, J_W_OFFSET, J_W_GROUP_LEN, J_FIELDS

#: Column names of the ``jobs`` table, in order.
JOB_FIELDS = ("tile", "cb", "hp", "wp", "kh", "kw", "sh", "sw", "pt", "pl", "dh", "dw", "oh",
              "ow", "out_offset", "out_row_stride", "out_pixel_stride", "w_offset",
              "w_group_len")
assert len(JOB_FIELDS) == J_FIELDS


cdef inline void run_tile(const Py_ssize_t* job, const floating* xp, Py_ssize_t C,
                          const floating* w, const floating* bias, Py_ssize_t cout,
                          floating* o, Py_ssize_t ocs) noexcept nogil:
    """One job's blocked kernel over one padded image and group."""
    cdef Py_ssize_t tile = job[J_TILE], cb = job[J_CB], hp = job[J_HP], wp = job[J_WP]
    cdef Py_ssize_t kh = job[J_KH], kw = job[J_KW], sh = job[J_SH], sw = job[J_SW]
    cdef Py_ssize_t dh = job[J_DH], dw = job[J_DW], oh = job[J_OH], ow = job[J_OW]
    cdef Py_ssize_t ors = job[J_OUT_ROW_STRIDE], ops = job[J_OUT_PIXEL_STRIDE]
    if floating is float:
        fc_conv_tile_f(tile, cb, xp, C, hp, wp, w, bias, cout, o, oh, ow, kh, kw, sh, sw, dh, dw,
                       ocs, ors, ops)
    else:
        fc_conv_tile_d(tile, cb, xp, C, hp, wp, w, bias, cout, o, oh, ow, kh, kw, sh, sw, dh, dw,
                       ocs, ors, ops)


def conv2d_direct_forward(const floating[:, :, :, ::1] x, const floating[::1] wpack,
                          const floating[::1] bias, floating[:, :, :, ::1] out,
                          floating[:, ::1] xpad_scratch, const Py_ssize_t[:, ::1] jobs,
                          Py_ssize_t groups, int n_threads):
    """Blocked-kernel convolutions of x (N, C_in, H, W) into parts of out (N, C_out, ., .).

    Each row of ``jobs`` (columns :data:`JOB_FIELDS`) is one convolution plus bias whose
    output element (co, r, q) of image n lands at ``&out[n, co, 0, 0] + out_offset +
    r*out_row_stride + q*out_pixel_stride``: the forward pass is one job over the whole
    output; grad_input is one job per stride phase, all phases of an image in a row so
    that the image's gradient stays in cache. Its weights, packed as
    [group][channel block][C_in/g][kh][kw][cb], start at ``wpack[w_offset + g*w_group_len]``;
    tile and cb come from :func:`forward_tile`. xpad_scratch: (n_threads, >= C_in/g*hp*wp
    for every job), one padded image per thread.
    Parallel over (image, group) pairs; every output element is written by one thread.
    """
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t C_out = out.shape[1], ocs = out.shape[2] * out.shape[3]
    cdef Py_ssize_t cig = C // groups, cog = C_out // groups, n_jobs = jobs.shape[0]
    cdef Py_ssize_t t, n, g, j
    cdef const Py_ssize_t* job
    cdef floating* xp
    with nogil, parallel(num_threads=n_threads):
        xp = &xpad_scratch[threadid(), 0]
        for t in prange(N * groups, schedule="static"):
            n = t // groups
            g = t % groups
            for j in range(n_jobs):
                job = &jobs[j, 0]
                pad_image(&x[n, g * cig, 0, 0], cig, H, W, xp, job[J_HP], job[J_WP],
                          job[J_PT], job[J_PL])
                run_tile(job, xp, cig, &wpack[job[J_W_OFFSET] + g * job[J_W_GROUP_LEN]],
                         &bias[g * cog], cog, &out[n, g * cog, 0, 0] + job[J_OUT_OFFSET], ocs)


cdef extern from "_grad_input_avx2.h":
    int FC_GIX_JB
    Py_ssize_t fc_gix_scratch_len(Py_ssize_t OW, Py_ssize_t kw, Py_ssize_t tstride, Py_ssize_t W,
                                  Py_ssize_t pl, Py_ssize_t dw, Py_ssize_t lanes) noexcept nogil
    void fc_grad_input_scatter_avx2_f(const float* gy, Py_ssize_t Co, Py_ssize_t OH,
                                      Py_ssize_t OW, Py_ssize_t Ppad, const float* wpack,
                                      Py_ssize_t kh, Py_ssize_t kw, float* gi, Py_ssize_t Ci,
                                      Py_ssize_t H, Py_ssize_t W, Py_ssize_t pt, Py_ssize_t pl,
                                      Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t band_rows,
                                      float* scratch, Py_ssize_t tstride) noexcept nogil
    void fc_grad_input_scatter_avx2_d(const double* gy, Py_ssize_t Co, Py_ssize_t OH,
                                      Py_ssize_t OW, Py_ssize_t Ppad, const double* wpack,
                                      Py_ssize_t kh, Py_ssize_t kw, double* gi, Py_ssize_t Ci,
                                      Py_ssize_t H, Py_ssize_t W, Py_ssize_t pt, Py_ssize_t pl,
                                      Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t band_rows,
                                      double* scratch, Py_ssize_t tstride) noexcept nogil

#: Kernel columns per product block of the scatter grad_input (its weight pack pads the
#: kernel columns to a multiple of this).
SCATTER_JB = FC_GIX_JB


def grad_input_scatter_len(bint is_double, Py_ssize_t OW, Py_ssize_t kw, Py_ssize_t tstride,
                           Py_ssize_t W, Py_ssize_t pl, Py_ssize_t dw):
    """Values of per-thread scratch :func:`conv2d_direct_grad_input_scatter` needs
    (masks, two product buffers and the slack their unaligned loads may reach)."""
    return fc_gix_scratch_len(OW, kw, tstride, W, pl, dw, 4 if is_double else 8)


def grad_input_scatter_fit(bint is_double, Py_ssize_t cin_per_group, Py_ssize_t sh,
                           Py_ssize_t sw, Py_ssize_t kw=5):
    """Whether :func:`conv2d_direct_grad_input_scatter` takes a grad_input: stride 1, the
    AVX2 kernels in use (not AVX-512), up to 8 input channels per group, and kernel widths
    that the products' blocks of 5 columns hold with at most a quarter of zero columns
    (widths 4, 5, 8-10, 12-15, ...; 3-wide kernels would multiply 2 zero columns in 5).

    Measured on one AMD Zen 1 core, ms (im2col / direct on the transposed problem /
    scatter), batch 64: lenet_c3 (16 -> 6 channels, 10 x 10 -> 14 x 14) 2.2 / 2.6 / 1.6;
    lenet_c1 (6 -> 1, 28 x 28) 1.7 / 2.7 / 1.0 float32; float64 3.6 / 4.7 / 2.9 and
    9.2 / 3.3 / 2.0.
    """
    cdef Py_ssize_t kwp = (kw + FC_GIX_JB - 1) // FC_GIX_JB * FC_GIX_JB
    return bool(_scatter_kernel_takes(cin_per_group, sh, sw) and 4 * kwp <= 5 * kw)


cdef bint _scatter_kernel_takes(Py_ssize_t cin_per_group, Py_ssize_t sh, Py_ssize_t sw):
    """What the scatter kernel can run (any kernel width)."""
    return _use_avx2 and not _use_avx512 and sh == 1 and sw == 1 and cin_per_group <= 8


def conv2d_direct_grad_input_scatter(const floating[:, :, :, ::1] grad_output,
                                     const floating[::1] wpack, floating[:, :, :, ::1] grad_input,
                                     floating[:, ::1] gy_scratch, floating[:, ::1] t_scratch,
                                     Py_ssize_t Ppad, Py_ssize_t band_rows, Py_ssize_t tstride,
                                     Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t pt, Py_ssize_t pl,
                                     Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t groups,
                                     int n_threads):
    """grad_input (N, C_in, H, W) of a stride-1 convolution by products and a scatter
    (``_grad_input_avx2.h``); every element is written. AVX2 only (see
    :func:`grad_input_scatter_fit`).

    wpack: [group][c][i][o][kwp] (c < C_in/g, o < C_out/g, kwp = kw rounded up to
    ``SCATTER_JB``, zeros past kw). Each image's gradient planes of a group are copied into
    gy_scratch (n_threads, >= C_out/g * Ppad) with zeros past OH*OW; Ppad must cover every
    band's pixels rounded up to 2 vectors, tstride one band's, t_scratch (n_threads,
    >= :func:`grad_input_scatter_len`). Parallel over (image, group): each task writes
    only its own planes (a row's last vector is stored whole only where the rest of it lies
    in the same plane).
    """
    cdef Py_ssize_t N = grad_input.shape[0], C_in = grad_input.shape[1]
    cdef Py_ssize_t H = grad_input.shape[2], W = grad_input.shape[3]
    cdef Py_ssize_t C_out = grad_output.shape[1], OH = grad_output.shape[2]
    cdef Py_ssize_t OW = grad_output.shape[3]
    cdef Py_ssize_t cig = C_in // groups, cog = C_out // groups
    cdef Py_ssize_t kwp = (kw + FC_GIX_JB - 1) // FC_GIX_JB * FC_GIX_JB
    cdef Py_ssize_t per_group = cig * kh * cog * kwp, lanes2 = 8 if floating is double else 16
    cdef Py_ssize_t t, n, g, h0, band_px
    cdef floating* gp
    cdef floating* tp
    if not _scatter_kernel_takes(cig, 1, 1):
        raise ValueError("the scatter grad_input kernel does not run on this CPU or geometry")
    if gy_scratch.shape[0] < n_threads or t_scratch.shape[0] < n_threads:
        raise ValueError("gy_scratch and t_scratch need a row per thread")
    if band_rows < 1 or wpack.shape[0] < groups * per_group or gy_scratch.shape[1] < cog * Ppad:
        raise ValueError("band_rows, wpack or gy_scratch too small")
    h0 = 0
    while h0 < OH:  # every band's blocks inside Ppad and tstride
        band_px = (min(OH, h0 + band_rows) - h0) * OW
        band_px = (band_px + lanes2 - 1) // lanes2 * lanes2
        if h0 * OW + band_px > Ppad or band_px > tstride:
            raise ValueError("Ppad or tstride too small for the bands")
        h0 += band_rows
    if t_scratch.shape[1] < fc_gix_scratch_len(OW, kw, tstride, W, pl, dw, lanes2 // 2):
        raise ValueError("t_scratch too small")
    with nogil, parallel(num_threads=n_threads):
        gp = &gy_scratch[threadid(), 0]
        tp = &t_scratch[threadid(), 0]
        for t in prange(N * groups, schedule="static"):
            n = t // groups
            g = t % groups
            pad_rows(&grad_output[n, g * cog, 0, 0], cog, OH * OW, gp, Ppad)
            if floating is float:
                fc_grad_input_scatter_avx2_f(gp, cog, OH, OW, Ppad, &wpack[g * per_group], kh, kw,
                                             &grad_input[n, g * cig, 0, 0], cig, H, W, pt, pl,
                                             dh, dw, band_rows, tp, tstride)
            else:
                fc_grad_input_scatter_avx2_d(gp, cog, OH, OW, Ppad, &wpack[g * per_group], kh, kw,
                                             &grad_input[n, g * cig, 0, 0], cig, H, W, pt, pl,
                                             dh, dw, band_rows, tp, tstride)


def conv2d_direct_grad_input(const floating[:, :, :, ::1] grad_output,
                             const floating[:, :, :, ::1] weight,
                             floating[:, :, :, ::1] grad_input,
                             Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
                             Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t groups, int n_threads):
    """grad_input (N, C_in, H, W) = conv_transpose(grad_output, weight); must be zeroed.

    Parallel over (image, input channel) planes: each plane gathers from its group's
    output channels, so writes never collide.
    """
    cdef Py_ssize_t N = grad_input.shape[0], C_in = grad_input.shape[1]
    cdef Py_ssize_t H = grad_input.shape[2], W = grad_input.shape[3]
    cdef Py_ssize_t C_out = weight.shape[0], cig = weight.shape[1]
    cdef Py_ssize_t kh = weight.shape[2], kw = weight.shape[3]
    cdef Py_ssize_t OH = grad_output.shape[2], OW = grad_output.shape[3]
    cdef Py_ssize_t cog = C_out // groups
    cdef Py_ssize_t t, n, ci, c, co, k, i, j, oh, ow, ih, lo, hi, oh_lo, oh_hi, off_w
    cdef floating wv
    cdef floating* dxrow
    cdef const floating* gyrow
    with nogil:
        for t in prange(N * C_in, schedule="static", num_threads=n_threads):
            n = t // C_in
            ci = t % C_in
            c = ci % cig
            for k in range(cog):
                co = (ci // cig) * cog + k
                for i in range(kh):
                    oh_lo = valid_lo(i * dh - ph, sh, OH)
                    oh_hi = valid_hi(i * dh - ph, sh, H, OH, oh_lo)
                    for j in range(kw):
                        wv = weight[co, c, i, j]
                        off_w = j * dw - pw
                        lo = valid_lo(off_w, sw, OW)
                        hi = valid_hi(off_w, sw, W, OW, lo)
                        for oh in range(oh_lo, oh_hi):
                            ih = oh * sh + i * dh - ph
                            dxrow = &grad_input[n, ci, ih, 0] + (off_w + lo * sw)
                            gyrow = &grad_output[n, co, oh, 0] + lo
                            if sw == 1:
                                for ow in range(hi - lo):
                                    dxrow[ow] += wv * gyrow[ow]
                            else:
                                for ow in range(hi - lo):
                                    dxrow[ow * sw] += wv * gyrow[ow]


def conv2d_direct_grad_weight_blocked(const floating[:, :, :, ::1] grad_output,
                                      const floating[:, :, :, ::1] x,
                                      floating[:, ::1] partial, double[:, ::1] bias_partial,
                                      floating[:, ::1] xpad_scratch,
                                      floating[:, ::1] gyt_scratch, int tile, Py_ssize_t cb,
                                      Py_ssize_t Hp, Py_ssize_t Wp, Py_ssize_t kh, Py_ssize_t kw,
                                      Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t pt, Py_ssize_t pl,
                                      Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t groups,
                                      int n_threads):
    """Per-thread partial grad_weight, packed [group][block][C_in/g][kh][kw][cb].

    partial (n_threads, groups*n_blocks*C_in/g*kh*kw*cb) must be zeroed; the caller sums the
    rows in thread order (static schedule: the same images go to the same thread each run).
    xpad_scratch (n_threads, >= C_in/g*Hp*Wp + slack) must have its slack zeroed;
    gyt_scratch: (n_threads, OH*OW*n_blocks*cb). tile, cb: from :func:`grad_weight_tile`.
    bias_partial (n_threads, C_out), zeroed: per-thread sums of grad_output per channel
    (grad_bias), in float64, gathered while grad_output is transposed anyway.
    """
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t C_out = grad_output.shape[1], OH = grad_output.shape[2]
    cdef Py_ssize_t OW = grad_output.shape[3], P = OH * OW
    cdef Py_ssize_t cig = C // groups, cog = C_out // groups
    cdef Py_ssize_t n_blocks = (cog + cb - 1) // cb, ld = n_blocks * cb
    cdef Py_ssize_t per_group = n_blocks * cig * kh * kw * cb
    cdef Py_ssize_t t, n, g, k, p, p0, p1
    cdef floating* xp
    cdef floating* gt
    cdef floating* part
    cdef double* bias_part
    cdef const floating* src
    cdef floating v
    cdef double block_sum
    with nogil, parallel(num_threads=n_threads):
        xp = &xpad_scratch[threadid(), 0]
        gt = &gyt_scratch[threadid(), 0]
        part = &partial[threadid(), 0]
        bias_part = &bias_partial[threadid(), 0]
        for t in prange(N * groups, schedule="static"):
            n = t // groups
            g = t % groups
            pad_image(&x[n, g * cig, 0, 0], cig, H, W, xp, Hp, Wp, pt, pl)
            # channel-minor copy of this group's gradient, padding channels zero: by
            # register transposes with AVX2, its channel sums (grad_bias) in a second pass
            # while the image's gradient is still in cache
            if _use_avx2:
                src = &grad_output[n, g * cog, 0, 0]
                if floating is float:
                    fc_channel_minor_avx2_f(src, cog, P, ld, gt)
                    fc_channel_sums_avx2_f(src, cog, P, &bias_part[g * cog])
                else:
                    fc_channel_minor_avx2_d(src, cog, P, ld, gt)
                    fc_channel_sums_avx2_d(src, cog, P, &bias_part[g * cog])
                p0 = P  # skips the element-by-element copy below
            else:
                p0 = 0
            # otherwise element by element, in blocks of 16 pixels so the 16 destination
            # lines stay in L1 while every channel fills them (a whole-row pass took a
            # quarter of the kernel's time)
            for p0 in range(p0, P, 16):
                p1 = min(p0 + 16, P)
                for k in range(ld):
                    if k < cog:
                        src = &grad_output[n, g * cog + k, 0, 0]
                        block_sum = 0
                        for p in range(p0, p1):
                            v = src[p]
                            gt[p * ld + k] = v
                            block_sum = block_sum + v
                        bias_part[g * cog + k] += block_sum
                    else:
                        for p in range(p0, p1):
                            gt[p * ld + k] = 0
            if floating is float:
                fc_wgrad_tile_f(tile, cb, xp, cig, Hp, Wp, gt, n_blocks, part + g * per_group,
                                OH, OW, kh, kw, sh, sw, dh, dw)
            else:
                fc_wgrad_tile_d(tile, cb, xp, cig, Hp, Wp, gt, n_blocks, part + g * per_group,
                                OH, OW, kh, kw, sh, sw, dh, dw)


def conv2d_direct_grad_weight_pixels(const floating[:, :, :, ::1] grad_output,
                                     const floating[:, :, :, ::1] x, floating[:, ::1] vpart,
                                     double[:, ::1] bias_partial, floating[:, ::1] xpad_scratch,
                                     floating[:, ::1] gy_scratch, Py_ssize_t ow_padded,
                                     Py_ssize_t Hp, Py_ssize_t Wp, Py_ssize_t kh, Py_ssize_t kw,
                                     Py_ssize_t sh, Py_ssize_t pt, Py_ssize_t pl,
                                     Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t groups,
                                     int n_threads):
    """Per-thread partial grad_weight by pixel vectors (16 float32 pixels with the AVX-512
    tiles, 8 float32 or 4 float64 with the AVX2 ones; see ``_conv_avx512.h``,
    ``_conv_avx2.h``), for geometries :func:`grad_weight_pixels_fit` accepts.

    vpart (n_threads, C_out*C_in/g*kh*kw*16), zeroed: lane-wise partial sums, laid out
    [C_out][C_in/g][kh][kw][16] (the AVX2 kernels fill the first 8 or 4 of each 16); the
    caller sums the 16, then threads in thread order (static schedule: the same images go
    to the same thread each run). bias_partial (n_threads, C_out), zeroed: per-thread
    grad_bias. xpad_scratch: (n_threads, >= C_in/g*Hp*Wp).

    The AVX2 kernels run on whole vectors of pixels: ``ow_padded`` is OW rounded up to
    them, each image's gradient is copied into gy_scratch (n_threads, >= C_out/g*OH*
    ow_padded) with zeros past OW, and Wp must be >= ow_padded + (kw - 1)*dw (the padded
    input's extra columns are zeros). The AVX-512 kernel reads grad_output as it lies
    (gy_scratch, ow_padded unused).
    """
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t C_out = grad_output.shape[1], OH = grad_output.shape[2]
    cdef Py_ssize_t OW = grad_output.shape[3]
    cdef Py_ssize_t cig = C // groups, cog = C_out // groups
    cdef Py_ssize_t per_group = cog * cig * kh * kw * 16
    cdef Py_ssize_t t, n, g
    cdef bint avx512 = _use_avx512
    cdef floating* xp
    cdef floating* gp
    if not (pixel_tiles_fit(floating is double, cog, 1) or _avx2_pixel_grad_weight_takes(cog, 1)):
        raise ValueError("the pixel grad_weight kernels do not take this geometry on this CPU")
    if (xpad_scratch.shape[0] < n_threads or vpart.shape[0] < n_threads
            or bias_partial.shape[0] < n_threads or (not avx512 and gy_scratch.shape[0] < n_threads)):
        raise ValueError("xpad_scratch, gy_scratch, vpart and bias_partial need a row per thread")
    if not avx512 and (ow_padded % (4 if floating is double else 8) or ow_padded < OW
                       or Wp < ow_padded + (kw - 1) * dw
                       or gy_scratch.shape[1] < cog * OH * ow_padded):
        raise ValueError("ow_padded, Wp or gy_scratch too small for the AVX2 pixel kernels")
    with nogil, parallel(num_threads=n_threads):
        xp = &xpad_scratch[threadid(), 0]
        gp = &gy_scratch[threadid(), 0]
        for t in prange(N * groups, schedule="static"):
            n = t // groups
            g = t % groups
            pad_image(&x[n, g * cig, 0, 0], cig, H, W, xp, Hp, Wp, pt, pl)
            if floating is float:
                if avx512:
                    fc_wgrad_pixels_f(xp, cig, Hp, Wp, &grad_output[n, g * cog, 0, 0], cog,
                                      &vpart[threadid(), g * per_group], OH, OW, kh, kw, sh,
                                      dh, dw)
                    fc_channel_sums_f(&grad_output[n, g * cog, 0, 0], cog, OH * OW,
                                      &bias_partial[threadid(), g * cog])
                    continue
            pad_rows(&grad_output[n, g * cog, 0, 0], cog * OH, OW, gp, ow_padded)
            if floating is float:
                fc_wgrad_pixels_avx2_f(xp, cig, Hp, Wp, gp, cog, &vpart[threadid(), g * per_group],
                                       OH, ow_padded, kh, kw, sh, dh, dw, OW)
                fc_channel_sums_avx2_f(&grad_output[n, g * cog, 0, 0], cog, OH * OW,
                                       &bias_partial[threadid(), g * cog])
            else:
                fc_wgrad_pixels_avx2_d(xp, cig, Hp, Wp, gp, cog, &vpart[threadid(), g * per_group],
                                       OH, ow_padded, kh, kw, sh, dh, dw, OW)
                fc_channel_sums_avx2_d(&grad_output[n, g * cog, 0, 0], cog, OH * OW,
                                       &bias_partial[threadid(), g * cog])


from ._winograd cimport (
    fc_wino_input_f, fc_wino_input_d, fc_wino_output_f, fc_wino_output_d, fc_wino_scatter_f,
    fc_wino_input_avx512_f, fc_wino_scatter_avx512_f, fc_wino_gather_f, fc_wino_gather_d,
    fc_wino_gy_f, fc_wino_gy_d, fc_wino_scatter_d, fc_wino_input_avx2_f, fc_wino_scatter_avx2_f)
from ._gemm_avx2 cimport fc_sgemm_axpy_block_avx2


def winograd_scratch_len(Py_ssize_t C, Py_ssize_t C_out, Py_ssize_t OH, Py_ssize_t OW,
                         Py_ssize_t chunk):
    """Elements of per-thread scratch :func:`conv2d_winograd_forward` needs."""
    cdef Py_ssize_t th = (OH + 1) // 2, tw = (OW + 1) // 2
    cdef Py_ssize_t hp = 2 * th + 2, wp = 2 * tw + 2, tc = chunk * th * tw
    return C * hp * wp + 8 * (th + 1) * tw + 16 * C * tc + 16 * C_out * tc + 4 * tc


def conv2d_winograd_forward(const floating[:, :, :, ::1] x, const floating[:, :, ::1] u,
                            const floating[::1] bias, floating[:, :, :, ::1] out,
                            floating[:, ::1] scratch, Py_ssize_t pt, Py_ssize_t pl,
                            Py_ssize_t chunk, int n_threads):
    """out (N, C_out, OH, OW) = 3x3 stride-1 correlation of x (padding pt, pl) + bias, by
    Winograd F(2x2, 3x3) (``_winograd.h``).

    u: (16, C_out, C_in) transformed weights G g G^T. Images go in chunks of ``chunk``
    (a fixed number, whatever the thread count: every output is computed by one thread,
    the same way, so results do not depend on the thread count); scratch: (n_threads,
    >= :func:`winograd_scratch_len`). BLAS must be pinned to one thread by the caller.
    """
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t Co = out.shape[1], OH = out.shape[2], OW = out.shape[3]
    cdef Py_ssize_t th = (OH + 1) // 2, tw = (OW + 1) // 2, ti = th * tw
    cdef Py_ssize_t hp = 2 * th + 2, wp = 2 * tw + 2, tc = chunk * ti
    cdef Py_ssize_t n_chunks = (N + chunk - 1) // chunk
    cdef Py_ssize_t k, n0, nc, nt, i, xi, co
    cdef floating* xp
    cdef floating* e
    cdef floating* V
    cdef floating* M
    cdef floating* y
    # float32 with AVX-512: the input transform reads x itself (no padded copy) while a
    # padded row fits two vectors, and the scatter is vectorised while a row fits one
    cdef bint avx_in = _use_avx512 and floating is float and tw <= 15
    cdef bint avx_out = _use_avx512 and floating is float and tw <= 8
    # float32 on AVX2 CPUs: the 16 small products by _gemm_avx2.h's blocks (a BLAS call's
    # packing and dispatch cost about as much as these products' FLOPs)
    # (and the transforms' AVX2 split and scatter)
    cdef bint avx2_products = _use_avx2 and not _use_avx512 and floating is float
    cdef Py_ssize_t bi, bj
    with nogil, parallel(num_threads=n_threads):
        xp = &scratch[threadid(), 0]
        e = xp + C * hp * wp
        V = e + 8 * (th + 1) * tw
        M = V + 16 * C * tc
        y = M + 16 * Co * tc
        for k in prange(n_chunks, schedule="static"):
            n0 = k * chunk
            nc = min(chunk, N - n0)
            nt = nc * ti
            for i in range(nc):
                if floating is float:
                    if avx_in:
                        fc_wino_input_avx512_f(&x[n0 + i, 0, 0, 0], C, H, W, pt, pl, th, tw, V,
                                               nt, C * nt, i * ti, e)
                        continue
                pad_image(&x[n0 + i, 0, 0, 0], C, H, W, xp, hp, wp, pt, pl)
                if floating is float:
                    if avx2_products:
                        fc_wino_input_avx2_f(xp, C, hp, wp, th, tw, V, nt, C * nt, i * ti, e)
                    else:
                        fc_wino_input_f(xp, C, hp, wp, th, tw, V, nt, C * nt, i * ti, e)
                else:
                    fc_wino_input_d(xp, C, hp, wp, th, tw, V, nt, C * nt, i * ti, e)
            for xi in range(16):
                if floating is float:
                    if avx2_products:
                        for bi in range(0, Co, 6):
                            for bj in range(0, nt, 16):
                                fc_sgemm_axpy_block_avx2(Co, nt, C, &u[xi, 0, 0], C, 1,
                                                         V + xi * C * nt, nt, M + xi * Co * nt,
                                                         nt, bi, bj)
                        continue
                gemm_rm(78, 78, <int>Co, <int>nt, <int>C, <floating>1, &u[xi, 0, 0], <int>C,
                        V + xi * C * nt, <int>nt, <floating>0, M + xi * Co * nt, <int>nt)
            for co in range(Co):
                if floating is float:
                    fc_wino_output_f(M + co * nt, Co * nt, nt, bias[co], y)
                    for i in range(nc):
                        if avx_out:
                            fc_wino_scatter_avx512_f(y, nt, i * ti, th, tw, &out[n0 + i, co, 0, 0],
                                                     OH, OW, OW)
                        elif avx2_products:
                            fc_wino_scatter_avx2_f(y, nt, i * ti, th, tw, &out[n0 + i, co, 0, 0],
                                                   OH, OW, OW)
                        else:
                            fc_wino_scatter_f(y, nt, i * ti, th, tw, &out[n0 + i, co, 0, 0], OH,
                                              OW, OW)
                else:
                    fc_wino_output_d(M + co * nt, Co * nt, nt, bias[co], y)
                    for i in range(nc):
                        fc_wino_scatter_d(y, nt, i * ti, th, tw, &out[n0 + i, co, 0, 0], OH,
                                          OW, OW)


def conv2d_winograd_grad_weight(const floating[:, :, :, ::1] grad_output,
                                const floating[:, :, :, ::1] x, floating[:, ::1] partial,
                                floating[:, ::1] scratch, Py_ssize_t pt, Py_ssize_t pl,
                                Py_ssize_t chunk, int n_threads):
    """Per-thread partial dU (16, C_out, C_in) of Winograd F(2x2, 3x3) grad_weight (3x3,
    stride 1, padding pt, pl); the caller sums the rows of ``partial`` (zeroed,
    (n_threads, 16*C_out*C_in)) in thread order and maps dU back by G^T dU G. Chunks of
    ``chunk`` images, static schedule: the same chunks go to the same thread each run.
    scratch as for :func:`conv2d_winograd_forward`; BLAS pinned to one thread.
    """
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t Co = grad_output.shape[1], OH = grad_output.shape[2]
    cdef Py_ssize_t OW = grad_output.shape[3]
    cdef Py_ssize_t th = (OH + 1) // 2, tw = (OW + 1) // 2, ti = th * tw
    cdef Py_ssize_t hp = 2 * th + 2, wp = 2 * tw + 2, tc = chunk * ti
    cdef Py_ssize_t n_chunks = (N + chunk - 1) // chunk
    cdef Py_ssize_t k, n0, nc, nt, i, xi, co
    cdef floating* xp
    cdef floating* e
    cdef floating* V
    cdef floating* GY
    cdef floating* y
    cdef floating* part
    cdef bint avx_in = _use_avx512 and floating is float and tw <= 15
    cdef bint avx2_products = _use_avx2 and not _use_avx512 and floating is float  # (the split)
    with nogil, parallel(num_threads=n_threads):
        xp = &scratch[threadid(), 0]
        e = xp + C * hp * wp
        V = e + 8 * (th + 1) * tw
        GY = V + 16 * C * tc
        y = GY + 16 * Co * tc
        part = &partial[threadid(), 0]
        for k in prange(n_chunks, schedule="static"):
            n0 = k * chunk
            nc = min(chunk, N - n0)
            nt = nc * ti
            for i in range(nc):
                if floating is float:
                    if avx_in:
                        fc_wino_input_avx512_f(&x[n0 + i, 0, 0, 0], C, H, W, pt, pl, th, tw, V,
                                               nt, C * nt, i * ti, e)
                        continue
                pad_image(&x[n0 + i, 0, 0, 0], C, H, W, xp, hp, wp, pt, pl)
                if floating is float:
                    if avx2_products:
                        fc_wino_input_avx2_f(xp, C, hp, wp, th, tw, V, nt, C * nt, i * ti, e)
                    else:
                        fc_wino_input_f(xp, C, hp, wp, th, tw, V, nt, C * nt, i * ti, e)
                else:
                    fc_wino_input_d(xp, C, hp, wp, th, tw, V, nt, C * nt, i * ti, e)
            for co in range(Co):
                for i in range(nc):
                    if floating is float:
                        fc_wino_gather_f(&grad_output[n0 + i, co, 0, 0], OH, OW, th, tw, y, nt,
                                         i * ti)
                    else:
                        fc_wino_gather_d(&grad_output[n0 + i, co, 0, 0], OH, OW, th, tw, y, nt,
                                         i * ti)
                if floating is float:
                    fc_wino_gy_f(y, nt, GY + co * nt, Co * nt)
                else:
                    fc_wino_gy_d(y, nt, GY + co * nt, Co * nt)
            for xi in range(16):
                gemm_rm(78, 84, <int>Co, <int>C, <int>nt, <floating>1, GY + xi * Co * nt,
                        <int>nt, V + xi * C * nt, <int>nt, <floating>1, part + xi * Co * C,
                        <int>C)
