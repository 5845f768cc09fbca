"""Checkpoints (fastconv.checkpoint) and ``fastconv train --checkpoint/--resume``.

The core check: a training subprocess killed with SIGKILL (or stopped with SIGINT) at a
random step and resumed ends with bitwise the weights and the metrics of an uninterrupted
run. The steps are chosen with the test-only hook FASTCONV_TEST_KILL_AT_STEP.
"""
import json
import os
import random
import subprocess
import sys
import tempfile
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from fastconv import checkpoint as ck
from fastconv import manual_seed, nn
from fastconv.checkpoint import CheckpointError, TrainingRun, load_checkpoint, save_checkpoint
from fastconv.datasets import BatchIterator
from fastconv.datasets.transforms import Compose, RandomCrop, RandomHorizontalFlip
from fastconv.models import lenet5, resnet8
from fastconv.optim import SGD, Adam
from fastconv.optim.lr_scheduler import MultiStepLR, OneCycleLR
from fastconv.training import train_epoch

from conftest import _find_mnist


def _step(model, opt, sched, x, y, loss_fn=None):
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    loss_fn(model(x), y)
    opt.zero_grad()
    model.backward(loss_fn.backward())
    opt.step()
    if sched is not None:
        sched.step()


def _state_bytes(model):
    return {k: (v.dtype.str, v.shape, v.tobytes()) for k, v in model.state_dict().items()}


@pytest.fixture
def trained(rng):
    """A resnet8 (BatchNorm buffers) after 2 SGD + OneCycleLR steps, and a batch."""
    model = resnet8(rng=0)
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    sched = OneCycleLR(opt, max_lr=0.1, total_steps=10)
    x = rng.standard_normal((4, 1, 28, 28)).astype(np.float32)
    y = np.array([1, 2, 3, 4])
    for _ in range(2):
        _step(model, opt, sched, x, y)
    return model, opt, sched, x, y


def _fresh():
    model = resnet8(rng=1)
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    return model, opt, OneCycleLR(opt, max_lr=0.1, total_steps=10)


# -- the file format -------------------------------------------------------------------------

def test_round_trip_restores_everything_and_training_continues_bitwise(trained, tmp_path):
    model, opt, sched, x, y = trained
    g = np.random.default_rng(5)
    g.random(3)
    path = save_checkpoint(tmp_path / "run", model=model, optimizer=opt, scheduler=sched, epoch=1, step=2,
                           rngs={"g": g}, metrics=[{"epoch": 1, "loss": 0.1 + 0.2}],
                           config={"lr": 0.1, "pair": (1, 2)}, extra={"x": np.float32(1.25)})
    assert path.name == ck.checkpoint_name(1, 2) and path.parent == tmp_path / "run"
    c = load_checkpoint(tmp_path / "run")
    assert (c.path, c.epoch, c.step) == (path, 1, 2)
    assert c.metrics == [{"epoch": 1, "loss": 0.1 + 0.2}]  # the float bit for bit
    assert c.config == {"lr": 0.1, "pair": (1, 2)}
    assert type(c.extra["x"]) is np.float32 and c.extra["x"] == 1.25
    m2, o2, s2 = _fresh()
    g2 = np.random.default_rng(9)
    c.restore(model=m2, optimizer=o2, scheduler=s2, rngs={"g": g2})
    assert _state_bytes(m2) == _state_bytes(model)  # incl. running stats, num_batches_tracked
    assert s2.state_dict() == sched.state_dict()
    assert o2.state_dict()["param_groups"] == opt.state_dict()["param_groups"]
    assert g2.random() == g.random()
    for _ in range(3):  # momentum buffers and the schedule's position carried over
        _step(model, opt, sched, x, y)
        _step(m2, o2, s2, x, y)
    assert _state_bytes(m2) == _state_bytes(model)


