"""Parameter initialisation (PyTorch's ``torch.nn.init`` formulas) and the layers' defaults."""
import numpy as np

from .._validation import FLOAT_DTYPES


def _check_dtype(dtype):
    dtype = np.dtype(dtype)
    if dtype not in FLOAT_DTYPES:
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    return dtype


def _uniform(rng, bound, shape, dtype):
    return rng.uniform(-bound, bound, size=shape).astype(dtype)
