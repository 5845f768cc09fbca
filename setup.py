"""Build script for fastconv's Cython kernels.

Environment switches (all optional):

* ``FASTCONV_NO_OPENMP=1`` -- build serial kernels even if the compiler has OpenMP.
* ``FASTCONV_DEBUG=1``     -- Cython bounds/initialisation checks on, ``-O0 -g``.
* ``FASTCONV_NATIVE=1``    -- add ``-march=native`` (the wheel then only runs on CPUs like this one).
* ``FASTCONV_SANITIZE=address`` -- AddressSanitizer build (gcc/clang; run Python with
  ``LD_PRELOAD=$(gcc -print-file-name=libasan.so)``; see ``.ci/memcheck``).
* ``FASTCONV_KERNELS=_pad,_norm`` -- development only: build just these kernel modules
  (``python setup.py build_ext --inplace`` after editing one kernel).

OpenMP support is detected by compiling, linking *and running* a tiny program with each
candidate flag, so a compiler that accepts ``-fopenmp`` but cannot link libgomp/libomp is
treated as having no OpenMP (serial build, with a warning).
"""
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import textwrap
import warnings

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

KERNELS = ["_openmp_helpers", "_im2col", "_direct", "_pooling", "_elementwise", "_optim", "_gemm", "_loss",
           "_pad", "_norm", "_adaptive_pool", "_softmax", "_plan", "_filter"]

OPENMP_TEST_PROGRAM = textwrap.dedent(
    r"""
    #include <omp.h>
    #include <stdio.h>
    int main(void) {
        int n = 0;
        #pragma omp parallel num_threads(2) reduction(+:n)
        n += 1;
        printf("%d\n", n);
        return n == 2 ? 0 : 1;
    }
    """
)

# (compile flags, link flags) to try, in order.
OPENMP_CANDIDATES = [
    (["-fopenmp"], ["-fopenmp"]),  # gcc, clang with libomp installed
    (["-Xpreprocessor", "-fopenmp"], ["-lomp"]),  # Apple clang + Homebrew libomp
    (["/openmp"], []),  # MSVC
]


def _env_flag(name):
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _try_openmp(compiler, compile_flags, link_flags):
    """Return True if a program using OpenMP compiles, links and runs with these flags."""
    tmp = tempfile.mkdtemp(prefix="fastconv-omp-")
    cwd = os.getcwd()
    try:
        os.chdir(tmp)
        with open("omp_test.c", "w") as f:
            f.write(OPENMP_TEST_PROGRAM)
        objects = compiler.compile(["omp_test.c"], extra_postargs=compile_flags)
        # distutils links executables without $LDFLAGS (extensions get them): pass them on, so
        # that e.g. LDFLAGS=-L$(brew --prefix libomp)/lib finds libomp for the probe as well
        env_ldflags = shlex.split(os.environ.get("LDFLAGS", ""))
        compiler.link_executable(objects, "omp_test", extra_postargs=link_flags + env_ldflags)
        exe = os.path.join(tmp, "omp_test" + (".exe" if sys.platform == "win32" else ""))
        out = subprocess.run([exe], capture_output=True, text=True, timeout=60)
        return out.returncode == 0
    except Exception:  # noqa: BLE001 - any failure means "no OpenMP with these flags"
        return False
    finally:
        os.chdir(cwd)
        shutil.rmtree(tmp, ignore_errors=True)


class BuildExt(build_ext):
    """build_ext that adds OpenMP and optimisation flags suited to the active compiler."""

    def finalize_options(self):
        super().finalize_options()
        if self.parallel is None:  # compile the kernel modules on all cores unless -j says otherwise
            self.parallel = os.cpu_count() or 1

    def run(self):
        # Cythonize here, not when setup.py is loaded: sdist, egg_info and the PEP 517
        # build-requirement queries then skip the ~1 min of Cython work they never use.
        for ext, cythonized in zip(self.extensions, cythonize_extensions(self.extensions)):
            ext.sources = cythonized.sources  # the generated C (one module per extension)
        super().run()

    def build_extensions(self):
        msvc = self.compiler.compiler_type == "msvc"
        # -fno-math-errno: the kernels never read errno, and setting it keeps loops that
        # call sqrt (Adam's update) from vectorising.
        compile_args = ["/O2"] if msvc else ["-O3", "-fno-math-errno"]
        link_args = []
        if _env_flag("FASTCONV_DEBUG"):
            compile_args = ["/Od", "/Zi"] if msvc else ["-O0", "-g"]
        if _env_flag("FASTCONV_NATIVE") and not msvc:
            compile_args.append("-march=native")
        sanitize = os.environ.get("FASTCONV_SANITIZE", "").strip()
        if sanitize and not msvc:
            compile_args += [f"-fsanitize={sanitize}", "-fno-omit-frame-pointer", "-g"]
            link_args.append(f"-fsanitize={sanitize}")

        openmp = None
        if _env_flag("FASTCONV_NO_OPENMP"):
            print("fastconv: FASTCONV_NO_OPENMP set, building serial kernels")
        else:
            for cflags, lflags in OPENMP_CANDIDATES:
                if _try_openmp(self.compiler, cflags, lflags):
                    openmp = (cflags, lflags)
                    break
            if openmp is None:
                warnings.warn(
                    "fastconv: the C compiler has no working OpenMP support; building "
                    "SERIAL kernels (correct but single-threaded). Install libgomp/libomp "
                    "to enable threads.",
                    stacklevel=1,
                )
        if openmp is not None:
            print(f"fastconv: OpenMP enabled with {openmp[0]} / {openmp[1]}")
            compile_args += openmp[0]
            link_args += openmp[1]
        elif not msvc:
            # Keeps the kernels' `#pragma omp simd` hints without the OpenMP runtime.
            compile_args.append("-fopenmp-simd")

        for ext in self.extensions:
            ext.extra_compile_args = list(compile_args) + list(ext.extra_compile_args)
            ext.extra_link_args = list(link_args) + list(ext.extra_link_args)
        super().build_extensions()


def _selected_kernels():
    only = [k.strip() for k in os.environ.get("FASTCONV_KERNELS", "").split(",") if k.strip()]
    unknown = sorted(set(only) - set(KERNELS))
    if unknown:
        sys.exit(f"FASTCONV_KERNELS names unknown kernels {unknown}; choices: {KERNELS}")
    return only or KERNELS


def make_extensions():
    """The kernel extensions, with their .pyx sources (cythonized by BuildExt.run)."""
    kernels_dir = os.path.join("fastconv", "_kernels")
    return [
        Extension(
            f"fastconv._kernels.{name}",
            [os.path.join(kernels_dir, f"{name}.pyx")],
            include_dirs=[kernels_dir],
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_9_API_VERSION")],
        )
        for name in _selected_kernels()
    ]


def cythonize_extensions(extensions):
    from Cython.Build import cythonize

    debug = _env_flag("FASTCONV_DEBUG")
    directives = {
        "language_level": 3,
        "boundscheck": debug,
        "wraparound": False,
        "initializedcheck": debug,
        "cdivision": True,
        "nonecheck": False,
        "embedsignature": True,
    }
    kernels_dir = os.path.join("fastconv", "_kernels")
    # force: the directives differ between debug and release builds, so never reuse stale C.
    return cythonize(
        extensions, compiler_directives=directives, include_path=[kernels_dir], force=True
    )


setup(ext_modules=make_extensions(), cmdclass={"build_ext": BuildExt})