def test_adam_and_multistep_state_round_trip(tmp_path, rng):
    model = lenet5(rng=0)
    opt = Adam(model.parameters(), lr=1e-3, betas=(0.8, 0.9))
    sched = MultiStepLR(opt, milestones=[2, 2, 5])  # a Counter inside
    x = rng.standard_normal((3, 1, 28, 28)).astype(np.float32)
    _step(model, opt, sched, x, np.array([0, 1, 2]))
    save_checkpoint(tmp_path, model=model, optimizer=opt, scheduler=sched, epoch=1, step=1)
    c = load_checkpoint(tmp_path)
    assert c.scheduler_state["milestones"] == Counter({2: 2, 5: 1})
    assert isinstance(c.scheduler_state["milestones"], Counter)
    m2 = lenet5(rng=1)
    o2 = Adam(m2.parameters(), lr=1e-3, betas=(0.8, 0.9))
    s2 = MultiStepLR(o2, milestones=[2, 2, 5])
    c.restore(model=m2, optimizer=o2, scheduler=s2)
    assert o2.param_groups[0]["betas"] == (0.8, 0.9) and isinstance(o2.param_groups[0]["betas"], tuple)
    st, st2 = opt.state_dict()["state"], o2.state_dict()["state"]
    assert st.keys() == st2.keys()
    for i in st:
        for key, v in st[i].items():
            assert np.array_equal(v, st2[i][key]) and type(v) is type(st2[i][key])


def test_keeps_the_newest_two(trained, tmp_path):
    model, opt, sched, _, _ = trained
    for e in range(1, 5):
        save_checkpoint(tmp_path, model=model, optimizer=opt, epoch=e, step=10 * e)
    assert [p.name for p in ck.list_checkpoints(tmp_path)] == [ck.checkpoint_name(3, 30), ck.checkpoint_name(4, 40)]
    save_checkpoint(tmp_path, model=model, epoch=5, step=50, keep=1)
    assert [p.name for p in ck.list_checkpoints(tmp_path)] == [ck.checkpoint_name(5, 50)]


def test_crash_between_temporary_write_and_rename_keeps_the_previous_one(trained, tmp_path, monkeypatch):
    model, opt, sched, x, y = trained
    first = save_checkpoint(tmp_path, model=model, optimizer=opt, scheduler=sched, epoch=1, step=2)
    before = first.read_bytes()
    _step(model, opt, sched, x, y)

    def crash(src, dst):
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(ck.os, "replace", crash)
    with pytest.raises(OSError, match="simulated"):
        save_checkpoint(tmp_path, model=model, optimizer=opt, scheduler=sched, epoch=2, step=3)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == [first.name]  # no temporary left, old intact
    assert first.read_bytes() == before
    assert ck.latest_checkpoint(tmp_path) == first and load_checkpoint(tmp_path).step == 2


def test_a_killed_writers_partial_file_is_never_read_and_is_cleaned_up(trained, tmp_path):
    model, opt, _, _, _ = trained
    first = save_checkpoint(tmp_path, model=model, optimizer=opt, epoch=1, step=2)
    # what a SIGKILL during the write leaves: a temporary file with a prefix of the bytes
    partial = tmp_path / f".{ck.checkpoint_name(2, 4)}.abc123.part"
    partial.write_bytes(first.read_bytes()[:1000])
    assert ck.latest_checkpoint(tmp_path) == first
    save_checkpoint(tmp_path, model=model, optimizer=opt, epoch=2, step=4)
    assert not partial.exists()


@pytest.mark.parametrize("cut", ["empty", "header", "half", "last byte"])
def test_truncated_checkpoints_are_refused(trained, tmp_path, cut):
    model, opt, sched, _, _ = trained
    older = save_checkpoint(tmp_path, model=model, optimizer=opt, scheduler=sched, epoch=1, step=2)
    newer = save_checkpoint(tmp_path, model=model, optimizer=opt, scheduler=sched, epoch=2, step=4)
    data = newer.read_bytes()
    n = {"empty": 0, "header": 8 + int.from_bytes(data[:8], "little") // 2, "half": len(data) // 2,
         "last byte": len(data) - 1}[cut]
    newer.write_bytes(data[:n])
    with pytest.raises(CheckpointError, match="not a complete checkpoint|checksum"):
        load_checkpoint(newer)
    with pytest.warns(UserWarning, match="skipping an unreadable checkpoint"):
        assert ck.latest_checkpoint(tmp_path) == older
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert load_checkpoint(tmp_path).step == 2


