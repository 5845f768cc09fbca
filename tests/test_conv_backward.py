"""conv2d_backward: finite differences (float64), adjoint identities, direct == im2col."""
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastconv
from fastconv import functional as F
from reference import conv2d_ref, numerical_grad, tol

# (N, C_in, H, W, C_out, kernel, stride, padding, dilation, groups)
GRAD_CASES = [
    (2, 2, 5, 4, 3, (3, 3), 1, 1, 1, 1),
    (1, 4, 7, 6, 4, (3, 2), (2, 1), (1, 2), (1, 2), 2),
    (2, 3, 6, 6, 3, (3, 3), 1, "same", 2, 3),  # depthwise, dilated
    (1, 2, 6, 5, 2, (2, 2), 3, 0, 1, 1),  # stride > kernel
]


def _arrays(case, rng, dtype=np.float64):
    N, C, H, W, C_out, k, s, p, d, g = case
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((C_out, C // g, *k)).astype(dtype)
    b = rng.standard_normal(C_out).astype(dtype)
    kw = dict(stride=s, padding=p, dilation=d, groups=g)
    return x, w, b, kw


@pytest.mark.parametrize("algorithm", ["direct", "im2col"])
@pytest.mark.parametrize("case", GRAD_CASES, ids=[str(i) for i in range(len(GRAD_CASES))])
def test_gradients_match_finite_differences(case, algorithm, rng):
    x, w, b, kw = _arrays(case, rng)
    gy = rng.standard_normal(fastconv.conv2d(x, w, b, **kw).shape)

    def loss():
        return float(np.sum(conv2d_ref(x, w, b, kw["stride"], kw["padding"], kw["dilation"], kw["groups"]) * gy))

    gi, gw, gb = fastconv.conv2d_backward(gy, x, w, algorithm=algorithm, **kw)
    np.testing.assert_allclose(gi, numerical_grad(loss, x), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(gw, numerical_grad(loss, w), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(gb, numerical_grad(loss, b), rtol=1e-6, atol=1e-7)


@settings(max_examples=40, deadline=None)
@given(
    data=st.data(),
    N=st.integers(1, 3),
    groups=st.integers(1, 2),
    cig=st.integers(1, 3),
    cog=st.integers(1, 3),
    H=st.integers(2, 10),
    W=st.integers(2, 10),
    algorithm=st.sampled_from(["direct", "im2col"]),
)
def test_adjoint_identity(data, N, groups, cig, cog, H, W, algorithm):
    """<conv(x), g> == <x, grad_input(g)> and <conv(x; w), g> == <w, grad_weight(g)>."""
    kh, kw = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    s = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)))
    d = (data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2)))
    p = (data.draw(st.integers(0, 2)), data.draw(st.integers(0, 2)))
    if H + 2 * p[0] < d[0] * (kh - 1) + 1 or W + 2 * p[1] < d[1] * (kw - 1) + 1:
        return
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((N, cig * groups, H, W))
    w = rng.standard_normal((cog * groups, cig, kh, kw))
    kw_ = dict(stride=s, padding=p, dilation=d, groups=groups, algorithm=algorithm)
    y = fastconv.conv2d(x, w, **kw_)
    g = rng.standard_normal(y.shape)
    gi, gw, gb = fastconv.conv2d_backward(g, x, w, **kw_)
    lhs = np.vdot(y, g)
    np.testing.assert_allclose(lhs, np.vdot(x, gi), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(lhs, np.vdot(w, gw), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(gb, g.sum((0, 2, 3)), rtol=1e-12)


@settings(max_examples=30, deadline=None)
@given(
    N=st.integers(1, 3),
    C=st.integers(1, 4),
    H=st.integers(1, 9),
    W=st.integers(1, 9),
    k=st.integers(1, 3),
    s=st.integers(1, 3),
    p=st.integers(0, 2),
    d=st.integers(1, 2),
    seed=st.integers(0, 2**32 - 1),
)
def test_im2col_col2im_adjoint(N, C, H, W, k, s, p, d, seed):
    if H + 2 * p < d * (k - 1) + 1 or W + 2 * p < d * (k - 1) + 1:
        return
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W))
    col = fastconv.im2col(x, k, s, p, d)
    c = rng.standard_normal(col.shape)
    back = fastconv.col2im(c, x.shape, k, s, p, d)
    np.testing.assert_allclose(np.vdot(col, c), np.vdot(x, back), rtol=1e-10, atol=1e-10)


