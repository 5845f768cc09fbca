"""Data-parallel training over MPI (mpi4py; ``pip install "fastconv[mpi]"`` brings the MPICH wheel).

The design is Horovod's: every rank holds a full copy of the model, takes its share of each
global batch, and before every optimizer step one fused in-place ``Allreduce`` of all the
gradients (a single flat buffer) makes every rank's gradient the global mean. Parameters and
buffers are broadcast from rank 0 when the model is wrapped, so the ranks start equal and
stay bit-identical (they apply the same update to the same parameters).

Usage (the training loop itself is unchanged)::

    from fastconv import distributed as dist
    dist.init()                                  # world size 1 without mpiexec
    model = dist.DataParallel(model)             # broadcast from rank 0
    optimizer = dist.DistributedOptimizer(SGD(model.parameters(), lr=0.1), model)
    sampler = dist.DistributedSampler(len(images), seed=1)
    batches = BatchIterator(images, labels, batch_size=128, sampler=sampler)  # 128 = global
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        train_epoch(model, loss_fn, optimizer, batches)
        model.sync_buffers()                     # BatchNorm running statistics: mean over ranks

Run it with ``mpiexec -n 4 python train.py`` (``-hosts a,b`` for several machines), or
``mpiexec -n 4 fastconv train --distributed ...``.

Equivalence with one process
----------------------------
:class:`DistributedSampler` draws the same per-epoch permutation as a single-process
``BatchIterator(shuffle=True, rng=seed)`` (epoch ``e``'s order is the ``e + 1``-th
``permutation(n)`` of ``numpy.random.default_rng(seed)``), and global batch ``s`` is exactly the
images of the single-process batch ``s``, split strided over the ranks (rank ``r`` takes the
batch's images ``r, r + W, r + 2W, ...``: ``ceil(B/W)`` or ``floor(B/W)`` of them when W does not
divide B). Gradients are weighted by the ranks' image counts, so the step is the global mean.
Augmentation (``BatchIterator(transform=...)``) is applied to the whole global batch on every
rank with the same generator before the split, so it is the same as in one process too. With
global batch B, any number of ranks therefore gives the parameters one process gets with batch
B, up to floating-point summation order (float64: ~1e-15 relative per step; float32:
rounding, ~1e-6 relative per step, which training may amplify over many steps).

Not equivalent: BatchNorm in training mode normalises over each rank's share (as PyTorch's
DistributedDataParallel without SyncBatchNorm); its running statistics are averaged over the
ranks by :meth:`DataParallel.sync_buffers` (the CLI calls it at the end of every epoch).
Dropout masks are drawn per rank.

Failures
--------
MPI does not survive a dead rank. :func:`init` installs a ``sys.excepthook`` that prints the
traceback and one line naming the rank, then calls ``MPI.COMM_WORLD.Abort(1)``: an uncaught
exception on any rank ends the whole job (non-zero exit) instead of leaving the others waiting
in a collective. A rank killed by a signal or ending with ``os._exit(code)`` is noticed by
MPICH's ``mpiexec`` (hydra), which kills the others and exits non-zero. A rank that calls
``sys.exit(code)`` while the others wait is not covered by the hook: call :func:`abort` instead.
As a last guard, ``MPIEXEC_TIMEOUT=seconds mpiexec ...`` makes hydra kill a job that runs
longer than that (a deadlock, a stuck rank, a hung node; exit status 255). On a rank killed by
a signal hydra names the PID: ``fastconv train --distributed`` prints every rank's PID first.
"""
from __future__ import annotations

import os
import sys
from typing import Any, Iterator

import numpy as np

from ._validation import check_bool, check_choice

__all__ = ["init", "is_initialized", "rank", "world_size", "is_main", "barrier", "abort", "abort_job",
           "local_size", "default_threads", "all_reduce_", "broadcast_", "reduce_metrics",
           "DistributedSampler", "DataParallel", "DistributedOptimizer", "wrap"]

