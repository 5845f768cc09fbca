"""fastconv: fast CPU 2-D convolution and pooling (Cython + OpenMP) with a small CNN layer API."""
from ._version import __version__
from ._parallel import get_num_threads, num_threads, openmp_enabled, set_num_threads
from ._random import manual_seed
from .functional import (
    avg_pool2d,
    avg_pool2d_backward,
    col2im,
    conv2d,
    conv2d_backward,
    im2col,
    max_pool2d,
    max_pool2d_backward,
)
from .functional import pad, pad_backward
from .functional import batch_norm, batch_norm_backward
from .functional.filter import filter2d
from .functional import (
    adaptive_avg_pool2d,
    adaptive_avg_pool2d_backward,
    adaptive_max_pool2d,
    adaptive_max_pool2d_backward,
    log_softmax,
    log_softmax_backward,
    maxout,
    maxout_backward,
    softmax,
    softmax_backward,
)

__all__ = [
    "__version__",
    "conv2d",
    "conv2d_backward",
    "max_pool2d",
    "max_pool2d_backward",
    "avg_pool2d",
    "avg_pool2d_backward",
    "im2col",
    "col2im",
    "pad",
    "pad_backward",
    "batch_norm",
    "batch_norm_backward",
    "adaptive_avg_pool2d",
    "adaptive_avg_pool2d_backward",
    "adaptive_max_pool2d",
    "adaptive_max_pool2d_backward",
    "maxout",
    "maxout_backward",
    "softmax",
    "softmax_backward",
    "log_softmax",
    "log_softmax_backward",
    "openmp_enabled",
    "get_num_threads",
    "set_num_threads",
    "num_threads",
    "set_autotune",
    "get_autotune",
    "plans",
    "manual_seed",
    "filter2d",
    "signal",
    "ndimage",
    "filters",
    "summary",
    "save",
    "load",
    "nn",
    "optim",
    "models",
    "datasets",
]

from . import datasets, models, nn, optim  # noqa: E402  (after the kernels they build on)
from ._summary import summary  # noqa: E402  (uses nn)
from . import inference  # noqa: E402  (planned eval-mode inference; uses nn)
from . import signal  # noqa: E402  (SciPy drop-ins: correlate2d, convolve2d)
from . import filters, ndimage  # noqa: E402  (scipy.ndimage drop-ins, scikit-image's edge filters)
from . import autotune  # noqa: E402  (measured algorithm choice)
from .autotune import get_autotune, plans, set_autotune  # noqa: E402
from .serialization import load, save  # noqa: E402  (uses models)
