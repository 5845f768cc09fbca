"""The ``fastconv`` command line: ``train``, ``evaluate`` and ``info``.

Each command is a thin layer over importable functions (:mod:`fastconv.training`,
:mod:`fastconv.datasets`, :mod:`fastconv.serialization`). User errors (bad flag values,
missing data, an existing ``--save`` target) exit with status 2 and a one-line message;
anything else is a bug and keeps its traceback.
"""
import argparse
import json
import sys
from typing import Any

from ._version import __version__


class UserError(Exception):
    """An error in what the user asked for: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _number(kind, minimum, strict, what):
    """An argparse type: ``kind(text)`` that must be > minimum (strict) or >= minimum."""

    def parse(text):
        try:
            v = kind(text)
        except ValueError:
            v = None
        if v is None or v != v or v == float("inf") or (v <= minimum if strict else v < minimum):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return v

    return parse


_positive_int = _number(int, 0, True, "a positive integer")
_nonneg_int = _number(int, 0, False, "a non-negative integer")
_nonneg_float = _number(float, 0.0, False, "a non-negative number")


def _threads(text):
    """``--threads``: a positive integer or ``auto``."""
    if text == "auto":
        return text
    try:
        return _positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'auto', got {text!r}") from None


def _adaptive_threads(args):
    """``--threads``: the AdaptiveThreads of an ``auto`` run (the default unless
    ``OMP_NUM_THREADS`` is set or the run is ``--distributed``), else None; a fixed count
    is set here."""
    import os

    from . import set_num_threads

    auto = args.threads == "auto" or (args.threads is None and not args.distributed
                                      and not os.environ.get("OMP_NUM_THREADS"))
    if not auto:
        if args.threads is not None:
            set_num_threads(args.threads)
        return None
    if args.distributed:
        raise UserError("--threads auto does not apply to --distributed runs (the ranks step "
                        "together): pass --threads N, or leave it unset for CPUs / ranks")
    args.threads = None
    from .adaptive import AdaptiveThreads

    return AdaptiveThreads()


def _unit_float(text):
    v = _nonneg_float(text)
    if v > 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}")
    return v


def _load_split(dataset, data, split, download):
    from .datasets import DatasetError, load_dataset

    try:
        return load_dataset(dataset, data, split, download)
    except DatasetError as e:
        raise UserError(str(e)) from e


def _progress_bar(total, desc, disable):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img", leave=False, disable=disable, dynamic_ncols=True)


#: Per-model training defaults (what ``fastconv train --model M`` uses for flags left
#: unset): the recipes behind the README's accuracy table.
TRAIN_DEFAULTS: dict[str, dict[str, Any]] = {
    "lenet5": dict(epochs=10, batch_size=64, lr_schedule="cosine", weight_decay=0.0,
                   decay_norm_and_bias=True, augment=False, crop_padding=2, label_smoothing=0.0,
                   lr={"sgd": 0.03, "adam": 1e-3, "adamw": 1e-3}),
    # ResNet-8 on Fashion-MNIST, 15 epochs, seed 0 (1 thread): 93.02 % with weight decay 5e-4
    # on the weights only and crops padded by 1; 92.52 % with 1e-4 on every parameter and
    # padding 2; 92.77 % with flips only (train accuracy 95.6 %: it overfits).
    "resnet8": dict(epochs=15, batch_size=128, lr_schedule="onecycle", weight_decay=5e-4,
                    decay_norm_and_bias=False, augment=True, crop_padding=1, label_smoothing=0.0,
                    lr={"sgd": 0.1, "adam": 2e-3, "adamw": 2e-3}),
    "resnet20": dict(epochs=15, batch_size=128, lr_schedule="onecycle", weight_decay=5e-4,
                     decay_norm_and_bias=False, augment=True, crop_padding=1, label_smoothing=0.0,
                     lr={"sgd": 0.1, "adam": 2e-3, "adamw": 2e-3}),
    "vgg_small": dict(epochs=15, batch_size=128, lr_schedule="onecycle", weight_decay=5e-4,
                      decay_norm_and_bias=False, augment=True, crop_padding=1, label_smoothing=0.0,
                      lr={"sgd": 0.05, "adam": 2e-3, "adamw": 2e-3}),
}


def _make_optimizer(name, params, lr, args):
    from .optim import SGD, Adam, AdamW

    if name == "sgd":
        if args.nesterov and args.momentum == 0:
            raise UserError("--nesterov needs --momentum > 0")
        # weight decay comes with the parameter groups (weight_decay_groups)
        return SGD(params, lr=lr, momentum=args.momentum, nesterov=args.nesterov)
    return (Adam if name == "adam" else AdamW)(params, lr=lr)


def _augmentation(augment, size, padding):
    """Training-batch augmentation: random crops of the image padded by ``padding`` (edge
    pixels repeated) and horizontal flips, as is usual for Fashion-MNIST / CIFAR."""
    if not augment:
        return None
    from .datasets.transforms import Compose, RandomCrop, RandomHorizontalFlip

    return Compose([RandomCrop(size, padding=padding, padding_mode="edge"), RandomHorizontalFlip(0.5)])


def _init_from(model, path, freeze_prefixes):
    """Load ``path``'s weights into ``model`` (same architecture) and freeze prefixes."""
    from .nn import Module
    from .serialization import ModelFileError, load
    from .training import freeze

    if path is not None:
        try:  # a saved model, or a bare state dict (e.g. a PyTorch one saved as safetensors)
            source = load(path)
            model.load_state_dict(source.state_dict() if isinstance(source, Module) else source,
                                  strict=True)
        except (ModelFileError, KeyError, ValueError, TypeError) as e:
            raise UserError(f"--init-from {path}: {e}") from e
    frozen = []
    if freeze_prefixes:
        try:
            frozen = freeze(model, [p for p in freeze_prefixes.split(",") if p])
        except ValueError as e:
            raise UserError(f"--freeze: {e}") from e
    return frozen


