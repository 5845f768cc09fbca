"""ONNX export and import: :func:`export` writes a fastconv model as an ONNX file (checked
by ``onnx.checker``, run by onnxruntime or any ONNX runtime), :func:`load` builds a
fastconv model from an ONNX file (from ``torch.onnx.export`` or :func:`export`) that can
be evaluated and fine-tuned.

The ``onnx`` package is an optional extra (``pip install "fastconv[onnx]"``): this module
imports without it, and its functions raise ImportError saying how to install it.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from ..nn import Module

_INSTALL = 'pip install "fastconv[onnx]"'


def _require_onnx():
    try:
        import onnx  # noqa: F401
    except ImportError as e:
        raise ImportError(f"fastconv.onnx needs the onnx package, which is not installed: {_INSTALL}") from e


def export(model: Module, path: str | os.PathLike[str], input_shape: Sequence[int], *,
           dynamic_batch: bool = True, opset: int = 17) -> Any:
    """Write ``model`` to ``path`` as an ONNX file (evaluation-mode semantics).

    Parameters
    ----------
    model : fastconv.nn.Module
        Any model made of fastconv layers and containers (Sequential, Residual, Concat,
        Graph); BatchNorm exports its running statistics, Dropout nothing (evaluation mode).
    path : str or Path
        Written atomically (a temporary file in the same folder, then renamed).
    input_shape : tuple of ints
        The input's shape, e.g. ``(1, 1, 28, 28)``: the static sizes of the graph (pool
        windows, adaptive bins) and the batch size when ``dynamic_batch`` is False.
    dynamic_batch : bool, default True
        The first axis of the input and output is symbolic (``"N"``): any batch size runs.
    opset : int, default 17
        The ai.onnx opset to write, 13 to 22.

    Returns
    -------
    pathlib.Path
        The path written.

    Initializers are named by the model's state-dict keys (``0.weight``, ``3.body.1.running_mean``),
    and the model's ``config`` dict, if any, is stored as JSON in the ``fastconv.config``
    metadata property. The model passes ``onnx.checker.check_model(full_check=True)``
    before it is written.

    Raises
    ------
    ValueError
        Naming the layer (dotted name) that cannot be expressed in ONNX, and why.
    ImportError
        When the ``onnx`` package is missing.
    """
    _require_onnx()
    from .exporter import export as _export

    return _export(model, path, input_shape, dynamic_batch=dynamic_batch, opset=opset)


def load(path: str | os.PathLike[str]) -> Module:
    """Build a fastconv model from the ONNX file ``path``.

    Returns a :class:`fastconv.nn.Sequential` when the graph is a chain, a
    :class:`fastconv.nn.Graph` otherwise, in evaluation mode (call ``.train()`` to
    fine-tune), with the file's weights as Parameters and ``config`` set from the file's
    ``fastconv.config`` metadata (``{}`` when there is none).

    Raises
    ------
    ValueError
        Naming the node (name and op type) whose operator or attribute is not supported,
        or saying what is wrong with a malformed file.
    ImportError
        When the ``onnx`` package is missing.
    """
    _require_onnx()
    from .importer import load as _load

    return _load(path)


__all__ = ["export", "load"]


def _read_for_serialization(path):
    """``fastconv.load`` / ``load_model`` reader of ``.onnx`` files (a built model)."""
    from ..serialization import ModelFileError

    try:
        _require_onnx()
    except ImportError as e:
        raise ModelFileError(f"{path}: {e}") from None
    return load(path)


def _register():
    from ..serialization import register_format

    register_format(".onnx", None, _read_for_serialization)


_register()
