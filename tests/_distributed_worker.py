"""Run under ``mpiexec -n W`` by tests/test_distributed.py (also alone: world size 1).

    python _distributed_worker.py train OUT_DIR MNIST_DIR DTYPE BATCH N_IMAGES
        one epoch of LeNet-5 (SGD, momentum) on the first N_IMAGES MNIST images with global
        batch BATCH; every rank writes its parameters to OUT_DIR/rank<r>.npz
    python _distributed_worker.py resnet OUT_DIR MNIST_DIR
        three steps of ResNet-8 (BatchNorm) + sync_buffers; every rank writes its state dict
    python _distributed_worker.py bucket OUT_DIR
        synchronised steps of a small conv net with uneven shares (float32 twice, after
        astype(float64), one float32 gradient among float64 ones, synchronize() before
        step(), gradient_as_bucket_view=False); every rank writes its gradients before and
        after each step, the step's Allreduce count and whether the gradients share a buffer
    python _distributed_worker.py raise | exit | kill | sysabort | hang
        rank 1 fails that way while the others wait in an Allreduce
"""
import os
import signal
import sys
import time

import numpy as np

from fastconv import distributed as dist


def train(out, mnist, dtype, batch, n_images):
    from fastconv.datasets import BatchIterator, load_mnist
    from fastconv.models import lenet5
    from fastconv.nn import CrossEntropyLoss
    from fastconv.optim import SGD
    from fastconv.training import train_epoch

    r = dist.init()
    x, y = load_mnist(mnist, "train")
    x, y = x[:n_images], y[:n_images]
    # rank-dependent init: DataParallel must broadcast rank 0's weights
    model = lenet5(10, rng=np.random.default_rng(0 if r == 0 else 100 + r), dtype=dtype)
    model = dist.DataParallel(model)
    opt = dist.DistributedOptimizer(SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True), model)
    sampler = dist.DistributedSampler(len(x), seed=7)
    batches = BatchIterator(x, y, batch, normalize=(0.1307, 0.3081), dtype=dtype, sampler=sampler)
    stats = train_epoch(model, CrossEntropyLoss(), opt, batches)
    total = dist.reduce_metrics(loss=stats["loss"] * stats["samples"], samples=stats["samples"])
    np.savez(os.path.join(out, f"rank{r}.npz"), samples=total["samples"], loss=total["loss"],
             **model.state_dict())


def resnet(out, mnist):
    from fastconv.datasets import BatchIterator, load_mnist
    from fastconv.models import resnet8
    from fastconv.nn import CrossEntropyLoss
    from fastconv.optim import SGD
    from fastconv.training import train_epoch

    r = dist.init()
    x, y = load_mnist(mnist, "train")
    model = resnet8(1, 10, rng=np.random.default_rng(r))
    model, opt = dist.wrap(model, SGD(model.parameters(), lr=0.05, momentum=0.9))
    batches = BatchIterator(x[:48], y[:48], 16, sampler=dist.DistributedSampler(48, seed=3))
    train_epoch(model, CrossEntropyLoss(), opt, batches)
    pre = {f"pre/{k}": v.copy() for k, v in model.state_dict().items()}
    model.sync_buffers()
    np.savez(os.path.join(out, f"rank{r}.npz"), **model.state_dict(), **pre)


def bucket(out):
    from fastconv import nn
    from fastconv.optim import SGD

    r = dist.init()
    reductions = [0]
    all_reduce = dist.all_reduce_

    def counting(a, op="mean"):  # how many Allreduces each step makes
        reductions[0] += 1
        return all_reduce(a, op)

    dist.all_reduce_ = counting

    def net(views):
        rng = np.random.default_rng(5)
        model = dist.DataParallel(nn.Sequential(nn.Conv2d(1, 3, 3, rng=rng), nn.ReLU(), nn.Flatten(),
                                                nn.Linear(3 * 4 * 4, 4, rng=rng)))
        return model, dist.DistributedOptimizer(SGD(model.parameters(), lr=0.1), model,
                                                gradient_as_bucket_view=views)

    model, opt = net(True)
    loss = nn.CrossEntropyLoss()
    data = np.random.default_rng(9)
    saved = {}
    before = None
    # float32 twice (the bucket must survive the second step), after astype(float64) (rebuilt),
    # one float32 gradient among float64 ones (the packing path), synchronize() before step()
    # (clipping's place: step() must not reduce again), and gradient_as_bucket_view=False
    for step, change in enumerate(["float32", "float32", "float64", "mixed", "presync", "noview"]):
        if change == "float64":
            model.astype(np.float64)
        if change == "noview":
            model, opt = net(False)
        if change == "presync":  # fresh float64 gradient arrays again: the bucket is rebuilt
            for p in model.parameters():
                p.grad = np.zeros_like(p.data)
        n = 3 if r == 0 else 2  # uneven shares: the mean must weight by the counts
        x = data.standard_normal((5, 1, 6, 6))[:3] if r == 0 else data.standard_normal((5, 1, 6, 6))[3:]
        y = np.arange(n) % 4
        dtype = model.module[0].weight.data.dtype
        loss(model(x.astype(dtype)), y)
        opt.zero_grad()
        model.backward(loss.backward())
        params = [p for p in model.parameters()]
        if change == "mixed":  # one gradient array replaced by a float32 one: a mixed set
            params[1].grad = params[1].grad.astype(np.float32)
        for i, p in enumerate(params):
            saved[f"{step}/pre/{i}"] = p.grad.copy()
        grads = [p.grad for p in params]
        reductions[0] = 0
        if change == "presync":
            opt.synchronize()
        opt.step()
        saved[f"{step}/reductions"] = np.array(reductions[0])
        for i, p in enumerate(params):
            saved[f"{step}/post/{i}"] = p.grad.copy()
        bases = {id(p.grad.base) if p.grad.base is not None else id(p.grad) for p in params}
        saved[f"{step}/shared"] = np.array(len(bases) == 1 and params[0].grad.base is not None)
        # the same gradient objects as the layers accumulated into before this step
        saved[f"{step}/kept"] = np.array(all(p.grad is g for p, g in zip(params, grads)))
        saved[f"{step}/kept_bucket"] = np.array(before is not None and params[0].grad.base is before)
        before = params[0].grad.base
        saved[f"{step}/count"] = np.array(n)
    np.savez(os.path.join(out, f"rank{r}.npz"), **saved)


def fail(mode):
    r = dist.init()
    if r == 1:
        time.sleep(0.3)
        if mode == "raise":
            raise RuntimeError("rank 1 fails on purpose")
        if mode == "exit":
            os._exit(3)
        if mode == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if mode == "sysabort":
            dist.abort(5)
        if mode == "hang":  # a stuck rank: only MPIEXEC_TIMEOUT ends the job
            time.sleep(120)
    a = np.ones(4)
    dist.all_reduce_(a)  # the others wait here for rank 1 forever unless the job is ended
    print(f"rank {r} passed the allreduce", flush=True)


if __name__ == "__main__":
    what = sys.argv[1]
    if what == "train":
        train(sys.argv[2], sys.argv[3], np.dtype(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]))
    elif what == "resnet":
        resnet(sys.argv[2], sys.argv[3])
    elif what == "bucket":
        bucket(sys.argv[2])
    else:
        fail(what)
