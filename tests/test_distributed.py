"""fastconv.distributed: the sampler (pure Python, any world size), and real MPI jobs
(``mpiexec -n W`` subprocesses of tests/_distributed_worker.py, skipped without mpi4py or
mpiexec) against one process with the same global batch."""
import ast
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from fastconv import distributed as dist
from fastconv.datasets import BatchIterator

HERE = Path(__file__).resolve().parent
WORKER = HERE / "_distributed_worker.py"
HAVE_MPI = importlib.util.find_spec("mpi4py") is not None and shutil.which("mpiexec") is not None
needs_mpi = pytest.mark.skipif(not HAVE_MPI, reason='needs mpi4py and mpiexec: pip install "fastconv[mpi]"')


def _env():
    """One thread per rank; the subprocesses import the fastconv this process imported
    (the source tree or an installed wheel)."""
    import fastconv

    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(fastconv.__file__).resolve().parents[1]))


def mpirun(n, *args, timeout=60, cwd=None):
    """``mpiexec -n n python <args>`` (CompletedProcess; MPIEXEC_TIMEOUT as a last guard)."""
    env = _env()
    env["MPIEXEC_TIMEOUT"] = str(timeout)
    cmd = ["mpiexec", "-n", str(n), sys.executable, *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout + 15,
                          cwd=cwd or tempfile.gettempdir(), stdin=subprocess.DEVNULL)


# ----------------------------------------------------------------------------- the sampler
def _single_process_batches(n, batch, seed, epochs):
    """Label order of a plain shuffling BatchIterator (labels = indices)."""
    it = BatchIterator(np.zeros((n, 2, 2), np.uint8), np.arange(n), batch, shuffle=True, rng=seed)
    return [[y.copy() for _, y in it] for _ in range(epochs)]


def _sharded_batches(n, batch, seed, world, epochs, drop_last=False):
    images = np.zeros((n, 2, 2), np.uint8)
    samplers = [dist.DistributedSampler(n, num_replicas=world, rank=r, seed=seed) for r in range(world)]
    iters = [BatchIterator(images, np.arange(n), batch, drop_last=drop_last, sampler=s) for s in samplers]
    out = []
    for _ in range(epochs):
        out.append([[y.copy() for _, y in it] for it in iters])  # [rank][step] -> labels
    return out, samplers


@pytest.mark.parametrize("n,batch,world", [(100, 10, 1), (100, 10, 2), (101, 10, 3), (97, 32, 4), (66, 32, 3),
                                           (5, 4, 3)])
