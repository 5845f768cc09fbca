"""Global average pooling and softmax benchmarks: fastconv vs PyTorch CPU.

Run: ``pytest bench/test_bench_adaptive.py --benchmark-only`` (PyTorch rows are skipped when
it is not installed). Both run at ``BENCH_THREADS`` threads on the same float32 data.

* ``global_avg_pool``: ``adaptive_avg_pool2d(x, 1)`` on a ResNet head's (128, 64, 7, 7)
  activation, forward, backward, and forward+backward (the two calls of a training step).
  PyTorch's backward is its aten kernel, called directly (no autograd bookkeeping).
* ``softmax`` / ``log_softmax`` over the last axis of (128, 10) (a classifier's logits)
  and (64, 1000) (an ImageNet-sized head), forward and backward (aten kernels for PyTorch).
"""
import numpy as np
import pytest

import fastconv
from shapes import BENCH_THREADS

try:
    import torch
except ImportError:  # PyTorch is a comparison, never a dependency
    torch = None

GAP_SHAPE = (128, 64, 7, 7)
SOFTMAX_SHAPES = {"logits_128x10": (128, 10), "logits_64x1000": (64, 1000)}


def _need_torch(impl):
    if impl == "torch" and torch is None:
        pytest.skip("PyTorch not installed")


def _gap_callable(impl, pass_):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(GAP_SHAPE).astype(np.float32)
    gy = rng.standard_normal(GAP_SHAPE[:2] + (1, 1)).astype(np.float32)
    if impl == "torch":
        tx, tgy = torch.from_numpy(x), torch.from_numpy(gy)
        fwd = lambda: torch.nn.functional.adaptive_avg_pool2d(tx, 1)  # noqa: E731
        bwd = lambda: torch.ops.aten._adaptive_avg_pool2d_backward(tgy, tx)  # noqa: E731
    else:
        fwd = lambda: fastconv.adaptive_avg_pool2d(x, 1)  # noqa: E731
        bwd = lambda: fastconv.adaptive_avg_pool2d_backward(gy, x.shape, 1)  # noqa: E731
    if pass_ == "forward":
        return fwd
    if pass_ == "backward":
        return bwd
    return lambda: (fwd(), bwd())


@pytest.mark.parametrize("impl", ["fastconv", "torch"])
@pytest.mark.parametrize("pass_", ["forward", "backward", "forward+backward"])
def test_global_avg_pool(benchmark, pass_, impl):
    _need_torch(impl)
    benchmark.group = f"global_avg_pool {GAP_SHAPE} {pass_}"
    benchmark.extra_info.update(shape="global_avg_pool_128x64x7x7", impl=impl, pass_=pass_,
                                dtype="float32", threads=BENCH_THREADS, flops=None)
    benchmark(_gap_callable(impl, pass_))


def _softmax_callable(impl, shape, log, backward):
    rng = np.random.default_rng(0)
    x = (3 * rng.standard_normal(shape)).astype(np.float32)
    g = rng.standard_normal(shape).astype(np.float32)
    if impl == "torch":
        tx, tg = torch.from_numpy(x), torch.from_numpy(g)
        if not backward:
            f = torch.log_softmax if log else torch.softmax
            return lambda: f(tx, -1)
        ty = (torch.log_softmax if log else torch.softmax)(tx, -1)
        if log:
            return lambda: torch.ops.aten._log_softmax_backward_data(tg, ty, -1, torch.float32)
        return lambda: torch.ops.aten._softmax_backward_data(tg, ty, -1, torch.float32)
    fwd = fastconv.log_softmax if log else fastconv.softmax
    if not backward:
        return lambda: fwd(x, -1)
    y = fwd(x, -1)
    bwd = fastconv.log_softmax_backward if log else fastconv.softmax_backward
    return lambda: bwd(g, y, -1)


@pytest.mark.parametrize("impl", ["fastconv", "torch"])
@pytest.mark.parametrize("backward", [False, True], ids=["forward", "backward"])
@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("name", list(SOFTMAX_SHAPES))
def test_softmax(benchmark, name, log, backward, impl):
    _need_torch(impl)
    kind = "log_softmax" if log else "softmax"
    pass_ = "backward" if backward else "forward"
    benchmark.group = f"{kind} {name} {pass_}"
    benchmark.extra_info.update(shape=f"{kind}_{name}", impl=impl, pass_=pass_, dtype="float32",
                                threads=BENCH_THREADS, flops=None)
    benchmark(_softmax_callable(impl, SOFTMAX_SHAPES[name], log, backward))