#: ``fastconv train`` flags that define a run: a --resume'd checkpoint must have the same
_RUN_FLAGS = ("model", "dataset", "epochs", "batch_size", "optimizer", "lr", "lr_schedule", "augment",
              "crop_padding", "momentum", "nesterov", "weight_decay", "decay_norm_and_bias",
              "label_smoothing", "activation", "pool", "seed", "train_limit", "init_from", "freeze")


def _checkpoint_dir(args):
    """The --checkpoint directory (--resume's when only that is given), checked; or None."""
    from pathlib import Path

    if args.resume is not None and not Path(args.resume).is_dir():
        what = "is not a directory" if Path(args.resume).exists() else "does not exist"
        raise UserError(f"--resume {args.resume}: {what} (expected a --checkpoint directory)")
    ckpt_dir = args.checkpoint if args.checkpoint is not None else args.resume
    if ckpt_dir is not None and Path(ckpt_dir).exists() and not Path(ckpt_dir).is_dir():
        raise UserError(f"--checkpoint {ckpt_dir}: exists and is not a directory")
    if ckpt_dir is None and args.checkpoint_every is not None:
        raise UserError("--checkpoint-every needs --checkpoint DIR (or --resume DIR)")
    return ckpt_dir


def _rank_zero():
    from . import distributed

    return distributed.is_main()


