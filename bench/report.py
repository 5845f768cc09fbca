"""Run the benchmarks and write ``bench/results.md`` and ``bench/results.png``.

Usage::

    python bench/report.py                  # runs pytest bench/ (a few minutes), then writes both
    python bench/report.py --json run.json  # renders an existing pytest-benchmark JSON
    python bench/report.py --cost-curves    # also bench/cost_curves.py (slow; --cost-curves-quick: reduced grid)

Times are pytest-benchmark medians. GFLOP/s counts 2 x multiply-adds (forward; three
times that for forward + both gradients). "vs PyTorch" is fastconv's time over PyTorch's
in the same run (below 1 = faster); "NumPy / x" is the speed-up over the NumPy baseline.
Peak extra memory is the most NumPy had allocated during one call, output included
(tracemalloc); PyTorch's is not visible to it.

Every report names the CPU model, the kernels' ISA level (AVX-512 tiles or portable) and
the BLAS library and kernel (threadpoolctl's architecture), recorded when the benchmarks
run (``<json>.facts.json`` beside the JSON; a JSON rendered without one gets the facts of
the machine rendering it, and says so). Files are written atomically.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent


def machine_facts():
    """CPU model, kernel ISA level, BLAS kernel, threads: what every report records."""
    import fastconv
    from fastconv._info import info_dict

    d = info_dict()
    return {"cpu": fastconv.autotune.cpu_model(), "logical_cpus": os.cpu_count(),
            "isa": d.get("simd", "?"), "blas": d.get("blas", "?"), "openmp": d.get("openmp", "?"),
            "fastconv": d.get("fastconv", "?"), "numpy": d.get("numpy", "?"),
            "python": platform.python_version(), "autotune": d.get("autotune", "?")}


def _facts_path(json_path):
    return Path(str(json_path) + ".facts.json")


def _write(path, data, suffix):
    from fastconv._atomic import atomic_write

    atomic_write(path, lambda f: f.write(data), suffix=suffix)
ORDER = ["numpy", "sgemm", "fastconv-direct", "fastconv-im2col", "fastconv-auto", "fastconv", "torch"]


def run_benchmarks(json_path):
    """Run every bench once with pytest-benchmark, saving its JSON to ``json_path``."""
    cmd = [sys.executable, "-m", "pytest", str(HERE), "--benchmark-only", "-q",
           "-p", "no:cacheprovider", f"--benchmark-json={json_path}"]
    subprocess.run(cmd, check=True, cwd=HERE.parent)


def load(json_path):
    """{(shape, pass, dtype, threads): {impl: row}} with row = dict(median, flops, peak_bytes)."""
    with open(json_path) as f:
        data = json.load(f)
    groups = defaultdict(dict)
    for b in data["benchmarks"]:
        e = b["extra_info"]
        if "shape" not in e or "pass_" not in e:
            continue  # benches with tables of their own (filtering, graphs): not rows here
        key = (e["shape"], e["pass_"], e.get("dtype", "float32"), e.get("threads", 2))
        groups[key][e["impl"]] = dict(median=b["stats"]["median"], flops=e.get("flops"),
                                      peak_bytes=e.get("peak_bytes"))
    return groups, data.get("machine_info", {})


def _fmt(value, spec, suffix=""):
    return "—" if value is None else f"{value:{spec}}{suffix}"


def _fastconv_impl(rows):
    return "fastconv-auto" if "fastconv-auto" in rows else "fastconv"


def markdown(groups, machine, facts=None, facts_note=""):
    """The full table plus a summary of the figures issue 4 sets."""
    facts = facts or {}
    cpu = facts.get("cpu") or machine.get("cpu", {}).get("brand_raw") or platform.processor() or "unknown CPU"
    lines = [
        "# fastconv benchmark results",
        "",
        f"Machine: {cpu}, {facts.get('logical_cpus', os.cpu_count())} logical CPUs; "
        f"Python {facts.get('python', platform.python_version())}. "
        "Medians of pytest-benchmark rounds; `python bench/report.py` regenerates this file.",
        "",
        f"- CPU model: {cpu}",
        f"- ISA level (convolution kernels): {facts.get('isa', 'unknown')}",
        f"- BLAS: {facts.get('blas', 'unknown')}",
        f"- OpenMP: {facts.get('openmp', 'unknown')}; fastconv {facts.get('fastconv', '?')}, "
        f"NumPy {facts.get('numpy', '?')}, autotune {facts.get('autotune', '?')}{facts_note}",
        "",
        "## Summary (fastconv time / PyTorch time; below 1 means fastconv is faster)",
        "",
        "| workload | fastconv | PyTorch | ratio | target |",
        "|---|---|---|---|---|",
    ]
    lines += summary_rows(groups)
    lines += ["", "## All rows", "",
              "| shape | pass | dtype | threads | implementation | median (ms) | GFLOP/s "
              "| peak extra memory (MiB) | vs PyTorch | NumPy / x |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for key in groups:
        shape, pass_, dtype, threads = key
        rows = groups[key]
        torch_t = rows.get("torch", {}).get("median")
        numpy_t = rows.get("numpy", {}).get("median")
        for impl in sorted(rows, key=lambda i: ORDER.index(i) if i in ORDER else 99):
            r = rows[impl]
            t = r["median"]
            gflops = r["flops"] / t / 1e9 if r["flops"] else None
            peak = r["peak_bytes"] / 2**20 if r["peak_bytes"] is not None else None
            vs_torch = t / torch_t if torch_t and impl not in ("torch", "numpy", "sgemm") else None
            vs_numpy = numpy_t / t if numpy_t and impl not in ("numpy", "sgemm") else None
            lines.append(
                f"| {shape} | {pass_} | {dtype} | {threads} | {impl} | {t * 1e3:.3f} | "
                f"{_fmt(gflops, '.1f')} | {_fmt(peak, '.2f')} | {_fmt(vs_torch, '.2f')} | "
                f"{_fmt(vs_numpy, '.2f', '×')} |"
            )
    return "\n".join(lines) + "\n"


def summary_rows(groups):
    out = []

    def ratio_row(label, key, target):
        rows = groups.get(key)
        if not rows or "torch" not in rows:
            return
        fc = rows[_fastconv_impl(rows)]["median"]
        tt = rows["torch"]["median"]
        out.append(f"| {label} | {fc * 1e3:.3f} ms | {tt * 1e3:.3f} ms | {fc / tt:.2f} | {target} |")

    # targets: issue 14's (the LeNet-5 epoch, the compass shapes, float64)
    ratio_row("LeNet-5 training epoch (2 threads)", ("lenet5_epoch", "train", "float32", 2), "≤ 0.5")
    for shape in ("lenet_c1", "lenet_c3", "vgg_3x3", "resnet_s2"):
        for pass_ in ("forward", "forward+backward"):
            ratio_row(f"conv2d {shape} {pass_}", (shape, pass_, "float32", 2), "≤ 0.9")
    for kind, target in (("forward", "≤ 0.5"), ("backward", "≤ 1.0")):
        ratio_row(f"max_pool2d 2×2 {kind}", ("max_pool_2x2", kind, "float32", 2), target)
    for shape in ("lenet_c1", "lenet_c3"):
        for pass_ in ("forward", "forward+backward"):
            ratio_row(f"float64 conv2d {shape} {pass_}", (shape, pass_, "float64", 2), "≤ 0.6")
    for name in ("sgd", "adam"):
        ratio_row(f"optimizer step, {name}", (f"lenet5_{name}_step", "step", "float32", 2), "—")
    for shape in ("vgg_3x3", "resnet_s2"):
        rows = groups.get((shape, "forward", "float32", 2), {})
        if "sgemm" in rows:
            fc = rows["fastconv-auto"]["median"]
            out.append(f"| conv2d {shape} forward, share of sgemm GFLOP/s | "
                       f"{rows['fastconv-auto']['flops'] / fc / 1e9:.0f} GFLOP/s | "
                       f"sgemm {rows['sgemm']['flops'] / rows['sgemm']['median'] / 1e9:.0f} GFLOP/s | "
                       f"{rows['sgemm']['median'] / fc:.0%} | ≥ 80% |")
    for label, shape, pass_, impl in (("vgg_3x3 forward", "vgg_3x3", "forward", "fastconv-auto"),
                                      ("LeNet-5 epoch", "lenet5_epoch", "train", "fastconv")):
        one = groups.get((shape, pass_, "float32", 1), {}).get(impl)
        two = groups.get((shape, pass_, "float32", 2), {}).get(impl)
        if one and two:
            out.append(f"| thread scaling 1 → 2, {label} (speed-up) | {one['median'] * 1e3:.1f} → "
                       f"{two['median'] * 1e3:.1f} ms | | {one['median'] / two['median']:.2f}× | ≥ 1.7× |")
    return out


def plot(groups, png_path):
    """Bar chart of GFLOP/s per convolution shape (float32, 2 threads), sgemm as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    impls = ["numpy", "fastconv-direct", "fastconv-im2col", "fastconv-auto", "torch"]
    passes = ["forward", "forward+backward"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=False)
    for ax, pass_ in zip(axes, passes):
        shapes = [s for (s, p, d, t) in groups if p == pass_ and d == "float32" and t == 2
                  and "fastconv-auto" in groups[(s, p, d, t)]]
        width = 0.8 / len(impls)
        for i, impl in enumerate(impls):
            vals = []
            for s in shapes:
                r = groups[(s, pass_, "float32", 2)].get(impl)
                vals.append(r["flops"] / r["median"] / 1e9 if r and r["flops"] else 0)
            ax.bar([j + (i - len(impls) / 2 + 0.5) * width for j in range(len(shapes))], vals,
                   width, label=impl)
        for j, s in enumerate(shapes):
            r = groups.get((s, "forward", "float32", 2), {}).get("sgemm")
            if r:
                ax.hlines(r["flops"] / r["median"] / 1e9, j - 0.45, j + 0.45, colors="black",
                          linestyles="--", label="sgemm (same FLOPs)" if j == 0 else None)
        ax.set_xticks(range(len(shapes)), shapes)
        ax.set_title(f"conv2d {pass_}, float32, 2 threads")
        ax.set_ylabel("GFLOP/s")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    _write(png_path, buf.getvalue(), ".png")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="render this pytest-benchmark JSON instead of running")
    parser.add_argument("--out", default=str(HERE), help="folder for results.md / results.png")
    parser.add_argument("--cost-curves", action="store_true",
                        help="also run bench/cost_curves.py into OUT/cost_curves and link it (slow)")
    parser.add_argument("--cost-curves-quick", action="store_true",
                        help="as --cost-curves with its reduced grid (a smoke run)")
    args = parser.parse_args(argv)
    json_path = args.json
    if json_path is None:
        json_path = str(Path(args.out) / "results.json")
        facts = machine_facts()
        _write(_facts_path(json_path), json.dumps(facts, indent=1).encode(), ".json")
        run_benchmarks(json_path)
    groups, machine = load(json_path)
    note = ""
    try:
        facts = json.loads(_facts_path(json_path).read_text())
    except (OSError, ValueError):
        facts = machine_facts()
        note = " (these facts are of the machine rendering the report: the run recorded none)"
    md = markdown(groups, machine, facts, note)
    if args.cost_curves or args.cost_curves_quick:
        import cost_curves

        folder = Path(args.out) / "cost_curves"
        cost_curves.main(["--out", str(folder)] + (["--quick"] if args.cost_curves_quick else []))
        md += ("\n## Cost curves\n\nTime per image versus batch size and time versus image size, "
               f"fastconv against PyTorch: [{folder.name}/cost_curves.md]({folder.name}/cost_curves.md) "
               "(one PNG per figure beside it).\n")
    _write(Path(args.out, "results.md"), md.encode(), ".md")
    plot(groups, Path(args.out, "results.png"))
    print(md)


if __name__ == "__main__":
    main()