_INSTALL_HINT = 'fastconv.distributed needs mpi4py and an MPI library: pip install "fastconv[mpi]"'

_comm: Any = None
_MPI: Any = None
# Set by the batch iteration when a rank's share of a global batch is empty and it was
# padded with one image of weight 0 (consumed by DataParallel.forward).
_next_count: int | None = None


def _mpi():
    global _MPI
    if _MPI is None:
        try:
            from mpi4py import MPI  # type: ignore[import-not-found,unused-ignore]
        except ImportError as e:
            raise ImportError(f"{_INSTALL_HINT} ({e})") from e
        _MPI = MPI
    return _MPI


def _world():
    if _comm is None:
        raise RuntimeError("fastconv.distributed.init() has not been called")
    return _comm


def _abort_on_exception(exc_type, exc, tb):
    """sys.excepthook under MPI: the traceback, one line naming the rank, then Abort(1)."""
    try:
        sys.__excepthook__(exc_type, exc, tb)
        print(f"fastconv.distributed: rank {_comm.Get_rank()} of {_comm.Get_size()} failed with "
              f"{exc_type.__name__}: {exc}; aborting all ranks", file=sys.stderr, flush=True)
    finally:
        _comm.Abort(1)


def init() -> int:
    """Join the MPI job (``mpi4py.MPI.COMM_WORLD``); returns this process's rank.

    Without ``mpiexec`` the world has size 1, so the same script runs alone. Under several
    ranks, installs the abort-on-uncaught-exception hook (see the module docstring). Calling
    it again is a no-op.

    Raises
    ------
    ImportError
        mpi4py is not installed (the message says ``pip install "fastconv[mpi]"``).
    """
    global _comm
    if _comm is None:
        MPI = _mpi()
        _comm = MPI.COMM_WORLD
        if _comm.Get_size() > 1:
            sys.excepthook = _abort_on_exception
    return int(_comm.Get_rank())


def is_initialized() -> bool:
    """Whether :func:`init` has been called."""
    return _comm is not None


def rank() -> int:
    """This process's rank in the world (0 before :func:`init`)."""
    return 0 if _comm is None else int(_comm.Get_rank())


def world_size() -> int:
    """Number of ranks (1 before :func:`init`)."""
    return 1 if _comm is None else int(_comm.Get_size())


def is_main() -> bool:
    """True on rank 0 (the one that prints and writes files)."""
    return rank() == 0


def barrier() -> None:
    """Wait until every rank gets here."""
    if _comm is not None:
        _comm.Barrier()


def abort(code: int = 1) -> None:
    """End the whole job now with exit status ``code`` (every rank); never returns."""
    if _comm is not None and _comm.Get_size() > 1:
        _comm.Abort(int(code))
    sys.exit(code)


def local_size() -> int:
    """Number of ranks on this machine (``MPI_COMM_TYPE_SHARED`` split; 1 before :func:`init`)."""
    if _comm is None or _comm.Get_size() == 1:
        return 1
    MPI = _mpi()
    node = _comm.Split_type(MPI.COMM_TYPE_SHARED, _comm.Get_rank())
    try:
        return int(node.Get_size())
    finally:
        node.Free()


