"""pytest plugin: run SciPy's own tests against fastconv's drop-ins.

``python -m pytest -p tests.scipy_plugin --pyargs scipy.signal.tests.test_signaltools
-k "TestConvolve2d or TestCorrelate2d"`` (from the repository root, or with ``tests`` on
sys.path as ``-p scipy_plugin``). Loaded by ``-p`` before collection, so before SciPy's
test modules run ``from scipy.signal import convolve2d, correlate2d``: it points
``scipy.signal.convolve2d`` / ``correlate2d`` (and ``scipy.signal._signaltools``'s) at
fastconv.signal's, registers them in SciPy's ``xp_capabilities_table`` with the originals'
capabilities (``make_xp_test_case`` looks functions up there), and fails the session
loudly if a collected test module still holds SciPy's functions or none of the patched
functions was called.
"""
import sys

import pytest
import scipy.signal
import scipy.signal._signaltools as _signaltools
try:  # SciPy >= 1.15: make_xp_test_case looks the tested functions up here
    from scipy._lib._array_api import xp_capabilities_table
except ImportError:
    xp_capabilities_table = {}

import fastconv.signal as _fs

NAMES = ("convolve2d", "correlate2d")
ORIGINAL = {name: getattr(scipy.signal, name) for name in NAMES}
CALLS = dict.fromkeys(NAMES, 0)


def _counting(name):
    target = getattr(_fs, name)

    def wrapper(*args, **kwargs):
        CALLS[name] += 1
        return target(*args, **kwargs)

    wrapper.__name__ = wrapper.__qualname__ = name
    wrapper.__doc__ = target.__doc__
    wrapper.__wrapped_fastconv__ = target
    return wrapper


PATCHED = {name: _counting(name) for name in NAMES}

if any(m.startswith("scipy.signal.tests") for m in sys.modules):
    raise pytest.UsageError("scipy_plugin: SciPy's test modules were imported before the patch; "
                            "load it with -p before collection")
for _name, _func in PATCHED.items():
    for _mod in (scipy.signal, _signaltools):
        setattr(_mod, _name, _func)
    if ORIGINAL[_name] in xp_capabilities_table:
        xp_capabilities_table[_func] = xp_capabilities_table[ORIGINAL[_name]]


def pytest_collection_finish(session):
    """Every collected SciPy test module must hold the patched functions."""
    checked = 0
    for mod_name, mod in list(sys.modules.items()):
        if not mod_name.startswith("scipy.signal.tests") or mod is None:
            continue
        for name in NAMES:
            held = getattr(mod, name, None)
            if held is ORIGINAL[name]:
                raise pytest.UsageError(f"scipy_plugin: {mod_name}.{name} is still SciPy's function")
            checked += held is PATCHED[name]
    if not checked:
        raise pytest.UsageError("scipy_plugin: no SciPy signal test module holds fastconv's functions")


def pytest_sessionfinish(session, exitstatus):
    if session.testscollected and not any(CALLS.values()):
        session.exitstatus = 1
        print("\nscipy_plugin: FAILED: fastconv's correlate2d/convolve2d were never called", file=sys.stderr)
    else:
        print(f"\nscipy_plugin: fastconv.signal calls: {CALLS}")
