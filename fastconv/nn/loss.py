"""Cross-entropy loss with explicit backward."""
import numpy as np


class CrossEntropyLoss:
    """Mean cross-entropy of logits against integer class labels (log-softmax + NLL).

    ``loss = CrossEntropyLoss(); value = loss(logits, labels)`` returns a Python float;
    ``loss.backward()`` then returns the gradient with respect to ``logits``.

    Parameters of ``__call__``
    --------------------------
    logits : ndarray, shape (N, C), float32 or float64
    labels : ndarray of integers in [0, C), shape (N,)
    """

    def __init__(self):
        self._probs = None

    def __call__(self, logits, labels):
        return self.forward(logits, labels)

    def forward(self, logits, labels):
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
        shifted = logits - logits.max(axis=1, keepdims=True)  # stable log-softmax
        log_z = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        log_probs = shifted - log_z
        self._probs = np.exp(log_probs)
        self._labels = labels.astype(np.intp)
        return float(-log_probs[np.arange(n), self._labels].mean())

    def backward(self):
        """Gradient of the mean loss with respect to the logits: (softmax - onehot) / N."""
        if self._probs is None:
            raise RuntimeError("CrossEntropyLoss.backward called before the loss was computed")
        grad = self._probs.copy()
        n = grad.shape[0]
        grad[np.arange(n), self._labels] -= 1
        grad /= n
        return grad

    def __repr__(self):
        return "CrossEntropyLoss()"
