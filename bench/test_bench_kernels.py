"""Kernel benchmarks: fastconv (direct, im2col, auto) vs the NumPy reference and PyTorch CPU.

Run: ``pytest bench/test_bench_kernels.py --benchmark-only`` (PyTorch rows are skipped when
it is not installed). ``python bench/report.py`` turns a run into a ratio table.
"""
import numpy as np
import pytest

import fastconv
import numpy_reference as npref
from shapes import BENCH_THREADS, CONV_SHAPES, POOL_SHAPE

try:
    import torch
except ImportError:  # PyTorch is a comparison, never a dependency
    torch = None

IMPLS = ["numpy", "fastconv-direct", "fastconv-im2col", "fastconv-auto", "torch"]


@pytest.fixture(autouse=True, scope="module")
def _threads():
    fastconv.set_num_threads(BENCH_THREADS)
    if torch is not None:
        torch.set_num_threads(BENCH_THREADS)
    yield
    fastconv.set_num_threads(None)


def _conv_data(name, dtype=np.float32):
    N, C, H, W, C_out, k, s, p = CONV_SHAPES[name]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = (rng.standard_normal((C_out, C, k, k)) / np.sqrt(C * k * k)).astype(dtype)
    b = rng.standard_normal(C_out).astype(dtype)
    return x, w, b, s, p


def _conv_callable(impl, name, backward, dtype=np.float32):
    x, w, b, s, p = _conv_data(name, dtype)
    if impl == "numpy":
        if not backward:
            return lambda: npref.conv2d_forward(x, w, b, s, p)

        def f():
            y = npref.conv2d_forward(x, w, b, s, p)
            return npref.conv2d_backward(np.ones_like(y), x, w, s, p)

        return f
    if impl == "torch":
        if torch is None:
            pytest.skip("PyTorch not installed")
        tx = torch.from_numpy(x).requires_grad_(backward)
        tw = torch.from_numpy(w).requires_grad_(backward)
        tb = torch.from_numpy(b).requires_grad_(backward)
        conv = torch.nn.functional.conv2d
        if not backward:
            def f():
                with torch.no_grad():
                    return conv(tx, tw, tb, s, p)
            return f

        def f():
            y = conv(tx, tw, tb, s, p)
            y.backward(torch.ones_like(y))
            tx.grad = tw.grad = tb.grad = None
        return f
    algo = impl.split("-")[1]
    if not backward:
        return lambda: fastconv.conv2d(x, w, b, s, p, algorithm=algo)

    def f():
        y = fastconv.conv2d(x, w, b, s, p, algorithm=algo)
        return fastconv.conv2d_backward(np.ones_like(y), x, w, s, p, algorithm=algo)

    return f


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("shape", list(CONV_SHAPES))
def test_conv_forward(benchmark, shape, impl):
    benchmark.group = f"conv forward {shape}"
    benchmark.extra_info.update(shape=shape, impl=impl, pass_="forward")
    benchmark(_conv_callable(impl, shape, backward=False))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("shape", list(CONV_SHAPES))
def test_conv_forward_backward(benchmark, shape, impl):
    benchmark.group = f"conv forward+backward {shape}"
    benchmark.extra_info.update(shape=shape, impl=impl, pass_="forward+backward")
    benchmark(_conv_callable(impl, shape, backward=True))


def _pool_callable(impl, kind, backward):
    x = np.random.default_rng(0).standard_normal(POOL_SHAPE).astype(np.float32)
    if impl == "numpy":
        if kind == "max":
            if not backward:
                return lambda: npref.max_pool2d_forward(x, 2)
            y, arg = npref.max_pool2d_forward(x, 2)
            return lambda: npref.max_pool2d_backward(np.ones_like(y), arg, x.shape, 2)
        if not backward:
            return lambda: npref.avg_pool2d_forward(x, 2)
        gy = np.ones((64, 6, 14, 14), np.float32)
        return lambda: npref.avg_pool2d_backward(gy, x.shape, 2)
    if impl == "torch":
        if torch is None:
            pytest.skip("PyTorch not installed")
        tx = torch.from_numpy(x)
        if kind == "max":
            if not backward:
                return lambda: torch.nn.functional.max_pool2d(tx, 2, return_indices=True)
            y, idx = torch.nn.functional.max_pool2d(tx, 2, return_indices=True)
            gy = torch.ones_like(y)
            return lambda: torch.ops.aten.max_pool2d_with_indices_backward(gy, tx, [2, 2], [2, 2], [0, 0], [1, 1], False, idx)
        if not backward:
            return lambda: torch.nn.functional.avg_pool2d(tx, 2)
        gy = torch.ones((64, 6, 14, 14))
        return lambda: torch.ops.aten.avg_pool2d_backward(gy, tx, [2, 2], [2, 2], [0, 0], False, True, None)
    if kind == "max":
        if not backward:
            return lambda: fastconv.max_pool2d(x, 2, return_indices=True)
        y, idx = fastconv.max_pool2d(x, 2, return_indices=True)
        gy = np.ones_like(y)
        return lambda: fastconv.max_pool2d_backward(gy, x, 2, indices=idx)
    if not backward:
        return lambda: fastconv.avg_pool2d(x, 2)
    gy = np.ones((64, 6, 14, 14), np.float32)
    return lambda: fastconv.avg_pool2d_backward(gy, x.shape, 2)


@pytest.mark.parametrize("impl", ["numpy", "fastconv", "torch"])
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("backward", [False, True], ids=["forward", "backward"])
def test_pool(benchmark, kind, backward, impl):
    pass_ = "backward" if backward else "forward"
    benchmark.group = f"{kind}_pool2d 2x2 {pass_}"
    benchmark.extra_info.update(shape=f"{kind}_pool_2x2", impl=impl, pass_=pass_)
    benchmark(_pool_callable(impl, kind, backward))
