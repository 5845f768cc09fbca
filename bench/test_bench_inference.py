"""Eval-mode inference: fastconv's planned path (``fastconv.inference.compile``) against the
layer-by-layer forward, onnxruntime and PyTorch, on the same weights.

LeNet-5 at batch 1, 64 and 1,000 and ResNet-8 (1 x 28 x 28) at batch 1 and 64, float32,
1 and 2 threads (onnxruntime: ``intra_op_num_threads`` = fastconv's threads, inter_op 1;
PyTorch: ``torch.set_num_threads``, eval mode under ``no_grad``). The onnxruntime model is
``fastconv.onnx.export`` of the fastconv model where that is available, else
``torch.onnx.export`` of the PyTorch equivalent (tests/torch_models.py) with the weights
copied. BatchNorm statistics are randomised so that folding is not a no-op. Columns skip
when onnxruntime / torch (or both exporters) are absent.

    pytest bench/test_bench_inference.py --benchmark-only            # pytest-benchmark
    python bench/test_bench_inference.py [ROUNDS]                    # one interleaved table

The script form times every implementation of a row in turn, round after round (load from
other processes then hits all alike) and prints medians, the ratio to onnxruntime and the
spread (interquartile range / median) of each.
"""
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

import fastconv
from fastconv import inference, models

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

try:
    import torch
except ImportError:  # PyTorch is a comparison, never a dependency
    torch = None
try:
    import onnxruntime as ort
except ImportError:
    ort = None

CASES = [("lenet5", 1), ("lenet5", 64), ("lenet5", 1000), ("resnet8", 1), ("resnet8", 64)]
THREADS = [1, 2]
IMPLS = ["fastconv_plan", "fastconv_layers", "onnxruntime", "torch"]


def _model(name):
    model = models.MODELS[name](rng=0)
    rng = np.random.default_rng(1)
    for m in model.modules():
        if isinstance(m, fastconv.nn.BatchNorm2d):
            c = m.num_features
            m.running_mean[...] = rng.standard_normal(c) * 0.1
            m.running_var[...] = rng.uniform(0.5, 2.0, c)
            m.weight.data[...] = rng.uniform(0.5, 1.5, c)
            m.bias.data[...] = rng.standard_normal(c) * 0.1
    model.eval()
    return model


def _onnx_file(model, name, folder):
    """An ONNX file of ``model``: fastconv's exporter, else torch.onnx.export (None: neither)."""
    path = Path(folder) / f"{name}.onnx"
    try:
        import fastconv.onnx

        fastconv.onnx.export(model, path, (1, 1, 28, 28))
        return path
    except (ImportError, AttributeError):
        pass
    if torch is None:
        return None
    from torch_models import from_fastconv

    tm = from_fastconv(model, name).eval()
    torch.onnx.export(tm, torch.zeros(1, 1, 28, 28), str(path), input_names=["x"],
                      dynamic_axes={"x": {0: "N"}}, dynamo=False)
    return path


