"""Turn a pytest-benchmark JSON into a markdown table of medians and ratios.

Usage: ``pytest bench/ --benchmark-only --benchmark-json=bench.json && python bench/report.py bench.json``
"""
import json
import sys
from collections import defaultdict


def _ms(seconds):
    return "—" if seconds is None else f"{seconds * 1e3:.3f}"


def _ratio(a, b, suffix=""):
    return "—" if a is None or b is None else f"{a / b:.2f}{suffix}"


def table(path):
    """Rows (shape, pass) x columns fastconv ("auto" for conv) / NumPy / PyTorch medians."""
    with open(path) as f:
        data = json.load(f)
    rows = defaultdict(dict)
    for b in data["benchmarks"]:
        e = b["extra_info"]
        rows[(e["shape"], e["pass_"])][e["impl"]] = b["stats"]["median"]
    lines = ["| shape | pass | fastconv (ms) | NumPy (ms) | PyTorch (ms) | NumPy / fastconv | fastconv / PyTorch |",
             "|---|---|---|---|---|---|---|"]
    for (shape, pass_), r in rows.items():
        fc = r.get("fastconv-auto", r.get("fastconv"))
        npy, tor = r.get("numpy"), r.get("torch")
        lines.append(f"| {shape} | {pass_} | {_ms(fc)} | {_ms(npy)} | {_ms(tor)} | "
                     f"{_ratio(npy, fc, '×')} | {_ratio(fc, tor)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(sys.argv[1] if len(sys.argv) > 1 else "bench.json"))
