"""conv2d forward against scipy.signal.correlate2d (tests/reference.py)."""
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastconv
from fastconv import functional as F
from reference import conv2d_ref, random_array, tol

# (N, C_in, H, W, C_out, kernel, stride, padding, dilation, groups)
CASES = [
    (2, 3, 7, 6, 4, (3, 3), 1, 0, 1, 1),
    (2, 3, 9, 8, 4, (3, 3), 1, 1, 1, 1),
    (1, 2, 10, 7, 3, (3, 2), (2, 1), (1, 0), 1, 1),
    (2, 4, 11, 9, 6, (3, 3), 2, 2, 2, 2),
    (2, 4, 8, 8, 4, (3, 3), 1, "same", 1, 4),  # depthwise
    (1, 2, 8, 9, 2, (4, 2), 1, "same", (1, 2), 1),  # even kernel: extra pad bottom/right
    (3, 1, 6, 6, 2, (5, 5), 1, "valid", 1, 1),
    (2, 6, 7, 7, 4, (1, 1), 1, 0, 1, 2),
    (1, 3, 5, 5, 2, (2, 2), 3, 0, 1, 1),  # stride > kernel
    (2, 2, 5, 4, 3, (3, 3), (1, 2), 3, (2, 1), 1),  # padding == kernel size
]


def _run(case, dtype, layout, algorithm, rng):
    N, C, H, W, C_out, k, s, p, d, g = case
    x = random_array(rng, (N, C, H, W), dtype, layout)
    w = random_array(rng, (C_out, C // g, *k), dtype, layout)
    b = random_array(rng, (C_out,), dtype)
    y = fastconv.conv2d(x, w, b, stride=s, padding=p, dilation=d, groups=g, algorithm=algorithm)
    ref = conv2d_ref(x, w, b, s, p, d, g)
    return y, ref


@pytest.mark.parametrize("threads", [1, 2], indirect=True)
@pytest.mark.parametrize("algorithm", ["direct", "im2col", "auto"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=[str(i) for i in range(len(CASES))])
def test_forward_matches_scipy(case, dtype, algorithm, threads, rng):
    y, ref = _run(case, dtype, "C", algorithm, rng)
    assert y.dtype == dtype and y.flags.c_contiguous
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, **tol(dtype))


@pytest.mark.parametrize("layout", ["F", "strided"])
@pytest.mark.parametrize("algorithm", ["direct", "im2col"])
@pytest.mark.parametrize("case", CASES[:5], ids=[str(i) for i in range(5)])
def test_forward_any_memory_layout(case, layout, algorithm, rng):
    y, ref = _run(case, np.float64, layout, algorithm, rng)
    np.testing.assert_allclose(y, ref, **tol(np.float64))


def test_forward_read_only_inputs(rng):
    x = rng.standard_normal((2, 3, 6, 6))
    w = rng.standard_normal((2, 3, 3, 3))
    x.flags.writeable = False
    w.flags.writeable = False
    np.testing.assert_allclose(fastconv.conv2d(x, w), conv2d_ref(x, w), **tol(np.float64))


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    N=st.integers(1, 3),
    groups=st.integers(1, 3),
    cig=st.integers(1, 3),
    cog=st.integers(1, 3),
    H=st.integers(1, 12),
    W=st.integers(1, 12),
    algorithm=st.sampled_from(["direct", "im2col"]),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_forward_random_shapes(data, N, groups, cig, cog, H, W, algorithm, dtype):
    kh = data.draw(st.integers(1, 4))
    kw = data.draw(st.integers(1, 4))
    s = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)))
    d = (data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2)))
    p = (data.draw(st.integers(0, 3)), data.draw(st.integers(0, 3)))
    if H + 2 * p[0] < d[0] * (kh - 1) + 1 or W + 2 * p[1] < d[1] * (kw - 1) + 1:
        return  # kernel larger than the padded input: covered by the error tests
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((N, cig * groups, H, W)).astype(dtype)
    w = rng.standard_normal((cog * groups, cig, kh, kw)).astype(dtype)
    y = fastconv.conv2d(x, w, stride=s, padding=p, dilation=d, groups=groups, algorithm=algorithm)
    np.testing.assert_allclose(y, conv2d_ref(x, w, None, s, p, d, groups), **tol(dtype))


