"""Packaging facts checkable without a build: py.typed, the version, the kernel stubs, and
docstrings plus complete annotations on every public name (PEP 561: fastconv is typed).

The distributions themselves (sdist contents, wheel contents, auditwheel, a fresh-venv
smoke test, mypy) are checked by .ci/run."""
import importlib
import importlib.util
import inspect
import pathlib
import re
import sys

import pytest

import fastconv

PKG = pathlib.Path(fastconv.__file__).resolve().parent
ROOT = pathlib.Path(__file__).resolve().parent.parent

#: Modules whose ``__all__`` is the public API.
PUBLIC_MODULES = ["fastconv", "fastconv.nn", "fastconv.functional", "fastconv.optim",
                  "fastconv.optim.lr_scheduler", "fastconv.models", "fastconv.datasets.transforms",
                  "fastconv.nn.utils", "fastconv.inference", "fastconv.onnx", "fastconv.checkpoint",
                  "fastconv.distributed", "fastconv.signal", "fastconv.ndimage", "fastconv.filters",
                  "fastconv.dask"]
#: Methods of public classes that must be annotated where the class defines them.
METHODS = ("__init__", "__call__", "forward", "backward", "step", "zero_grad", "state_dict",
           "load_state_dict", "get_lr", "parameters", "named_parameters", "train", "eval")


def _public_names():
    for modname in PUBLIC_MODULES:
        try:
            mod = importlib.import_module(modname)
        except ImportError:  # an optional extra (onnx) that is not installed
            continue
        for name in getattr(mod, "__all__", ()):
            obj = getattr(mod, name)
            if inspect.ismodule(obj) or not callable(obj):
                continue  # subpackages, constants (MODELS, ALGORITHMS, __version__)
            yield pytest.param(obj, id=f"{modname}.{name}")


def _unannotated(func):
    """Names of the parameters (and 'return') of ``func`` that have no annotation."""
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return []
    missing = [p.name for i, p in enumerate(sig.parameters.values())
               if p.annotation is inspect.Parameter.empty and not (i == 0 and p.name in ("self", "cls"))]
    if sig.return_annotation is inspect.Signature.empty:
        missing.append("return")
    return missing


def test_py_typed_ships_in_the_package():
    assert (PKG / "py.typed").is_file(), f"{PKG} has no py.typed (PEP 561 marker)"


def test_every_kernel_module_has_a_stub():
    compiled = {p.name.split(".")[0] for p in (PKG / "_kernels").iterdir() if p.suffix in (".so", ".pyd")}
    stubs = {p.stem for p in (PKG / "_kernels").glob("*.pyi")}
    assert compiled, "no compiled kernel modules found"
    assert compiled <= stubs, f"kernel modules without a .pyi stub: {sorted(compiled - stubs)}"


@pytest.mark.skipif(not (ROOT / ".ci" / "kernel_stubs.py").exists(), reason="needs the source tree")
def test_kernel_stubs_match_the_pyx_sources():
    spec = importlib.util.spec_from_file_location("kernel_stubs", ROOT / ".ci" / "kernel_stubs.py")
    kernel_stubs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(kernel_stubs)
    stale = [pyx.name for pyx in sorted((ROOT / "fastconv" / "_kernels").glob("*.pyx"))
             if not pyx.with_suffix(".pyi").exists() or pyx.with_suffix(".pyi").read_text() != kernel_stubs.stub_for(pyx)]
    assert not stale, f"stubs out of date for {stale}: run python .ci/kernel_stubs.py"


@pytest.mark.skipif(not (ROOT / "pyproject.toml").exists(), reason="needs the source tree")
def test_version_is_pyprojects_dynamic_attr():
    text = (ROOT / "pyproject.toml").read_text()
    if sys.version_info >= (3, 11):
        import tomllib

        attr = tomllib.loads(text)["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    else:  # no TOML parser in the standard library before 3.11
        attr = re.search(r'^version\s*=\s*\{\s*attr\s*=\s*"([^"]+)"', text, re.M).group(1)
    module, _, name = attr.rpartition(".")
    assert getattr(importlib.import_module(module), name) == fastconv.__version__
    assert re.fullmatch(r"\d+\.\d+\.\d+((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?", fastconv.__version__)


@pytest.mark.parametrize("obj", list(_public_names()))
def test_public_name_has_docstring_and_annotations(obj):
    assert (inspect.getdoc(obj) or "").strip(), f"{obj!r} has no docstring"
    if inspect.isclass(obj):
        problems = {}
        for meth in METHODS:
            fn = getattr(obj, meth, None)
            if fn is None or fn is getattr(object, meth, None) or not inspect.isfunction(fn):
                continue  # not defined, object's, or a C slot wrapper
            missing = _unannotated(fn)
            if missing:
                problems[meth] = missing
        assert not problems, f"{obj.__qualname__}: unannotated {problems}"
    else:
        missing = _unannotated(obj)
        assert not missing, f"{obj.__qualname__}: unannotated {missing}"
