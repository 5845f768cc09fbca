"""The ResNet-8 convolutions (Fashion-MNIST shapes, batch 128, float32): fastconv vs PyTorch.

Run: ``pytest bench/test_bench_resnet_layers.py --benchmark-only`` (PyTorch rows are skipped
when it is not installed). Shapes in ``resnet_layers.RESNET_LAYERS``: the 1->16 first layer
(no grad_input), the 3x3 convolutions of the three stages and their stride-2 3x3 and 1x1
projections. "forward+backward" is the forward pass, then grad_input (except the first
layer), grad_weight and grad_bias; PyTorch's is autograd on the same op, with a bias.
For the interleaved tuning loop use ``python bench/resnet_layers_quick.py``.
"""
import pytest

from resnet_layers import RESNET_LAYERS, fastconv_callables, layer_flops, torch_callables
from shapes import BENCH_THREADS

try:
    import torch
except ImportError:  # PyTorch is a comparison, never a dependency
    torch = None


def _run(benchmark, name, impl, op):
    if impl == "torch":
        if torch is None:
            pytest.skip("PyTorch not installed")
        fn = torch_callables(name)[op]
    else:
        fn = fastconv_callables(name)[op]
    benchmark.group = f"resnet8 {op} {name}"
    benchmark.extra_info.update(shape=name, impl=impl, pass_=op, dtype="float32",
                                threads=BENCH_THREADS,
                                flops=layer_flops(name) * (3 if op == "fwd+bwd" else 1),
                                peak_bytes=None)
    benchmark(fn)


@pytest.mark.parametrize("impl", ["fastconv", "torch"])
@pytest.mark.parametrize("name", list(RESNET_LAYERS))
def test_resnet_conv_forward(benchmark, name, impl):
    _run(benchmark, name, impl, "fwd")


@pytest.mark.parametrize("impl", ["fastconv", "torch"])
@pytest.mark.parametrize("name", list(RESNET_LAYERS))
def test_resnet_conv_forward_backward(benchmark, name, impl):
    _run(benchmark, name, impl, "fwd+bwd")