def _training_run(args, ckpt_dir, lr, model, optimizer, scheduler, train_batches, train_x, train_y):
    """The checkpointing of this run (fastconv.checkpoint.TrainingRun), resumed if --resume."""
    import zlib

    from . import get_num_threads
    from .checkpoint import CheckpointError, TrainingRun, list_checkpoints

    config = {"flags": {k.replace("_", "-"): getattr(args, k) for k in _RUN_FLAGS}, "lr": lr,
              "model": model.config, "train_images": int(len(train_x)),
              "train_crc32": zlib.crc32(train_y.tobytes(), zlib.crc32(train_x.tobytes()))}
    threads: "int | str" = "auto" if getattr(args, "adaptive", None) is not None else get_num_threads()
    try:
        run = TrainingRun(ckpt_dir, model=model, optimizer=optimizer, scheduler=scheduler,
                          batches=train_batches, config=config, every=args.checkpoint_every or 1,
                          metrics_path=args.metrics, notes={"threads": threads},
                          writer=not getattr(args, "distributed", False) or _rank_zero(),
                          mid_epoch=not getattr(args, "distributed", False))
        if args.resume is None:  # a fresh run; its step 0 is checkpointed too (for a kill before epoch 1 ends)
            existing = list_checkpoints(ckpt_dir)
            if existing and not args.force:
                raise UserError(f"--checkpoint {ckpt_dir} already holds checkpoints of a run: pass "
                                f"--resume {ckpt_dir} to continue it, or --force to start over")
            for p in existing if run.writer else ():
                p.unlink()
            run.save()
        else:
            ckpt = run.resume(args.resume)
            saved = ckpt.extra.get("notes", {}).get("threads", threads)
            if saved != threads or threads == "auto":
                what = (f"the checkpoint was written with {saved} threads, this run has {threads}"
                        if saved != threads else "--threads auto")
                print(f"warning: {what}: the result will not be bitwise that of an uninterrupted run"
                      f"{' (pass a fixed --threads N for that)' if threads == 'auto' else ''}",
                      file=sys.stderr, flush=True)
            print(f"resuming from {ckpt.path} ({ckpt.epoch} epochs and {ckpt.step} steps done)", flush=True)
    except CheckpointError as e:
        raise UserError(f"--resume {args.resume}: {e}" if args.resume else f"--checkpoint: {e}") from e
    return run


