"""The two registries behind :mod:`fastconv.onnx`: one exporter per fastconv layer class
(``add_exporter``) and one converter per ONNX operator and version (``add_converter``,
as onnx2torch's ``node_converters/registry.py``)."""

from typing import Any, Callable, Dict, Tuple

#: layer class -> exporter ``fn(ctx, module, name, x) -> value`` (see exporter.py)
EXPORTERS: Dict[type, Callable[..., Any]] = {}
#: (op_type, since_version) -> converter ``fn(ctx, node) -> None`` (see importer.py)
CONVERTERS: Dict[Tuple[str, int], Callable[..., Any]] = {}


def add_exporter(*classes):
    """Register the decorated function as the exporter of ``classes`` (and subclasses)."""

    def register(fn):
        for cls in classes:
            if cls in EXPORTERS:
                raise ValueError(f"an exporter for {cls.__name__} is already registered")
            EXPORTERS[cls] = fn
        return fn

    return register


def find_exporter(module):
    """The exporter of ``module``'s class or of its nearest registered base, or None."""
    for cls in type(module).__mro__:
        fn = EXPORTERS.get(cls)
        if fn is not None:
            return fn
    return None


def add_converter(operation_type, *versions):
    """Register the decorated function as the converter of ONNX operator
    ``operation_type`` (default domain) for each of its schema ``versions`` (the opset in
    which that version of the operator was introduced: its ``since_version``)."""

    def register(fn):
        for version in versions:
            key = (operation_type, int(version))
            if key in CONVERTERS:
                raise ValueError(f"a converter for {key} is already registered")
            CONVERTERS[key] = fn
        return fn

    return register


def supported_ops():
    """``{op_type: sorted since_versions}`` of the registered converters."""
    ops: dict = {}
    for op, version in CONVERTERS:
        ops.setdefault(op, []).append(version)
    return {op: sorted(v) for op, v in sorted(ops.items())}


def unique_name(base: str, taken: set) -> str:
    """``base``, or ``base_1``, ``base_2``... if taken; the name returned joins ``taken``
    (ONNX value and node names, and Graph node names, must be unique)."""
    name, i = base, 0
    while name in taken:
        i += 1
        name = f"{base}_{i}"
    taken.add(name)
    return name
