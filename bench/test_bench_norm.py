"""BatchNorm2d benchmarks in training mode: fastconv vs PyTorch CPU (autograd backward).

Run: ``pytest bench/test_bench_norm.py --benchmark-only`` (PyTorch rows are skipped when
it is not installed). Both run at ``BENCH_THREADS`` threads, on the same float32 input;
"forward+backward" is one training-mode forward (batch statistics, running-statistics
update) followed by the backward through the batch statistics (input, weight and bias
gradients). The fastconv layer reuses its output arrays when unshared, as in training.
"""
import numpy as np
import pytest

from fastconv import nn
from shapes import BENCH_THREADS

try:
    import torch
except ImportError:  # PyTorch is a comparison, never a dependency
    torch = None

# (N, C, H, W): the activations of a small ResNet's three stages at batch 128
NORM_SHAPES = {
    "bn_16x28x28": (128, 16, 28, 28),
    "bn_32x14x14": (128, 32, 14, 14),
    "bn_64x7x7": (128, 64, 7, 7),
}


def _data(shape):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape) * 2 + 0.5).astype(np.float32)
    g = rng.standard_normal(shape).astype(np.float32)
    return x, g


def _callable(impl, shape, backward):
    x, g = _data(shape)
    C = shape[1]
    if impl == "torch":
        if torch is None:
            pytest.skip("PyTorch not installed")
        bn = torch.nn.BatchNorm2d(C).train()
        tx = torch.from_numpy(x).requires_grad_(backward)
        tg = torch.from_numpy(g)
        if not backward:
            def f():
                with torch.no_grad():
                    return bn(tx)
            return f

        def f():
            y = bn(tx)
            y.backward(tg)
            tx.grad = bn.weight.grad = bn.bias.grad = None
        return f
    bn = nn.BatchNorm2d(C).train()
    if not backward:
        return lambda: bn(x)

    def f():
        bn(x)
        bn.backward(g)
        bn.zero_grad()
    return f


@pytest.mark.parametrize("impl", ["fastconv", "torch"])
@pytest.mark.parametrize("backward", [False, True], ids=["forward", "forward+backward"])
@pytest.mark.parametrize("name", list(NORM_SHAPES))
def test_batchnorm2d_train(benchmark, name, backward, impl):
    shape = NORM_SHAPES[name]
    pass_ = "forward+backward" if backward else "forward"
    benchmark.group = f"batchnorm2d train {name} {pass_}"
    benchmark.extra_info.update(shape=name, impl=impl, pass_=pass_, dtype="float32",
                                threads=BENCH_THREADS, flops=None, peak_bytes=None)
    benchmark(_callable(impl, shape, backward))