def test_im2col_layout_matches_definition(rng):
    x = rng.standard_normal((2, 3, 5, 6))
    col = fastconv.im2col(x, (2, 3), stride=(1, 2), padding=(1, 0), dilation=1)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (0, 0)))
    OH, OW = 6, 2  # (5 + 2 - 2) + 1, (6 - 3) // 2 + 1
    assert col.shape == (2, 3 * 2 * 3, OH * OW)
    for c in range(3):
        for i in range(2):
            for j in range(3):
                patch = xp[:, c, i : i + OH, j : j + 2 * OW : 2][:, :, :OW]
                np.testing.assert_array_equal(col[:, (c * 2 + i) * 3 + j], patch.reshape(2, -1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threads", [1, 2], indirect=True)
@pytest.mark.parametrize("case", GRAD_CASES, ids=[str(i) for i in range(len(GRAD_CASES))])
def test_direct_equals_im2col(case, dtype, threads, rng):
    x, w, b, kw = _arrays(case, rng, dtype)
    gy = rng.standard_normal(fastconv.conv2d(x, w, b, **kw).shape).astype(dtype)
    a = fastconv.conv2d_backward(gy, x, w, algorithm="direct", **kw)
    c = fastconv.conv2d_backward(gy, x, w, algorithm="im2col", **kw)
    for u, v in zip(a, c):
        assert u.dtype == dtype
        np.testing.assert_allclose(u, v, **tol(dtype))


def test_needs_input_grad_false_skips_grad_input(rng):
    x, w, b, kw = _arrays(GRAD_CASES[0], rng)
    gy = rng.standard_normal(fastconv.conv2d(x, w, **kw).shape)
    full = fastconv.conv2d_backward(gy, x, w, **kw)
    for algo in ("direct", "im2col"):
        gi, gw, gb = fastconv.conv2d_backward(gy, x, w, algorithm=algo, needs_input_grad=False, **kw)
        assert gi is None
        np.testing.assert_allclose(gw, full[1], rtol=1e-12)
        np.testing.assert_allclose(gb, full[2], rtol=1e-12)


@pytest.mark.parametrize("algorithm", ["direct", "im2col"])
def test_deterministic_per_thread_count_and_close_across(algorithm, rng):
    x = rng.standard_normal((9, 6, 14, 14)).astype(np.float32)
    w = rng.standard_normal((16, 6, 5, 5)).astype(np.float32)
    gy = rng.standard_normal((9, 16, 10, 10)).astype(np.float32)
    results = {}
    try:
        for n in (1, 2, 3):
            fastconv.set_num_threads(n)
            runs = [fastconv.conv2d_backward(gy, x, w, algorithm=algorithm) for _ in range(3)]
            for r in runs[1:]:
                for u, v in zip(runs[0], r):
                    np.testing.assert_array_equal(u, v)  # bitwise, run to run
            results[n] = runs[0]
    finally:
        fastconv.set_num_threads(None)
    for n in (2, 3):
        for u, v in zip(results[1], results[n]):
            np.testing.assert_allclose(u, v, rtol=1e-4, atol=1e-3)


def test_concurrent_python_threads_match_serial(rng):
    x = rng.standard_normal((8, 6, 16, 16)).astype(np.float32)
    w = rng.standard_normal((8, 6, 3, 3)).astype(np.float32)
    gy = rng.standard_normal((8, 8, 16, 16)).astype(np.float32)
    calls = {
        "direct_fwd": lambda: fastconv.conv2d(x, w, padding=1, algorithm="direct"),
        "im2col_fwd": lambda: fastconv.conv2d(x, w, padding=1, algorithm="im2col"),
        "im2col_bwd": lambda: fastconv.conv2d_backward(gy, x, w, padding=1, algorithm="im2col")[1],
        "pool": lambda: fastconv.max_pool2d(x, 2),
    }
    expected = {k: f() for k, f in calls.items()}
    errors = []

    def worker():
        try:
            for _ in range(10):
                for k, f in calls.items():
                    np.testing.assert_array_equal(f(), expected[k])
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
