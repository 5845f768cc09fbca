"""Cross-entropy loss with explicit backward."""
from __future__ import annotations

from typing import Any

import numpy as np

from .._kernels import _loss
from .._typing import ArrayLike, FloatArray
from .._validation import FLOAT_DTYPES


class CrossEntropyLoss:
    """Mean cross-entropy of logits against integer class labels (log-softmax + NLL).

    ``loss = CrossEntropyLoss(); value = loss(logits, labels)`` returns a Python float;
    ``loss.backward()`` then returns the gradient with respect to ``logits``.

    Parameters
    ----------
    label_smoothing : float in [0, 1], default 0
        As ``torch.nn.CrossEntropyLoss``: the target is ``(1 - e) * onehot + e / C``.

    Parameters of ``__call__``
    --------------------------
    logits : ndarray, shape (N, C), float32 or float64
    labels : ndarray of integers in [0, C), shape (N,)
    """

    def __init__(self, label_smoothing: float = 0.0) -> None:
        if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, (int, float, np.floating, np.integer)):
            raise TypeError(f"label_smoothing must be a float in [0, 1], got {type(label_smoothing).__name__}")
        if not 0.0 <= float(label_smoothing) <= 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
        self.label_smoothing = float(label_smoothing)
        self._grad: Any = None

    def __call__(self, logits: FloatArray, labels: ArrayLike) -> float:
        return self.forward(logits, labels)

    def forward(self, logits: FloatArray, labels: ArrayLike) -> float:
        if not isinstance(logits, np.ndarray) or logits.dtype.kind != "f":
            raise TypeError(f"logits must be a float numpy.ndarray of shape (N, C), got {type(logits).__name__}")
        if logits.ndim != 2:
            raise ValueError(f"logits must be 2-D (N, C), got shape {logits.shape}")
        labels = np.asarray(labels)
        if labels.dtype.kind not in "iu":
            raise TypeError(f"labels must be an integer array, got {labels.dtype}")
        if labels.shape != (logits.shape[0],):
            raise ValueError(f"labels must have shape ({logits.shape[0]},) to match logits, got {labels.shape}")
        n, c = logits.shape
        if n == 0:
            raise ValueError("logits must contain at least one sample")
        if labels.size and (labels.min() < 0 or labels.max() >= c):
            raise ValueError(f"labels must be in [0, {c}), got values in [{labels.min()}, {labels.max()}]")
        # The kernel takes float32/float64; other float dtypes are computed in float64 and
        # the gradient handed back in the logits' dtype.
        work_dtype = logits.dtype if logits.dtype in FLOAT_DTYPES else np.float64
        work = np.ascontiguousarray(logits, dtype=work_dtype)
        grad = np.empty_like(work)
        value = _loss.softmax_cross_entropy(work, np.ascontiguousarray(labels, dtype=np.int64), grad,
                                             self.label_smoothing)
        self._grad = grad if grad.dtype == logits.dtype else grad.astype(logits.dtype)
        return value

    def backward(self) -> FloatArray:
        """Gradient of the mean loss with respect to the logits, ``(softmax - onehot) / N``:
        an array of the logits' shape and dtype, computed by the forward pass."""
        if self._grad is None:
            raise RuntimeError("CrossEntropyLoss.backward called before the loss was computed")
        return self._grad

    def __repr__(self):
        return f"CrossEntropyLoss(label_smoothing={self.label_smoothing})" if self.label_smoothing else "CrossEntropyLoss()"
