"""Training steps of the small CNNs: fastconv vs PyTorch, and what freezing saves.

ResNet-8 on Fashion-MNIST shapes (batch 128 of 1 x 28 x 28), SGD with momentum 0.9,
float32, 2 threads, the same architecture in both libraries (tests/torch_models.py). The
frozen variants are fastconv's transfer-learning steps: every convolution frozen (BatchNorm
and the classifier train), and the whole feature extractor frozen (only the classifier
trains), each against the full step in the same run.
"""
import sys
from pathlib import Path

import numpy as np
import pytest

from fastconv.models import resnet8
from steps import fastconv_train_step
from fastconv.nn import Conv2d
from shapes import BENCH_THREADS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

try:
    import torch
except ImportError:
    torch = None

BATCH = 128
ROUNDS = 7


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    return (rng.standard_normal((BATCH, 1, 28, 28)).astype(np.float32),
            rng.integers(0, 10, BATCH).astype(np.int64))


def _record(benchmark, impl, variant):
    benchmark.group = f"resnet8 training step batch={BATCH}"
    benchmark.extra_info.update(impl=impl, shape=f"resnet8_step_{variant}", pass_="train",
                                dtype="float32", threads=BENCH_THREADS, flops=None, peak_bytes=None)


def _fastconv_step(model, x, y):
    return fastconv_train_step(model, x, y, lr=0.05)


@pytest.mark.parametrize("variant", ["full", "frozen_convs", "frozen_features"])
def test_resnet8_step_fastconv(benchmark, batch, variant):
    model = resnet8(rng=0)
    if variant == "frozen_convs":
        for m in model.modules():
            if isinstance(m, Conv2d):
                m.requires_grad_(False)
    elif variant == "frozen_features":
        for name, p in model.named_parameters():
            p.requires_grad = name.startswith("8.")
    _record(benchmark, "fastconv", variant)
    benchmark.pedantic(_fastconv_step(model, *batch), rounds=ROUNDS, iterations=1, warmup_rounds=2)


def test_resnet8_step_torch(benchmark, batch):
    if torch is None:
        pytest.skip("PyTorch not installed")
    from torch_models import cifar_resnet

    model = cifar_resnet(1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    lossf = torch.nn.CrossEntropyLoss()
    x, y = torch.from_numpy(batch[0]), torch.from_numpy(batch[1])

    def step():
        opt.zero_grad()
        lossf(model(x), y).backward()
        opt.step()

    _record(benchmark, "torch", "full")
    benchmark.pedantic(step, rounds=ROUNDS, iterations=1, warmup_rounds=2)
