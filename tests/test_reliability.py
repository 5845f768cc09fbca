"""Reliability: fuzzed arguments never crash, memory does not grow, threads are safe, runs are
reproducible, and files from outside cannot execute code."""
import json
import os
import re
import subprocess
import sys
import threading
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import fastconv
from fastconv import datasets, functional as F, nn, optim, serialization
from fastconv.models import lenet5
from reference import conv2d_ref, synthetic_digits, tol, write_idx

HERE = Path(__file__).resolve().parent
FUZZ_EXAMPLES = int(os.environ.get("FASTCONV_FUZZ_EXAMPLES", 1500))


# -- bad input to every layer call, optimizer and loader ------------------------------------
BAD_ARRAYS = [
    (np.zeros((2, 1, 8, 8), np.int64), TypeError, "int64"),
    (np.zeros((2, 1, 8, 8), bool), TypeError, "bool"),
    (np.zeros((2, 1, 8, 8), np.complex64), TypeError, "complex64"),
    (np.zeros((2, 1, 8, 8), object), TypeError, "object"),
    (np.zeros((2, 1, 8, 8), np.float16), TypeError, "float16"),
    ([[1.0]], TypeError, "numpy.ndarray"),
]
LAYERS = {
    "Conv2d": lambda: nn.Conv2d(1, 2, 3),
    "MaxPool2d": lambda: nn.MaxPool2d(2),
    "AvgPool2d": lambda: nn.AvgPool2d(2),
    "ReLU": nn.ReLU,
    "LeakyReLU": nn.LeakyReLU,
}


@pytest.mark.parametrize("bad,exc,words", BAD_ARRAYS, ids=[w for _, _, w in BAD_ARRAYS])
@pytest.mark.parametrize("layer", list(LAYERS))
def test_layer_calls_reject_bad_arrays(layer, bad, exc, words):
    with pytest.raises(exc) as info:
        LAYERS[layer]()(bad)
    assert words in str(info.value)


@pytest.mark.parametrize(
    "call,exc,words",
    [
        (lambda: nn.Conv2d(1, 2, 3)(np.zeros((2, 1, 8), np.float32)), ValueError, "4-D"),
        (lambda: nn.Conv2d(1, 2, 9)(np.zeros((2, 1, 8, 8), np.float32)), ValueError, "larger than the padded input"),
        (lambda: nn.MaxPool2d(2)(np.zeros((2, 8, 8), np.float32)), ValueError, "4-D"),
        (lambda: nn.Linear(4, 2)(np.zeros((3, 5), np.float32)), ValueError, "(N, 4)"),
        (lambda: nn.Linear(4, 2)(np.zeros((3, 4), np.int32)), TypeError, "int32"),
        (lambda: nn.Flatten()(np.zeros(3, np.float32)), ValueError, "more than 1 dims"),
        (lambda: nn.ReLU().backward(np.zeros(3, np.float32)), RuntimeError, "before forward"),
        (lambda: nn.CrossEntropyLoss()(np.zeros((2, 3), np.float32), np.array([0.0, 1.0])), TypeError, "integer"),
        (lambda: nn.CrossEntropyLoss()(np.zeros((2, 3), np.float32), np.array([0])), ValueError, "shape (2,)"),
        (lambda: optim.SGD(lenet5().parameters(), lr="0.1"), TypeError, "lr must be a float"),
        (lambda: optim.SGD(lenet5().parameters(), lr=float("nan")), ValueError, "lr must be a finite"),
        (lambda: optim.Adam(lenet5().parameters(), betas=0.9), ValueError, "betas must be a pair"),
        (lambda: optim.Adam(lenet5().parameters(), eps=-1.0), ValueError, "eps must be a finite"),
        (lambda: datasets.load_mnist(split="validation"), ValueError, "split must be one of 'train', 'test', got 'validation'"),
        (lambda: datasets.BatchIterator(np.zeros((4, 28, 28), np.uint8), np.zeros(4, np.uint8), 0),
         ValueError, "batch_size must be a positive int"),
        (lambda: datasets.BatchIterator(np.zeros((4, 28, 28), np.uint8), np.zeros(3, np.uint8)),
         ValueError, "labels must have shape (4,)"),
        (lambda: fastconv.set_num_threads(0), ValueError, "positive int"),
    ],
)
def test_layer_optimizer_loader_errors(call, exc, words):
    with pytest.raises(exc) as info:
        call()
    assert words in str(info.value)


def test_nan_and_inf_propagate(rng):
    # Documented: NaN/Inf are not errors; they flow through like in NumPy and PyTorch.
    x = rng.standard_normal((1, 1, 6, 6)).astype(np.float32)
    x[0, 0, 2, 3] = np.nan
    x[0, 0, 5, 5] = np.inf
    w = np.ones((1, 1, 3, 3), np.float32)
    y = fastconv.conv2d(x, w)
    assert np.isnan(y[0, 0, 0:3, 1:4]).all() and np.isfinite(y[0, 0, 0, 0])
    assert np.isposinf(y[0, 0, 3, 3])
    assert np.isnan(fastconv.max_pool2d(x, 2)[0, 0, 1, 1])
    assert np.isnan(nn.ReLU()(x)[0, 0, 2, 3])  # as torch.relu
    assert np.isposinf(fastconv.avg_pool2d(x, 2)[0, 0, 2, 2])