def cmd_train(args):
    import contextlib

    import numpy as np

    from . import manual_seed
    from .datasets import DATASETS, BatchIterator
    from .models import MODELS
    from .nn import CrossEntropyLoss
    from .serialization import model_path, save_model
    from .training import make_lr_schedule, predict, train_epoch, weight_decay_groups

    defaults = TRAIN_DEFAULTS[args.model]
    for key in ("epochs", "batch_size", "lr_schedule", "weight_decay", "decay_norm_and_bias",
                "augment", "crop_padding", "label_smoothing"):
        if getattr(args, key) is None:
            setattr(args, key, defaults[key])
    lr = defaults["lr"][args.optimizer] if args.lr is None else args.lr
    ckpt_dir = _checkpoint_dir(args)
    if args.save is not None and not args.force and args.resume is None:  # (resume: overwrite)
        target = model_path(args.save)  # what save_model writes (.npz appended if no known extension)
        if target.exists():
            raise UserError(f"{target} already exists; pass --force to overwrite it")
    if args.model != "lenet5" and (args.activation != "relu" or args.pool != "max"):
        raise UserError("--activation and --pool apply to --model lenet5 only")
    ranks = 1
    adaptive = args.adaptive = _adaptive_threads(args)  # (--threads auto: None when fixed)
    if args.distributed:  # MPI (fastconv.distributed): threads per rank; rank 0 prints and writes
        from . import distributed as _dist
        _dist.setup_cli(args)
        ranks = _dist.world_size()
        if args.threads is not None:
            from . import set_num_threads
            set_num_threads(args.threads)
    info = DATASETS[args.dataset]
    train_x, train_y = _load_split(args.dataset, args.data, "train", args.download)
    test_x, test_y = _load_split(args.dataset, args.data, "test", args.download)
    if args.train_limit is not None:
        train_x, train_y = train_x[: args.train_limit], train_y[: args.train_limit]

    manual_seed(args.seed)
    build = MODELS[args.model]
    model_rng = np.random.default_rng(args.seed)
    if args.model == "lenet5":
        model = build(10, activation=args.activation, pool=args.pool, rng=model_rng)
    else:
        model = build(1, 10, rng=model_rng)
    model.config.update(dataset=args.dataset, normalize=[info.mean, info.std])
    frozen = _init_from(model, args.init_from, args.freeze)
    optimizer = _make_optimizer(args.optimizer, weight_decay_groups(
        model, args.weight_decay, args.decay_norm_and_bias), lr, args)
    norm = (info.mean, info.std)
    train_batches = BatchIterator(train_x, train_y, args.batch_size, shuffle=True, normalize=norm,
                                  rng=np.random.default_rng(args.seed + 1),
                                  transform=_augmentation(args.augment, train_x.shape[1:], args.crop_padding))
    test_batches = BatchIterator(test_x, test_y, 1000, normalize=norm)
    scheduler, per_step = make_lr_schedule(args.lr_schedule, optimizer, args.epochs, len(train_batches))
    loss_fn = CrossEntropyLoss(label_smoothing=args.label_smoothing)
    if args.distributed:  # DataParallel + gradient Allreduce; strided shards of each global batch
        model, optimizer, train_batches = _dist.prepare_cli(model, optimizer, train_batches, args.seed + 1)
    ckpt = None if ckpt_dir is None else _training_run(args, ckpt_dir, lr, model, optimizer, scheduler,
                                                       train_batches, train_x, train_y)
    hide_bar = args.quiet or not sys.stderr.isatty()
    what = f"{args.model} ({args.activation}, {args.pool} pool)" if args.model == "lenet5" else args.model
    n_params = sum(p.data.size for p in model.parameters())
    print(f"fastconv {__version__}: training {what} on {args.dataset}: {len(train_x)} train / "
          f"{len(test_x)} test images, {n_params} parameters, {args.optimizer} lr={lr} "
          f"({args.lr_schedule}), batch {args.batch_size}, {args.epochs} epochs"
          f"{', augmented' if args.augment else ''}, "
          + (f"{__import__('fastconv').get_num_threads()} threads" if adaptive is None else
             f"threads auto (1 to {adaptive.max_threads}, from measured step times)"), flush=True)
    if frozen:
        print(f"frozen: {len(frozen)} parameters ({', '.join(frozen)})", flush=True)
    status = 0
    interrupts = contextlib.ExitStack()  # with --checkpoint: Ctrl-C stops after the current step
    if ckpt is not None:
        interrupts.enter_context(ckpt.deferred_interrupts())
    try:
        for epoch in range(1 if ckpt is None else ckpt.epoch_done + 1, args.epochs + 1):
            batches = train_batches if ckpt is None else ckpt.begin_epoch()
            if args.distributed:
                train_batches.sampler.set_epoch(epoch - 1)
            with _progress_bar(len(train_x), f"epoch {epoch}/{args.epochs}", hide_bar) as bar:
                def progress(n, loss, rate, bar=bar):
                    # under --distributed, rank 0 sees its share of each global batch: the
                    # bar counts the whole job's images (about W times the share)
                    bar.update(n * ranks)
                    bar.set_postfix(loss=f"{loss:.4f}", img_s=f"{rate * ranks:.0f}", refresh=False)
                    if ckpt is not None:
                        ckpt.step_done()  # (raises KeyboardInterrupt there after a Ctrl-C)

                if adaptive is not None:  # times every step, then calls the bar's progress
                    adaptive.then = progress
                    adaptive.start()
                stats = train_epoch(model, loss_fn, optimizer, batches,
                                    progress if adaptive is None else adaptive,
                                    scheduler if per_step else None,
                                    totals=None if ckpt is None else ckpt.totals)
            if args.distributed:  # BatchNorm statistics averaged; metrics summed over the ranks
                stats = _dist.end_epoch_cli(model, stats)
            if scheduler is not None and not per_step:
                scheduler.step()
            test_acc = float(np.mean(predict(model, test_batches) == test_y))
            record = {
                "epoch": epoch,
                "loss": stats["loss"],
                "train_acc": stats["train_acc"],
                "test_acc": test_acc,
                "seconds": stats["seconds"],
                "images_per_second": stats["samples"] / stats["seconds"],
            }
            print(f"epoch {epoch:>3}/{args.epochs}  loss {record['loss']:.4f}  "
                  f"train_acc {100 * record['train_acc']:.2f}%  test_acc {100 * test_acc:.2f}%  "
                  f"{record['seconds']:.1f} s  {record['images_per_second']:.0f} img/s"
                  f"{'' if adaptive is None else f'  ({adaptive.threads} threads)'}", flush=True)
            if args.metrics:
                with open(args.metrics, "a") as f:
                    f.write(json.dumps(record) + "\n")
            if ckpt is not None:
                ckpt.end_epoch(record, last=epoch == args.epochs)  # (KeyboardInterrupt after a Ctrl-C)
    except KeyboardInterrupt:
        print("interrupted: stopping after the last completed step", file=sys.stderr, flush=True)
        status = 130
        if ckpt is not None:
            ckpt.save_on_interrupt()  # (unless written already, or the step was cut short)
            if ckpt.last_path is not None:
                print(f"checkpoint: {ckpt.last_path}; continue with the same command and "
                      f"--resume {ckpt.directory}", file=sys.stderr, flush=True)
    finally:
        interrupts.close()
        if adaptive is not None:
            adaptive.close()
    if args.save is not None:
        path = save_model(model, args.save, force=True)
        print(f"saved model to {path}", flush=True)
    return status