def default_threads() -> int:
    """Kernel threads per rank when neither ``--threads`` nor ``OMP_NUM_THREADS`` is given:
    this machine's CPUs divided among its ranks (at least 1), so ranks do not oversubscribe."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, cpus // local_size())


#: ``all_reduce_`` ops -> the MPI reduction ("mean" divides the sum by the world size)
_OPS = {"sum": "SUM", "mean": "SUM"}


def _op(op):
    return check_choice(op, "op", _OPS)


def _check_buffer(array, name="array"):
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(array).__name__}")
    if not array.flags.c_contiguous or not array.flags.writeable:
        raise ValueError(f"{name} must be C-contiguous and writeable (it is reduced in place)")
    if array.dtype.byteorder not in "=|":
        raise ValueError(f"{name} must be in native byte order, got dtype {array.dtype.str}")


def all_reduce_(array: np.ndarray, op: str = "mean") -> np.ndarray:
    """Reduce ``array`` over all ranks in place (``"sum"`` or ``"mean"``); returns it.

    Parameters
    ----------
    array : ndarray, C-contiguous, writeable, the same shape and dtype on every rank
    op : {"mean", "sum"}
    """
    mpi_op = _op(op)
    _check_buffer(array)
    comm = _world()
    if comm.Get_size() > 1:
        MPI = _mpi()
        comm.Allreduce(MPI.IN_PLACE, array, op=getattr(MPI, mpi_op))
        if op == "mean":
            if array.dtype.kind in "fc":
                array /= comm.Get_size()
            else:
                array //= comm.Get_size()
    return array


def broadcast_(array: np.ndarray, root: int = 0) -> np.ndarray:
    """Overwrite ``array`` on every rank with rank ``root``'s (in place); returns it."""
    _check_buffer(array)
    comm = _world()
    if isinstance(root, bool) or not isinstance(root, (int, np.integer)) or not 0 <= root < comm.Get_size():
        raise ValueError(f"root must be a rank in [0, {comm.Get_size()}), got {root!r}")
    if comm.Get_size() > 1:
        comm.Bcast(array, root=int(root))
    return array


def reduce_metrics(**sums: float) -> dict[str, float]:
    """Sum each named float over all ranks (one Allreduce): reduce metrics as (sum, count),
    e.g. ``reduce_metrics(loss_sum=..., correct=..., samples=...)``."""
    names = list(sums)
    buf = np.array([float(sums[k]) for k in names], np.float64)
    all_reduce_(buf, "sum")
    return dict(zip(names, buf.tolist()))


