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

It does the same for ``scipy.ndimage``'s correlate, convolve, correlate1d, convolve1d, sobel
and prewitt (in ``scipy.ndimage``, ``scipy.ndimage._filters`` and
``scipy.ndimage._support_alternative_backends``; SciPy's ndimage tests call them as
``ndimage.correlate``, and SciPy's other filters reach correlate1d through ``_filters``):
``python -m pytest -p tests.scipy_plugin --pyargs scipy.ndimage.tests.test_filters``. Calls that
fastconv handed back to SciPy (fastconv.ndimage.SCIPY: 3-D correlate, ``axes``, float16 ...)
are counted apart, and the session fails if fastconv computed none of the calls of one of the
patched functions.
"""
import sys

import pytest
import scipy.signal
import scipy.signal._signaltools as _signaltools

try:  # SciPy >= 1.15: make_xp_test_case looks the tested functions up here
    from scipy._lib._array_api import xp_capabilities_table
except ImportError:
    xp_capabilities_table = {}

import scipy.ndimage
import scipy.ndimage._filters as _ndfilters
import scipy.ndimage._support_alternative_backends as _ndbackends

import fastconv.ndimage as _fn
import fastconv.signal as _fs

NAMES = ("convolve2d", "correlate2d")
ORIGINAL = {name: getattr(scipy.signal, name) for name in NAMES}
CALLS = dict.fromkeys(NAMES, 0)
ND_NAMES = tuple(_fn.__all__)  # correlate, convolve, correlate1d, convolve1d, sobel, prewitt
ND_ORIGINAL = {name: getattr(scipy.ndimage, name) for name in ND_NAMES}
ND_CALLS = dict.fromkeys(ND_NAMES, 0)
ND_FALLBACKS = dict.fromkeys(ND_NAMES, 0)


def _counting(name, module=_fs, calls=CALLS):
    target = getattr(module, name)

    def wrapper(*args, **kwargs):
        calls[name] += 1
        return target(*args, **kwargs)

    wrapper.__name__ = wrapper.__qualname__ = name
    wrapper.__doc__ = target.__doc__
    wrapper.__wrapped_fastconv__ = target
    return wrapper


PATCHED = {name: _counting(name) for name in NAMES}
ND_PATCHED = {name: _counting(name, _fn, ND_CALLS) for name in ND_NAMES}


def _counting_fallback(name, original):
    def fallback(*args, **kwargs):
        ND_FALLBACKS[name] += 1
        return original(*args, **kwargs)
    return fallback


TEST_PACKAGES = ("scipy.signal.tests", "scipy.ndimage.tests")
if any(m.startswith(TEST_PACKAGES) for m in sys.modules):
    raise pytest.UsageError("scipy_plugin: SciPy's test modules were imported before the patch; "
                            "load it with -p before collection")
for _name, _func in PATCHED.items():
    for _mod in (scipy.signal, _signaltools):
        setattr(_mod, _name, _func)
    if ORIGINAL[_name] in xp_capabilities_table:
        xp_capabilities_table[_func] = xp_capabilities_table[ORIGINAL[_name]]
for _name, _func in ND_PATCHED.items():
    if _fn.SCIPY[_name] is not ND_ORIGINAL[_name]:
        raise pytest.UsageError(f"scipy_plugin: fastconv.ndimage's fallback for {_name} is not SciPy's")
    _fn.SCIPY[_name] = _counting_fallback(_name, ND_ORIGINAL[_name])
    for _mod in (scipy.ndimage, _ndfilters, _ndbackends):
        setattr(_mod, _name, _func)
    if ND_ORIGINAL[_name] in xp_capabilities_table:
        xp_capabilities_table[_func] = xp_capabilities_table[ND_ORIGINAL[_name]]


#: SciPy tests that need more than 2 GB of memory: skipped (CI machines are small).
BIG_MEMORY = {
    "test_large_array": "a 2.15 GB int64 input (gh-10761's index overflow check)",
}


def pytest_collection_modifyitems(session, config, items):
    for item in items:
        reason = BIG_MEMORY.get(getattr(item, "originalname", item.name))
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason=f"scipy_plugin: needs > 2 GB: {reason}"))


RUN_PACKAGES = set()  # the SciPy test packages with collected tests


def pytest_collection_finish(session):
    """Every collected SciPy test module must hold the patched functions."""
    collected = {item.module.__name__ for item in session.items if getattr(item, "module", None)}
    RUN_PACKAGES.update(p for p in TEST_PACKAGES if any(m.startswith(p) for m in collected))
    for package, names, original, patched, home in (
            ("scipy.signal.tests", NAMES, ORIGINAL, PATCHED, scipy.signal),
            ("scipy.ndimage.tests", ND_NAMES, ND_ORIGINAL, ND_PATCHED, scipy.ndimage)):
        if not any(m.startswith(package) for m in collected):
            continue
        checked = sum(getattr(home, name) is patched[name] for name in names)
        for mod_name, mod in list(sys.modules.items()):
            if not mod_name.startswith(package) or mod is None:
                continue
            for name in names:
                held = getattr(mod, name, None)
                if held is original[name]:
                    raise pytest.UsageError(f"scipy_plugin: {mod_name}.{name} is still SciPy's function")
                checked += held is patched[name]
        if checked < len(names):
            raise pytest.UsageError(f"scipy_plugin: {home.__name__} does not hold fastconv's functions")


def pytest_sessionfinish(session, exitstatus):
    """Fail the run unless fastconv itself computed every patched function of each SciPy
    test package that ran at least once (a function that always fell back to SciPy, or
    was never reached, would make the upstream tests prove nothing about it)."""
    computed = {name: ND_CALLS[name] - ND_FALLBACKS[name] for name in ND_NAMES}
    idle = []
    if "scipy.signal.tests" in RUN_PACKAGES:
        idle += [f"fastconv.signal.{n}" for n in NAMES if not CALLS[n]]
    if "scipy.ndimage.tests" in RUN_PACKAGES:
        idle += [f"fastconv.ndimage.{n}" for n in ND_NAMES if not computed[n]]
    print(f"\nscipy_plugin: fastconv.signal calls: {CALLS}")
    print(f"scipy_plugin: fastconv.ndimage calls computed by fastconv: {computed}; "
          f"handed back to SciPy: {ND_FALLBACKS}")
    if session.testscollected and idle:
        session.exitstatus = 1
        print(f"scipy_plugin: FAILED: never computed by fastconv: {', '.join(idle)}", file=sys.stderr)
