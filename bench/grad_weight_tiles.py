"""grad_weight of ResNet-8's 3x3 layers (batch 128) three ways, interleaved: the portable
kernel with the element-by-element gradient copy ("old": ``use_avx2(False)``), the portable
kernel with the AVX2 register-transpose copy ("copy"), and the AVX2 whole-kernel tile with it
("tile"; which of the last two runs is the measured "wgrad-tile" plan). Minimum and median of
interleaved rounds; one thread is timed in that thread's CPU time. On a CPU with AVX2 + FMA:

    python bench/grad_weight_tiles.py [THREADS] [d]      # d: float64
"""
import sys
import time

import numpy as np

import fastconv
from fastconv._kernels import _direct
from fastconv.functional import conv as C
from fastconv.functional._geometry import conv_geometry

if not _direct.AVX2_AVAILABLE or _direct.AVX512_AVAILABLE:
    sys.exit("needs a CPU with AVX2 + FMA and without the AVX-512 tiles")
fastconv.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
n = fastconv.get_num_threads()
clock = time.thread_time if n == 1 else time.perf_counter
dt = np.float64 if "d" in sys.argv[2:] else np.float32
shapes = [("16->16 28^2", 16, 28, 16, 1), ("16->32 s2", 16, 28, 32, 2), ("32->32 14^2", 32, 14, 32, 1),
          ("32->64 s2", 32, 14, 64, 2), ("64->64 7^2", 64, 7, 64, 1)]
configs = {"old": (False, False), "copy": (True, False), "tile": (True, True)}
for name, ci, h, co, s in shapes:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((128, ci, h, h)).astype(dt)
    g = conv_geometry(x.shape, (co, ci, 3, 3), s, 1, 1, 1)
    gy = rng.standard_normal(g.output_shape).astype(dt)
    times = {k: [] for k in configs}
    for _ in range(12):
        for k, (avx2, tile) in configs.items():
            _direct.use_avx2(avx2)
            C._direct_grad_weight(gy, x, g, n, tile)
            for _ in range(5):
                t0 = clock()
                C._direct_grad_weight(gy, x, g, n, tile)
                times[k].append(clock() - t0)
    _direct.use_avx2(True)
    flops = 2 * x.shape[0] * g.OH * g.OW * co * ci * 9
    print(f"{name:12s} " + "  ".join(
        f"{k} {min(v) * 1e3:6.2f} ms ({flops / min(v) / 1e9:5.1f} GFLOP/s, median {np.median(v) * 1e3:6.2f})"
        for k, v in times.items()), flush=True)
