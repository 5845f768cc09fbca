import os

import numpy as np
import pytest

# Deterministic algorithm choice for the whole suite (and the CLI/MPI subprocesses it starts):
# the static table, never timings or a user's plan file (tests/test_autotune.py turns it on).
os.environ.setdefault("FASTCONV_AUTOTUNE", "off")

import fastconv  # noqa: E402
from fastconv._kernels import _direct


@pytest.fixture
def threads(request):
    """Run a test under fastconv.set_num_threads(n); restores the default afterwards."""
    n = getattr(request, "param", 1)
    fastconv.set_num_threads(n)
    yield n
    fastconv.set_num_threads(None)


@pytest.fixture(autouse=True)
def _no_thread_local_count_left():
    """A test that leaves a thread-local count (an AdaptiveThreads it did not close, a
    num_threads block it broke out of) must not change the next test's thread count."""
    yield
    from fastconv import _parallel
    _parallel._set_local_num_threads(None)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def _find_mnist(name="mnist", variable="FASTCONV_TEST_MNIST"):
    import os
    from pathlib import Path

    candidates = [os.environ.get(variable), os.environ.get("FASTCONV_DATA") if name == "mnist" else None,
                  Path(__file__).resolve().parents[1].parent / "shared" / name]
    for c in candidates:
        if c and (Path(c) / "t10k-images-idx3-ubyte.gz").is_file():
            return Path(c).resolve()  # absolute: CLI tests run in another folder
    return None


@pytest.fixture
def mnist_dir():
    """The real MNIST folder (../shared/mnist or $FASTCONV_TEST_MNIST); skips if absent."""
    d = _find_mnist()
    if d is None:
        pytest.skip("MNIST not found: set FASTCONV_TEST_MNIST to the folder with the IDX files")
    return d


@pytest.fixture
def fashion_dir():
    """The Fashion-MNIST folder (../shared/fashion-mnist or $FASTCONV_TEST_FASHION_MNIST)."""
    d = _find_mnist("fashion-mnist", "FASTCONV_TEST_FASHION_MNIST")
    if d is None:
        pytest.skip("Fashion-MNIST not found: set FASTCONV_TEST_FASHION_MNIST to its folder")
    return d


SIMD = ((["avx512"] if _direct.AVX512_AVAILABLE else []) + (["avx2"] if _direct.AVX2_AVAILABLE else [])
        + ["portable"])


@pytest.fixture(params=SIMD)
def simd(request):
    """Which kernels to test: the AVX-512 tiles, the AVX2 tiles (``_direct.use_avx512(False)``;
    where the CPU has them) or the portable ones (both switched off); it stays set for every
    example hypothesis draws."""
    previous = (_direct.use_avx512(request.param == "avx512"),
                _direct.use_avx2(request.param in ("avx512", "avx2")))
    yield request.param
    _direct.use_avx512(previous[0])
    _direct.use_avx2(previous[1])
