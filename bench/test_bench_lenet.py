"""One LeNet-5 training epoch: fastconv vs PyTorch CPU vs the NumPy reference.

Same architecture, batch size 64, SGD lr=0.03 + Nesterov momentum 0.9, float32, 2 threads.
By default an "epoch" is the first ``FASTCONV_BENCH_IMAGES`` (12,032 = 188 batches) MNIST
training images so that medians of several rounds stay affordable; set
``FASTCONV_BENCH_IMAGES=60000`` for full epochs. Reads MNIST from ``FASTCONV_TEST_MNIST``
or ``../shared/mnist`` and falls back to random images (the speed is the same).
"""
import os
from pathlib import Path

import numpy as np
import pytest

import fastconv
import numpy_reference as npref
from fastconv.datasets import BatchIterator
from fastconv.models import lenet5
from fastconv.nn import CrossEntropyLoss
from fastconv.optim import SGD
from fastconv.training import train_epoch
from shapes import BENCH_THREADS, SCALING_THREADS

try:
    import torch
except ImportError:
    torch = None

BATCH = 64
N_IMAGES = int(os.environ.get("FASTCONV_BENCH_IMAGES", 188 * BATCH))
ROUNDS = int(os.environ.get("FASTCONV_BENCH_ROUNDS", 5))


def _data():
    folder = os.environ.get("FASTCONV_TEST_MNIST") or str(Path(__file__).resolve().parents[2] / "shared" / "mnist")
    try:
        images, labels = fastconv.datasets.load_mnist(folder, "train")
    except Exception:  # noqa: BLE001 - no MNIST here: random images time the same
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (N_IMAGES, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, N_IMAGES).astype(np.uint8)
    return images[:N_IMAGES], labels[:N_IMAGES]


@pytest.fixture(scope="module")
def batches():
    fastconv.set_num_threads(BENCH_THREADS)
    if torch is not None:
        torch.set_num_threads(BENCH_THREADS)
    images, labels = _data()
    it = BatchIterator(images, labels, BATCH, normalize=(0.1307, 0.3081))
    out = [(x, y.astype(np.int64)) for x, y in it]
    yield out
    fastconv.set_num_threads(None)


def _record(benchmark, impl, n, threads=BENCH_THREADS):
    benchmark.group = f"lenet5 training epoch threads={threads}"
    benchmark.extra_info.update(impl=impl, images=n, shape="lenet5_epoch", pass_="train",
                                dtype="float32", threads=threads, flops=None, peak_bytes=None)


@pytest.mark.parametrize("threads_for_run", SCALING_THREADS, indirect=True)
def test_epoch_fastconv(benchmark, batches, threads_for_run):
    model = lenet5(rng=0)
    opt = SGD(model.parameters(), lr=0.03, momentum=0.9, nesterov=True)
    loss = CrossEntropyLoss()

    def epoch():
        train_epoch(model, loss, opt, batches)

    _record(benchmark, "fastconv", sum(len(y) for _, y in batches), threads_for_run)
    benchmark.pedantic(epoch, rounds=ROUNDS, warmup_rounds=1)


@pytest.mark.parametrize("threads_for_run", SCALING_THREADS, indirect=True)
def test_epoch_torch(benchmark, batches, threads_for_run):
    if torch is None:
        pytest.skip("PyTorch not installed")
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.03, momentum=0.9, nesterov=True)
    lossf = nn.CrossEntropyLoss()
    tb = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in batches]

    def epoch():
        for x, y in tb:
            opt.zero_grad()
            lossf(model(x), y).backward()
            opt.step()

    _record(benchmark, "torch", sum(len(y) for _, y in batches), threads_for_run)
    benchmark.pedantic(epoch, rounds=ROUNDS, warmup_rounds=1)


def test_epoch_numpy(benchmark, batches):
    model = npref.NumpyLeNet5(np.random.default_rng(0))

    def epoch():
        for x, y in batches:
            model.train_step(x, y)

    _record(benchmark, "numpy", sum(len(y) for _, y in batches))
    benchmark.pedantic(epoch, rounds=max(1, ROUNDS // 2), warmup_rounds=0)
