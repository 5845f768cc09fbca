"""Training and evaluation loops used by the CLI (importable on their own)."""
import time

import numpy as np

from ._parallel import blas_single_thread


def train_epoch(model, loss_fn, optimizer, batches, progress=None):
    """One pass over ``batches`` (an iterable of (x, labels)).

    Returns
    -------
    dict with ``loss`` (mean over samples), ``train_acc`` (fraction), ``samples``, ``seconds``.
    """
    model.train()
    total_loss = 0.0
    correct = 0
    seen = 0
    t0 = time.perf_counter()
    # BLAS pinned to one thread once for the epoch: the layers' own pins (Sequential's,
    # Linear's, im2col's) then cost a counter, not ~4 us of library calls a step each.
    with blas_single_thread():
        for x, y in batches:
            logits = model(x)
            loss = loss_fn(logits, y)
            optimizer.zero_grad()
            model.backward(loss_fn.backward())
            optimizer.step()
            n = len(y)
            total_loss += loss * n
            correct += int((logits.argmax(axis=1) == y).sum())
            seen += n
            if progress is not None:
                progress(n, loss, seen / (time.perf_counter() - t0))
    seconds = time.perf_counter() - t0
    return {"loss": total_loss / max(seen, 1), "train_acc": correct / max(seen, 1),
            "samples": seen, "seconds": seconds}


def predict(model, batches):
    """Predicted classes for every batch, concatenated (model in eval mode)."""
    model.eval()
    preds = [model(x).argmax(axis=1) for x, _ in batches]
    return np.concatenate(preds) if preds else np.zeros(0, np.intp)


def confusion_matrix(labels, predictions, num_classes=10):
    """``m[i, j]`` = number of samples of class i predicted as j."""
    m = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(m, (np.asarray(labels, np.intp), np.asarray(predictions, np.intp)), 1)
    return m
