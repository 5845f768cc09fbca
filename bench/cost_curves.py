"""Cost curves: time per image versus batch size, and time versus image size, fastconv
against PyTorch CPU (its lines are left out when it is not installed).

    python bench/cost_curves.py [--quick] [--threads 2] [--out bench/cost_curves]

Figures (one PNG each, plus ``cost_curves.md`` with every point and where the curves cross):

* ``lenet5_step``: a LeNet-5 training step (forward + backward + SGD step, momentum 0.9),
  1 x 28 x 28 images, batch 1, 2, 4, ..., 512.
* ``resnet8_step``: the same for ResNet-8 (fastconv.models.resnet8; tests/torch_models.py's
  twin for PyTorch), batch 1 ... 512.
* ``lenet_c3_forward``: conv2d forward, (N, 6, 14, 14) -> 16 channels, 5 x 5, batch 1 ... 512.
* ``vgg_3x3_forward``: conv2d forward, (N, 64, 56, 56) -> 64, 3 x 3, padding 1, batch
  1 ... 64 (it gets slow beyond).
* ``conv3x3_image_size``: conv2d forward, (8, 64, S, S) -> 64, 3 x 3, padding 1, for S = 28,
  56, 112, 224: time per call.

Method: both libraries at ``--threads`` threads (``fastconv.set_num_threads`` and
``torch.set_num_threads``), float32, the same random data. Every point warms up, then times
``--rounds`` rounds, each of as many calls as fill ~``--round-ms``, fastconv and PyTorch
alternating round by round (so a busy spell of the machine hits both); the figure is the
median round's time per call over the batch size. A crossing is where the ratio fastconv /
PyTorch passes 1 between two grid points (interpolated in log batch size).

``--quick`` is a reduced grid for a smoke run (batches 1, 4, 16, 64; image sizes 28 and 56;
3 rounds of ~40 ms). The files are written atomically (fastconv._atomic.atomic_write).
"""
from __future__ import annotations

import argparse
import io
import math
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import fastconv
from fastconv._atomic import atomic_write
from steps import fastconv_train_step

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # torch_models

try:
    import torch
except ImportError:  # PyTorch is a comparison, never a dependency
    torch = None

FULL_BATCHES = [2 ** k for k in range(10)]  # 1 ... 512
QUICK_BATCHES = [1, 4, 16, 64]
VGG_MAX_BATCH = 64
FULL_SIZES = [28, 56, 112, 224]
QUICK_SIZES = [28, 56]
SIZE_BATCH = 8


# ----------------------------------------------------------------------------------------
# Workloads: make(impl, n) -> a zero-argument callable doing one unit of work on batch n
# ----------------------------------------------------------------------------------------
def _images(n, c, h, w, seed=0):
    return np.random.default_rng(seed).standard_normal((n, c, h, w)).astype(np.float32)


def _labels(n):
    return np.random.default_rng(1).integers(0, 10, n).astype(np.int64)


def _fastconv_step(model, x, y):
    return fastconv_train_step(model, x, y, lr=0.01)


def _torch_step(model, x, y):
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    lossf = torch.nn.CrossEntropyLoss()
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)

    def step():
        opt.zero_grad()
        lossf(model(tx), ty).backward()
        opt.step()

    return step


def lenet5_step(impl, n):
    x, y = _images(n, 1, 28, 28), _labels(n)
    if impl == "fastconv":
        return _fastconv_step(fastconv.models.lenet5(rng=0), x, y)
    from torch_models import lenet5

    return _torch_step(lenet5(), x, y)


def resnet8_step(impl, n):
    x, y = _images(n, 1, 28, 28), _labels(n)
    if impl == "fastconv":
        return _fastconv_step(fastconv.models.resnet8(rng=0), x, y)
    from torch_models import cifar_resnet

    return _torch_step(cifar_resnet(1), x, y)