def test_global_batches_are_the_single_process_batches(n, batch, world):
    single = _single_process_batches(n, batch, seed=11, epochs=3)
    sharded, _ = _sharded_batches(n, batch, 11, world, epochs=3)
    for epoch in range(3):
        per_rank = sharded[epoch]
        assert all(len(steps) == len(single[epoch]) for steps in per_rank)  # same number of steps
        for s, expected in enumerate(single[epoch]):
            shares = [per_rank[r][s] for r in range(world)]
            for r in range(world):
                want = expected[r::world]
                if len(want):
                    np.testing.assert_array_equal(shares[r], want)
                    assert len(want) in (len(expected) // world, -(-len(expected) // world))
                else:  # fewer images than ranks: one padding image (weight 0)
                    np.testing.assert_array_equal(shares[r], expected[:1])


def test_epochs_differ_and_set_epoch_is_random_access():
    s = dist.DistributedSampler(50, num_replicas=2, rank=0, seed=3)
    p0, p1, p5 = s.permutation(0), s.permutation(1), s.permutation(5)
    assert not np.array_equal(p0, p1)
    gen = np.random.default_rng(3)
    ref = [gen.permutation(50) for _ in range(6)]
    np.testing.assert_array_equal(p5, ref[5])
    np.testing.assert_array_equal(s.permutation(1), ref[1])  # back in time: recomputed
    s.set_epoch(4)
    np.testing.assert_array_equal(list(s), np.concatenate([ref[4]])[0::2])
    np.testing.assert_array_equal(dist.DistributedSampler(50, 2, 0, shuffle=False).permutation(7), np.arange(50))


def test_iterating_a_batch_iterator_advances_the_epoch():
    _, samplers = _sharded_batches(30, 8, 1, 2, epochs=2)
    assert [s.epoch for s in samplers] == [2, 2]


@pytest.mark.parametrize("n,world,drop_last", [(10, 3, False), (10, 3, True), (12, 4, False), (7, 1, False)])
def test_plain_iteration_has_pytorch_semantics(n, world, drop_last):
    samplers = [dist.DistributedSampler(n, world, r, seed=5, drop_last=drop_last) for r in range(world)]
    shards = [list(s) for s in samplers]
    perm = samplers[0].permutation()
    assert len({len(x) for x in shards}) == 1 and len(shards[0]) == len(samplers[0])
    if drop_last:
        total = n // world * world
        padded = perm[:total]
    else:
        total = -(-n // world) * world
        padded = np.concatenate([perm, perm[: total - n]])  # padded by repeating the start
    for r in range(world):
        np.testing.assert_array_equal(shards[r], padded[r::world])
    assert sorted(np.concatenate(shards).tolist())[: n if not drop_last else total] == \
        sorted(padded.tolist())[: n if not drop_last else total]


def test_augmentation_is_that_of_the_global_batch():
    from fastconv.datasets.transforms import Compose, RandomCrop, RandomHorizontalFlip

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 6, 6)).astype(np.uint8)
    aug = Compose([RandomCrop((6, 6), padding=1, padding_mode="edge"), RandomHorizontalFlip(0.5)])
    single = [x for x, _ in BatchIterator(images, np.arange(40), 16, shuffle=True, rng=2, transform=aug,
                                          dtype=np.float64)]
    for world in (2, 3):
        shares = [[x for x, _ in BatchIterator(images, np.arange(40), 16, rng=2, transform=aug, dtype=np.float64,
                                               sampler=dist.DistributedSampler(40, world, r, seed=2))]
                  for r in range(world)]
        for s, x in enumerate(single):
            for r in range(world):
                np.testing.assert_array_equal(shares[r][s], x[r::world])


BAD_CASES = [
    (lambda: dist.DistributedSampler(0), ValueError, "num_samples must be an int >= 1"),
    (lambda: dist.DistributedSampler(10.0), ValueError, "num_samples must be an int"),
    (lambda: dist.DistributedSampler(10, num_replicas=0), ValueError, "num_replicas must be an int >= 1"),
    (lambda: dist.DistributedSampler(10, 2, rank=2), ValueError, "rank must be an int in [0, 2)"),
    (lambda: dist.DistributedSampler(10, 2, rank=-1), ValueError, "rank must be an int in [0, 2)"),
    (lambda: dist.DistributedSampler(10, 2, 0, shuffle=1), TypeError, "shuffle must be a bool"),
    (lambda: dist.DistributedSampler(10, 2, 0, drop_last="no"), TypeError, "drop_last must be a bool"),
    (lambda: dist.DistributedSampler(10, 2, 0, seed=-1), ValueError, "seed must be an int >= 0"),
    (lambda: dist.DistributedSampler(10, 2, 0).set_epoch(-1), ValueError, "epoch must be an int >= 0"),
    (lambda: list(dist.DistributedSampler(10, 2, 0).batch_shares(0)), ValueError, "batch_size must be an int >= 1"),
    (lambda: BatchIterator(np.zeros((5, 2, 2)), np.zeros(5), 2, sampler=dist.DistributedSampler(6, 1, 0)),
     ValueError, "sampler must be a DistributedSampler over 5 samples"),
    (lambda: dist.DataParallel("model"), TypeError, "model must be a fastconv.nn.Module"),
    (lambda: dist.DistributedOptimizer(object(), None), TypeError, "model must be a fastconv.distributed.DataParallel"),
]


@pytest.mark.parametrize("fn,exc,words", BAD_CASES)
def test_bad_input(fn, exc, words):
    with pytest.raises(exc) as info:
        fn()
    assert words in str(info.value)


