"""The CLI's model zoo, schedules, augmentation, transfer learning, plot and show (subprocesses)."""
import json

import numpy as np
import pytest

from fastconv import serialization

from test_cli import run


def test_resnet8_trains_augmented_with_onecycle_then_evaluates(fashion_dir, tmp_path):
    metrics, model = tmp_path / "m.jsonl", tmp_path / "r8.npz"
    r = run("train", "--model", "resnet8", "--dataset", "fashion-mnist", "--data", fashion_dir,
            "--epochs", 1, "--train-limit", 1024, "--metrics", metrics, "--save", model)
    assert r.returncode == 0, r.stderr
    assert "training resnet8 on fashion-mnist" in r.stdout and "onecycle" in r.stdout
    assert "augmented" in r.stdout and "batch 128" in r.stdout
    rec = json.loads(metrics.read_text())
    assert rec["test_acc"] > 0.2, rec  # 8 steps from scratch: well above chance
    loaded = serialization.load_model(model)
    assert loaded.config["model"] == "resnet8"
    assert int(loaded[1].num_batches_tracked) == 8  # buffers saved and loaded
    e = run("evaluate", model, "--data", fashion_dir)
    assert e.returncode == 0, e.stderr
    assert f"test accuracy on fashion-mnist: {100 * rec['test_acc']:.2f}%" in e.stdout


@pytest.mark.parametrize("flags", [["--optimizer", "adamw", "--lr-schedule", "step"],
                                   ["--optimizer", "adam", "--lr-schedule", "constant", "--no-augment"]])
def test_optimizers_and_schedules_run(mnist_dir, flags):
    r = run("train", "--data", mnist_dir, "--epochs", 2, "--train-limit", 256, *flags)
    assert r.returncode == 0, r.stderr
    assert "epoch   2/2" in r.stdout


def test_transfer_learning_freezes_the_convolutions(mnist_dir, fashion_dir, tmp_path):
    pre = tmp_path / "mnist.npz"
    assert run("train", "--data", mnist_dir, "--epochs", 1, "--train-limit", 2048, "--save", pre).returncode == 0
    tuned = tmp_path / "tuned.npz"
    r = run("train", "--dataset", "fashion-mnist", "--data", fashion_dir, "--epochs", 1,
            "--train-limit", 1024, "--init-from", pre, "--freeze", "0,3", "--save", tuned)
    assert r.returncode == 0, r.stderr
    assert "frozen: 4 parameters (0.weight, 0.bias, 3.weight, 3.bias)" in r.stdout
    a, b = serialization.load_model(pre), serialization.load_model(tuned)
    for k in ("0.weight", "0.bias", "3.weight", "3.bias"):
        np.testing.assert_array_equal(a.state_dict()[k], b.state_dict()[k])
    assert not np.array_equal(a.state_dict()["7.weight"], b.state_dict()["7.weight"])


@pytest.mark.parametrize("args,words", [
    (["train", "--freeze", "99"], "--freeze: freeze prefix '99' matches no parameter"),
    (["train", "--init-from", "/nonexistent/m.npz"], "no such model file"),
    (["train", "--model", "resnet8", "--activation", "tanh"], "apply to --model lenet5 only"),
    (["train", "--model", "alexnet"], "invalid choice"),
    (["train", "--lr-schedule", "linear"], "invalid choice"),
    (["train", "--optimizer", "rmsprop"], "invalid choice"),
    (["plot", "/nonexistent/m.jsonl", "-o", "x.png"], "cannot read /nonexistent/m.jsonl"),
    (["show", "/nonexistent/m.npz", "-o", "x.png"], "no such model file"),
])
def test_new_flags_user_errors_are_one_line(args, words, mnist_dir):
    if args[0] == "train":
        args = args + ["--data", str(mnist_dir), "--epochs", "1", "--train-limit", "64"]
    r = run(*args)
    assert r.returncode == 2, r.stdout + r.stderr
    assert words in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_init_from_another_architecture_is_a_user_error(mnist_dir, tmp_path):
    pre = tmp_path / "lenet.npz"
    assert run("train", "--data", mnist_dir, "--epochs", 1, "--train-limit", 64, "--save", pre).returncode == 0
    r = run("train", "--model", "resnet8", "--data", mnist_dir, "--epochs", 1, "--train-limit", 64,
            "--init-from", pre)
    assert r.returncode == 2 and "--init-from" in r.stderr and "missing keys" in r.stderr


def test_plot_and_show_write_images(mnist_dir, tmp_path):
    pytest.importorskip("matplotlib")
    metrics, model = tmp_path / "m.jsonl", tmp_path / "m.npz"
    assert run("train", "--data", mnist_dir, "--epochs", 2, "--train-limit", 256, "--metrics", metrics,
               "--save", model).returncode == 0
    png = tmp_path / "curves.png"
    r = run("plot", metrics, "-o", png)
    assert r.returncode == 0, r.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    maps = tmp_path / "maps.png"
    r = run("show", model, "--data", mnist_dir, "--index", 7, "-o", maps)
    assert r.returncode == 0, r.stderr
    assert maps.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    r = run("show", model, "--data", mnist_dir, "--index", 10**6, "-o", maps)
    assert r.returncode == 2 and "--index must be in [0, 10000)" in r.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"epoch": 1}\n')
    r = run("plot", bad, "-o", png)
    assert r.returncode == 2 and "expected a metrics record" in r.stderr