# ----------------------------------------------------------------------------- sampling
def _check_count(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


class DistributedSampler:
    """Each rank's share of a per-epoch permutation (PyTorch's ``DistributedSampler`` semantics).

    Parameters
    ----------
    num_samples : int
        Size of the dataset.
    num_replicas : int, optional
        Number of ranks (default :func:`world_size`).
    rank : int, optional
        This rank (default :func:`rank`).
    shuffle : bool
        A new permutation every epoch (else the dataset order).
    seed : int
        Epoch ``e``'s permutation is the ``e + 1``-th ``permutation(num_samples)`` drawn from
        ``numpy.random.default_rng(seed)``: the order ``BatchIterator(shuffle=True, rng=seed)``
        uses in its ``e + 1``-th pass, so distributed and single-process runs see the same order.
    drop_last : bool
        Plain iteration (``iter(sampler)``): drop the tail instead of padding it to a
        multiple of ``num_replicas``.

    Iterating yields this rank's indices, PyTorch-style: the permutation padded (by repeating
    its start) to a multiple of ``num_replicas``, then every ``num_replicas``-th index from
    ``rank``. :class:`fastconv.datasets.BatchIterator` (``sampler=``) instead splits every
    global batch strided (see :meth:`batch_shares`). Call :meth:`set_epoch` before each epoch;
    without it, every pass through a ``BatchIterator`` moves to the next epoch by itself.
    """

    def __init__(self, num_samples: int, num_replicas: int | None = None, rank: int | None = None,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False) -> None:
        self.num_samples = _check_count(num_samples, "num_samples", 1)
        self.num_replicas = _check_count(world_size() if num_replicas is None else num_replicas,
                                         "num_replicas", 1)
        r = globals()["rank"]() if rank is None else rank
        if isinstance(r, bool) or not isinstance(r, (int, np.integer)) or not 0 <= r < self.num_replicas:
            raise ValueError(f"rank must be an int in [0, {self.num_replicas}), got {r!r}")
        self.rank = int(r)
        if not isinstance(shuffle, (bool, np.bool_)):
            raise TypeError(f"shuffle must be a bool, got {type(shuffle).__name__}")
        if not isinstance(drop_last, (bool, np.bool_)):
            raise TypeError(f"drop_last must be a bool, got {type(drop_last).__name__}")
        self.shuffle, self.drop_last = bool(shuffle), bool(drop_last)
        self.seed = _check_count(seed, "seed", 0)
        self.epoch = 0
        self._cache: tuple[int, Any] | None = None  # (epochs drawn, generator after them)

    def set_epoch(self, epoch: int) -> None:
        """Use epoch ``epoch``'s permutation from now on (0 = the first epoch)."""
        self.epoch = _check_count(epoch, "epoch", 0)

    def permutation(self, epoch: int | None = None) -> np.ndarray:
        """The global order of epoch ``epoch`` (default: the current one), the same on every rank."""
        e = self.epoch if epoch is None else _check_count(epoch, "epoch", 0)
        if not self.shuffle:
            return np.arange(self.num_samples)
        if self._cache is None or self._cache[0] > e:
            self._cache = (0, np.random.default_rng(self.seed))
        drawn, gen = self._cache
        while drawn < e:  # earlier epochs' draws (cached: the usual epoch e+1 costs one draw)
            gen.permutation(self.num_samples)
            drawn += 1
        state = gen.bit_generator.state
        perm = gen.permutation(self.num_samples)
        gen.bit_generator.state = state
        self._cache = (drawn, gen)
        return perm

    def _padded(self):
        perm = self.permutation()
        W = self.num_replicas
        if self.drop_last:
            return perm[: len(perm) // W * W]
        total = -(-len(perm) // W) * W
        reps = -(-total // len(perm))
        return np.tile(perm, reps)[:total] if total > len(perm) else perm

    def __iter__(self) -> Iterator[int]:
        return iter(self._padded()[self.rank:: self.num_replicas].tolist())

    def __len__(self) -> int:
        W = self.num_replicas
        return self.num_samples // W if self.drop_last else -(-self.num_samples // W)

    def batch_shares(self, batch_size: int, drop_last: bool = False) -> Iterator[tuple[np.ndarray, int, np.ndarray]]:
        """This epoch's global batches and this rank's share of each.

        Yields ``(global_indices, count, positions)``: the global batch ``s`` (the images
        ``s * batch_size`` to ``(s + 1) * batch_size`` of the permutation), this rank's
        number of images in it (``ceil`` or ``floor`` of ``len / num_replicas``; 0 when the
        batch has fewer images than ranks), and their positions in the global batch
        (``rank, rank + W, ...``; ``[0]`` — one padding image, weight 0 — when ``count`` is 0,
        so every rank takes the same number of steps).
        """
        batch_size = _check_count(batch_size, "batch_size", 1)
        perm = self.permutation()
        n = len(perm)
        steps = n // batch_size if drop_last else -(-n // batch_size)
        for s in range(steps):
            idx = perm[s * batch_size: (s + 1) * batch_size]
            pos = np.arange(self.rank, len(idx), self.num_replicas)
            count = len(pos)
            yield idx, count, (pos if count else np.zeros(1, np.intp))

    def _iterate(self, batches):
        """The batches of a ``BatchIterator`` built with ``sampler=self``: each global batch is
        converted (and transformed) whole, then this rank's strided share is yielded. Moves to
        the next epoch at the end of a complete pass."""
        global _next_count
        epoch = self.epoch
        for idx, count, pos in self.batch_shares(batches.batch_size, batches.drop_last):
            x = batches.to_float(batches.images[idx])
            if batches.transform is not None:
                x = batches.transform(x, batches._transform_rng)
            _next_count = count
            yield np.ascontiguousarray(x[pos]), batches.labels[idx][pos]
        _next_count = None
        if self.epoch == epoch:
            self.epoch = epoch + 1


# ----------------------------------------------------------------------------- the model
from .nn.module import Module  # noqa: E402  (after the helpers: nn imports nothing from here)


class DataParallel(Module):
    """Wrap ``model`` for data-parallel training (``module`` is the wrapped model).

    At construction, every parameter and buffer is overwritten with rank 0's (one
    ``Bcast`` each), so all ranks start from the same weights. ``forward`` / ``backward``
    are the model's; ``forward`` in training mode also records this rank's image count,
    which :class:`DistributedOptimizer` uses to weight the gradients.
    :meth:`sync_buffers` averages float buffers (BatchNorm's running mean and variance)
    over the ranks: call it at the end of every epoch (the CLI does).

    ``state_dict()`` keys are the wrapped model's (no ``module.`` prefix); save
    ``dp.module`` or ``dp`` alike.
    """

    def __init__(self, model: Module) -> None:
        if not isinstance(model, Module):
            raise TypeError(f"model must be a fastconv.nn.Module, got {type(model).__name__}")
        super().__init__()
        init()
        self.module = model
        self.local_count = 0
        self.backward_count = 0  # lets DistributedOptimizer.step() skip a done synchronize()
        self.needs_input_grad = model.needs_input_grad
        if hasattr(model, "config"):
            object.__setattr__(self, "config", model.config)
        for _, p in model.named_parameters():
            broadcast_(p.data)
        for _, b in model.named_buffers():
            if b is not None:
                broadcast_(b)

    def forward(self, x: Any) -> Any:
        global _next_count
        if self.training:
            self.local_count = len(x) if _next_count is None else _next_count
            _next_count = None
        return self.module.forward(x)

    def backward(self, grad_output: Any) -> Any:
        self.backward_count += 1
        return self.module.backward(grad_output)

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Any]]:
        return self.module.named_parameters(prefix)

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, Any]]:
        return self.module.named_buffers(prefix)

    def state_dict(self) -> Any:
        return self.module.state_dict()

    def load_state_dict(self, state_dict: Any, strict: bool = True) -> None:
        self.module.load_state_dict(state_dict, strict)

    def sync_buffers(self) -> None:
        """Average every float buffer over the ranks (one fused Allreduce per dtype)."""
        bufs = [b for _, b in self.module.named_buffers() if b is not None and b.dtype.kind == "f"]
        for dtype in sorted({b.dtype.str for b in bufs}):
            group = [b for b in bufs if b.dtype.str == dtype]
            flat = np.concatenate([b.ravel() for b in group])
            all_reduce_(flat, "mean")
            o = 0
            for b in group:
                b[...] = flat[o: o + b.size].reshape(b.shape)
                o += b.size

    def extra_repr(self) -> str:
        return f"world_size={world_size()}"