def _conv(impl, x, c_out, k, pad):
    w = np.random.default_rng(2).standard_normal((c_out, x.shape[1], k, k)).astype(np.float32) * 0.1
    b = np.zeros(c_out, np.float32)
    if impl == "fastconv":
        return lambda: fastconv.conv2d(x, w, b, padding=pad)
    tx, tw, tb = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b)

    def run():
        with torch.no_grad():
            return torch.nn.functional.conv2d(tx, tw, tb, padding=pad)

    return run


def lenet_c3(impl, n):
    return _conv(impl, _images(n, 6, 14, 14), 16, 5, 0)


def vgg_3x3(impl, n):
    return _conv(impl, _images(n, 64, 56, 56), 64, 3, 1)


def conv3x3_size(impl, s):
    return _conv(impl, _images(SIZE_BATCH, 64, s, s), 64, 3, 1)


# ----------------------------------------------------------------------------------------
# Timing
# ----------------------------------------------------------------------------------------
def _calls_for(fn, round_s):
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-6)
    return max(1, min(10000, int(round_s / one)))


def time_point(fns, rounds, round_s):
    """{impl: median seconds per call}, the impls' rounds interleaved."""
    for fn in fns.values():  # warm-up: workspaces, autotune plans, torch's first-call costs
        fn()
        fn()
    calls = {k: _calls_for(fn, round_s) for k, fn in fns.items()}
    per_call = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(calls[k]):
                fn()
            per_call[k].append((time.perf_counter() - t0) / calls[k])
    return {k: statistics.median(v) for k, v in per_call.items()}


def crossings(xs, ratio):
    """x values (interpolated in log x) where ratio(x) passes 1, with the direction."""
    out = []
    for (x0, r0), (x1, r1) in zip(zip(xs, ratio), zip(xs[1:], ratio[1:])):
        if (r0 - 1) * (r1 - 1) < 0:
            f = (1 - r0) / (r1 - r0)
            x = math.exp(math.log(x0) + f * (math.log(x1) - math.log(x0)))
            out.append((x, "fastconv faster above" if r1 < 1 else "PyTorch faster above"))
    return out


FIGURES = [
    # name, title, x label, workload, per-image?, grid kind
    ("lenet5_step", "LeNet-5 training step (fwd+bwd+SGD)", "batch size", lenet5_step, True, "batch"),
    ("resnet8_step", "ResNet-8 training step (fwd+bwd+SGD), 1x28x28", "batch size", resnet8_step, True, "batch"),
    ("lenet_c3_forward", "conv2d forward (N,6,14,14) -> 16, 5x5", "batch size", lenet_c3, True, "batch"),
    ("vgg_3x3_forward", "conv2d forward (N,64,56,56) -> 64, 3x3", "batch size", vgg_3x3, True, "vgg"),
    ("conv3x3_image_size", f"conv2d forward ({SIZE_BATCH},64,S,S) -> 64, 3x3", "image size S", conv3x3_size,
     False, "size"),
]


def run_figure(spec, grid, impls, rounds, round_s, log=print):
    name, title, xlabel, make, per_image, _ = spec
    rows = []
    for v in grid:
        fns = {impl: make(impl, v) for impl in impls}
        t = time_point(fns, rounds, round_s)
        div = v if per_image else 1
        row = {"x": v, **{impl: t[impl] / div for impl in impls}}
        rows.append(row)
        log(f"  {name} {xlabel} {v}: " + ", ".join(f"{i} {row[i] * 1e3:.4f} ms" for i in impls)
            + (f", ratio {row['fastconv'] / row['torch']:.2f}" if "torch" in row else ""))
    return rows


