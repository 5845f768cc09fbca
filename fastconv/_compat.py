"""Names that moved between the NumPy versions fastconv supports (numpy >= 1.25)."""
try:  # NumPy >= 2.0
    from numpy.lib.array_utils import normalize_axis_index
except ImportError:  # NumPy 1.25/1.26
    from numpy.core.multiarray import normalize_axis_index  # type: ignore[no-redef]

__all__ = ["normalize_axis_index"]