class _Runners:
    """The callables of one (model, batch, threads) row, built lazily and cached."""

    _cache = {}

    @classmethod
    def get(cls, name, batch, threads):
        key = (name, batch, threads)
        if key not in cls._cache:
            cls._cache[key] = cls(name, batch, threads)
        return cls._cache[key]

    def __init__(self, name, batch, threads):
        fastconv.set_num_threads(threads)
        self.model = _model(name)
        self.x = np.random.default_rng(2).standard_normal((batch, 1, 28, 28)).astype(np.float32)
        self.threads = threads
        self.fns = {}
        plan = inference.compile(self.model, self.x.shape)
        self.plan = plan
        self.fns["fastconv_plan"] = lambda: plan(self.x)
        self.fns["fastconv_layers"] = lambda: self.model(self.x)
        if ort is not None:
            self._folder = tempfile.TemporaryDirectory()
            path = _onnx_file(self.model, name, self._folder.name)
            if path is not None:
                so = ort.SessionOptions()
                so.intra_op_num_threads = threads
                so.inter_op_num_threads = 1
                sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
                feed = {sess.get_inputs()[0].name: self.x}
                self.fns["onnxruntime"] = lambda: sess.run(None, feed)
        if torch is not None:
            from torch_models import from_fastconv

            tm = from_fastconv(self.model, name).eval()
            tx = torch.from_numpy(self.x)

            def run_torch():
                with torch.no_grad():
                    return tm(tx)

            self.fns["torch"] = run_torch

    def check(self):
        """Every implementation gives the plan's result (float32 rtol 1e-5 of the scale)."""
        ref = self.plan(self.x)
        scale = np.abs(ref).max()
        for impl, fn in self.fns.items():
            y = fn()
            y = y[0] if isinstance(y, list) else y
            y = y.numpy() if torch is not None and isinstance(y, torch.Tensor) else np.asarray(y)
            err = np.abs(y - ref).max() / scale
            assert err < 1e-5, f"{impl} differs from the plan by {err:.2e} (relative)"

    def set_threads(self):
        fastconv.set_num_threads(self.threads)
        if torch is not None:
            torch.set_num_threads(self.threads)


def _rounds(batch):
    return 200 if batch == 1 else (50 if batch == 64 else 8)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("name, batch", CASES)
def test_inference(benchmark, name, batch, threads, impl):
    if impl == "torch" and torch is None:
        pytest.skip("PyTorch not installed")
    if impl == "onnxruntime" and ort is None:
        pytest.skip("onnxruntime not installed")
    runners = _Runners.get(name, batch, threads)
    if impl not in runners.fns:
        pytest.skip("no ONNX exporter (fastconv.onnx or torch) available")
    runners.set_threads()
    benchmark.group = f"inference {name} batch={batch} threads={threads}"
    benchmark.extra_info.update(impl=impl, shape=f"{name}_b{batch}", pass_="eval",
                                dtype="float32", threads=threads, flops=None, peak_bytes=None)
    fn = runners.fns[impl]
    benchmark.pedantic(fn, rounds=_rounds(batch), iterations=1, warmup_rounds=3)


def test_inference_results_agree():
    """Not a timing: the implementations compared above compute the same function."""
    for name, batch in CASES[:1] + CASES[3:4]:
        _Runners.get(name, batch, 1).check()


def _table(rounds_scale=1.0):
    """Interleaved medians (ms), ratio to onnxruntime and spread, one line per row."""
    print(f"{'model':8s} {'batch':>5s} {'thr':>3s} " + " ".join(f"{i:>22s}" for i in IMPLS)
          + "   plan/ort")
    for name, batch in CASES:
        for threads in THREADS:
            r = _Runners.get(name, batch, threads)
            r.set_threads()
            r.check()
            for fn in r.fns.values():  # warm up
                fn(), fn()
            times = {impl: [] for impl in r.fns}
            inner = 20 if batch == 1 else 1
            for _ in range(max(3, int(_rounds(batch) * rounds_scale / (inner if batch == 1 else 1)))):
                for impl, fn in r.fns.items():
                    t0 = time.perf_counter()
                    for _ in range(inner):
                        fn()
                    times[impl].append((time.perf_counter() - t0) / inner)
            cells, med = [], {}
            for impl in IMPLS:
                if impl not in times:
                    cells.append(f"{'-':>22s}")
                    continue
                ts = np.sort(times[impl]) * 1e3
                med[impl] = m = np.median(ts)
                iqr = np.percentile(ts, 75) - np.percentile(ts, 25)
                cells.append(f"{m:12.4f} ms ±{100 * iqr / m:4.0f}%")
            ratio = med["fastconv_plan"] / med["onnxruntime"] if "onnxruntime" in med else float("nan")
            print(f"{name:8s} {batch:5d} {threads:3d} " + " ".join(cells) + f"   {ratio:6.2f}",
                  flush=True)


if __name__ == "__main__":
    _table(float(sys.argv[1]) if len(sys.argv) > 1 else 1.0)