def test_without_mpi4py_the_error_says_how_to_install(monkeypatch):
    monkeypatch.setattr(dist, "_MPI", None)
    monkeypatch.setattr(dist, "_comm", None)
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    with pytest.raises(ImportError, match=r'pip install "fastconv\[mpi\]"'):
        dist.init()
    with pytest.raises(RuntimeError, match=r"init\(\) has not been called"):
        dist.all_reduce_(np.zeros(3), "sum")
    assert (dist.rank(), dist.world_size(), dist.is_main()) == (0, 1, True)


# ----------------------------------------------------------------------------- real MPI jobs
ALONE = """
import numpy as np
from fastconv import distributed as dist
assert dist.init() == 0 and dist.world_size() == 1 and dist.is_main()
a = np.arange(4.0)
assert dist.all_reduce_(a, "mean") is a and a.tolist() == [0, 1, 2, 3]
dist.broadcast_(a); dist.barrier()
for bad, words in [(lambda: dist.all_reduce_(a, "max"), "op must be one of 'sum', 'mean', got 'max'"),
                   (lambda: dist.all_reduce_([1.0]), "array must be a numpy.ndarray"),
                   (lambda: dist.all_reduce_(np.zeros((4, 4))[:, 0]), "C-contiguous"),
                   (lambda: dist.broadcast_(a, root=1), "root must be a rank in [0, 1)")]:
    try:
        bad()
    except (ValueError, TypeError) as e:
        assert words in str(e), e
    else:
        raise AssertionError(words)
print("ok")
"""

COLLECTIVES = """
import numpy as np
from fastconv import distributed as dist
r = dist.init(); W = dist.world_size()
a = np.full(3, float(r + 1)); dist.all_reduce_(a, "sum"); assert a.tolist() == [W * (W + 1) / 2] * 3
a = np.full(3, float(r + 1)); dist.all_reduce_(a, "mean"); assert a.tolist() == [(W + 1) / 2] * 3
b = np.full(2, r, np.int64); dist.broadcast_(b, root=W - 1); assert b.tolist() == [W - 1] * 2
m = dist.reduce_metrics(loss=0.5 * (r + 1), count=r + 1); assert m == {"loss": W * (W + 1) / 4, "count": W * (W + 1) / 2}
facts = dist._world().gather((r, W, dist.local_size(), dist.default_threads()), root=0)
if r == 0:
    print("ok", facts)
"""


@needs_mpi
def test_alone_without_mpiexec_world_size_is_one():
    p = subprocess.run([sys.executable, "-c", ALONE], capture_output=True, text=True, env=_env(), timeout=60,
                       cwd=tempfile.gettempdir())  # not the repository root: -c puts the cwd on sys.path
    assert p.returncode == 0 and "ok" in p.stdout, p.stderr


