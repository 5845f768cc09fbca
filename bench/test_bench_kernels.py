"""Kernel benchmarks: fastconv (direct, im2col, auto) vs the NumPy reference and PyTorch CPU.

Run: ``pytest bench/test_bench_kernels.py --benchmark-only`` (PyTorch rows are skipped when
it is not installed). ``python bench/report.py`` runs everything and writes
``bench/results.md`` and ``bench/results.png``.

Each row records its FLOPs (for GFLOP/s) and, for fastconv and NumPy, the peak extra
memory of one call (bytes NumPy allocated beyond the inputs, through ``tracemalloc``).
The ``sgemm`` rows time one GEMM with each convolution's FLOPs on the same BLAS and
threads: the ceiling an im2col implementation could reach.
"""
import tracemalloc

import numpy as np
import pytest
import scipy.linalg.blas as sblas

import fastconv
import numpy_reference as npref
from fastconv.models import lenet5
from shapes import (BENCH_THREADS, CONV_SHAPES, LENET_SHAPES, POOL_SHAPE, SCALING_THREADS,
                    conv_flops, gemm_dims)

try:
    import torch
except ImportError:  # PyTorch is a comparison, never a dependency
    torch = None

IMPLS = ["numpy", "fastconv-direct", "fastconv-im2col", "fastconv-auto", "torch"]


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


def _peak_extra_bytes(impl, fn):
    """Peak bytes NumPy allocates during one call (None for PyTorch: not NumPy memory)."""
    if impl == "torch":
        return None
    fn()  # warm caches so that only the call's own allocations count
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _run_conv(benchmark, shape, impl, backward, dtype=np.float32, threads=BENCH_THREADS):
    pass_ = "forward+backward" if backward else "forward"
    fn = _conv_callable(impl, shape, backward, dtype)
    benchmark.extra_info.update(shape=shape, impl=impl, pass_=pass_, dtype=np.dtype(dtype).name,
                                threads=threads, flops=conv_flops(shape, backward),
                                peak_bytes=_peak_extra_bytes(impl, fn))
    benchmark(fn)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("shape", list(CONV_SHAPES))
def test_conv_forward(benchmark, shape, impl):
    benchmark.group = f"conv forward {shape}"
    _run_conv(benchmark, shape, impl, backward=False)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("shape", list(CONV_SHAPES))
def test_conv_forward_backward(benchmark, shape, impl):
    benchmark.group = f"conv forward+backward {shape}"
    _run_conv(benchmark, shape, impl, backward=True)


@pytest.mark.parametrize("impl", ["numpy", "fastconv-auto", "torch"])
@pytest.mark.parametrize("backward", [False, True], ids=["forward", "forward+backward"])
@pytest.mark.parametrize("shape", LENET_SHAPES)
def test_conv_float64(benchmark, shape, backward, impl):
    benchmark.group = f"conv float64 {shape} {'forward+backward' if backward else 'forward'}"
    _run_conv(benchmark, shape, impl, backward, dtype=np.float64)


@pytest.mark.parametrize("threads_for_run", SCALING_THREADS, indirect=True)
@pytest.mark.parametrize("impl", ["fastconv-auto", "torch"])
def test_conv_thread_scaling(benchmark, impl, threads_for_run):
    benchmark.group = f"conv forward vgg_3x3 threads={threads_for_run}"
    _run_conv(benchmark, "vgg_3x3", impl, backward=False, threads=threads_for_run)


@pytest.mark.parametrize("shape", list(CONV_SHAPES))
def test_sgemm(benchmark, shape):
    """One sgemm with the convolution's FLOPs (BLAS at the bench's thread count)."""
    from threadpoolctl import threadpool_limits

    m, n, k = gemm_dims(shape)
    rng = np.random.default_rng(0)
    a = np.asfortranarray(rng.standard_normal((m, k), np.float32))
    b = np.asfortranarray(rng.standard_normal((k, n), np.float32))
    benchmark.group = f"conv forward {shape}"
    benchmark.extra_info.update(shape=shape, impl="sgemm", pass_="forward", dtype="float32",
                                threads=BENCH_THREADS, flops=2 * m * n * k, peak_bytes=None)
    with threadpool_limits(BENCH_THREADS, user_api="blas"):
        benchmark(lambda: sblas.sgemm(1.0, a, b))


def _optimizer_callable(impl, name):
    if impl == "torch":
        if torch is None:
            pytest.skip("PyTorch not installed")
        nn = torch.nn
        model = nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), nn.Conv2d(6, 16, 5), nn.Linear(400, 120),
            nn.Linear(120, 84), nn.Linear(84, 10),
        )
        for p in model.parameters():
            p.grad = torch.randn_like(p)
        opt = (torch.optim.SGD(model.parameters(), lr=0.03, momentum=0.9, nesterov=True)
               if name == "sgd" else torch.optim.Adam(model.parameters(), lr=1e-3))
        return opt.step
    model = lenet5(rng=0)
    rng = np.random.default_rng(0)
    for p in model.parameters():
        p.grad[...] = rng.standard_normal(p.grad.shape)
    params = model.parameters()
    if name == "sgd":
        return fastconv.optim.SGD(params, lr=0.03, momentum=0.9, nesterov=True).step
    return fastconv.optim.Adam(params, lr=1e-3).step


@pytest.mark.parametrize("impl", ["fastconv", "torch"])
@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_optimizer_step(benchmark, name, impl):
    """One optimizer step over LeNet-5's 61,706 parameters (SGD Nesterov momentum; Adam)."""
    benchmark.group = f"optimizer step {name}"
    benchmark.extra_info.update(shape=f"lenet5_{name}_step", impl=impl, pass_="step",
                                dtype="float32", threads=BENCH_THREADS, flops=None, peak_bytes=None)
    benchmark(_optimizer_callable(impl, name))


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
    fn = _pool_callable(impl, kind, backward)
    benchmark.extra_info.update(shape=f"{kind}_pool_2x2", impl=impl, pass_=pass_, dtype="float32",
                                threads=BENCH_THREADS, flops=None,
                                peak_bytes=_peak_extra_bytes(impl, fn))
    benchmark(fn)
