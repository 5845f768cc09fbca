import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import fastconv  # noqa: E402
from shapes import BENCH_THREADS  # noqa: E402

try:
    import torch
except ImportError:  # PyTorch is a comparison, never a dependency
    torch = None


@pytest.fixture(autouse=True, scope="module")
def bench_threads():
    """Every bench module runs at BENCH_THREADS threads, fastconv and PyTorch alike (a
    bench that needs others asks for ``threads_for_run``); the default is restored after."""
    fastconv.set_num_threads(BENCH_THREADS)
    if torch is not None:
        torch.set_num_threads(BENCH_THREADS)
    yield
    fastconv.set_num_threads(None)


@pytest.fixture
def threads_for_run(request):
    """Run one benchmark at ``request.param`` threads (fastconv and PyTorch alike)."""
    n = request.param
    fastconv.set_num_threads(n)
    if torch is not None:
        torch.set_num_threads(n)
    yield n
    fastconv.set_num_threads(BENCH_THREADS)
    if torch is not None:
        torch.set_num_threads(BENCH_THREADS)