@needs_mpi
def test_collectives():
    p = mpirun(3, "-c", COLLECTIVES)
    assert p.returncode == 0, p.stderr
    facts = ast.literal_eval(p.stdout.split("ok ", 1)[1].strip())
    assert [f[:3] for f in facts] == [(r, 3, 3) for r in range(3)]  # all three share this machine
    cpus = len(os.sched_getaffinity(0))
    assert all(f[3] == max(1, cpus // 3) for f in facts)


def _reference_lenet(mnist, dtype, batch, n_images):
    """One process, plain loop: what the worker's DataParallel run must reproduce."""
    from fastconv.datasets import load_mnist
    from fastconv.models import lenet5
    from fastconv.nn import CrossEntropyLoss
    from fastconv.optim import SGD
    from fastconv.training import train_epoch

    x, y = load_mnist(mnist, "train")
    model = lenet5(10, rng=np.random.default_rng(0), dtype=dtype)
    opt = SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    batches = BatchIterator(x[:n_images], y[:n_images], batch, shuffle=True, rng=7,
                            normalize=(0.1307, 0.3081), dtype=dtype)
    stats = train_epoch(model, CrossEntropyLoss(), opt, batches)
    return model.state_dict(), stats


# (ranks, global batch, images): 200 = 6 x 32 + 8; 197 leaves a last batch of 5 for 3
# ranks (2/2/1); 194 one of 2 for 4 ranks (two ranks pad with a weight-0 image)
EQUIVALENCE = [(2, 32, 200, "float64"), (3, 32, 197, "float64"), (4, 32, 194, "float64"),
               (3, 20, 200, "float32")]


@needs_mpi
@pytest.mark.parametrize("world,batch,n_images,dtype", EQUIVALENCE)
def test_same_parameters_as_one_process(world, batch, n_images, dtype, mnist_dir, tmp_path):
    p = mpirun(world, WORKER, "train", tmp_path, mnist_dir, dtype, batch, n_images)
    assert p.returncode == 0, p.stderr
    ref, stats = _reference_lenet(mnist_dir, np.dtype(dtype), batch, n_images)
    ranks = [np.load(tmp_path / f"rank{r}.npz") for r in range(world)]
    moved = max(np.abs(v - lenet_init(dtype)[k]).max() for k, v in ref.items())
    assert moved > 1e-3  # the epoch changed the weights (the comparison means something)
    tol = 1e-10 if dtype == "float64" else 2e-6
    for k, v in ref.items():
        np.testing.assert_allclose(ranks[0][k], v, rtol=0, atol=tol, err_msg=k)
        for r in range(1, world):  # bit-identical across ranks
            np.testing.assert_array_equal(ranks[r][k], ranks[0][k], err_msg=f"{k} rank {r}")
    assert float(ranks[0]["samples"]) == n_images
    np.testing.assert_allclose(float(ranks[0]["loss"]) / n_images, stats["loss"], rtol=1e-6)


def lenet_init(dtype):
    from fastconv.models import lenet5

    return lenet5(10, rng=np.random.default_rng(0), dtype=np.dtype(dtype)).state_dict()


@needs_mpi
def test_batchnorm_buffers_synchronised(mnist_dir, tmp_path):
    p = mpirun(2, WORKER, "resnet", tmp_path, mnist_dir)
    assert p.returncode == 0, p.stderr
    a, b = (np.load(tmp_path / f"rank{r}.npz") for r in range(2))
    keys = [k for k in a.files if not k.startswith("pre/")]
    stats = [k for k in keys if "running_" in k]
    assert stats
    for k in keys:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)  # parameters and buffers equal
    for k in stats:  # each rank's statistics of its own shares, then their mean
        assert not np.array_equal(a["pre/" + k], b["pre/" + k])
        np.testing.assert_allclose(a[k], (a["pre/" + k] + b["pre/" + k]) / 2, rtol=1e-6, err_msg=k)


@needs_mpi
def test_gradients_are_views_of_one_buffer_and_the_count_weighted_mean(tmp_path):
    p = mpirun(2, WORKER, "bucket", tmp_path)
    assert p.returncode == 0, p.stderr
    a, b = (np.load(tmp_path / f"rank{r}.npz") for r in range(2))
    # step: (views of one buffer, the layers' arrays kept, the bucket kept from the step before)
    want_layout = [(True, False, False),  # float32: the bucket is built, p.grad rebound to it
                   (True, True, True),  # float32 again: no rebuild, no copy
                   (True, False, False),  # after astype(float64): rebuilt
                   (False, True, True),  # a float32 gradient among float64 ones: packed (the
                   #                       others are still views of the last bucket)
                   (True, False, False),  # presync, on fresh gradient arrays: rebuilt
                   (False, True, False)]  # gradient_as_bucket_view=False: the layers' arrays
    for step, layout in enumerate(want_layout):
        for f in (a, b):
            got = tuple(bool(f[f"{step}/{k}"]) for k in ("shared", "kept", "kept_bucket"))
            assert got == layout, (step, got)
            assert int(f[f"{step}/reductions"]) == 1  # presync: step() did not reduce again
        na, nb = int(a[f"{step}/count"]), int(b[f"{step}/count"])
        assert (na, nb) == (3, 2)
        names = sorted({k.rsplit("/", 1)[1] for k in a.files if k.startswith(f"{step}/pre/")})
        for i in names:
            ga, gb = a[f"{step}/pre/{i}"], b[f"{step}/pre/{i}"]
            assert not np.array_equal(ga, gb)  # the ranks' own gradients differ
            want = (na * ga.astype(np.float64) + nb * gb) / (na + nb)
            post = a[f"{step}/post/{i}"]
            assert post.dtype == ga.dtype  # the mixed set keeps each gradient's dtype
            tol = 1e-6 if post.dtype == np.float32 else 1e-13
            np.testing.assert_allclose(post, want, rtol=tol, atol=tol * np.abs(want).max(), err_msg=f"{step}/{i}")
            np.testing.assert_array_equal(b[f"{step}/post/{i}"], post)  # identical on both ranks


@needs_mpi
@pytest.mark.parametrize("mode,code,words", [("raise", 1, "rank 1 of 3 failed with RuntimeError"),
                                             ("exit", 3, None), ("kill", 9, "BAD TERMINATION"),
                                             ("sysabort", 5, "rank 1")])
def test_a_failing_rank_ends_the_job(mode, code, words):
    t0 = time.monotonic()
    p = mpirun(3, WORKER, mode, timeout=30)
    elapsed = time.monotonic() - t0
    # rank 1's status, or 9 where hydra collects first one of the ranks it killed (SIGKILL)
    assert p.returncode in (code, 9), (p.returncode, p.stderr)
    assert elapsed < 15  # never a hang (the limit includes interpreter start-up on a busy machine)
    assert "passed the allreduce" not in p.stdout
    if words:
        assert words in p.stdout + p.stderr


@needs_mpi
def test_mpiexec_timeout_ends_a_stuck_job():
    t0 = time.monotonic()
    p = mpirun(2, WORKER, "hang", timeout=3)
    assert p.returncode != 0 and time.monotonic() - t0 < 12
    assert "passed the allreduce" not in p.stdout


@needs_mpi
def test_cli_distributed_rank0_writes_and_matches_one_process(mnist_dir, tmp_path):
    common = ["-m", "fastconv", "train", "--data", mnist_dir, "--train-limit", "300", "--epochs", "2",
              "--batch-size", "30", "--quiet", "--threads", "1"]
    p = mpirun(3, *common, "--distributed", "--metrics", "m3.jsonl", "--save", "w3.npz", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert sorted(os.listdir(tmp_path)) == ["m3.jsonl", "w3.npz"]  # one writer
    assert p.stdout.count("epoch   1/2") == 1 and p.stdout.count("saved model") == 1  # rank 0 prints
    assert "3 ranks" in p.stdout
    one = subprocess.run([sys.executable, *map(str, common), "--metrics", "m1.jsonl", "--save", "w1.npz"],
                         capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=120)
    assert one.returncode == 0, one.stderr
    import json

    m1 = [json.loads(ln) for ln in open(tmp_path / "m1.jsonl")]
    m3 = [json.loads(ln) for ln in open(tmp_path / "m3.jsonl")]
    for a, b in zip(m1, m3):
        assert a["train_acc"] == b["train_acc"] and a["test_acc"] == b["test_acc"]
        np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-5)
    w1, w3 = np.load(tmp_path / "w1.npz"), np.load(tmp_path / "w3.npz")
    for k in w1.files:
        if w1[k].dtype.kind == "f":
            np.testing.assert_allclose(w3[k], w1[k], rtol=0, atol=1e-5, err_msg=k)  # float32 rounding


@needs_mpi
def test_cli_user_error_ends_every_rank(tmp_path):
    (tmp_path / "w.npz").write_bytes(b"x")
    t0 = time.monotonic()
    p = mpirun(2, "-m", "fastconv", "train", "--distributed", "--data", tmp_path / "nothing",
               "--save", "w.npz", cwd=tmp_path, timeout=30)
    assert p.returncode == 2 and time.monotonic() - t0 < 15
    assert "already exists" in p.stderr


def test_cli_distributed_without_mpi4py_is_a_user_error(monkeypatch, capsys, tmp_path):
    from fastconv.cli import main

    monkeypatch.setattr(dist, "_MPI", None)
    monkeypatch.setattr(dist, "_comm", None)
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    assert main(["train", "--distributed", "--data", str(tmp_path), "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and 'pip install "fastconv[mpi]"' in err and "--distributed" in err
