"""Turn a pytest-benchmark JSON into a markdown table of medians and ratios.

Usage: ``pytest bench/ --benchmark-only --benchmark-json=bench.json && python bench/report.py bench.json``
"""
import json
import sys
from collections import defaultdict


def table(path):
    data = json.load(open(path))
    rows = defaultdict(dict)
    for b in data["benchmarks"]:
        e = b["extra_info"]
        rows[(e["shape"], e["pass_"])][e["impl"]] = b["stats"]["median"]
    impls = ["fastconv-auto", "fastconv", "fastconv-direct", "fastconv-im2col", "numpy", "torch"]
    lines = ["| shape | pass | fastconv (ms) | NumPy (ms) | PyTorch (ms) | NumPy / fastconv | fastconv / PyTorch |",
             "|---|---|---|---|---|---|---|"]
    for (shape, pass_), r in rows.items():
        fc = r.get("fastconv-auto", r.get("fastconv"))
        npy, tor = r.get("numpy"), r.get("torch")
        fmt = lambda v: f"{v * 1e3:.3f}" if v is not None else "—"  # noqa: E731
        lines.append(
            f"| {shape} | {pass_} | {fmt(fc)} | {fmt(npy)} | {fmt(tor)} | "
            f"{npy / fc:.2f}× | {fc / tor:.2f} |".replace("| nan", "| —")
            if npy and tor else
            f"| {shape} | {pass_} | {fmt(fc)} | {fmt(npy)} | {fmt(tor)} | "
            f"{(npy / fc) if npy else float('nan'):.2f}× | — |"
        )
    _ = impls
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(sys.argv[1] if len(sys.argv) > 1 else "bench.json"))
