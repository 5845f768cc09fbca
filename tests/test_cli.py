"""The fastconv command line, run as a user would (a subprocess, no terminal)."""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest

from fastconv import serialization
from fastconv.models import lenet5


def run(*args, cwd=None, env=None):
    # Run from a neutral folder: from the repo root, `python -m fastconv` would import the
    # (uncompiled) source tree instead of the installed package.
    return subprocess.run([sys.executable, "-m", "fastconv", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd or tempfile.gettempdir(), env=env, timeout=600, stdin=subprocess.DEVNULL)


def test_train_one_epoch_on_6000_images_then_evaluate(mnist_dir, tmp_path):
    metrics = tmp_path / "m.jsonl"
    model = tmp_path / "model.npz"
    r = run("train", "--data", mnist_dir, "--epochs", 1, "--train-limit", 6000, "--metrics", metrics,
            "--save", model)
    assert r.returncode == 0, r.stderr
    assert "epoch   1/1" in r.stdout and "img/s" in r.stdout
    assert "\r" not in r.stderr  # no progress bar when not a terminal
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert len(records) == 1
    rec = records[0]
    assert set(rec) == {"epoch", "loss", "train_acc", "test_acc", "seconds", "images_per_second"}
    assert rec["epoch"] == 1 and 0 <= rec["train_acc"] <= 1 and rec["loss"] > 0 and rec["seconds"] > 0
    assert rec["test_acc"] >= 0.90, rec
    e = run("evaluate", model, "--data", mnist_dir)
    assert e.returncode == 0, e.stderr
    assert f"test accuracy on mnist: {100 * rec['test_acc']:.2f}%" in e.stdout
    rows = [line.split() for line in e.stdout.splitlines()[-10:]]
    matrix = np.array([[int(v) for v in row[1:]] for row in rows])
    assert matrix.shape == (10, 10) and matrix.sum() == 10000
    assert np.trace(matrix) == round(rec["test_acc"] * 10000)


def test_saved_model_reproduces_predictions(tmp_path, rng):
    m = lenet5(rng=3)
    m.config.update(dataset="mnist", normalize=[0.1307, 0.3081])
    path = serialization.save_model(m, tmp_path / "m.npz")
    x = rng.standard_normal((5, 1, 28, 28)).astype(np.float32)
    loaded = serialization.load_model(path)
    np.testing.assert_array_equal(loaded(x), m(x))
    assert loaded.config == m.config
    with pytest.raises(FileExistsError, match="force"):
        serialization.save_model(m, path)


@pytest.mark.parametrize(
    "content,words",
    [
        ({"param/0.weight": np.zeros(3)}, "not a fastconv model"),
        ({"__config__": np.array('{"model": "resnet"}')}, "config must name a model"),
        ({"__config__": np.array('{"model": "lenet5"}'), "param/0.weight": np.zeros((6, 1, 5, 5))},
         "missing keys"),
        ({"__config__": np.array('{"model": "lenet5"}'), "param/0.weight": np.array([object()])},
         "cannot read model file"),
        ({"__config__": np.array('{"model": "lenet5"}'), "param/x": np.zeros(2, np.int64)}, "dtype int64"),
    ],
)
def test_bad_model_files(tmp_path, content, words):
    path = tmp_path / "bad.npz"
    np.savez(path, **content)
    with pytest.raises(serialization.ModelFileError) as e:
        serialization.load_model(path)
    assert words in str(e.value)


def test_wrong_shapes_in_model_file(tmp_path):
    m = lenet5()
    sd = {"param/" + k: v for k, v in m.state_dict().items()}
    sd["param/7.weight"] = np.zeros((120, 401), np.float32)
    np.savez(tmp_path / "m.npz", __config__=np.array(json.dumps(m.config)), **sd)
    with pytest.raises(serialization.ModelFileError, match="7.weight.*shape \\(120, 401\\)"):
        serialization.load_model(tmp_path / "m.npz")


@pytest.mark.parametrize(
    "args,words",
    [
        (["train", "--epochs", "0"], "expected a positive integer"),
        (["train", "--lr", "-1"], "expected a non-negative number"),
        (["train", "--dataset", "cifar"], "invalid choice"),
        (["train", "--batch-size", "abc"], "expected a positive integer"),
        (["train", "--data", "/nonexistent/folder"], "not found in: /nonexistent/folder"),
        (["evaluate", "/nonexistent/model.npz"], "no such model file"),
    ],
)
def test_user_errors_are_one_line(args, words):
    r = run(*args)
    assert r.returncode == 2
    assert words in r.stderr
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_save_refuses_to_overwrite_without_force(tmp_path, mnist_dir):
    target = tmp_path / "m.npz"
    target.write_bytes(b"precious")
    r = run("train", "--data", mnist_dir, "--epochs", 1, "--train-limit", 64, "--save", target)
    assert r.returncode == 2 and "already exists" in r.stderr and "--force" in r.stderr
    assert target.read_bytes() == b"precious"


def test_info_and_help():
    r = run("--help")
    assert r.returncode == 0 and "train" in r.stdout and "evaluate" in r.stdout
    r = run("train", "--help")
    for flag in ("--dataset", "--data", "--epochs", "--batch-size", "--optimizer", "--lr", "--momentum",
                 "--activation", "--pool", "--threads", "--seed", "--train-limit", "--save", "--metrics",
                 "--quiet"):
        assert flag in r.stdout


def _train_args(*argv):
    from fastconv.cli import build_parser

    return build_parser().parse_args(["train", *map(str, argv)])


def test_threads_default_is_adaptive_unless_fixed(monkeypatch):
    """--threads: unset (and no OMP_NUM_THREADS) or auto -> an AdaptiveThreads between 1 and
    the default count; N -> that fixed count, no adapter; OMP_NUM_THREADS -> fixed too."""
    import fastconv
    from fastconv.adaptive import AdaptiveThreads
    from fastconv.cli import UserError, _adaptive_threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    fastconv.set_num_threads(None)
    default = fastconv.get_num_threads()
    try:
        for argv in ((), ("--threads", "auto")):
            a = _adaptive_threads(_train_args(*argv))
            assert isinstance(a, AdaptiveThreads) and a.max_threads == default
            assert fastconv.get_num_threads() == a.threads == 1  # starts on one thread
            a.close()
        assert _adaptive_threads(_train_args("--threads", 2)) is None
        assert fastconv.get_num_threads() == 2
        fastconv.set_num_threads(None)
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert _adaptive_threads(_train_args()) is None
        assert isinstance(_adaptive_threads(_train_args("--threads", "auto")), AdaptiveThreads)
        with pytest.raises(UserError, match="--threads auto does not apply to --distributed"):
            _adaptive_threads(_train_args("--threads", "auto", "--distributed"))
    finally:
        fastconv.set_num_threads(None)


@pytest.mark.parametrize("value", ["0", "-1", "two", "Auto"])
def test_threads_bad_values_are_one_line_errors(value):
    r = run("train", "--threads", value)
    assert r.returncode == 2 and "expected a positive integer or 'auto'" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_train_with_adaptive_threads_reports_them(mnist_dir):
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    r = run("train", "--data", mnist_dir, "--epochs", 1, "--train-limit", 640, env=env)
    assert r.returncode == 0, r.stderr
    assert "threads auto (1 to " in r.stdout
    line = next(s for s in r.stdout.splitlines() if s.startswith("epoch   1/1"))
    assert line.endswith(" threads)") and "img/s" in line
    r = run("train", "--data", mnist_dir, "--epochs", 1, "--train-limit", 64, "--threads", 1, env=env)
    assert r.returncode == 0, r.stderr
    assert ", 1 threads" in r.stdout and "threads)" not in r.stdout
    r = run("train", "--help")
    assert "N|auto" in r.stdout and "not bitwise" in " ".join(r.stdout.split())


def test_failed_train_setup_gives_the_thread_count_back(tmp_path, monkeypatch):
    """--threads auto starts on one thread; a train that fails before its loop (no data
    here) must not leave the caller on one thread."""
    import fastconv
    from fastconv.cli import main

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = fastconv.get_num_threads()
    assert main(["train", "--data", str(tmp_path / "missing"), "--epochs", "1"]) == 2
    assert fastconv.get_num_threads() == before
