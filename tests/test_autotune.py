"""Measured algorithm choice (fastconv.autotune): modes, the plan file, and that whatever is
chosen computes the same convolution as the NumPy reference. Timings are never asserted:
the measuring tests replace the timer with a fake one that reports fixed times."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastconv
from fastconv._kernels import _direct
import fastconv.functional as F
from fastconv import autotune
from fastconv.functional import _autotune as at
from fastconv.functional.conv import choose_algorithm, eligible_algorithms, table_algorithm

from reference import conv2d_grads_ref, conv2d_ref, tol

OPS = ("forward", "grad_input", "grad_weight")

# (x shape, w shape, stride, padding): LeNet-5 and ResNet-8 layers at small batch sizes
SHAPES = [
    ((4, 1, 28, 28), (6, 1, 5, 5), 1, 2),
    ((4, 6, 14, 14), (16, 6, 5, 5), 1, 0),
    ((2, 16, 14, 14), (16, 16, 3, 3), 1, 1),
    ((2, 32, 7, 7), (32, 32, 3, 3), 1, 1),
    ((2, 16, 14, 14), (32, 16, 3, 3), 2, 1),
    ((2, 16, 14, 14), (32, 16, 1, 1), 2, 0),
]


def geometry(xs, ws, stride=1, padding=0):
    return F.conv_geometry(xs, ws, stride, padding, 1, 1)


class FakeTimer:
    """timer(algorithm, run, reps, n_threads): fixed seconds per algorithm; counts calls and
    runs each candidate once (so the candidate runs are exercised)."""

    def __init__(self, times, run=True):
        self.times, self.calls, self.run, self.ran = dict(times), [], run, set()

    def __call__(self, algorithm, run, reps, n_threads):
        self.calls.append((algorithm, n_threads))
        if self.run and algorithm not in self.ran:
            run()
            self.ran.add(algorithm)
        return [self.times.get(algorithm, 1.0)] * reps


def no_timer(*args):
    raise AssertionError("nothing should be measured here")


@pytest.fixture
def plan_file(tmp_path, monkeypatch):
    """A private plan file, mode from the environment ("measure"), nothing in memory."""
    path = tmp_path / "cache" / "plans.json"
    monkeypatch.setenv("FASTCONV_PLAN_CACHE", str(path))
    monkeypatch.setenv("FASTCONV_AUTOTUNE", "measure")
    at.set_autotune(None)
    at.clear_plans()
    yield path
    at.set_autotune(None)
    at.clear_plans()


def test_off_reproduces_the_table(plan_file, monkeypatch):
    monkeypatch.setattr(at, "timer", no_timer)
    fastconv.set_autotune("off")
    for xs, ws, s, p in SHAPES:
        g = geometry(xs, ws, s, p)
        for dtype in (np.float32, np.float64):
            for op in OPS:
                assert choose_algorithm(g, dtype, op) == table_algorithm(g, dtype, op)
    assert not plan_file.exists()
    # FASTCONV_AUTOTUNE=0 is "off" as well
    fastconv.set_autotune(None)
    monkeypatch.setenv("FASTCONV_AUTOTUNE", "0")
    assert fastconv.get_autotune() == "off"
    g = geometry(*SHAPES[2])
    assert choose_algorithm(g, np.float32, "forward") == table_algorithm(g, np.float32, "forward")


def test_table_values_unchanged():
    """The table answers of the rules before autotuning (a few documented cases)."""
    assert table_algorithm(geometry(*SHAPES[0]), np.float32, "forward") == "direct"
    # 7x7 outputs: Winograd's 2x2 tiles pad 49 pixels to 64; the AVX2 direct tiles keep them
    small = "direct" if _direct.kernel_isa() == "avx2" else "winograd"
    assert table_algorithm(geometry(*SHAPES[3]), np.float32, "forward") == small
    assert table_algorithm(geometry(*SHAPES[3]), np.float32, "grad_input") == small
    assert table_algorithm(geometry((2, 32, 14, 14), (32, 32, 3, 3), 1, 1), np.float32,
                           "forward") == "winograd"
    assert table_algorithm(geometry(*SHAPES[5]), np.float32, "forward") == "im2col"
    assert table_algorithm(geometry(*SHAPES[5]), np.float32, "grad_weight") == "im2col"


@pytest.mark.parametrize("fastest", ["direct", "im2col", "winograd"])
def test_measure_picks_the_fastest(plan_file, monkeypatch, fastest):
    g = geometry(*SHAPES[2])
    assert eligible_algorithms(g) == ("direct", "im2col", "winograd")
    fake = FakeTimer({a: (1e-3 if a == fastest else 5e-3) for a in ("direct", "im2col", "winograd")})
    monkeypatch.setattr(at, "timer", fake)
    assert choose_algorithm(g, np.float32, "grad_input") == fastest
    assert {a for a, _ in fake.calls} == {"direct", "im2col", "winograd"}
    assert all(n == 1 for _, n in fake.calls)  # measured on one thread
    n_calls = len(fake.calls)
    # once per key: the second call measures nothing
    assert choose_algorithm(g, np.float32, "grad_input") == fastest
    assert len(fake.calls) == n_calls
    key = at.key_string(g, np.float32, "grad_input", fastconv.get_num_threads())
    entry = fastconv.plans()[key]
    assert entry["algorithm"] == fastest and entry["table"] == table_algorithm(g, np.float32, "grad_input")
    assert entry["times_us"][fastest] == pytest.approx(1000.0)


def test_margin_keeps_the_table(plan_file, monkeypatch):
    """A challenger only 5 % faster than the table's choice does not replace it."""
    g = geometry(*SHAPES[2])
    table = table_algorithm(g, np.float32, "forward")
    times = {a: 1e-3 for a in eligible_algorithms(g)}
    other = next(a for a in eligible_algorithms(g) if a != table)
    times[other] = 0.95e-3
    monkeypatch.setattr(at, "timer", FakeTimer(times, run=False))
    assert choose_algorithm(g, np.float32, "forward") == table
    times[other] = 0.5e-3
    at.clear_plans()
    plan_file.unlink()
    monkeypatch.setattr(at, "timer", FakeTimer(times, run=False))
    assert choose_algorithm(g, np.float32, "forward") == other


