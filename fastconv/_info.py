"""Build and runtime facts for bug reports (``fastconv info``)."""
import platform
import sys

import numpy as np

from ._parallel import get_num_threads, openmp_enabled
from ._version import __version__


def _simd():
    """Which convolution kernels run here: the AVX-512 tiles, the AVX2 ones or the portable
    ones."""
    from ._kernels import _direct

    if _direct.use_avx512():
        return "AVX-512 kernels (chosen at run time)"
    off = " and ".join(name for name, available, on in (
        ("AVX-512", _direct.AVX512_AVAILABLE, False), ("AVX2", _direct.AVX2_AVAILABLE, _direct.use_avx2()))
        if available and not on)
    why = f" ({off} switched off)" if off else ""
    if _direct.use_avx2():
        return "AVX2 kernels (chosen at run time)" + why
    return "portable kernels" + (why or " (no AVX-512 or AVX2 on this CPU or build)")


def info_dict():
    """Return version, OpenMP, threads, SIMD kernels, NumPy/SciPy and BLAS facts as a dict."""
    import scipy

    d = {
        "fastconv": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "openmp": "on" if openmp_enabled() else "off (serial kernels)",
        "threads": get_num_threads(),
        "simd": _simd(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
    }
    try:
        import scipy.linalg  # noqa: F401 - loads SciPy's BLAS so threadpoolctl can see it
        from threadpoolctl import threadpool_info

        blas = [
            f"{i.get('internal_api')} {i.get('version')} ({i.get('prefix')}, "
            f"{i.get('num_threads')} threads, {i.get('architecture', '?')})"
            for i in threadpool_info()
            if i.get("user_api") == "blas"
        ]
        d["blas"] = "; ".join(blas) or "unknown"
    except Exception as e:  # noqa: BLE001 - info must never fail
        d["blas"] = f"unknown ({e})"
    try:
        import warnings

        from .functional import _autotune

        d["cpu"] = _autotune.cpu_signature()
        path = _autotune.plan_cache_path()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            n = len(_autotune._read_file(path))
        d["autotune"] = _autotune.get_autotune()
        d["plan file"] = f"{path} ({n} plans)" if path.exists() else f"{path} (none yet)"
    except Exception as e:  # noqa: BLE001 - info must never fail
        d["autotune"] = f"unknown ({e})"
    return d


def format_info():
    d = info_dict()
    width = max(len(k) for k in d)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in d.items())
