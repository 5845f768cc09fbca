import numpy as np
import pytest

import fastconv


@pytest.fixture
def threads(request):
    """Run a test under fastconv.set_num_threads(n); restores the default afterwards."""
    n = getattr(request, "param", 1)
    fastconv.set_num_threads(n)
    yield n
    fastconv.set_num_threads(None)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
