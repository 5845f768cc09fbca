"""Data-parallel scaling figures for fastconv.distributed (mpi4py + the MPICH wheel).

    python bench/distributed_scaling.py [--repeats 3] [--json out.json]

1. Training throughput at the same global batch: 1 rank x 2 threads against 2 ranks x 1
   thread (``mpiexec -n 2``, OMP_NUM_THREADS=1), for LeNet-5 (batch 64) and ResNet-8
   (batch 128), float32, random 28 x 28 images (the speed does not depend on the pixels).
   Rank 0 also times the gradient Allreduce inside ``DistributedOptimizer.step`` (packing
   included), so step = compute + allreduce.
2. Allreduce time per step of each model's gradient (one flat float32 buffer + the count)
   between 2 ranks: MPICH over shared memory (the default on one machine) and over TCP on
   loopback (``MPIR_CVAR_CH4_NETMOD=ofi FI_PROVIDER=tcp MPIR_CVAR_NOLOCAL=1``: libfabric's
   tcp provider; NOLOCAL makes MPICH treat the other rank as remote instead of using shm).
3. Compute time per step (1 process, forward + backward + SGD step) at 64 and 128 images,
   1 and 2 threads: the inputs of the step-time model printed at the end (ring allreduce on
   10 GbE, 2-16 nodes).

Medians of ``--repeats`` runs (configurations interleaved). On a shared 2-core machine the
figures are noisy: MPICH ranks busy-poll while they wait, so a rank stalled by another
process stalls the step of every rank.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MODELS = {"lenet5": 64, "resnet8": 128}  # global batch
TCP_ENV = {"MPIR_CVAR_CH4_NETMOD": "ofi", "FI_PROVIDER": "tcp", "MPIR_CVAR_NOLOCAL": "1"}


# ----------------------------------------------------------------------------- workers
def _model(name):
    from fastconv.models import lenet5, resnet8

    return lenet5(10, rng=np.random.default_rng(0)) if name == "lenet5" else resnet8(1, 10, rng=np.random.default_rng(0))


def worker_train(name, batch, steps, warmup):
    """Rank 0 prints one JSON line: seconds for ``steps`` steps, allreduce seconds."""
    from fastconv import distributed as dist
    from fastconv.datasets import BatchIterator
    from fastconv.nn import CrossEntropyLoss
    from fastconv.optim import SGD
    from fastconv.training import train_epoch

    dist.init()
    n = batch * (steps + warmup)
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (n, 28, 28)).astype(np.uint8)
    labels = rng.integers(0, 10, n)
    model = dist.DataParallel(_model(name))
    opt = dist.DistributedOptimizer(SGD(model.parameters(), lr=0.01, momentum=0.9), model)
    loss_fn = CrossEntropyLoss()
    sync_time = [0.0]
    inner = opt.synchronize

    def timed_sync():
        t0 = time.perf_counter()
        inner()
        sync_time[0] += time.perf_counter() - t0

    opt.synchronize = timed_sync
    warm = BatchIterator(images[: batch * warmup], labels[: batch * warmup], batch,
                         sampler=dist.DistributedSampler(batch * warmup, seed=0))
    run = BatchIterator(images[batch * warmup:], labels[batch * warmup:], batch,
                        sampler=dist.DistributedSampler(batch * steps, seed=0))
    train_epoch(model, loss_fn, opt, warm)
    dist.barrier()
    sync_time[0] = 0.0
    t0 = time.perf_counter()
    train_epoch(model, loss_fn, opt, run)
    dist.barrier()
    seconds = time.perf_counter() - t0
    if dist.is_main():
        n_params = sum(p.data.size for p in model.parameters())
        print(json.dumps({"seconds": seconds, "allreduce": sync_time[0], "steps": steps,
                          "images": batch * steps, "params": n_params}), flush=True)


def worker_allreduce(size, iters):
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    buf = np.ones(size, np.float32)
    for _ in range(20):
        comm.Allreduce(MPI.IN_PLACE, buf)
    times = []
    for _ in range(iters):
        comm.Barrier()
        t0 = time.perf_counter()
        comm.Allreduce(MPI.IN_PLACE, buf)
        times.append(time.perf_counter() - t0)
    if comm.rank == 0:
        print(json.dumps({"median": statistics.median(times), "bytes": buf.nbytes}), flush=True)


# ----------------------------------------------------------------------------- driver
def _run(cmd, env_extra, timeout=600):
    env = dict(os.environ, **env_extra)
    env.setdefault("PYTHONPATH", ROOT)
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-2000:]}")
    return json.loads([ln for ln in p.stdout.splitlines() if ln.startswith("{")][-1])


#: --bind: pin each rank to a core (MPICH hydra's -bind-to core) and, for the fair
#: comparison, each OpenMP thread of the 1-rank run (OMP_PROC_BIND/OMP_PLACES)
BIND = {"mpiexec": ["-bind-to", "core"], "env": {"OMP_PROC_BIND": "close", "OMP_PLACES": "cores"}}


def _train(name, batch, ranks, threads, steps, warmup, bind=False):
    cmd = [sys.executable, __file__, "--worker", "train", name, str(batch), str(steps), str(warmup)]
    env = {"OMP_NUM_THREADS": str(threads)}
    if ranks > 1:
        cmd = ["mpiexec", *(BIND["mpiexec"] if bind else []), "-n", str(ranks)] + cmd
    elif bind:
        env.update(BIND["env"])
    return _run(cmd, env)


def _cpu():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def ring_allreduce_seconds(nbytes, nodes, bandwidth=10e9 / 8 * 0.9, latency=25e-6):
    """Ring allreduce: 2 (W-1)/W x bytes / bandwidth + 2 (W-1) x latency."""
    if nodes == 1:
        return 0.0
    return 2 * (nodes - 1) / nodes * nbytes / bandwidth + 2 * (nodes - 1) * latency


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", help="write the raw figures here")
    ap.add_argument("--parts", default="1234", help="which of the numbered measurements to run (default 1234)")
    ap.add_argument("--omp-wait-policy", choices=["active", "passive"],
                    help="OMP_WAIT_POLICY for the runs (passive: idle OpenMP threads sleep instead of "
                         "spinning, which helps a 2-thread rank on a machine others load)")
    ap.add_argument("--bind", action="store_true",
                    help="pin ranks (mpiexec -bind-to core) and OpenMP threads (OMP_PROC_BIND=close, "
                         "OMP_PLACES=cores) to cores in the throughput comparison: a rank the OS "
                         "migrates or shares a core with its peer holds every rank's Allreduce up")
    ap.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        kind, *rest = args.worker
        if kind == "train":
            worker_train(rest[0], int(rest[1]), int(rest[2]), int(rest[3]))
        else:
            worker_allreduce(int(rest[0]), int(rest[1]))
        return

    if args.omp_wait_policy:
        os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy.upper()
    steps = {"lenet5": 200, "resnet8": 8}
    out = {"cpu": _cpu(), "cores": os.cpu_count(), "load_before": os.getloadavg()[0], "throughput": {},
           "allreduce": {}, "compute": {}}
    print(f"# {out['cpu']}, {out['cores']} CPUs, load average {out['load_before']:.2f}; "
          f"medians of {args.repeats}", flush=True)

    # 1. throughput, 1 x 2 against 2 x 1, interleaved
    for name, batch in MODELS.items() if "1" in args.parts else ():
        runs = {"1x2": [], "2x1": []}
        for _ in range(args.repeats):
            runs["1x2"].append(_train(name, batch, 1, 2, steps[name], 2, args.bind))
            runs["2x1"].append(_train(name, batch, 2, 1, steps[name], 2, args.bind))
        rec = {}
        for cfg, rs in runs.items():
            ips = statistics.median(r["images"] / r["seconds"] for r in rs)
            ar = statistics.median(r["allreduce"] / r["steps"] for r in rs)
            rec[cfg] = {"images_per_second": ips, "allreduce_ms_per_step": 1e3 * ar,
                        "all": [r["images"] / r["seconds"] for r in rs]}
        rec["ratio"] = rec["2x1"]["images_per_second"] / rec["1x2"]["images_per_second"]
        rec["params"] = runs["1x2"][0]["params"]
        out["throughput"][name] = rec
        print(f"{name:8s} batch {batch}: 1 rank x 2 threads {rec['1x2']['images_per_second']:7.0f} img/s, "
              f"2 ranks x 1 thread {rec['2x1']['images_per_second']:7.0f} img/s "
              f"(ratio {rec['ratio']:.2f}; allreduce in the step {rec['2x1']['allreduce_ms_per_step']:.2f} ms); "
              f"runs {[round(v) for v in rec['1x2']['all']]} / {[round(v) for v in rec['2x1']['all']]}",
              flush=True)

    # 2. allreduce of each model's gradient (+1 for the count), shm and TCP loopback
    n_params = {name: sum(p.data.size for p in _model(name).parameters()) for name in MODELS}
    for name in MODELS if "2" in args.parts else ():
        size = n_params[name] + 1
        rec = {}
        for transport, env in (("shm", {}), ("tcp", TCP_ENV)):
            vals = [_run(["mpiexec", "-n", "2", sys.executable, __file__, "--worker", "allreduce", str(size), "300"],
                         dict(env, OMP_NUM_THREADS="1"))["median"] for _ in range(args.repeats)]
            rec[transport] = 1e3 * statistics.median(vals)
        rec["bytes"] = 4 * size
        out["allreduce"][name] = rec
        print(f"{name:8s} allreduce {4 * size / 1e3:.0f} kB, 2 ranks: shared memory {rec['shm']:.3f} ms, "
              f"TCP loopback {rec['tcp']:.3f} ms", flush=True)

    # 3. compute per step, one process
    for name in MODELS if "3" in args.parts or "4" in args.parts else ():
        for per_rank in (64, 128):
            for threads in (1, 2):
                vals = [_train(name, per_rank, 1, threads, max(4, steps[name] * 64 // per_rank // 2), 2)
                        for _ in range(args.repeats)]
                out["compute"][f"{name}/{per_rank}/{threads}"] = 1e3 * statistics.median(
                    r["seconds"] / r["steps"] for r in vals)
        print(f"{name:8s} compute per step (ms), images x threads: " + ", ".join(
            f"{b}x{t}: {out['compute'][f'{name}/{b}/{t}']:.1f}" for b in (64, 128) for t in (1, 2)), flush=True)

    # 4. the step-time model: t(W) = t_compute(b) + t_allreduce(bytes, W), b images per rank
    if "4" in args.parts:
        print("\n# projected efficiency t_compute / (t_compute + t_ring(W)), 10 GbE (1.125 GB/s, 25 us), "
              "W nodes, t_compute of one rank on one thread (the 1-thread figures are the reliable ones on "
              "a shared machine; a faster rank only lowers the efficiency)")
    out["projection"] = {}
    for name in MODELS if "4" in args.parts else ():
        nbytes = 4 * (n_params[name] + 1)
        for per_rank in (64, 128):
            tc = out["compute"][f"{name}/{per_rank}/1"] / 1e3
            effs = {w: tc / (tc + ring_allreduce_seconds(nbytes, w)) for w in (2, 4, 8, 16)}
            out["projection"][f"{name}/{per_rank}"] = effs
            print(f"{name:8s} {per_rank:3d}/rank (t_compute {1e3 * tc:.1f} ms, {nbytes / 1e3:.0f} kB): " + ", ".join(
                f"W={w}: {100 * e:.1f}% (allreduce {1e3 * ring_allreduce_seconds(nbytes, w):.2f} ms)"
                for w, e in effs.items()))
    out["load_after"] = os.getloadavg()[0]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