def test_single_candidate_is_not_measured(plan_file, monkeypatch):
    monkeypatch.setattr(at, "timer", no_timer)
    g = F.conv_geometry((2, 4, 9, 9), (4, 2, 3, 3), 1, 1, 1, 2)  # groups=2 and a 3x3: direct / im2col
    assert "winograd" not in eligible_algorithms(g)
    monkeypatch.setattr(F.conv, "_im2col_fits_blas", lambda g: False)
    assert eligible_algorithms(g) == ("direct",)
    assert choose_algorithm(g, np.float32, "forward") == "direct"


def test_huge_layers_are_not_measured(plan_file, monkeypatch):
    monkeypatch.setattr(at, "timer", no_timer)
    monkeypatch.setattr(F.conv, "AUTOTUNE_MAX_BYTES", 1000)
    g = geometry(*SHAPES[2])
    assert choose_algorithm(g, np.float32, "forward") == table_algorithm(g, np.float32, "forward")


def test_plan_file_round_trip(plan_file, monkeypatch):
    g = geometry(*SHAPES[1])
    monkeypatch.setattr(at, "timer", FakeTimer({"direct": 2e-3, "im2col": 1e-3}, run=False))
    assert choose_algorithm(g, np.float64, "forward") == "im2col"
    doc = json.loads(plan_file.read_text())
    assert doc["format"] == at.FILE_FORMAT and doc["version"] == at.FILE_VERSION
    assert doc["signature"] == at.cpu_signature() and doc["fastconv"] == fastconv.__version__
    key = at.key_string(g, np.float64, "forward", fastconv.get_num_threads())
    assert doc["plans"][key]["algorithm"] == "im2col"
    assert not [p for p in plan_file.parent.iterdir() if p.name.startswith(".")]  # no temp files left
    # a new process (memory cleared): "cache" reads the file and measures nothing
    at.clear_plans()
    monkeypatch.setattr(at, "timer", no_timer)
    fastconv.set_autotune("cache")
    assert choose_algorithm(g, np.float64, "forward") == "im2col"
    assert fastconv.plans()[key]["source"] == "file"
    # other keys: another dtype, another thread count -> no plan, the table
    assert choose_algorithm(g, np.float32, "forward") == table_algorithm(g, np.float32, "forward")
    fastconv.set_num_threads(fastconv.get_num_threads() + 1)
    try:
        assert choose_algorithm(g, np.float64, "forward") == table_algorithm(g, np.float64, "forward")
    finally:
        fastconv.set_num_threads(None)