def markdown(results, meta):
    lines = ["# Cost curves: fastconv vs PyTorch", "",
             f"Machine: {meta['cpu']}; {meta['threads']} threads (both libraries); "
             f"{meta['isa']}; BLAS {meta['blas']}; fastconv {fastconv.__version__}"
             f"{', torch ' + torch.__version__ if torch is not None else ', PyTorch not installed'}; "
             f"grid {'quick' if meta['quick'] else 'full'}; {meta['rounds']} rounds of ~{meta['round_ms']} ms "
             f"per point, medians; load average {meta['load'][0]:.2f} at the start, "
             f"{os.getloadavg()[0]:.2f} at the end (a busy machine shows as spikes). "
             "`python bench/cost_curves.py` regenerates this file.", ""]
    for spec in FIGURES:
        name, title, xlabel, _, per_image, _ = spec
        rows = results.get(name)
        if not rows:
            continue
        unit = "ms per image" if per_image else "ms per call"
        has_torch = "torch" in rows[0]
        lines += [f"## {title}", "", f"![{name}]({name}.png)", ""]
        lines += [f"| {xlabel} | fastconv ({unit}) |" + (f" PyTorch ({unit}) | ratio |" if has_torch else ""),
                  "|---|---|" + ("---|---|" if has_torch else "")]
        for r in rows:
            line = f"| {r['x']} | {r['fastconv'] * 1e3:.4f} |"
            if has_torch:
                line += f" {r['torch'] * 1e3:.4f} | {r['fastconv'] / r['torch']:.2f} |"
            lines.append(line)
        if has_torch:
            xs = [r["x"] for r in rows]
            cross = crossings(xs, [r["fastconv"] / r["torch"] for r in rows])
            if cross:
                text = "; ".join(f"at {xlabel} ≈ {x:.3g} ({d})" for x, d in cross)
            else:
                faster = "fastconv" if rows[0]["fastconv"] < rows[0]["torch"] else "PyTorch"
                text = f"none on this grid ({faster} faster throughout)"
            lines += ["", f"Crossings: {text}"]
        lines.append("")
    return "\n".join(lines)


def plot(name, title, xlabel, rows, per_image, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [r["x"] for r in rows]
    for impl, style in (("fastconv", "o-"), ("torch", "s--")):
        if impl in rows[0]:
            ax.plot(xs, [r[impl] * 1e3 for r in rows], style, label="PyTorch" if impl == "torch" else impl)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("ms per image" if per_image else "ms per call")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write(path, lambda f: f.write(buf.getvalue()), suffix=".png")


def machine_facts(threads):
    from fastconv._info import info_dict

    d = info_dict()
    return {"cpu": fastconv.autotune.cpu_model(), "isa": d.get("simd", "?"), "blas": d.get("blas", "?"),
            "threads": threads}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="reduced grid (smoke run)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, help="rounds per point (default 7; 3 with --quick)")
    ap.add_argument("--round-ms", type=float, help="ms per round (default 150; 40 with --quick)")
    ap.add_argument("--only", help="comma-separated figure names (default: all)")
    ap.add_argument("--no-torch", action="store_true", help="leave PyTorch out even if installed")
    ap.add_argument("--out", default=str(HERE / "cost_curves"), help="folder for the PNGs and cost_curves.md")
    args = ap.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 7)
    round_ms = args.round_ms or (40.0 if args.quick else 150.0)
    batches = QUICK_BATCHES if args.quick else FULL_BATCHES
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    grids = {"batch": batches, "vgg": [b for b in batches if b <= VGG_MAX_BATCH], "size": sizes}
    impls = ["fastconv"] + (["torch"] if torch is not None and not args.no_torch else [])
    fastconv.set_num_threads(args.threads)
    if torch is not None:
        torch.set_num_threads(args.threads)
    only = set(args.only.split(",")) if args.only else None
    meta = dict(machine_facts(args.threads), quick=args.quick, rounds=rounds, round_ms=round_ms,
                load=os.getloadavg())
    print(f"cost curves: {meta['cpu']}, {args.threads} threads, {meta['isa']}, impls {impls}", flush=True)
    out = Path(args.out)
    results = {}
    for spec in FIGURES:
        name, title, xlabel, _, per_image, grid = spec
        if only and name not in only:
            continue
        rows = run_figure(spec, grids[grid], impls, rounds, round_ms / 1e3,
                          log=lambda s: print(s, flush=True))
        results[name] = rows
        plot(name, title, xlabel, rows, per_image, out / f"{name}.png")
    md = markdown(results, meta)
    atomic_write(out / "cost_curves.md", lambda f: f.write(md.encode()), suffix=".md")
    print(md)
    fastconv.set_num_threads(None)
    return results


if __name__ == "__main__":
    main()