def cmd_evaluate(args):
    import numpy as np

    from .datasets import DATASETS, BatchIterator
    from .serialization import ModelFileError, load_model
    from .training import confusion_matrix, predict
    from . import onnx as _onnx  # noqa: F401  (registers the .onnx reader)

    try:
        model = load_model(args.model)
    except ModelFileError as e:
        raise UserError(str(e)) from e
    dataset = args.dataset or model.config.get("dataset", "mnist")
    if dataset not in DATASETS:
        raise UserError(f"unknown dataset {dataset!r} in the model's config")
    norm = model.config.get("normalize", [DATASETS[dataset].mean, DATASETS[dataset].std])
    x, y = _load_split(dataset, args.data, "test", args.download)
    dtype = model.parameters()[0].data.dtype
    preds = predict(model, BatchIterator(x, y, 1000, normalize=tuple(norm), dtype=dtype))
    acc = float(np.mean(preds == y))
    print(f"test accuracy on {dataset}: {100 * acc:.2f}% ({int((preds == y).sum())}/{len(y)})")
    m = confusion_matrix(y, preds, model.config.get("num_classes", 10))
    print("confusion matrix (rows: true class, columns: predicted):")
    width = max(5, len(str(m.max())) + 1)
    print("     " + "".join(f"{j:>{width}}" for j in range(m.shape[1])))
    for i, row in enumerate(m):
        print(f"{i:>4} " + "".join(f"{v:>{width}}" for v in row))
    return 0


def cmd_export(args):
    from pathlib import Path

    from . import onnx as fonnx
    from .serialization import ModelFileError, load_model

    out = Path(args.onnx)
    if out.suffix.lower() != ".onnx":
        raise UserError(f"--onnx must name an .onnx file, got {str(out)!r}")
    if out.exists() and not args.force:
        raise UserError(f"{out} already exists; pass --force to overwrite it")
    try:
        model = load_model(args.model)
    except ModelFileError as e:
        raise UserError(str(e)) from e
    # the MNIST family: 28 x 28 images, in_channels from the config (1 by default)
    shape = (args.batch_size or 1, int(model.config.get("in_channels", 1)), 28, 28)
    try:
        fonnx.export(model, out, shape, dynamic_batch=args.batch_size is None, opset=args.opset)
    except ImportError as e:
        raise UserError(str(e)) from e
    except ValueError as e:
        raise UserError(f"cannot export {args.model}: {e}") from e
    batch = "N" if args.batch_size is None else args.batch_size
    dtype = model.parameters()[0].data.dtype if model.parameters() else "float32"
    print(f"wrote {out} (ONNX opset {args.opset}, input {(batch, *shape[1:])} {dtype})".replace("'", ""))
    return 0


