"""Type aliases used in fastconv's annotations (for readers and type checkers; nothing here
is checked at run time: the functions validate their arguments themselves)."""
from typing import Any, Sequence, Tuple, Union

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

#: A float32 or float64 array: what the functions and layers take and return.
FloatArray = NDArray[np.floating[Any]]
#: The int64 indices of max pooling and maxout.
IndexArray = NDArray[np.int64]
#: An int, or a pair of ints (height, width): kernel sizes, strides, dilations, paddings.
IntPair = Union[int, Tuple[int, int], Sequence[int]]
#: A shape.
Shape = Tuple[int, ...]
#: A random generator, an int seed, or None for fastconv's global generator.
RNGLike = Union[np.random.Generator, int, None]

__all__ = ["ArrayLike", "DTypeLike", "NDArray", "FloatArray", "IndexArray", "IntPair", "Shape", "RNGLike"]