@pytest.mark.parametrize("where", ["data", "document"])
def test_corrupted_checkpoints_are_refused(trained, tmp_path, where):
    model, opt, sched, _, _ = trained
    path = save_checkpoint(tmp_path, model=model, optimizer=opt, scheduler=sched, epoch=1, step=2)
    data = bytearray(path.read_bytes())
    header = 8 + int.from_bytes(data[:8], "little")
    if where == "data":
        data[header + (len(data) - header) // 2] ^= 0x01  # one bit of one weight
    else:  # a digit of the JSON document: still valid JSON, other numbers
        i = data.index(b'\\"epoch\\": 1', 0, header)
        data[i + len(b'\\"epoch\\": ')] = ord("7")
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        load_checkpoint(path)
    with pytest.warns(UserWarning):
        assert ck.latest_checkpoint(tmp_path) is None
    with pytest.raises(CheckpointError, match="no complete checkpoint"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        load_checkpoint(tmp_path)


def test_foreign_files_are_refused(tmp_path):
    from safetensors.numpy import save_file

    p = tmp_path / ck.checkpoint_name(1, 1)
    save_file({"a": np.zeros(3)}, str(p))
    with pytest.raises(CheckpointError, match="not a fastconv checkpoint"):
        load_checkpoint(p)


def test_a_different_model_or_config_is_refused_naming_what_differs(trained, tmp_path):
    model, opt, sched, _, _ = trained
    save_checkpoint(tmp_path, model=model, optimizer=opt, scheduler=sched, epoch=1, step=2,
                    config={"flags": {"lr": 0.1, "model": "resnet8"}, "n": 3})
    c = load_checkpoint(tmp_path)
    c.check_config({"flags": {"lr": 0.1, "model": "resnet8"}, "n": 3})
    with pytest.raises(CheckpointError, match=r"different run: flags\.lr: 0\.1 in the checkpoint, 0\.2 now; "
                                              r"n: 3 in the checkpoint, not set now"):
        c.check_config({"flags": {"lr": 0.2, "model": "resnet8"}})
    other = lenet5(rng=0)
    with pytest.raises(CheckpointError, match=r"does not fit this run: .*'0\.weight'"):
        c.restore(model=other)
    adam = Adam(model.parameters())
    with pytest.raises(CheckpointError, match="does not fit this run"):
        c.restore(optimizer=adam)
    with pytest.raises(CheckpointError, match="no state for the random generator 'x'"):
        c.restore(rngs={"x": np.random.default_rng()})


class _NotStorable:
    pass


@pytest.mark.parametrize("kwargs,exc,words", [
    (dict(directory=3), TypeError, "directory must be a str or os.PathLike"),
    (dict(epoch=-1), ValueError, "epoch must be an int >= 0"),
    (dict(step=1.5), ValueError, "step must be an int >= 0"),
    (dict(keep=0), ValueError, "keep must be an int >= 1"),
    (dict(model=object()), TypeError, "model must be a fastconv Module"),
    (dict(optimizer=3), TypeError, "optimizer must have a state_dict"),
    (dict(rngs=[1]), TypeError, "rngs must be a mapping"),
    (dict(rngs={"a": 3}), TypeError, r"rngs\['a'\] must be a numpy.random.Generator"),
    (dict(config=3), TypeError, "config must be a mapping"),
    (dict(extra={"o": _NotStorable()}), TypeError, "extra/o: cannot store a _NotStorable"),
    (dict(extra={"s": np.array(["a"])}), TypeError, "cannot store an array of dtype"),
])
def test_save_checkpoint_bad_arguments(tmp_path, kwargs, exc, words):
    args = dict(directory=tmp_path, model=lenet5(rng=0), epoch=0, step=0)
    args.update(kwargs)
    directory = args.pop("directory")
    with pytest.raises(exc, match=words):
        save_checkpoint(directory, **args)
    assert not list(tmp_path.glob("ckpt-*"))


def test_load_bad_paths(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing")
    with pytest.raises(CheckpointError, match="does not exist"):
        ck.latest_checkpoint(tmp_path / "missing")
    (tmp_path / "f").write_text("x")
    with pytest.raises(CheckpointError, match="is not a directory"):
        ck.latest_checkpoint(tmp_path / "f")
    with pytest.raises(ValueError, match="exists and is not a directory"):
        save_checkpoint(tmp_path / "f", model=lenet5(rng=0), epoch=0, step=0)
    with pytest.raises(TypeError, match="path must be a str"):
        load_checkpoint(None)
    assert ck.latest_checkpoint(tmp_path) is None


# -- TrainingRun in process: dropout (global generator), shuffling, augmentation -------------

def _loop_setup(data):
    manual_seed(7)  # the first Dropout draws from fastconv's global generator, the second its own
    model = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 32, rng=1), nn.ReLU(), nn.Dropout(0.3),
                          nn.Dropout(0.2, rng=np.random.default_rng(4)), nn.Linear(32, 10, rng=2))
    opt = SGD(model.parameters(), lr=0.05, momentum=0.9)
    sched = OneCycleLR(opt, max_lr=0.05, total_steps=3 * 5)
    aug = Compose([RandomCrop(28, padding=2, padding_mode="edge"), RandomHorizontalFlip(0.5)])
    batches = BatchIterator(*data, 20, shuffle=True, rng=np.random.default_rng(3), transform=aug)
    return model, opt, sched, batches


def _loop(run, model, opt, sched, stop_at=None):
    loss_fn = nn.CrossEntropyLoss()
    try:
        for _ in range(run.epoch_done, 3):
            batches = run.begin_epoch()

            def progress(n, loss, rate):
                run.step_done()
                if run.step == stop_at:
                    raise KeyboardInterrupt

            stats = train_epoch(model, loss_fn, opt, batches, progress, sched, totals=run.totals)
            run.end_epoch({"loss": stats["loss"], "acc": stats["train_acc"]})
    except KeyboardInterrupt:
        return run.save_on_interrupt()


@pytest.mark.parametrize("stop_at", [3, 5, 12])
def test_training_run_resumes_mid_epoch_bitwise(tmp_path, rng, stop_at):
    data = (rng.integers(0, 256, (100, 28, 28), dtype=np.uint8), rng.integers(0, 10, 100))
    model, opt, sched, batches = _loop_setup(data)
    ref = TrainingRun(tmp_path / "ref", model=model, optimizer=opt, scheduler=sched, batches=batches, config={})
    _loop(ref, model, opt, sched)
    expected = _state_bytes(model)

    model, opt, sched, batches = _loop_setup(data)
    run = TrainingRun(tmp_path / "r", model=model, optimizer=opt, scheduler=sched, batches=batches, config={})
    path = _loop(run, model, opt, sched, stop_at=stop_at)
    assert path is not None and load_checkpoint(path).step == stop_at
    model, opt, sched, batches = _loop_setup(data)
    np.random.default_rng(0)  # anything the process did in between does not matter
    manual_seed(123)
    run = TrainingRun(tmp_path / "r", model=model, optimizer=opt, scheduler=sched, batches=batches, config={})
    run.resume(tmp_path / "r")
    _loop(run, model, opt, sched)
    assert _state_bytes(model) == expected
    assert run.metrics == ref.metrics and len(run.metrics) == 3


# -- the CLI: kill and resume -------------------------------------------------------------------

def _write_idx(path, array, magic):
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


@pytest.fixture(scope="module")
def small_mnist(tmp_path_factory):
    """A small MNIST folder (2000 train / 500 test images): the real images where the MNIST
    files are found, else random ones; raw IDX files."""
    from fastconv.datasets import load_mnist

    folder = tmp_path_factory.mktemp("mnist")
    real = _find_mnist()
    if real is not None:
        tx, ty = load_mnist(real, "train")
        vx, vy = load_mnist(real, "test")
        tx, ty, vx, vy = tx[:2000], ty[:2000], vx[:500], vy[:500]
    else:
        g = np.random.default_rng(0)
        tx, vx = g.integers(0, 256, (2000, 28, 28)), g.integers(0, 256, (500, 28, 28))
        ty, vy = g.integers(0, 10, 2000), g.integers(0, 10, 500)
    for stem, a, magic in (("train-images-idx3-ubyte", tx, 2051), ("train-labels-idx1-ubyte", ty, 2049),
                           ("t10k-images-idx3-ubyte", vx, 2051), ("t10k-labels-idx1-ubyte", vy, 2049)):
        _write_idx(folder / stem, np.asarray(a), magic)
    return folder


def run_cli(*args, kill_at=None):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop(TrainingRun.KILL_HOOK_VARIABLE, None)
    if kill_at is not None:
        env[TrainingRun.KILL_HOOK_VARIABLE] = str(kill_at)
    return subprocess.run([sys.executable, "-m", "fastconv", *map(str, args)], capture_output=True, text=True,
                          cwd=tempfile.gettempdir(), env=env, timeout=300, stdin=subprocess.DEVNULL)


def _records(path):
    drop = {"seconds", "images_per_second"}  # wall-clock
    return [{k: v for k, v in json.loads(line).items() if k not in drop} if line.startswith("{") else line
            for line in Path(path).read_text().splitlines()]


def _weights(path):
    with np.load(path) as f:
        return {k: (f[k].dtype.str, f[k].shape, f[k].tobytes()) for k in f.files}


LENET = ("train", "--model", "lenet5", "--dataset", "mnist", "--train-limit", 2000, "--epochs", 3,
         "--batch-size", 64, "--threads", 1, "--quiet")  # 32 steps an epoch
RESNET = ("train", "--model", "resnet8", "--dataset", "mnist", "--train-limit", 192, "--epochs", 2,
          "--batch-size", 64, "--threads", 1, "--quiet", "--augment")  # onecycle, 3 steps an epoch


def _reference(tmp_path, args, data):
    r = run_cli(*args, "--data", data, "--save", tmp_path / "ref.npz", "--metrics", tmp_path / "ref.jsonl")
    assert r.returncode == 0, r.stderr
    return _weights(tmp_path / "ref.npz"), _records(tmp_path / "ref.jsonl")


def _kill_and_resume(tmp_path, args, data, kill_at, name, prefix=""):
    out, metrics, ckpt = tmp_path / f"{name}.npz", tmp_path / f"{name}.jsonl", tmp_path / name
    if prefix:
        metrics.write_text(prefix)
    first = run_cli(*args, "--data", data, "--checkpoint", ckpt, "--save", out, "--metrics", metrics,
                    kill_at=kill_at)
    signal = kill_at.partition(":")[2] or "KILL"
    assert first.returncode == {"KILL": -9, "INT": 130}[signal], first.stderr
    if signal == "INT":  # stopped after the step, checkpointed there, and says how to go on
        assert f"--resume {ckpt}" in first.stderr and ck.checkpoint_name(
            (int(kill_at.partition(":")[0]) - 1) // 32, int(kill_at.partition(":")[0])) in first.stderr
    second = run_cli(*args, "--data", data, "--resume", ckpt, "--save", out, "--metrics", metrics)
    assert second.returncode == 0, second.stderr
    assert "resuming from" in second.stdout or not list(ckpt.glob("ckpt-*"))
    return _weights(out), _records(metrics)


def test_lenet5_killed_at_random_steps_resumes_bitwise(tmp_path, small_mnist):
    ref_weights, ref_metrics = _reference(tmp_path, LENET, small_mnist)
    assert [r["epoch"] for r in ref_metrics] == [1, 2, 3]
    steps = random.Random(13).sample(range(1, 97), 3)
    cases = [(f"{steps[0]}", ""), (f"{steps[1]}", '{"epoch": 9, "loss": 1.0}\n'), (f"{steps[2]}:INT", ""),
             ("32", "")]  # 32: killed right after an epoch's last step, before its checkpoint
    for i, (kill_at, prefix) in enumerate(cases):
        weights, metrics = _kill_and_resume(tmp_path, LENET, small_mnist, kill_at, f"run{i}", prefix)
        assert weights == ref_weights, f"weights differ after a kill at step {kill_at}"
        expected = ([{"epoch": 9, "loss": 1.0}] if prefix else []) + ref_metrics
        assert metrics == expected, f"metrics differ after a kill at step {kill_at}"


def test_lenet5_killed_after_random_delays_resumes_bitwise(tmp_path, small_mnist):
    """SIGKILL at any moment (start-up, a step, evaluation, a checkpoint or metrics write): a
    run killed before its first checkpoint (step 0, written before training) is simply run
    again; otherwise it is resumed."""
    from fastconv.checkpoint import list_checkpoints

    import time

    t0 = time.perf_counter()
    ref_weights, ref_metrics = _reference(tmp_path, LENET, small_mnist)
    duration = time.perf_counter() - t0
    rnd = random.Random(29)
    for i in range(2):
        ckpt, out, metrics = tmp_path / f"d{i}", tmp_path / f"d{i}.npz", tmp_path / f"d{i}.jsonl"
        cmd = [sys.executable, "-m", "fastconv", *map(str, LENET), "--data", str(small_mnist), "--checkpoint",
               str(ckpt), "--save", str(out), "--metrics", str(metrics)]
        env = dict(os.environ, OMP_NUM_THREADS="1")
        env.pop(TrainingRun.KILL_HOOK_VARIABLE, None)
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                             cwd=tempfile.gettempdir(), env=env)
        try:
            p.wait(timeout=rnd.uniform(0.3, 0.95) * duration)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        again = ("--resume", ckpt) if list_checkpoints(ckpt) else ("--checkpoint", ckpt, "--force")
        r = run_cli(*LENET, "--data", small_mnist, *again, "--save", out, "--metrics", metrics)
        assert r.returncode == 0, r.stderr
        assert _weights(out) == ref_weights and _records(metrics) == ref_metrics


def test_resnet8_augmented_onecycle_killed_and_resumed_bitwise(tmp_path, small_mnist):
    ref_weights, ref_metrics = _reference(tmp_path, RESNET, small_mnist)
    assert any(k.endswith("num_batches_tracked") for k in ref_weights)
    kill_at = random.Random(5).choice([2, 4, 5])
    weights, metrics = _kill_and_resume(tmp_path, RESNET, small_mnist, str(kill_at), "r")
    assert weights == ref_weights and metrics == ref_metrics


@pytest.mark.skipif(not (__import__("importlib").util.find_spec("mpi4py") and __import__("shutil").which("mpiexec")),
                    reason='needs mpi4py and mpiexec: pip install "fastconv[mpi]"')
def test_distributed_run_killed_resumes_bitwise(tmp_path, small_mnist):
    """mpiexec -n 2 ... --distributed: rank 0 writes the checkpoints, both ranks resume from
    them (SIGKILL of both ranks at a random step; the job resumes from the last epoch's)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MPIEXEC_TIMEOUT="120",
               PYTHONPATH=str(Path(ck.__file__).resolve().parents[1]))
    env.pop(TrainingRun.KILL_HOOK_VARIABLE, None)

    def mpirun(*args, kill_at=None):
        e = dict(env, **({TrainingRun.KILL_HOOK_VARIABLE: str(kill_at)} if kill_at else {}))
        return subprocess.run(["mpiexec", "-n", "2", sys.executable, "-m", "fastconv",
                               *map(str, (*LENET, "--distributed", "--data", small_mnist, *args))],
                              capture_output=True, text=True,
                              env=e, timeout=200, cwd=tempfile.gettempdir(), stdin=subprocess.DEVNULL)

    r = mpirun("--save", tmp_path / "ref.npz", "--metrics", tmp_path / "ref.jsonl")
    assert r.returncode == 0, r.stderr
    kill_at = random.Random(3).randrange(33, 96)
    r = mpirun("--checkpoint", tmp_path / "c", "--save", tmp_path / "k.npz", "--metrics", tmp_path / "k.jsonl",
               kill_at=kill_at)
    assert r.returncode != 0
    r = mpirun("--resume", tmp_path / "c", "--save", tmp_path / "k.npz", "--metrics", tmp_path / "k.jsonl")
    assert r.returncode == 0, r.stderr
    assert _weights(tmp_path / "k.npz") == _weights(tmp_path / "ref.npz")
    assert _records(tmp_path / "k.jsonl") == _records(tmp_path / "ref.jsonl")


@pytest.mark.parametrize("extra,words", [
    (("--checkpoint-every", 0), "--checkpoint-every: expected a positive integer"),
    (("--checkpoint-every", 2), "--checkpoint-every needs --checkpoint DIR"),
    (("--resume", "{tmp}/missing"), "missing: does not exist"),
    (("--resume", "{tmp}/file"), "file: is not a directory"),
    (("--checkpoint", "{tmp}/file"), "--checkpoint {tmp}/file: exists and is not a directory"),
    (("--resume", "{tmp}/empty"), "holds no complete checkpoint"),
])
def test_cli_bad_checkpoint_arguments(tmp_path, small_mnist, extra, words):
    (tmp_path / "file").write_text("x")
    (tmp_path / "empty").mkdir()
    extra = [str(a).format(tmp=tmp_path) for a in extra]
    r = run_cli("train", "--data", small_mnist, "--epochs", 1, "--train-limit", 64, *extra)
    assert r.returncode == 2, r.stderr
    assert words.format(tmp=tmp_path) in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_cli_resume_with_a_different_command_line_is_refused(tmp_path, small_mnist):
    base = ("train", "--data", small_mnist, "--epochs", 2, "--train-limit", 64, "--batch-size", 32, "--quiet")
    r = run_cli(*base, "--checkpoint", tmp_path / "c")
    assert r.returncode == 0, r.stderr
    r = run_cli(*base, "--lr", 0.5, "--resume", tmp_path / "c")
    assert r.returncode == 2 and "different run" in r.stderr and "flags.lr: None in the checkpoint, 0.5 now" in r.stderr
    r = run_cli(*base[:-3], "--batch-size", 16, "--quiet", "--resume", tmp_path / "c")
    assert r.returncode == 2 and "flags.batch-size: 32 in the checkpoint, 16 now" in r.stderr, r.stderr
    r = run_cli(*base, "--model", "resnet8", "--resume", tmp_path / "c")
    assert r.returncode == 2 and "flags.model: 'lenet5' in the checkpoint, 'resnet8' now" in r.stderr
    r = run_cli(*base, "--checkpoint", tmp_path / "c")
    assert r.returncode == 2 and "already holds checkpoints" in r.stderr and "--force" in r.stderr
    # resuming a finished run trains nothing more
    r = run_cli(*base, "--resume", tmp_path / "c")
    assert r.returncode == 0 and "2 epochs and 4 steps done" in r.stdout and "epoch   " not in r.stdout