def test_output_size_formula():
    # floor((H + 2p - d(k-1) - 1)/s) + 1, over a grid of small values
    for H, k, s, p, d in itertools.product(range(1, 9), range(1, 4), range(1, 4), range(3), range(1, 3)):
        expected = (H + 2 * p - d * (k - 1) - 1) // s + 1
        got = F.conv_output_size(H, k, s, p, d)
        assert got == max(expected, 0)


@pytest.mark.parametrize(
    "H,k,s,p,expected",
    [(5, 2, 2, 0, 3), (6, 2, 2, 0, 3), (5, 3, 2, 1, 3), (4, 3, 3, 1, 2), (7, 3, 2, 1, 4)],
)
def test_output_size_ceil_mode_matches_pytorch(H, k, s, p, expected):
    # values from torch.nn.MaxPool2d(k, s, p, ceil_mode=True) output sizes
    assert F.conv_output_size(H, k, s, p, 1, ceil_mode=True) == expected


def test_edge_cases(rng):
    # kernel == input
    x = rng.standard_normal((2, 3, 5, 4))
    w = rng.standard_normal((2, 3, 5, 4))
    for algo in ("direct", "im2col"):
        y = fastconv.conv2d(x, w, algorithm=algo)
        assert y.shape == (2, 2, 1, 1)
        np.testing.assert_allclose(y, conv2d_ref(x, w), **tol(np.float64))
    # 1x1 conv is a matmul over channels
    w1 = rng.standard_normal((5, 3, 1, 1))
    np.testing.assert_allclose(
        fastconv.conv2d(x, w1), np.einsum("nchw,oc->nohw", x, w1[:, :, 0, 0]), rtol=1e-12
    )
    # batch 1, odd anisotropic sizes
    xb = rng.standard_normal((1, 2, 13, 3))
    wb = rng.standard_normal((3, 2, 3, 1))
    np.testing.assert_allclose(fastconv.conv2d(xb, wb, padding=(1, 0)), conv2d_ref(xb, wb, None, 1, (1, 0)),
                               **tol(np.float64))


@pytest.mark.parametrize("algorithm", ["direct", "im2col", "auto"])
def test_empty_batch(algorithm):
    x = np.zeros((0, 3, 8, 8), np.float32)
    w = np.ones((4, 3, 3, 3), np.float32)
    y = fastconv.conv2d(x, w, padding=1, algorithm=algorithm)
    assert y.shape == (0, 4, 8, 8) and y.dtype == np.float32
    gi, gw, gb = fastconv.conv2d_backward(np.zeros((0, 4, 8, 8), np.float32), x, w, padding=1,
                                          algorithm=algorithm)
    assert gi.shape == x.shape and not gw.any() and gb.shape == (4,)


def test_same_padding_keeps_size(rng):
    x = rng.standard_normal((1, 2, 9, 10))
    for k in [(1, 1), (2, 2), (3, 4), (5, 5)]:
        w = rng.standard_normal((3, 2, *k))
        y = fastconv.conv2d(x, w, padding="same")
        assert y.shape[2:] == (9, 10)
        np.testing.assert_allclose(y, conv2d_ref(x, w, None, 1, "same"), **tol(np.float64))


def test_large_image_uses_row_chunks(rng, monkeypatch):
    # A tiny chunk budget forces several row chunks per image; results must not change.
    x = rng.standard_normal((2, 3, 20, 17))
    w = rng.standard_normal((4, 3, 3, 3))
    full = fastconv.conv2d(x, w, padding=1, algorithm="im2col")
    grads = fastconv.conv2d_backward(np.ones_like(full), x, w, padding=1, algorithm="im2col")
    monkeypatch.setattr(F.conv, "IM2COL_CHUNK_BYTES", 3 * 3 * 3 * 17 * 8 * 3)  # 3 rows
    g = F.conv_geometry(x.shape, w.shape, 1, 1, 1, 1)
    assert F._im2col_rows_per_chunk(g, 8, 1, parallel_rows=False) == 3
    np.testing.assert_allclose(fastconv.conv2d(x, w, padding=1, algorithm="im2col"), full, rtol=1e-12)
    chunked = fastconv.conv2d_backward(np.ones_like(full), x, w, padding=1, algorithm="im2col")
    for a, b in zip(chunked, grads):
        np.testing.assert_allclose(a, b, rtol=1e-12)
