"""Quick interleaved timing of the ResNet-8 convolutions: fastconv / torch per shape.

    PYTHONPATH=. python bench/resnet_layers_quick.py [--reps 15] [--threads 2,1]
        [--ops fwd,fwd+bwd[,grad_input,grad_weight]] [--shapes b3,b2] [--no-torch]

Each rep calls fastconv then torch (interleaved, so background load hits both alike);
prints medians (ms) and the ratio fastconv/torch, plus the best-of ratio (min/min).
Without torch it prints fastconv medians only.
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from resnet_layers import RESNET_LAYERS, fastconv_callables, layer_flops, set_threads  # noqa: E402

try:
    import torch  # noqa: F401
    from resnet_layers import torch_callables
except ImportError:
    torch = None


def _time(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--threads", default="2,1")
    ap.add_argument("--ops", default="fwd,fwd+bwd")
    ap.add_argument("--shapes", default="")
    ap.add_argument("--no-torch", action="store_true")
    args = ap.parse_args()
    ops = args.ops.split(",")
    shapes = [n for n in RESNET_LAYERS
              if not args.shapes or any(n.startswith(s) for s in args.shapes.split(","))]
    use_torch = torch is not None and not args.no_torch
    for threads in [int(t) for t in args.threads.split(",")]:
        set_threads(threads)
        print(f"--- {threads} thread(s); ms median [min]; ratio = fastconv/torch median (min/min)")
        tot = {op: [0.0, 0.0] for op in ops}
        for name in shapes:
            fc = fastconv_callables(name)
            th = torch_callables(name) if use_torch else {}
            cells = []
            for op in ops:
                if op not in fc:
                    cells.append(f"{op}: -")
                    continue
                f, t = fc[op], th.get(op)
                f()
                if t:
                    t()
                tf, tt = [], []
                for _ in range(args.reps):
                    tf.append(_time(f))
                    if t:
                        tt.append(_time(t))
                mf = np.median(tf) * 1e3
                gf = layer_flops(name) * (3 if op == "fwd+bwd" else 1) / np.min(tf) / 1e9
                if t:
                    mt = np.median(tt) * 1e3
                    tot[op][0] += mf
                    tot[op][1] += mt
                    cells.append(f"{op}: {mf:6.2f}/{mt:6.2f} = {mf / mt:4.2f} "
                                 f"({np.min(tf) / np.min(tt):4.2f})")
                else:
                    cells.append(f"{op}: {mf:6.2f} [{np.min(tf) * 1e3:6.2f}] {gf:4.0f}GF/s")
            print(f"{name:18s} " + " | ".join(cells), flush=True)
        if use_torch:
            print("total              " + " | ".join(
                f"{op}: {a:6.2f}/{b:6.2f} = {a / b:4.2f}" for op, (a, b) in tot.items() if b))


if __name__ == "__main__":
    main()
