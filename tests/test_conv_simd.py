"""Both register-tile families of the direct kernels against the references.

On a CPU with AVX-512 the direct algorithm runs the tiles of ``_conv_avx512.h`` (16 or 32
output channels x 7-14 pixels, two rows of 7 for narrow images, row-reuse tiles for 3- and 5-wide kernels, and for float32
with up to 8 channels at stride 1 the pixel tile, 8 channels x 16 pixels); elsewhere, and with
``_direct.use_avx512(False)``, the AVX2 tiles of ``_conv_avx2.h`` (where the CPU has AVX2 and
FMA), and with ``use_avx2(False)`` too the portable tiles of ``_conv_blocked.h``. The other test
modules use few channels; these sweeps use enough channels to fill (and partly fill)
the wide tiles, and every stride phase of grad_input.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastconv
from fastconv._kernels import _direct
from fastconv.functional import conv as F
from reference import conv2d_grads_ref, conv2d_ref, tol

def _draw_case(data):
    """A random geometry with 1-40 output and 1-20 input channels per group."""
    groups = data.draw(st.integers(1, 2))
    cig, cog = data.draw(st.integers(1, 20)), data.draw(st.integers(1, 40))
    kh, kw = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 5))
    s = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)))
    d = (data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2)))
    p = (data.draw(st.integers(0, 3)), data.draw(st.integers(0, 3)))
    H = data.draw(st.integers(max(1, d[0] * (kh - 1) + 1 - 2 * p[0]), 17))
    W = data.draw(st.integers(max(1, d[1] * (kw - 1) + 1 - 2 * p[1]), 31))
    N = data.draw(st.integers(1, 3))
    seed = data.draw(st.integers(0, 2**32 - 1))
    return (N, groups, cig, cog, H, W, kh, kw, s, p, d), np.random.default_rng(seed)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), dtype=st.sampled_from([np.float32, np.float64]))
def test_forward_wide_channels(simd, data, dtype):
    (N, groups, cig, cog, H, W, kh, kw, s, p, d), rng = _draw_case(data)
    x = rng.standard_normal((N, cig * groups, H, W)).astype(dtype)
    w = rng.standard_normal((cog * groups, cig, kh, kw)).astype(dtype)
    b = rng.standard_normal(cog * groups).astype(dtype)
    y = fastconv.conv2d(x, w, b, stride=s, padding=p, dilation=d, groups=groups,
                        algorithm="direct")
    ref = conv2d_ref(x, w, b, s, p, d, groups)
    scale = np.sqrt(cig * kh * kw)  # float32 error grows with the reduction length
    np.testing.assert_allclose(y, ref, rtol=tol(dtype)["rtol"],
                               atol=tol(dtype)["atol"] * scale)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), dtype=st.sampled_from([np.float32, np.float64]))
def test_backward_wide_channels(simd, data, dtype):
    (N, groups, cig, cog, H, W, kh, kw, s, p, d), rng = _draw_case(data)
    x = rng.standard_normal((N, cig * groups, H, W)).astype(dtype)
    w = rng.standard_normal((cog * groups, cig, kh, kw)).astype(dtype)
    y_shape = fastconv.conv2d(x, w, stride=s, padding=p, dilation=d, groups=groups).shape
    gy = rng.standard_normal(y_shape).astype(dtype)
    gi, gw, _ = fastconv.conv2d_backward(gy, x, w, stride=s, padding=p, dilation=d,
                                         groups=groups, algorithm="direct")
    gi_ref, gw_ref = conv2d_grads_ref(gy, x, w, s, p, d, groups)
    t = tol(dtype)
    # grad_input sums C_out/g * kh * kw terms; grad_weight sums N * OH * OW
    np.testing.assert_allclose(gi, gi_ref, rtol=t["rtol"], atol=t["atol"] * np.sqrt(cog * kh * kw))
    np.testing.assert_allclose(gw, gw_ref, rtol=t["rtol"], atol=t["atol"] * np.sqrt(gy[0, 0].size * N))


@pytest.mark.parametrize(
    "shape",
    [
        # (N, C_in, H, W, C_out, k, stride, pad): the benchmark shapes, scaled down in N/H/W
        (2, 6, 14, 14, 16, 5, 1, 0),  # lenet_c3: the 16-channel x 10-pixel tile
        (1, 64, 20, 20, 64, 3, 1, 1),  # vgg-like: 32 x 14 tiles, exact width split
        (1, 32, 14, 14, 48, 3, 2, 1),  # resnet-like stride 2: four grad_input phases
        (1, 20, 10, 28, 24, 3, 2, 1),  # stride-2 phases 14 pixels wide: both spread stores
        (2, 17, 9, 23, 33, 3, 1, 0),  # partial channel and pixel blocks everywhere
        (2, 5, 9, 30, 12, 3, 1, 1),  # one partial vector of channels: 3-wide row-reuse tile
        (2, 1, 12, 28, 6, 5, 1, 2),  # lenet_c1-like: the pixel tile, 28 = 16 + 12 pixels
        (2, 6, 11, 14, 16, 5, 1, 0),  # lenet_c3-like, odd rows: grad_input by the pixel tile
        (1, 6, 11, 21, 8, 3, 2, 1),  # stride-2 grad_input phases through the pixel tile
        (2, 9, 7, 40, 3, 3, 1, 1),  # 3 channels, 40 = 16 + 16 + 8 pixels
        (2, 32, 14, 14, 64, 3, 2, 1),  # ResNet-8 32->64 stride 2 to 7x7: the two-row tile
        (3, 24, 7, 5, 40, 3, 1, 1),  # two-row tile: odd last row, 5 of 7 pixels, 40 = 32 + 8
    ],
)
def test_benchmark_like_shapes(simd, shape, rng):
    N, C, H, W, C_out, k, s, p = shape
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w = rng.standard_normal((C_out, C, k, k)).astype(np.float32)
    b = rng.standard_normal(C_out).astype(np.float32)
    y = fastconv.conv2d(x, w, b, stride=s, padding=p, algorithm="direct")
    np.testing.assert_allclose(y, conv2d_ref(x, w, b, s, p), rtol=1e-4, atol=1e-3)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    gi, gw, gb = fastconv.conv2d_backward(gy, x, w, stride=s, padding=p, algorithm="direct")
    gi_ref, gw_ref = conv2d_grads_ref(gy, x, w, s, p)
    np.testing.assert_allclose(gi, gi_ref, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(gw, gw_ref, rtol=1e-4, atol=1e-2)
    np.testing.assert_allclose(gb, gy.sum((0, 2, 3)), rtol=1e-4, atol=1e-3)


def test_grad_input_phase_without_taps_is_zero(simd, rng):
    """Stride 3 with a 2-tap kernel: one input row in three gets no gradient at all."""
    x = rng.standard_normal((1, 8, 9, 9))
    w = rng.standard_normal((8, 8, 2, 2))
    gy = rng.standard_normal(fastconv.conv2d(x, w, stride=3).shape)
    gi, _, _ = fastconv.conv2d_backward(gy, x, w, stride=3, algorithm="direct")
    assert np.all(gi[:, :, 2::3] == 0) and np.all(gi[:, :, :, 2::3] == 0)
    np.testing.assert_allclose(gi, conv2d_grads_ref(gy, x, w, 3)[0], rtol=1e-10, atol=1e-10)


def test_use_avx512_switch_round_trips():
    previous = _direct.use_avx512(False), _direct.use_avx2(False)
    assert _direct.use_avx512() is False and _direct.use_avx2() is False
    assert _direct.forward_tile(False, 64, 56)[0] == -1  # portable tile while switched off
    _direct.use_avx512(previous[0])
    _direct.use_avx2(previous[1])
    assert (_direct.use_avx512(), _direct.use_avx2()) == previous


@pytest.mark.skipif(not _direct.AVX2_AVAILABLE, reason="no AVX2 + FMA on this CPU or build")
def test_avx2_tile_choice():
    """With the AVX-512 tiles off, forward_tile picks from the AVX2 table: the row-reuse
    (diagonal, one vector of channels) tiles for 3- and 5-wide kernels at stride 1, else two
    vectors of 8 (float32) or 4 (float64) channels above one vector's worth; the pixel width
    with the least padding."""
    previous = _direct.use_avx512(False), _direct.use_avx2(True)
    try:
        table = {t: (nv, owb, kw, sw) for t, nv, owb, kw, sw in _direct.avx2_tiles()}
        assert min(table) == _direct.AVX2_TILE_BASE and len(table) >= 10
        for is_double, cog, width, kw, sw, dw, want_nv, want_kw in [
            (False, 16, 28, 3, 1, 1, 1, 3), (False, 64, 7, 3, 1, 1, 1, 3),
            (False, 6, 28, 5, 1, 1, 1, 5), (False, 32, 14, 3, 2, 1, 1, 3),
            (False, 16, 14, 1, 1, 1, 2, 0), (True, 16, 28, 3, 1, 1, 1, 3),
            (True, 4, 10, 5, 1, 1, 1, 5), (False, 32, 9, 3, 1, 1, 1, 3),
            (True, 16, 7, 3, 2, 1, 1, 3), (False, 16, 14, 5, 2, 1, 2, 0),  # no 5-wide stride 2
            (False, 16, 14, 3, 1, 2, 2, 0), (False, 8, 14, 3, 3, 1, 1, 0),  # dilation, stride 3
            (True, 5, 14, 3, 3, 1, 2, 0),
        ]:
            tile, cb, owb = _direct.forward_tile(is_double, cog, width, kw, sw, dw)
            nv, owb_t, kw_t, sw_t = table[tile]
            assert (nv, kw_t, owb_t) == (want_nv, want_kw, owb)
            assert sw_t == (sw if want_kw else 0)
            assert cb == nv * (4 if is_double else 8)
            # no tile of that kind wastes fewer pixels
            waste = -(-width // owb) * owb
            assert all(-(-width // o) * o >= waste for n, o, k, s in table.values()
                       if (n, k, s) == (nv, kw_t, sw_t))
        _direct.use_avx2(False)
        assert _direct.forward_tile(False, 64, 56, 3, 1, 1)[0] == -1
    finally:
        _direct.use_avx512(previous[0])
        _direct.use_avx2(previous[1])


def test_pixel_tile_choice():
    on = _direct.use_avx512()
    pixel = _direct.PIXEL_TILE
    # float32, up to 8 channels, stride 1 (any kernel width and dilation)
    assert (_direct.forward_tile(False, 6, 28, 5, 1, 1)[0] == pixel) is on
    assert (_direct.forward_tile(False, 8, 10, 3, 1, 2) == (pixel, 8, 16)) is on
    assert _direct.forward_tile(False, 9, 28, 5, 1, 1)[0] != pixel
    assert _direct.forward_tile(False, 6, 28, 5, 2, 1)[0] != pixel
    assert _direct.forward_tile(True, 6, 28, 5, 1, 1)[0] != pixel


@pytest.mark.skipif(not _direct.AVX2_AVAILABLE, reason="no AVX2 + FMA on this CPU or build")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_avx2_tile(dtype, monkeypatch, rng):
    """Each tile of the AVX2 table, forced, against the reference: forward (a partial last
    pixel block and a partial channel block) and backward, whose grad_input phases run the
    same tile on the flipped kernel."""
    previous = _direct.use_avx512(False), _direct.use_avx2(True)
    try:
        for tile, nv, owb, kw, sw in _direct.avx2_tiles():
            k, s = (kw, sw) if kw else (3, 2)
            lanes = 4 if dtype == np.float64 else 8
            cb = nv * lanes
            C_out = cb + 3  # a full and a partial block of channels
            W = (owb + 3) * s + k  # a partial last pixel block
            x = rng.standard_normal((2, 5, 9, W)).astype(dtype)
            w = rng.standard_normal((C_out, 5, k, k)).astype(dtype)
            b = rng.standard_normal(C_out).astype(dtype)
            monkeypatch.setattr(_direct, "forward_tile", lambda *a, t=(tile, cb, owb): t)
            y = fastconv.conv2d(x, w, b, stride=s, padding=1, algorithm="direct")
            t = tol(dtype)
            np.testing.assert_allclose(y, conv2d_ref(x, w, b, s, 1), rtol=t["rtol"],
                                       atol=t["atol"] * np.sqrt(5 * k * k), err_msg=str(tile))
            if kw == 0:  # grad_input's sub-kernels have other widths: only the general tiles
                gy = rng.standard_normal(y.shape).astype(dtype)
                gi = fastconv.conv2d_backward(gy, x, w, stride=s, padding=1, algorithm="direct")[0]
                np.testing.assert_allclose(gi, conv2d_grads_ref(gy, x, w, s, 1)[0], rtol=t["rtol"],
                                           atol=t["atol"] * np.sqrt(C_out * k * k), err_msg=str(tile))
            monkeypatch.undo()
    finally:
        _direct.use_avx512(previous[0])
        _direct.use_avx2(previous[1])


@pytest.mark.parametrize("C_out", [1, 4, 6, 8, 11])
def test_avx2_pixel_tile(C_out, monkeypatch, rng):
    """The AVX2 pixel tile (float32, 8 pixels of a channel to a vector), forced, against
    the reference: its 8-, 6- and 4-channel sums (C_out 11: a full block and one of 3), a
    partial last pixel block, dilation, and grad_input (its transposed convolutions run
    the same tile with pixel stride 1, also partial)."""
    if not _direct.AVX2_AVAILABLE:
        pytest.skip("no AVX2 + FMA on this CPU or build")
    previous = _direct.use_avx512(False), _direct.use_avx2(True)
    try:
        monkeypatch.setattr(_direct, "forward_tile", lambda *a: (_direct.AVX2_PIXEL_TILE, 8, 8))
        for k, dil, W in ((5, 1, 21), (3, 2, 13), (1, 1, 8)):
            x = rng.standard_normal((2, 3, 10, W)).astype(np.float32)
            w = rng.standard_normal((C_out, 3, k, k)).astype(np.float32)
            b = rng.standard_normal(C_out).astype(np.float32)
            y = fastconv.conv2d(x, w, b, padding=1, dilation=dil, algorithm="direct")
            t = tol(np.float32)
            ref = conv2d_ref(x, w, b, 1, 1, dil)
            np.testing.assert_allclose(y, ref, rtol=t["rtol"], atol=t["atol"] * np.sqrt(3 * k * k))
            gy = rng.standard_normal(y.shape).astype(np.float32)
            gi = fastconv.conv2d_backward(gy, x, w, padding=1, dilation=dil, algorithm="direct")[0]
            np.testing.assert_allclose(gi, conv2d_grads_ref(gy, x, w, 1, 1, dil)[0], rtol=t["rtol"],
                                       atol=t["atol"] * np.sqrt(C_out * k * k))
    finally:
        _direct.use_avx512(previous[0])
        _direct.use_avx2(previous[1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("C_out", [1, 2, 3, 6, 8])
def test_avx2_pixel_grad_weight(dtype, C_out, monkeypatch, rng):
    """The AVX2 pixel grad_weight kernels (8 float32 / 4 float64 pixels a vector, blocks of
    2 channels x 5 kernel columns), forced, against the float64 reference: odd channel
    counts (a block that repeats its channel), kernels 5, 7 (a 5- and a 2-column block),
    3 dilated and 1 wide, widths that leave a partial vector (grad_output copied into
    zero-padded rows), two groups, and grad_bias."""
    if not _direct.AVX2_AVAILABLE:
        pytest.skip("no AVX2 + FMA on this CPU or build")
    previous = _direct.use_avx512(False), _direct.use_avx2(True)
    try:
        monkeypatch.setattr(_direct, "grad_weight_pixels_fit", lambda *a: True)
        for k, dil, W, groups in ((5, 1, 21, 1), (7, 1, 12, 1), (3, 2, 13, 2), (1, 1, 9, 1)):
            x = rng.standard_normal((3, 2 * groups, 9, W)).astype(dtype)
            w = rng.standard_normal((C_out * groups, 2, k, k)).astype(dtype)
            y_shape = fastconv.conv2d(x, w, padding=2, dilation=dil, groups=groups).shape
            gy = rng.standard_normal(y_shape).astype(dtype)
            _, gw, gb = fastconv.conv2d_backward(gy, x, w, padding=2, dilation=dil, groups=groups,
                                                 algorithm="direct", needs_input_grad=False)
            gw_ref = conv2d_grads_ref(gy, x, w, 1, 2, dil, groups)[1]
            t = tol(dtype)
            np.testing.assert_allclose(gw, gw_ref, rtol=t["rtol"],
                                       atol=t["atol"] * np.sqrt(gy[0, 0].size * 3), err_msg=str(k))
            np.testing.assert_allclose(gb, gy.astype(np.float64).sum((0, 2, 3)), rtol=t["rtol"],
                                       atol=t["atol"] * np.sqrt(gy[0, 0].size * 3))
            assert gw.dtype == gb.dtype == dtype
    finally:
        _direct.use_avx512(previous[0])
        _direct.use_avx2(previous[1])


def test_avx2_pixel_grad_weight_choice():
    """Where the AVX2 pixel grad_weight runs unforced (measured on an AMD Zen 1)."""
    previous = _direct.use_avx512(False), _direct.use_avx2(True)
    try:
        on = _direct.AVX2_AVAILABLE
        assert _direct.grad_weight_pixels_fit(False, 6, 1, 28) is on  # lenet_c1
        assert _direct.grad_weight_pixels_fit(True, 6, 1, 28) is on
        assert not _direct.grad_weight_pixels_fit(False, 6, 1, 10)  # 16 lanes for 10 pixels
        assert not _direct.grad_weight_pixels_fit(True, 8, 1, 28)  # full 4-channel blocks
        assert not _direct.grad_weight_pixels_fit(False, 9, 1, 28)
        assert not _direct.grad_weight_pixels_fit(False, 6, 2, 28)
    finally:
        _direct.use_avx512(previous[0])
        _direct.use_avx2(previous[1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_avx2_scatter_grad_input(dtype, monkeypatch, rng):
    """The AVX2 products-and-scatter grad_input (stride 1, <= 8 input channels per group)
    against the float64 reference: padding below, at and past k - 1 (gradients that reach
    no input, inputs no gradient reaches), dilation, 7-wide kernels (two column blocks)
    and 1-wide ones, two groups, rows wider than 4 vectors, narrower than one, and
    bands of a few gradient rows (the band size forced down)."""
    if not _direct.AVX2_AVAILABLE:
        pytest.skip("no AVX2 + FMA on this CPU or build")
    from fastconv.functional import conv as conv_mod
    previous = _direct.use_avx512(False), _direct.use_avx2(True)
    try:
        cases = [  # (N, C_in/g, C_out/g, groups, H, W, k, pad, dilation)
            (2, 6, 16, 1, 14, 14, 5, 0, 1),  # lenet_c3
            (2, 1, 6, 1, 28, 28, 5, 2, 1),  # lenet_c1
            (1, 3, 5, 2, 9, 37, 3, 1, 2),
            (2, 8, 3, 1, 7, 5, 7, 3, 1),
            (1, 2, 4, 1, 6, 3, 1, 0, 1),
            (1, 4, 9, 1, 5, 11, 3, 4, 1),  # padding past k - 1
            (1, 5, 7, 1, 12, 20, 5, 1, 1),
        ]
        for band_bytes in (conv_mod.SCATTER_BAND_BYTES, 64):
            monkeypatch.setattr(conv_mod, "SCATTER_BAND_BYTES", band_bytes)
            for N, cig, cog, groups, H, W, k, p, d in cases:
                x = rng.standard_normal((N, cig * groups, H, W)).astype(dtype)
                w = rng.standard_normal((cog * groups, cig, k, k)).astype(dtype)
                y_shape = fastconv.conv2d(x, w, padding=p, dilation=d, groups=groups).shape
                gy = rng.standard_normal(y_shape).astype(dtype)
                g = conv_mod.conv_geometry(x.shape, w.shape, 1, p, d, groups)
                gi = np.full(x.shape, np.nan, dtype)  # every element must be written
                conv_mod._scatter_grad_input(gy, w, g, gi, 2)
                t = tol(dtype)
                np.testing.assert_allclose(gi, conv2d_grads_ref(gy, x, w, 1, p, d, groups)[0],
                                           rtol=t["rtol"], atol=t["atol"] * np.sqrt(cog * k * k),
                                           err_msg=str((N, cig, cog, groups, H, W, k, p, d)))
        # a NaN in grad_output reaches exactly the inputs its taps touch, no others
        x = rng.standard_normal((1, 6, 14, 14)).astype(dtype)
        w = rng.standard_normal((16, 6, 5, 5)).astype(dtype)
        gy = rng.standard_normal((1, 16, 10, 10)).astype(dtype)
        gy[0, 3, 9, 9] = np.nan
        g = conv_mod.conv_geometry(x.shape, w.shape, 1, 0, 1, 1)
        gi = conv_mod._scatter_grad_input(gy, w, g, np.empty(x.shape, dtype), 1)
        expect = np.zeros((14, 14), bool)
        expect[9:, 9:] = True
        assert (np.isnan(gi[0]) == expect).all()
    finally:
        _direct.use_avx512(previous[0])
        _direct.use_avx2(previous[1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_avx2_scatter_narrow_rows_stay_in_their_plane(dtype, rng):
    """Rows narrower than half a vector (W 1-3): a row's last vector may be stored whole
    only where the rest of it lies in the same plane. grad_input is a view into a larger
    buffer whose values after it (-0.0) must come back untouched, over several images and
    groups on two threads."""
    if not _direct.AVX2_AVAILABLE:
        pytest.skip("no AVX2 + FMA on this CPU or build")
    from fastconv.functional import conv as conv_mod
    previous = _direct.use_avx512(False), _direct.use_avx2(True)
    try:
        for W, k in ((1, 1), (3, 1), (2, 5)):
            x = rng.standard_normal((3, 4, 6, W)).astype(dtype)
            w = rng.standard_normal((6, 2, k, 1)).astype(dtype)  # groups 2, (k, 1) kernels
            p = ((k - 1) // 2, 0)
            g = conv_mod.conv_geometry(x.shape, w.shape, 1, p, 1, 2)
            gy = rng.standard_normal(g.output_shape).astype(dtype)
            # -0.0 around it: a store of "+ 0" past the planes would clear the sign bit
            buf = np.full(x.size + 64, -0.0, dtype)
            gi = buf[32:32 + x.size].reshape(x.shape)
            conv_mod._scatter_grad_input(gy, w, g, gi, 2)
            assert np.signbit(buf[:32]).all() and np.signbit(buf[32 + x.size:]).all()
            t = tol(dtype)
            np.testing.assert_allclose(gi, conv2d_grads_ref(gy, x, w, 1, p, 1, 2)[0],
                                       rtol=t["rtol"], atol=t["atol"] * 4, err_msg=str((W, k)))
    finally:
        _direct.use_avx512(previous[0])
        _direct.use_avx2(previous[1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_avx2_pixel_grad_weight_inf_stays_in_its_taps(dtype, monkeypatch, rng):
    """An Inf in the last input column reaches only the taps that read it: the padded
    pixel lanes (gradient zeros) of a row's last vector also read that column, and their
    products (0 * Inf) must not reach grad_weight."""
    if not _direct.AVX2_AVAILABLE:
        pytest.skip("no AVX2 + FMA on this CPU or build")
    previous = _direct.use_avx512(False), _direct.use_avx2(True)
    try:
        monkeypatch.setattr(_direct, "grad_weight_pixels_fit", lambda *a: True)
        x = rng.standard_normal((2, 1, 32, 30)).astype(dtype)  # OW 26: a partial vector
        x[0, 0, 5, 29] = np.inf
        w = rng.standard_normal((6, 1, 5, 5)).astype(dtype)
        gy = rng.standard_normal((2, 6, 28, 26)).astype(dtype)
        _, gw, _ = fastconv.conv2d_backward(gy, x, w, algorithm="direct", needs_input_grad=False)
        ref = conv2d_grads_ref(gy, x, w)[1]
        assert (np.isfinite(gw) == np.isfinite(ref)).all()
        assert not np.isfinite(ref[:, 0, :, 4]).all() and np.isfinite(ref[:, 0, :, :4]).all()
        t = tol(dtype)
        fin = np.isfinite(ref)
        np.testing.assert_allclose(gw[fin], ref[fin], rtol=t["rtol"], atol=t["atol"] * 40)
    finally:
        _direct.use_avx512(previous[0])
        _direct.use_avx2(previous[1])


@pytest.mark.skipif(not _direct.AVX2_AVAILABLE, reason="no AVX2 + FMA on this CPU or build")
def test_avx2_transposed_tile_choice():
    """transposed_tile takes 3-wide kernels at column stride 2 without column dilation,
    pad_left 0-2 and more than half a vector of input channels, only with the AVX2 tiles in
    use; the tile is built for r = 2 * left + pad_left and wastes the fewest pixels."""
    previous = _direct.use_avx512(False), _direct.use_avx2(True)
    try:
        table = {t: (nv, owb, r) for t, nv, owb, r in _direct.avx2_transposed_tiles()}
        assert len(table) >= 2 and all(t > _direct.AVX2_PIXEL_TILE for t in table)
        for is_double, cig, width, pl in [(False, 16, 28, 1), (False, 32, 14, 1), (True, 16, 28, 0),
                                          (False, 5, 9, 2), (True, 3, 30, 1), (False, 128, 1, 0)]:
            tile, cb, owb, left, span = _direct.transposed_tile(is_double, cig, width, 3, 2, 1, pl)
            nv, owb_t, r = table[tile]
            assert (owb, cb) == (owb_t, nv * (4 if is_double else 8))
            assert r == 2 * left + pl and left == (1 if pl < 2 else 0)
            assert span == (owb - 1 + r) // 2 + 1
            waste = -(-width // owb) * owb
            assert all(-(-width // o) * o >= waste for n, o, rr in table.values() if rr == r)
        for args in [(False, 16, 28, 5, 2, 1, 1), (False, 16, 28, 3, 1, 1, 1),
                     (False, 16, 28, 3, 3, 1, 1), (False, 16, 28, 3, 2, 2, 1),
                     (False, 16, 28, 3, 2, 1, 3), (False, 4, 28, 3, 2, 1, 1),
                     (True, 2, 28, 3, 2, 1, 1)]:
            assert _direct.transposed_tile(*args) is None, args
        _direct.use_avx512(True)
        if _direct.use_avx512():  # the CPU has AVX-512: its tiles take every grad_input
            assert _direct.transposed_tile(False, 16, 28, 3, 2, 1, 1) is None
    finally:
        _direct.use_avx512(previous[0])
        _direct.use_avx2(previous[1])


@pytest.mark.skipif(not _direct.AVX2_AVAILABLE, reason="no AVX2 + FMA on this CPU or build")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_avx2_transposed_tile(dtype, monkeypatch, rng):
    """Each transposed tile, forced, against the reference grad_input: the paddings it is
    built for, row strides 1-3 (with row dilation), groups, a partial channel block, widths
    with a partial last pixel block, narrower than one block and 1 pixel wide. grad_input
    starts as NaN canaries: every element must be written (rows no kernel row reaches
    with zeros)."""
    previous = _direct.use_avx512(False), _direct.use_avx2(True)
    lanes = 4 if dtype == np.float64 else 8
    t = tol(dtype)
    try:
        for tile, nv, owb, r in _direct.avx2_transposed_tiles():
            for pl in [p for p in (0, 1, 2) if 2 * (1 if p < 2 else 0) + p == r]:
                left = 1 if pl < 2 else 0
                choice = (tile, nv * lanes, owb, left, (owb - 1 + r) // 2 + 1)
                monkeypatch.setattr(_direct, "transposed_tile", lambda *a, c=choice: c)
                for (N, Ci, Co, H, W, sh, ph, dh, groups) in [
                        (2, lanes + 3, 7, 9, owb + 5, 2, 1, 1, 1), (1, 2 * lanes, 5, 7, 2 * owb, 1, 0, 1, 1),
                        (2, 6, 4, 11, 3, 3, 2, 2, 2), (1, lanes, 3, 5, 1, 2, 1, 1, 1),
                        (1, lanes + 1, 9, 4, owb - 1, 2, 0, 1, 1)]:
                    if W + 2 * pl < 3:
                        continue
                    x = rng.standard_normal((N, Ci, H, W)).astype(dtype)
                    w = rng.standard_normal((Co, Ci // groups, 3, 3)).astype(dtype)
                    g = F.conv_geometry(x.shape, w.shape, (sh, 2), (ph, pl), (dh, 1), groups)
                    gy = rng.standard_normal(g.output_shape).astype(dtype)
                    gi = np.full(x.shape, np.nan, dtype)
                    F.conv2d_backward_unchecked(gy, x, w, g, "direct", True, gi, False)
                    ref = conv2d_grads_ref(gy, x, w, (sh, 2), (ph, pl), (dh, 1), groups)[0]
                    np.testing.assert_allclose(gi, ref, rtol=t["rtol"],
                                               atol=t["atol"] * np.sqrt(Co * 9),
                                               err_msg=str((tile, pl, N, Ci, Co, H, W, sh)))
                monkeypatch.undo()
    finally:
        _direct.use_avx512(previous[0])
        _direct.use_avx2(previous[1])


@pytest.mark.skipif(not _direct.AVX2_AVAILABLE, reason="no AVX2 + FMA on this CPU / build")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_avx2_grad_weight_tile(dtype, rng):
    """The AVX2 whole-kernel grad_weight tile (3x3, one vector of channels) and the portable
    kernel it competes with, each forced, against the reference grad_weight and grad_bias:
    strides, dilations, paddings, groups, partial channel blocks (5 channels, 13 a group), more
    than one block, images wider than one gradient chunk."""
    previous = _direct.use_avx512(False), _direct.use_avx2(True)
    lanes = 4 if dtype == np.float64 else 8
    t = tol(dtype)
    try:
        assert _direct.grad_weight_tile(dtype == np.float64, 16, 3, 3, True)[0] >= _direct.AVX2_TILE_BASE
        assert _direct.grad_weight_tile(dtype == np.float64, 16, 3, 3, False)[0] == -1
        assert _direct.grad_weight_tile(dtype == np.float64, 16, 5, 5, True)[0] == -1
        for (N, Ci, Co, H, W, s, p, d, groups) in [
                (2, 6, 2 * lanes, 9, 11, (1, 1), (1, 1), (1, 1), 1),
                (3, 4, 5, 10, 7, (2, 1), (0, 2), (1, 2), 1),
                (1, 8, 26, 8, 8, (1, 2), (2, 1), (2, 1), 2),
                (2, 3, 3 * lanes + 1, 6, 300, (1, 1), (1, 1), (1, 1), 1)]:
            x = rng.standard_normal((N, Ci, H, W)).astype(dtype)
            w = rng.standard_normal((Co, Ci // groups, 3, 3)).astype(dtype)
            g = F.conv_geometry(x.shape, w.shape, s, p, d, groups)
            gy = rng.standard_normal(g.output_shape).astype(dtype)
            ref = conv2d_grads_ref(gy, x, w, s, p, d, groups)[1]
            for avx2_tile in (True, False):
                gw, gb = F._direct_grad_weight(gy, x, g, 2, avx2_tile)
                np.testing.assert_allclose(gw, ref, rtol=t["rtol"],
                                           atol=t["atol"] * np.sqrt(N * g.OH * g.OW),
                                           err_msg=str((avx2_tile, N, Ci, Co, H, W, s, p, d)))
                np.testing.assert_allclose(gb, gy.sum((0, 2, 3)), rtol=t["rtol"],
                                           atol=t["atol"] * np.sqrt(N * g.OH * g.OW))
    finally:
        _direct.use_avx512(previous[0])
        _direct.use_avx2(previous[1])