def _pyplot():
    """matplotlib's pyplot on the file-only Agg backend, or a UserError saying how to get it."""
    try:
        import matplotlib
    except ImportError as e:
        raise UserError('this command draws with matplotlib, which is not installed: '
                        'pip install "fastconv[plot]"') from e
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _write_figure(fig, path):
    """Save ``fig`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    from pathlib import Path

    from ._atomic import atomic_write

    fmt = Path(path).suffix.lstrip(".") or "png"
    return atomic_write(path, lambda f: fig.savefig(f, dpi=110, bbox_inches="tight", format=fmt))


def read_metrics(path):
    """The records of a ``--metrics`` JSONL file, as a list of dicts (UserError if unreadable)."""
    try:
        lines = open(path).read().splitlines()
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror}") from e
    records = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}:{i}: not a JSON object ({e.msg})") from e
        if not isinstance(rec, dict) or not {"epoch", "loss"} <= set(rec):
            raise UserError(f"{path}:{i}: expected a metrics record with 'epoch' and 'loss'")
        records.append(rec)
    if not records:
        raise UserError(f"{path}: no metrics records")
    return records


def cmd_plot(args):
    records = read_metrics(args.metrics)
    plt = _pyplot()
    epochs = [r["epoch"] for r in records]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax_loss.plot(epochs, [r["loss"] for r in records], "o-", label="train loss")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("cross-entropy")
    ax_loss.set_yscale("log")
    ax_loss.legend()
    for key, label in (("train_acc", "train"), ("test_acc", "test")):
        if all(key in r for r in records):
            ax_acc.plot(epochs, [100 * r[key] for r in records], "o-", label=label)
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy (%)")
    ax_acc.legend()
    ax_acc.grid(alpha=0.3)
    fig.suptitle(args.title or str(args.metrics))
    path = _write_figure(fig, args.output)
    print(f"wrote {path}")
    return 0


def cmd_show(args):
    import numpy as np

    from . import functional as F
    from .datasets import DATASETS, BatchIterator
    from .nn import Conv2d
    from .serialization import ModelFileError, load_model

    try:
        model = load_model(args.model)
    except ModelFileError as e:
        raise UserError(str(e)) from e
    conv = next((m for m in model.modules() if isinstance(m, Conv2d)), None)
    if conv is None:
        raise UserError(f"{args.model} has no convolution layer")
    dataset = args.dataset or model.config.get("dataset", "mnist")
    if dataset not in DATASETS:
        raise UserError(f"unknown dataset {dataset!r}")
    x, y = _load_split(dataset, args.data, "test", args.download)
    if not 0 <= args.index < len(x):
        raise UserError(f"--index must be in [0, {len(x)}), got {args.index}")
    norm = model.config.get("normalize", [DATASETS[dataset].mean, DATASETS[dataset].std])
    w = conv.weight.data
    batch = BatchIterator(x[args.index:args.index + 1], y[args.index:args.index + 1], 1,
                          normalize=tuple(norm), dtype=w.dtype)
    image = next(iter(batch))[0]
    maps = F.conv2d(image, w, None if conv.bias is None else conv.bias.data, conv.stride,
                    conv.padding, conv.dilation, conv.groups)[0]
    plt = _pyplot()
    n = w.shape[0]
    cols = max(n, 1) + 1
    fig, axes = plt.subplots(2, cols, figsize=(1.6 * cols, 3.6), squeeze=False)
    axes[0, 0].imshow(x[args.index], cmap="gray")
    axes[0, 0].set_title(f"#{args.index} (class {int(y[args.index])})", fontsize=8)
    axes[1, 0].axis("off")
    for i in range(n):
        axes[0, i + 1].imshow(w[i, 0], cmap="RdBu_r", vmin=-np.abs(w[i, 0]).max(), vmax=np.abs(w[i, 0]).max())
        axes[0, i + 1].set_title(f"filter {i}", fontsize=8)
        axes[1, i + 1].imshow(maps[i], cmap="viridis")
        axes[1, i + 1].set_title(f"map {i}", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{model.config.get('model', 'model')}: first convolution's filters (input channel 0) "
                 f"and feature maps", fontsize=9)
    path = _write_figure(fig, args.output)
    print(f"wrote {path}")
    return 0


def cmd_info(args):
    from ._info import format_info

    print(format_info())
    return 0


def cmd_tune(args):
    from .autotune import cli_tune

    return cli_tune(args, TRAIN_DEFAULTS)


def build_parser():
    parser = _Parser(prog="fastconv", description="Fast CPU convolutions and a small CNN trainer.")
    parser.add_argument("--version", action="version", version=f"fastconv {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    t = sub.add_parser("train", help="train a model on MNIST or Fashion-MNIST",
                       description="Train a model; prints one summary line per epoch. Flags left "
                                   "unset take the model's defaults (fastconv.cli.TRAIN_DEFAULTS).")
    t.add_argument("--model", choices=sorted(TRAIN_DEFAULTS), default="lenet5")
    t.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default="mnist")
    t.add_argument("--data", metavar="DIR", help="folder with the IDX files (default: $FASTCONV_DATA, then the cache)")
    t.add_argument("--download", action="store_true", help="download missing files (checksum-verified)")
    t.add_argument("--epochs", type=_positive_int, help="default: 10 for lenet5, 15 for the others")
    t.add_argument("--batch-size", type=_positive_int, help="default: 64 for lenet5, 128 for the others")
    t.add_argument("--optimizer", choices=["sgd", "adam", "adamw"], default="sgd")
    t.add_argument("--lr", type=_nonneg_float,
                   help="learning rate (peak rate for onecycle; default per model and optimizer)")
    t.add_argument("--lr-schedule", choices=["cosine", "step", "onecycle", "constant"],
                   help="cosine (per epoch), step (x0.1 at 1/2 and 3/4), onecycle (per step) or "
                        "constant; default cosine for lenet5, onecycle for the others")
    t.add_argument("--augment", action=argparse.BooleanOptionalAction,
                   help="random crops (see --crop-padding) and horizontal flips of training "
                        "batches (default on for the resnets and vgg_small)")
    t.add_argument("--crop-padding", type=_nonneg_int, metavar="P",
                   help="--augment's crops: pad by P edge pixels, crop back (default 1; 2 for lenet5)")
    t.add_argument("--momentum", type=_nonneg_float, default=0.9, help="SGD momentum (default 0.9)")
    t.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=True,
                   help="Nesterov momentum for SGD (default on)")
    t.add_argument("--weight-decay", type=_nonneg_float, help="default 0 for lenet5, 5e-4 for the others")
    t.add_argument("--decay-norm-and-bias", action=argparse.BooleanOptionalAction,
                   help="apply --weight-decay to biases and BatchNorm parameters too (default: "
                        "only for lenet5; the others decay multi-dimensional weights only)")
    t.add_argument("--label-smoothing", type=_unit_float, metavar="E",
                   help="cross-entropy against (1-E) one-hot + E/classes (default 0)")
    t.add_argument("--activation", choices=["relu", "tanh"], default="relu")
    t.add_argument("--pool", choices=["max", "avg"], default="max")
    t.add_argument("--threads", type=_threads, metavar="N|auto",
                   help="kernel threads: N fixes the count (results bitwise reproducible for a given N); "
                        "auto (the default unless OMP_NUM_THREADS is set or --distributed) picks between 1 "
                        "and OMP's default (all CPUs) from measured step times, re-probing now and then, "
                        "so a busy machine does not stall every parallel step; the count may change "
                        "between steps and with it the order of the per-thread sums: reruns agree to "
                        "rounding, not bitwise")
    t.add_argument("--distributed", action="store_true",
                   help="data-parallel over MPI: mpiexec -n W fastconv train --distributed ... "
                        "(--batch-size stays the global batch; threads per rank default to the "
                        "machine's CPUs / its ranks; rank 0 prints and writes --metrics/--save)")
    t.add_argument("--seed", type=_nonneg_int, default=0)
    t.add_argument("--train-limit", type=_positive_int, metavar="N", help="train on the first N images only")
    t.add_argument("--init-from", metavar="MODEL",
                   help="start from this saved model's weights (same --model), e.g. to fine-tune: "
                        "a .npz or .safetensors model, or a state dict such as a PyTorch one "
                        "saved with safetensors.torch.save_file")
    t.add_argument("--freeze", metavar="PREFIX[,PREFIX]",
                   help="freeze the parameters under these dotted names (e.g. 0,3 for lenet5's "
                        "convolutions): transfer learning")
    t.add_argument("--save", metavar="PATH", help="save the trained model here: PATH.safetensors or "
                                                  "PATH.npz (.npz is appended to other names)")
    t.add_argument("--force", action="store_true", help="overwrite an existing --save file (and start "
                                                        "over in a --checkpoint DIR holding checkpoints)")
    t.add_argument("--metrics", metavar="PATH.jsonl", help="append one JSON object per epoch here")
    t.add_argument("--checkpoint", metavar="DIR",
                   help="write checkpoints (model, optimizer, scheduler, RNG states, metrics) into DIR "
                        "atomically: every --checkpoint-every epochs, at the end and on Ctrl-C")
    t.add_argument("--checkpoint-every", type=_positive_int, metavar="N",
                   help="checkpoint every N epochs (default 1)")
    t.add_argument("--resume", metavar="DIR",
                   help="continue from DIR's latest complete checkpoint (same command line plus "
                        "--resume DIR; checkpoints go on into DIR unless --checkpoint says otherwise); "
                        "the result is bitwise that of an uninterrupted run (same fixed --threads N); "
                        "an existing --save file is overwritten")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="test accuracy and confusion matrix of a saved model")
    e.add_argument("model", metavar="MODEL", help="a saved model (.npz, .safetensors or .onnx)")
    e.add_argument("--dataset", choices=["mnist", "fashion-mnist"], help="default: the one it was trained on")
    e.add_argument("--data", metavar="DIR")
    e.add_argument("--download", action="store_true")
    e.set_defaults(func=cmd_evaluate)

    x = sub.add_parser("export", help="write a saved model as an ONNX file (the onnx extra)",
                       description="Export a saved model for onnxruntime or any ONNX runtime; the "
                                   "batch size is dynamic unless --batch-size fixes it.")
    x.add_argument("model", metavar="MODEL", help="a saved model (.npz or .safetensors)")
    x.add_argument("--onnx", required=True, metavar="OUT.onnx", help="the ONNX file to write")
    x.add_argument("--batch-size", type=_positive_int, help="a fixed batch size (default: dynamic)")
    x.add_argument("--opset", type=_positive_int, default=17, help="ai.onnx opset, 13 to 22 (default 17)")
    x.add_argument("--force", action="store_true", help="overwrite an existing OUT.onnx")
    x.set_defaults(func=cmd_export)

    p = sub.add_parser("plot", help="draw loss and accuracy curves of a --metrics file (matplotlib)")
    p.add_argument("metrics", metavar="METRICS.jsonl")
    p.add_argument("-o", "--output", required=True, metavar="CURVES.png")
    p.add_argument("--title")
    p.set_defaults(func=cmd_plot)

    s = sub.add_parser("show", help="draw a model's first-layer filters and the feature maps of one image")
    s.add_argument("model", metavar="MODEL.npz")
    s.add_argument("--dataset", choices=["mnist", "fashion-mnist"], help="default: the one it was trained on")
    s.add_argument("--data", metavar="DIR")
    s.add_argument("--download", action="store_true")
    s.add_argument("--index", type=_nonneg_int, default=0, help="test image index (default 0)")
    s.add_argument("-o", "--output", required=True, metavar="MAPS.png")
    s.set_defaults(func=cmd_show)

    i = sub.add_parser("info", help="print version, OpenMP, threads and BLAS facts")
    i.set_defaults(func=cmd_info)

    u = sub.add_parser("tune", help="measure the convolution algorithms of a model's layers into the plan file",
                       description="Time direct / im2col / Winograd for every convolution of a training "
                                   "step (forward and backward) and write the winners to the plan file "
                                   "($FASTCONV_PLAN_CACHE or ~/.cache/fastconv); prints the choices.")
    u.add_argument("--model", choices=sorted(TRAIN_DEFAULTS), default="lenet5")
    u.add_argument("--batch-size", type=_positive_int, help="default: the model's training batch size")
    u.add_argument("--threads", type=_positive_int, help="kernel threads (default: fastconv's default)")
    u.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    u.add_argument("--clear", action="store_true", help="delete the plan file first (measure everything anew)")
    u.set_defaults(func=cmd_tune)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except UserError as e:
        print(f"fastconv {args.command}: error: {e}", file=sys.stderr)
        if getattr(args, "distributed", False):  # the other ranks may be waiting in MPI
            from .distributed import abort_job
            abort_job(2)
        return 2
    finally:  # --threads auto: give the thread count back even when setup failed
        adaptive = getattr(args, "adaptive", None)
        if adaptive is not None:
            adaptive.close()


if __name__ == "__main__":
    sys.exit(main())
