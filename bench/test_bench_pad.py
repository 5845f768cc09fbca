"""Padding benchmarks: fastconv.pad / pad_backward vs torch.nn.functional.pad on CPU.

Run: ``pytest bench/test_bench_pad.py --benchmark-only`` (PyTorch rows are skipped when it
is not installed). Both run at ``BENCH_THREADS`` threads on the same float32 batch
(128, 16, 28, 28), each mode with pad 1 and 2 on every side. "backward" times fastconv's
``pad_backward`` against PyTorch's autograd backward of the padding alone
(``y.backward(g)`` on a retained graph, the gradient stored into a fresh ``x.grad``): for
reflect and replicate that is one ATen backward kernel, for constant a cropping copy, for
circular the autograd of its slices and copies.
"""
import tracemalloc

import numpy as np
import pytest

import fastconv
from shapes import BENCH_THREADS

try:
    import torch
except ImportError:  # PyTorch is a comparison, never a dependency
    torch = None

PAD_SHAPE = (128, 16, 28, 28)
MODES = ["constant", "reflect", "replicate", "circular"]
PADS = [1, 2]


def _data(p):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(PAD_SHAPE).astype(np.float32)
    N, C, H, W = PAD_SHAPE
    g = rng.standard_normal((N, C, H + 2 * p, W + 2 * p)).astype(np.float32)
    return x, g


def _pad_callable(impl, mode, p, backward):
    x, g = _data(p)
    pads = (p, p, p, p)
    if impl == "torch":
        if torch is None:
            pytest.skip("PyTorch not installed")
        pad = torch.nn.functional.pad
        if not backward:
            tx = torch.from_numpy(x)
            return lambda: pad(tx, pads, mode=mode)
        tx = torch.from_numpy(x).requires_grad_(True)
        ty = pad(tx, pads, mode=mode)
        tg = torch.from_numpy(g)

        def f():
            ty.backward(tg, retain_graph=True)
            tx.grad = None
        return f
    if not backward:
        return lambda: fastconv.pad(x, pads, mode)
    return lambda: fastconv.pad_backward(g, x.shape, pads, mode)


def _peak_extra_bytes(impl, fn):
    """Peak bytes NumPy allocates during one call (None for PyTorch: not NumPy memory)."""
    if impl == "torch":
        return None
    fn()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("impl", ["fastconv", "torch"])
@pytest.mark.parametrize("backward", [False, True], ids=["forward", "backward"])
@pytest.mark.parametrize("p", PADS, ids=[f"pad{p}" for p in PADS])
@pytest.mark.parametrize("mode", MODES)
def test_pad(benchmark, mode, p, backward, impl):
    pass_ = "backward" if backward else "forward"
    benchmark.group = f"pad {mode} pad={p} {pass_}"
    fn = _pad_callable(impl, mode, p, backward)
    benchmark.extra_info.update(shape=f"pad_{mode}_{p}", impl=impl, pass_=pass_, dtype="float32",
                                threads=BENCH_THREADS, flops=None,
                                peak_bytes=_peak_extra_bytes(impl, fn))
    benchmark(fn)
