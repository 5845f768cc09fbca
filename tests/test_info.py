"""Build facts, thread control and the `info` command."""
import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest

import fastconv


def test_openmp_enabled_unless_opted_out():
    # CI builds with OpenMP; a silent serial build must fail here.
    if os.environ.get("FASTCONV_NO_OPENMP") == "1":
        pytest.skip("built with FASTCONV_NO_OPENMP=1")
    assert fastconv.openmp_enabled()


def test_set_get_num_threads_roundtrip():
    default = fastconv.get_num_threads()
    assert default >= 1
    try:
        fastconv.set_num_threads(3)
        assert fastconv.get_num_threads() == (3 if fastconv.openmp_enabled() else 1)
    finally:
        fastconv.set_num_threads(None)
    assert fastconv.get_num_threads() == default


@pytest.mark.skipif(not fastconv.openmp_enabled(), reason="serial build: always 1 thread")
def test_num_threads_context_is_thread_local_and_nests():
    import threading

    default = fastconv.get_num_threads()
    seen = {}
    started, release = threading.Event(), threading.Event()

    def other():  # runs while the main thread is inside num_threads(3)
        started.set()
        release.wait(10)
        seen["other"] = fastconv.get_num_threads()
        with fastconv.num_threads(5):
            seen["other-inner"] = fastconv.get_num_threads()

    t = threading.Thread(target=other)
    with fastconv.num_threads(3):
        t.start()
        started.wait(10)
        assert fastconv.get_num_threads() == 3
        with fastconv.num_threads(1):
            assert fastconv.get_num_threads() == 1
            with fastconv.num_threads(None):  # None: unchanged
                assert fastconv.get_num_threads() == 1
        assert fastconv.get_num_threads() == 3
        release.set()
        t.join(10)
        assert fastconv.get_num_threads() == 3  # the other thread's block did not leak here
    assert seen == {"other": default, "other-inner": 5}
    assert fastconv.get_num_threads() == default
    try:  # the thread-local setting wins over the process-wide one, which it restores
        fastconv.set_num_threads(2)
        with fastconv.num_threads(1):
            assert fastconv.get_num_threads() == 1
        assert fastconv.get_num_threads() == 2
    finally:
        fastconv.set_num_threads(None)


@pytest.mark.parametrize("bad, exc", [(0, ValueError), (-2, ValueError), (1.5, TypeError), ("2", TypeError),
                                      (True, TypeError)])
def test_num_threads_context_rejects_bad_counts(bad, exc):
    with pytest.raises(exc, match="n must be a positive int or None"):
        fastconv.num_threads(bad)


def test_default_threads_follow_omp_num_threads():
    code = "import fastconv; print(fastconv.get_num_threads())"
    env = dict(os.environ, OMP_NUM_THREADS="3")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True,
                         cwd=tempfile.gettempdir())
    assert out.stdout.strip() == ("3" if fastconv.openmp_enabled() else "1")


def test_threadpoolctl_limits_openmp_threads():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not fastconv.openmp_enabled():
        pytest.skip("serial build")
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        assert fastconv.get_num_threads() == 1


def test_blas_is_restored_after_kernels():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    x = np.ones((4, 3, 8, 8), np.float32)
    w = np.ones((4, 3, 3, 3), np.float32)
    before = [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    fastconv.conv2d(x, w, algorithm="im2col")
    after = [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    assert before == after


def test_info_command():
    out = subprocess.run([sys.executable, "-m", "fastconv", "info"], capture_output=True, text=True, check=True,
                         cwd=tempfile.gettempdir())
    for key in ("fastconv", "openmp", "threads", "simd", "numpy", "scipy", "blas"):
        assert key in out.stdout
    assert fastconv.__version__ in out.stdout
    from fastconv._kernels import _direct

    assert ("AVX-512 kernels" in out.stdout) == _direct.AVX512_AVAILABLE
    assert ("AVX2 kernels" in out.stdout) == (_direct.AVX2_AVAILABLE and not _direct.AVX512_AVAILABLE)


def test_simd_line_and_autotune_key_follow_the_tiles_in_use(simd):
    """`fastconv info`'s simd line and every autotuning key name the tiles that run: a plan
    measured with the portable kernels must not be reused for the AVX2 or AVX-512 ones."""
    from fastconv._info import _simd
    from fastconv._kernels import _direct
    from fastconv.functional import _autotune

    assert _direct.kernel_isa() == simd
    assert _simd().startswith({"avx512": "AVX-512", "avx2": "AVX2", "portable": "portable"}[simd])
    g = fastconv.functional.conv_geometry((1, 8, 8, 8), (8, 8, 3, 3), 1, 1)
    assert f" {simd} " in _autotune.key_string(g, np.float32, "forward", 1)