def test_default_path_keyed_by_signature(tmp_path, monkeypatch):
    monkeypatch.delenv("FASTCONV_PLAN_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    p = at.plan_cache_path()
    assert p.parent == tmp_path / "fastconv" and p.name.startswith("plans-") and p.suffix == ".json"
    monkeypatch.setattr(at, "cpu_model", lambda: "Some Other CPU")
    assert at.plan_cache_path() != p


def _valid_doc(plans):
    return {"format": at.FILE_FORMAT, "version": at.FILE_VERSION, "signature": at.cpu_signature(),
            "fastconv": fastconv.__version__, "plans": plans}


BAD_FILES = {
    "truncated": lambda key: json.dumps(_valid_doc({key: {"op": "forward", "algorithm": "im2col"}}))[:-7],
    "binary": lambda key: "\x00\xff garbage \x80",
    "not json object": lambda key: "[1, 2, 3]",
    "foreign cpu": lambda key: json.dumps(dict(_valid_doc({key: {"op": "forward", "algorithm": "im2col"}}),
                                              signature="Intel Xeon | x86_64 | avx512 | fastconv 0.0")),
    "other version": lambda key: json.dumps(dict(_valid_doc({key: {"op": "forward", "algorithm": "im2col"}}),
                                                 version=999)),
    "other format": lambda key: json.dumps(dict(_valid_doc({}), format="pickle")),
    "python code": lambda key: "__import__('os').system('touch /tmp/fastconv_pwned')",
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_bad_plan_file_ignored_and_rewritten(plan_file, monkeypatch, kind):
    g = geometry(*SHAPES[1])
    key = at.key_string(g, np.float32, "forward", fastconv.get_num_threads())
    plan_file.parent.mkdir(parents=True)
    data = BAD_FILES[kind](key)
    plan_file.write_bytes(data.encode("latin-1") if kind == "binary" else data.encode())
    monkeypatch.setattr(at, "timer", no_timer)
    fastconv.set_autotune("cache")
    with pytest.warns(RuntimeWarning, match="ignoring"):
        assert choose_algorithm(g, np.float32, "forward") == table_algorithm(g, np.float32, "forward")
    assert not os.path.exists("/tmp/fastconv_pwned")
    # measuring rewrites it as a valid file
    at.clear_plans()
    fastconv.set_autotune("measure")
    monkeypatch.setattr(at, "timer", FakeTimer({"direct": 3e-3, "im2col": 1e-3}, run=False))
    with pytest.warns(RuntimeWarning, match="ignoring"):
        assert choose_algorithm(g, np.float32, "forward") == "im2col"
    doc = json.loads(plan_file.read_text())
    assert doc["signature"] == at.cpu_signature() and doc["plans"][key]["algorithm"] == "im2col"


def test_malformed_or_ineligible_entries(plan_file, monkeypatch):
    g5 = geometry(*SHAPES[1])  # 5x5: no Winograd
    k_forward = at.key_string(g5, np.float32, "forward", fastconv.get_num_threads())
    k_gw = at.key_string(g5, np.float32, "grad_weight", fastconv.get_num_threads())
    plan_file.parent.mkdir(parents=True)
    plan_file.write_text(json.dumps(_valid_doc({k_forward: {"op": "forward", "algorithm": "winograd"},
                                                k_gw: {"op": "grad_weight", "algorithm": "rm -rf"}})))
    monkeypatch.setattr(at, "timer", no_timer)
    fastconv.set_autotune("cache")
    with pytest.warns(RuntimeWarning, match="malformed"):
        assert choose_algorithm(g5, np.float32, "grad_weight") == table_algorithm(g5, np.float32, "grad_weight")
    # a well-formed entry that cannot run this geometry falls back to the table
    assert choose_algorithm(g5, np.float32, "forward") == table_algorithm(g5, np.float32, "forward")


def test_unwritable_plan_file_warns_and_keeps_memory(plan_file, monkeypatch):
    blocker = plan_file.parent
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("a file where the folder should be")
    g = geometry(*SHAPES[1])
    monkeypatch.setattr(at, "timer", FakeTimer({"direct": 3e-3, "im2col": 1e-3}, run=False))
    with pytest.warns(RuntimeWarning, match="cannot write"):
        assert choose_algorithm(g, np.float32, "forward") == "im2col"
    assert choose_algorithm(g, np.float32, "forward") == "im2col"


@pytest.mark.parametrize("xs, ws, stride, padding", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_choice_matches_the_reference(plan_file, monkeypatch, xs, ws, stride, padding, dtype):
    """Force each eligible algorithm through the autotuner; results equal the NumPy loops."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(ws[0]).astype(dtype)
    y_ref = conv2d_ref(x, w, b, stride, padding)
    gy = rng.standard_normal(y_ref.shape).astype(dtype)
    gx_ref, gw_ref = conv2d_grads_ref(gy, x, w, stride, padding)
    gb_ref = gy.sum((0, 2, 3))
    g = geometry(xs, ws, stride, padding)
    for forced in eligible_algorithms(g):
        at.clear_plans()
        if plan_file.exists():
            plan_file.unlink()
        times = {a: (1e-4 if a == forced else 1e-2) for a in eligible_algorithms(g)}
        monkeypatch.setattr(at, "timer", FakeTimer(times, run=False))
        y = fastconv.conv2d(x, w, b, stride, padding)
        gx, gw, gb = fastconv.conv2d_backward(gy, x, w, stride, padding)
        conv_plans = [e for e in fastconv.plans().values() if e["op"] in OPS]
        assert {e["algorithm"] for e in conv_plans} == {forced}
        assert len(conv_plans) == 3
        t = tol(dtype)
        np.testing.assert_allclose(y, y_ref, **t)
        np.testing.assert_allclose(gx, gx_ref, **t)
        np.testing.assert_allclose(gw, gw_ref, **t)
        np.testing.assert_allclose(gb, gb_ref, **t)


def test_layers_keep_their_choice_within_a_process(plan_file, monkeypatch):
    """A Conv2d layer's outputs stay bitwise equal call after call once its key is chosen."""
    fake = FakeTimer({"direct": 2e-3, "im2col": 1e-3, "winograd": 3e-3}, run=False)
    monkeypatch.setattr(at, "timer", fake)
    layer = fastconv.nn.Conv2d(16, 16, 3, padding=1, rng=np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((2, 16, 14, 14)).astype(np.float32)
    y1 = layer.forward(x).copy()
    n = len(fake.calls)
    fake.times = {"direct": 1e-3, "im2col": 9e-3, "winograd": 9e-3}  # would choose differently now
    y2 = layer.forward(x).copy()
    assert len(fake.calls) == n
    np.testing.assert_array_equal(y1, y2)


@pytest.mark.parametrize("value, mode", [("off", "off"), ("0", "off"), ("false", "off"), ("cache", "cache"),
                                         ("measure", "measure"), ("1", "measure"), ("ON", "measure"),
                                         ("", "measure")])
def test_env_values(monkeypatch, value, mode):
    monkeypatch.setenv("FASTCONV_AUTOTUNE", value)
    at.set_autotune(None)
    assert fastconv.get_autotune() == mode


def test_function_values():
    try:
        for value, mode in [(False, "off"), (True, "measure"), ("cache", "cache"), ("Off", "off")]:
            fastconv.set_autotune(value)
            assert fastconv.get_autotune() == mode
    finally:
        fastconv.set_autotune(None)


BAD_INPUTS = [
    (lambda: fastconv.set_autotune("fast"), ValueError, r"mode must be one of 'off', 'cache', 'measure' \(or True/False, 1/0, on/off\), got 'fast'"),
    (lambda: fastconv.set_autotune(2), ValueError, "mode must be one of"),
    (lambda: autotune.tune_model(fastconv.models.lenet5(), (2, 1, 28)), ValueError, "input_shape"),
    (lambda: autotune.tune_model(fastconv.models.lenet5(), (0, 1, 28, 28)), ValueError, "input_shape"),
    (lambda: autotune.tune_model(fastconv.models.lenet5(), (2, 1, 28, 28), np.int32), TypeError, "dtype"),
    (lambda: choose_algorithm(geometry(*SHAPES[0]), np.float32, "backward"), ValueError, "op must be"),
]


@pytest.mark.parametrize("call, exc, match", BAD_INPUTS)
def test_bad_inputs(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_bad_env_value_names_the_variable(plan_file, monkeypatch):
    monkeypatch.setenv("FASTCONV_AUTOTUNE", "sometimes")
    with pytest.raises(ValueError, match=r"FASTCONV_AUTOTUNE must be one of 'off', 'cache', 'measure' \(or"):
        fastconv.conv2d(np.zeros((1, 1, 4, 4), np.float32), np.zeros((1, 1, 3, 3), np.float32))


def test_tune_model_restores_the_model(plan_file, monkeypatch):
    monkeypatch.setattr(at, "timer", FakeTimer({"direct": 1e-3, "im2col": 2e-3, "winograd": 3e-3}))
    fastconv.set_autotune("off")
    model = fastconv.models.resnet8(rng=np.random.default_rng(0))
    model.eval()
    before = {k: np.array(v, copy=True) for k, v in model.state_dict().items()}
    rows = autotune.tune_model(model, (2, 1, 28, 28))
    assert fastconv.get_autotune() == "off"  # mode restored
    assert not model.training
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())
    keys = [r["key"] for r in rows]
    assert len(keys) == len(set(keys)) and len(keys) > 10
    assert {r["key"].split()[0] for r in rows} == set(OPS)
    assert all(r["algorithm"] == "direct" for r in rows)
    # the file also holds the machine-wide plans the backward passes asked for (wgrad-tile)
    in_file = json.loads(plan_file.read_text())["plans"]
    assert {k for k, e in in_file.items() if e["op"] in OPS} == set(keys)


def test_cli_tune_and_info(plan_file, capsys):
    """fastconv tune on LeNet-5 (batch 2, 1 thread, the real timer) writes the plan file; info
    reports it."""
    from fastconv.cli import main

    try:
        assert main(["tune", "--model", "lenet5", "--batch-size", "2", "--threads", "1"]) == 0
    finally:
        fastconv.set_num_threads(None)
    out = capsys.readouterr().out
    doc = json.loads(plan_file.read_text())
    assert len(doc["plans"]) == 5  # conv1: forward, grad_weight; conv2: forward, grad_weight, grad_input
    assert all(k.split()[2] == "t1" for k in doc["plans"])
    assert "5 plans" in out and str(plan_file) in out
    for k, e in doc["plans"].items():
        assert k in out and e["algorithm"] in ("direct", "im2col")
    from fastconv._info import info_dict

    d = info_dict()
    assert d["plan file"] == f"{plan_file} (5 plans)" and d["autotune"] == "measure"
    assert d["cpu"] == at.cpu_signature()


_WRITER = textwrap.dedent("""
    import sys
    from fastconv.functional import _autotune as at
    i = int(sys.argv[1])
    for j in range(20):
        at._save({f"forward float32 t1 avx512 proc{i} key{j}": {"op": "forward", "algorithm": "direct"}})
""")


def test_concurrent_writers_do_not_corrupt(plan_file):
    env = dict(os.environ, FASTCONV_PLAN_CACHE=str(plan_file))
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastconv.__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    # cwd: python -c puts the working folder first on sys.path, and from the repository root
    # that would be the source tree instead of the fastconv these tests import
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(i)], env=env, cwd=plan_file.parent.parent)
             for i in range(3)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]
    doc = json.loads(plan_file.read_text())
    assert len(doc["plans"]) == 60


@pytest.mark.parametrize("fastest", ["avx2-tile", "portable"])
def test_grad_weight_avx2_tile_is_measured_once(plan_file, monkeypatch, fastest):
    """The AVX2 grad_weight tile against the portable kernel: measured once per dtype on one
    thread (the faster wins), persisted as a "wgrad-tile" plan, followed; the static answer
    without autotuning; a plan file's entry is used as it is."""
    from fastconv.functional import conv as conv_mod

    fake = FakeTimer({a: (1e-3 if a == fastest else 2e-3) for a in ("avx2-tile", "portable")})
    monkeypatch.setattr(at, "timer", fake)
    assert conv_mod._wgrad_avx2_tile(np.float32) == (fastest == "avx2-tile")
    assert {a for a, _ in fake.calls} == {"avx2-tile", "portable"} and all(n == 1 for _, n in fake.calls)
    n_calls = len(fake.calls)
    assert conv_mod._wgrad_avx2_tile(np.float32) == (fastest == "avx2-tile")
    assert len(fake.calls) == n_calls  # once
    key = f"wgrad-tile float32 {_direct.kernel_isa()}"
    entry = json.loads(plan_file.read_text())["plans"][key]
    assert entry["algorithm"] == fastest and entry["times_us"][fastest] == pytest.approx(1000.0)
    assert at._entry_ok(key, entry) and not at._entry_ok(key, dict(entry, algorithm="fast"))
    # a new process (memory cleared) reads the file and measures nothing
    at.clear_plans()
    monkeypatch.setattr(at, "timer", no_timer)
    assert conv_mod._wgrad_avx2_tile(np.float32) == (fastest == "avx2-tile")
    fastconv.set_autotune("off")
    assert conv_mod._wgrad_avx2_tile(np.float32) is conv_mod.WGRAD_AVX2_TILE_STATIC
