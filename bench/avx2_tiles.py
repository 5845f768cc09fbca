"""Every AVX2 forward tile, forced, on the ResNet-8 / LeNet-5 layer shapes (one image or
eight, 1 thread): microseconds of one direct forward kernel call (the padded copy included,
weight packing not), against the portable tile. Run on a CPU with AVX2 + FMA:

    python bench/avx2_tiles.py [d]        # d: float64

'*' marks the tile forward_tile picks; "best" the fastest. The table and rule it checks are
in fastconv/_kernels/_conv_avx2.h and _direct.forward_tile.
"""
import sys
import time

import numpy as np

import fastconv
from fastconv._kernels import _direct
from fastconv.functional import conv as C
from fastconv.functional._geometry import conv_geometry
fastconv.set_num_threads(1)
dt = np.float64 if "d" in sys.argv[1:] else np.float32
shapes = [  # N, C, H, W, Cout, k, s, p
    ("1-16 28", 1, 1, 28, 28, 16, 3, 1, 1),
    ("16-16 28", 1, 16, 28, 28, 16, 3, 1, 1),
    ("16-32 s2", 1, 16, 28, 28, 32, 3, 2, 1),
    ("32-32 14", 1, 32, 14, 14, 32, 3, 1, 1),
    ("32-64 s2", 1, 32, 14, 14, 64, 3, 2, 1),
    ("64-64 7", 1, 64, 7, 7, 64, 3, 1, 1),
    ("64-64 56", 1, 64, 56, 56, 64, 3, 1, 1),
    ("lenet_c3", 8, 6, 14, 14, 16, 5, 1, 0),
    ("lenet_c1", 8, 1, 28, 28, 6, 5, 1, 2),
    ("c3 grad_in", 8, 16, 10, 10, 6, 5, 1, 4),  # lenet_c3's grad_input, a transposed conv
    ("1x1 16-32 s2", 1, 16, 28, 28, 32, 1, 2, 0),
]
table = {t: (nv, owb, kw, sw) for t, nv, owb, kw, sw in _direct.avx2_tiles()}
orig = _direct.forward_tile
lanes = 4 if dt == np.float64 else 8
if not table:
    sys.exit("no AVX2 tiles on this CPU or build")


def timeit(fn, reps):
    fn(); ts = []
    for _ in range(reps):
        t0 = time.perf_counter(); fn(); ts.append(time.perf_counter() - t0)
    return sorted(ts)[len(ts)//4] * 1e6


for name, N, Ci, H, W, Co, k, s, p in shapes:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, Ci, H, W)).astype(dt); w = rng.standard_normal((Co, Ci, k, k)).astype(dt); b = np.zeros(Co, dt)
    OW = (W + 2*p - k)//s + 1
    ref = C.conv2d(x, w, b, stride=s, padding=p, algorithm="direct")
    cands = [("portable", None)] + [(f"{nv}x{owb}k{kw}s{sw}", (t, nv*lanes, owb)) for t, (nv, owb, kw, sw) in table.items() if (kw, sw) in ((0, 0), (k, s))]
    if dt == np.float32 and s == 1 and Co <= 8:
        cands.append(("pixel", (_direct.AVX2_PIXEL_TILE, 8, 8)))
    auto = orig(dt == np.float64, Co, OW, k, s, 1)
    res = {}
    for label, forced in cands:
        if forced is None:
            _direct.use_avx2(False); ft = orig(dt == np.float64, Co, OW, k, s, 1); _direct.use_avx2(True)
        else:
            ft = forced
        if True:  # the job row _direct_forward_jobs builds, with the tile given
            g = conv_geometry(x.shape, w.shape, s, p, 1, 1)
            tile, cb, owb = ft
            hp = (g.OH - 1) * g.sh + (g.kh - 1) * g.dh + 1
            wp = (-(-g.OW // owb) * owb - 1) * g.sw + (g.kw - 1) * g.dw + 1
            wpack = C._pack_weight_blocked(w.reshape(1, *w.shape), cb, 1)
            rows = np.array([(tile, cb, hp, wp, g.kh, g.kw, g.sh, g.sw, g.pad_top, g.pad_left, g.dh,
                     g.dw, g.OH, g.OW, 0, g.OW, 1, 0, wpack.shape[1])], np.intp)
            xpad = np.empty((1, Ci * hp * wp), dt)
            out = np.empty_like(ref); wflat = wpack.reshape(-1)
            def fn():
                _direct.conv2d_direct_forward(x, wflat, b, out, xpad, rows, 1, 1)
                return out
            y = fn(); assert np.allclose(y, ref, atol=1e-3), (name, label)
            res[label + ("*" if ft == auto else "")] = timeit(fn, 300)
    best = min(res, key=res.get)
    print(f"{name:12s} " + " ".join(f"{k}:{v:.0f}" for k, v in res.items()) + f"  best={best}", flush=True)