def test_read_only_and_non_contiguous_inputs_work_in_layers(rng):
    x = rng.standard_normal((2, 1, 12, 12)).astype(np.float32)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, rng=0), nn.ReLU(), nn.MaxPool2d(2), nn.AvgPool2d(2))
    expected = model(x).copy()
    ro = x.copy()
    ro.flags.writeable = False
    np.testing.assert_array_equal(model(ro), expected)
    strided = np.zeros((2, 1, 12, 24), np.float32)[..., ::2]
    strided[...] = x
    np.testing.assert_array_equal(model(strided), expected)


# -- fuzzing in a subprocess ----------------------------------------------------------------
def test_fuzzed_arguments_never_crash_or_hang():
    r = subprocess.run([sys.executable, str(HERE / "fuzz_api.py"), str(FUZZ_EXAMPLES)],
                       capture_output=True, text=True, timeout=600, cwd=HERE,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"fuzz process failed (rc {r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    m = re.search(r"outcomes: (\{.*\}) calls: (\d+)", r.stdout)
    assert m, r.stdout
    outcomes = eval(m.group(1), {})  # a dict literal the script printed
    assert set(outcomes) <= {"result", "TypeError", "ValueError", "MemoryError"}
    assert int(m.group(2)) == 6 * FUZZ_EXAMPLES
    assert outcomes.get("result", 0) > FUZZ_EXAMPLES // 20  # many calls reached the kernels


# -- memory ---------------------------------------------------------------------------------
def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs /proc (Linux) for RSS")
def test_no_memory_growth_over_10000_calls(rng):
    x = rng.standard_normal((2, 3, 12, 12)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    gy = np.ones((2, 4, 10, 10), np.float32)
    algorithms = ["direct", "im2col"]

    def work(i):
        algo = algorithms[i % 2]
        fastconv.conv2d(x, w, algorithm=algo)
        fastconv.conv2d_backward(gy, x, w, algorithm=algo)
        p, idx = fastconv.max_pool2d(x, 2, return_indices=True)
        fastconv.max_pool2d_backward(p, x, 2, indices=idx)
        fastconv.avg_pool2d_backward(fastconv.avg_pool2d(x, 2), x.shape, 2)

    for i in range(1000):  # warm-up: allocator pools, thread pools, caches
        work(i)
    rss0 = _rss_bytes()
    tracemalloc.start()
    try:
        # Warm up again under tracing: objects first allocated once tracing starts (the
        # interpreter's free lists refilling, ~300 kB once) are not growth.
        for i in range(1000):
            work(i)
        t0 = tracemalloc.get_traced_memory()[0]
        for i in range(10_000):
            work(i)
        traced_growth = tracemalloc.get_traced_memory()[0] - t0
    finally:
        tracemalloc.stop()
    rss_growth = _rss_bytes() - rss0
    assert traced_growth < 256 * 1024, f"Python/NumPy allocations grew by {traced_growth} bytes"
    assert rss_growth < 5 * 2**20, f"RSS grew by {rss_growth / 2**20:.1f} MiB over 10,000 calls"


def test_im2col_peak_memory_is_bounded_by_chunking(rng, monkeypatch):
    # A batch whose full column matrix is many times the chunk budget: the extra memory
    # stays within threads x budget (x2 in backward), not the batch's column matrix.
    monkeypatch.setattr(F, "IM2COL_CHUNK_BYTES", 256 * 1024)
    x = rng.standard_normal((64, 8, 24, 24)).astype(np.float32)
    w = rng.standard_normal((8, 8, 3, 3)).astype(np.float32)
    g = F.conv_geometry(x.shape, w.shape, 1, 1, 1, 1)
    full_columns = g.N * g.C_in * 9 * g.OH * g.OW * 4
    out_bytes = x.nbytes  # same shape as the output here
    threads = fastconv.get_num_threads()
    for backward in (False, True):
        bound = F.im2col_workspace_bytes(g, 4, threads, backward=backward)
        assert bound <= 2 * threads * F.IM2COL_CHUNK_BYTES + 64 * 1024
        assert full_columns > 4 * bound
        gy = np.ones_like(x)
        tracemalloc.start()
        try:
            if backward:
                fastconv.conv2d_backward(gy, x, w, padding=1, algorithm="im2col")
                results = 2 * x.nbytes + w.nbytes  # grad_input, its partial/gw copies
            else:
                fastconv.conv2d(x, w, padding=1, algorithm="im2col")
                results = out_bytes
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak <= results + bound + 64 * 1024, (backward, peak, results, bound)


# -- threads --------------------------------------------------------------------------------
def test_set_num_threads_while_other_threads_compute(rng):
    x = rng.standard_normal((8, 3, 16, 16))
    w = rng.standard_normal((5, 3, 3, 3))
    expected = conv2d_ref(x, w, None, 1, 1)
    stop = threading.Event()
    errors = []

    def toggle():
        choices = [1, 2, 3, None]
        i = 0
        while not stop.is_set():
            fastconv.set_num_threads(choices[i % 4])
            i += 1

    def compute(algorithm):
        try:
            for _ in range(40):
                y = fastconv.conv2d(x, w, padding=1, algorithm=algorithm)
                np.testing.assert_allclose(y, expected, **tol(np.float64))
                gi, gw, gb = fastconv.conv2d_backward(np.ones_like(y), x, w, padding=1, algorithm=algorithm)
                assert np.isfinite(gw).all()
        except Exception as e:  # noqa: BLE001 - reported to the main thread
            errors.append(e)

    toggler = threading.Thread(target=toggle)
    workers = [threading.Thread(target=compute, args=(a,)) for a in ("direct", "im2col", "auto")]
    toggler.start()
    for t in workers:
        t.start()
    for t in workers:
        t.join(timeout=120)
    stop.set()
    toggler.join()
    fastconv.set_num_threads(None)
    assert not errors, errors
    assert not any(t.is_alive() for t in workers)


# -- reproducibility ------------------------------------------------------------------------
def _train_steps(threads, steps=5):
    fastconv.set_num_threads(threads)
    try:
        rng = np.random.default_rng(1)
        model = lenet5(rng=0)
        opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        loss = nn.CrossEntropyLoss()
        images, labels = synthetic_digits(64 * steps, rng)
        x_all = (images[:, None] / 255.0).astype(np.float32)
        losses = []
        for s in range(steps):
            x, y = x_all[64 * s: 64 * (s + 1)], labels[64 * s: 64 * (s + 1)]
            losses.append(loss(model(x), y))
            opt.zero_grad()
            model.backward(loss.backward())
            opt.step()
        return losses, model.state_dict()
    finally:
        fastconv.set_num_threads(None)


def test_training_is_bitwise_reproducible_and_close_across_thread_counts():
    a_loss, a_state = _train_steps(2)
    b_loss, b_state = _train_steps(2)
    c_loss, c_state = _train_steps(1)
    assert a_loss == b_loss
    for k in a_state:
        np.testing.assert_array_equal(a_state[k], b_state[k])
        np.testing.assert_allclose(a_state[k], c_state[k], rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(a_loss, c_loss, rtol=1e-4)


def _tiny_mnist(folder, rng):
    folder.mkdir()
    for split, n in (("train", 512), ("test", 128)):
        images, labels = synthetic_digits(n, rng)
        img, lab = datasets.DATASETS["mnist"].files[split]
        write_idx(folder / (img + ".gz"), images, datasets.IDX_IMAGES_MAGIC)
        write_idx(folder / (lab + ".gz"), labels, datasets.IDX_LABELS_MAGIC)


def test_cli_train_metrics_are_reproducible(tmp_path, rng):
    data = tmp_path / "data"
    _tiny_mnist(data, rng)
    runs = []
    for i in range(2):
        metrics = tmp_path / f"m{i}.jsonl"
        r = subprocess.run([sys.executable, "-m", "fastconv", "train", "--data", str(data), "--epochs", "2",
                            "--threads", "2", "--seed", "3", "--metrics", str(metrics), "--quiet"],
                           capture_output=True, text=True, timeout=300, cwd=tmp_path,
                           stdin=subprocess.DEVNULL)
        assert r.returncode == 0, r.stderr
        rows = [json.loads(line) for line in metrics.read_text().splitlines()]
        runs.append([{k: v for k, v in row.items() if k not in ("seconds", "images_per_second")}
                     for row in rows])
    assert len(runs[0]) == 2 and runs[0] == runs[1]


# -- files ----------------------------------------------------------------------------------
class _Payload:
    def __reduce__(self):
        return (Path.touch, (Path(os.environ["FASTCONV_PWNED"]),))


def test_crafted_model_file_cannot_execute_code(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("FASTCONV_PWNED", str(marker))
    m = lenet5()
    state = {"param/" + k: v for k, v in m.state_dict().items()}
    state["param/0.weight"] = np.array([_Payload()], dtype=object)  # pickled inside the npz
    np.savez(tmp_path / "evil.npz", __config__=np.array(json.dumps(m.config)), **state)
    with pytest.raises(serialization.ModelFileError, match="cannot read model file"):
        serialization.load_model(tmp_path / "evil.npz")
    assert not marker.exists()
    # a pickle renamed to .npz is refused as well
    import pickle

    (tmp_path / "evil2.npz").write_bytes(pickle.dumps(_Payload()))
    with pytest.raises(serialization.ModelFileError):
        serialization.load_model(tmp_path / "evil2.npz")
    assert not marker.exists()


def test_wrong_dtype_in_model_file(tmp_path):
    m = lenet5()
    state = {"param/" + k: v for k, v in m.state_dict().items()}
    state["param/0.bias"] = state["param/0.bias"].astype(np.int32)
    np.savez(tmp_path / "m.npz", __config__=np.array(json.dumps(m.config)), **state)
    with pytest.raises(serialization.ModelFileError, match="0.bias.*int32"):
        serialization.load_model(tmp_path / "m.npz")