def _mean_over_ranks(flat: np.ndarray, count: int) -> None:
    """``flat[:-1]`` holds this rank's gradients times its image ``count``: make it the
    mean over every rank's images, in place (one Allreduce of the gradients and the count)."""
    flat[-1] = count
    all_reduce_(flat, "sum")
    total = flat[-1]
    if total <= 0:
        raise RuntimeError("no rank had images in this batch")
    flat[:-1] /= total


class DistributedOptimizer:
    """``optimizer`` whose ``step()`` first makes every gradient the global mean.

    One fused in-place ``Allreduce`` (sum) of a flat buffer holding every trainable
    parameter's gradient times this rank's image count, plus the count itself; dividing by
    the summed count gives the mean over all the global batch's images (exact for unequal
    shares).

    Gradient clipping (or anything else that must see the global gradient) goes between
    :meth:`synchronize` and :meth:`step`, as with Horovod: ``step()`` then skips the
    Allreduce, unless another ``backward`` ran since.

    Parameters
    ----------
    optimizer : fastconv.optim optimizer
    model : DataParallel
    gradient_as_bucket_view : bool, default True
        Make every trainable ``p.grad`` a view of the Allreduce buffer (PyTorch DDP's
        option of that name, which defaults to False there), so a step packs and unpacks
        nothing (measured: 0.14-0.17 -> 0.05-0.09 ms a LeNet-5 step). The bucket is built at
        the first step and rebuilt whenever the trainable set or a ``p.grad`` object changed
        (``requires_grad`` toggled, ``Module.astype``); a reference to a ``p.grad`` array
        taken before a (re)build no longer follows the parameter's gradient. False: the
        gradients stay the layers' own arrays and each step copies them in and out.

    Everything else (``zero_grad``, ``param_groups``, ``lr``, ``state_dict``) is the wrapped
    optimizer's; build schedulers on the wrapped one or on this, alike.
    """

    def __init__(self, optimizer: Any, model: DataParallel, *, gradient_as_bucket_view: bool = True) -> None:
        if not isinstance(model, DataParallel):
            raise TypeError(f"model must be a fastconv.distributed.DataParallel, got {type(model).__name__}")
        if not hasattr(optimizer, "step") or not hasattr(optimizer, "param_groups"):
            raise TypeError(f"optimizer must be a fastconv.optim optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.model = model
        self.gradient_as_bucket_view = check_bool(gradient_as_bucket_view, "gradient_as_bucket_view")
        self._synced_at: int | None = None  # model.backward_count at the last synchronize()
        self._flat: np.ndarray | None = None  # the gradient bucket (p.grad are its views)
        self._views: list | None = None
        self._packed: np.ndarray | None = None  # mixed gradient dtypes: packed each step

    def __getattr__(self, name):
        return getattr(self.__dict__["optimizer"], name)

    def _params(self):
        return [p for g in self.optimizer.param_groups for p in g["params"] if p.requires_grad]

    def _bucket(self, params: list) -> np.ndarray | None:
        """The flat gradient buffer (every trainable gradient, then the image count) with each
        ``p.grad`` rebound to its view, as PyTorch DDP's ``gradient_as_bucket_view``: layers
        accumulate into the views in place, so the Allreduce needs no packing or unpacking
        copies. Built on the first step and again whenever the trainable set changed or a
        gradient array was replaced (``Module.astype``); None when the gradients' dtypes
        differ (then each step packs into a buffer of their common type)."""
        if not self.gradient_as_bucket_view:
            return None
        views = self._views
        if (views is not None and len(views) == len(params)
                and all(p.grad is v for p, v in zip(params, views))):
            return self._flat
        dtypes = {p.grad.dtype for p in params}
        if len(dtypes) != 1:
            self._views = None
            return None
        flat = np.empty(sum(p.grad.size for p in params) + 1, dtypes.pop())
        views, o = [], 0
        for p in params:
            v = flat[o: o + p.grad.size].reshape(p.grad.shape)
            v[...] = p.grad  # this step's gradient, already accumulated
            p.grad = v
            views.append(v)
            o += v.size
        self._flat, self._views = flat, views
        return flat

    def synchronize(self) -> None:
        """The fused gradient Allreduce (what ``step()`` does first, unless this ran since
        the last ``backward``): every gradient becomes the global batch's mean."""
        params = self._params()
        if world_size() > 1 and params:
            count = self.model.local_count
            flat = self._bucket(params)
            if flat is not None:  # the gradients are views of flat: scale, reduce, scale in place
                flat[:-1] *= count
                _mean_over_ranks(flat, count)
            else:
                dtype = np.result_type(*[p.grad.dtype for p in params])
                size = sum(p.grad.size for p in params) + 1
                if self._packed is None or self._packed.size != size or self._packed.dtype != dtype:
                    self._packed = np.empty(size, dtype)
                flat = self._packed
                o = 0
                for p in params:
                    np.multiply(p.grad.ravel(), count, out=flat[o: o + p.grad.size])
                    o += p.grad.size
                _mean_over_ranks(flat, count)
                o = 0
                for p in params:
                    p.grad[...] = flat[o: o + p.grad.size].reshape(p.grad.shape)
                    o += p.grad.size
        self._synced_at = self.model.backward_count

    def step(self) -> None:
        """:meth:`synchronize` (skipped when it already ran since the last ``backward``), then
        the wrapped optimizer's ``step()``."""
        if self._synced_at != self.model.backward_count:
            self.synchronize()
        self._synced_at = None
        self.optimizer.step()

    def zero_grad(self) -> None:
        """The wrapped optimizer's ``zero_grad()``."""
        self.optimizer.zero_grad()


def wrap(model: Module, optimizer: Any) -> tuple[DataParallel, DistributedOptimizer]:
    """``DataParallel(model)`` and its ``DistributedOptimizer(optimizer, ...)`` in one call."""
    dp = DataParallel(model)
    return dp, DistributedOptimizer(optimizer, dp)


# ----------------------------------------------------------------------------- CLI helpers
# (``fastconv train --distributed``; cmd_train calls these three at fixed points)
def setup_cli(args: Any) -> None:
    """Join the job, pick the threads per rank, and leave printing and files to rank 0.

    Threads: ``--threads``, else ``OMP_NUM_THREADS``, else :func:`default_threads`. On the
    other ranks stdout goes to /dev/null, the progress bar is off and ``--metrics`` /
    ``--save`` are dropped (stderr stays: errors name their rank)."""
    try:
        init()
    except ImportError as e:
        from .cli import UserError

        raise UserError(f"--distributed: {e}") from e
    if args.threads is None and not os.environ.get("OMP_NUM_THREADS"):
        args.threads = default_threads()
    if not is_main():
        args.quiet = True
        args.metrics = None
        args.save = None
        sys.stdout = open(os.devnull, "w")
    if world_size() > 1:  # the PIDs, so that mpiexec's report of a killed PID names its rank
        pids = _gather_pids()
        print(f"fastconv.distributed: {world_size()} ranks ({local_size()} on this machine), "
              f"{args.threads or os.environ.get('OMP_NUM_THREADS')} threads each; PIDs {pids}", flush=True)


def _gather_pids():
    pids = _world().gather(os.getpid(), root=0)
    return None if pids is None else ", ".join(f"rank {r}: {p}" for r, p in enumerate(pids))


def prepare_cli(model: Module, optimizer: Any, batches: Any, seed: int) -> tuple[Any, Any, Any]:
    """Wrap the model and the optimizer, and give the training batches a
    :class:`DistributedSampler` with the single-process order (``seed`` = the seed of the
    iterator's generator); ``batches.batch_size`` stays the global batch."""
    dp, opt = wrap(model, optimizer)
    batches.sampler = DistributedSampler(len(batches.images), seed=seed)
    return dp, opt, batches


def end_epoch_cli(model: Any, stats: dict[str, Any]) -> dict[str, Any]:
    """BatchNorm running statistics averaged over the ranks; the epoch's metrics summed as
    (sum, count) over the ranks (``seconds``: the slowest rank's)."""
    model.sync_buffers()
    n = stats["samples"]
    total = reduce_metrics(loss=stats["loss"] * n, correct=stats["train_acc"] * n, samples=n)
    seconds = np.array([stats["seconds"]], np.float64)
    if world_size() > 1:
        _world().Allreduce(_mpi().IN_PLACE, seconds, op=_mpi().MAX)
    samples = max(total["samples"], 1.0)
    return dict(stats, loss=total["loss"] / samples, train_acc=round(total["correct"]) / samples,
                samples=int(round(total["samples"])), seconds=float(seconds[0]))


def abort_job(code: int = 1) -> None:
    """Under several ranks, end the whole job with exit status ``code``; otherwise return."""
    if _comm is not None and _comm.Get_size() > 1:
        _comm.Abort(int(code))
