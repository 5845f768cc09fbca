"""The ``fastconv`` command line: ``train``, ``evaluate`` and ``info``.

Each command is a thin layer over importable functions (:mod:`fastconv.training`,
:mod:`fastconv.datasets`, :mod:`fastconv.serialization`). User errors (bad flag values,
missing data, an existing ``--save`` target) exit with status 2 and a one-line message;
anything else is a bug and keeps its traceback.
"""
import argparse
import json
import sys
import time

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


def _load_split(dataset, data, split, download):
    from .datasets import DatasetError, load_dataset

    try:
        return load_dataset(dataset, data, split, download)
    except DatasetError as e:
        raise UserError(str(e)) from e


def _progress_bar(total, desc, disable):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img", leave=False, disable=disable, dynamic_ncols=True)


def cmd_train(args):
    import numpy as np

    from . import manual_seed, set_num_threads
    from .datasets import DATASETS, BatchIterator
    from .models import lenet5
    from .nn import CrossEntropyLoss
    from .optim import SGD, Adam
    from .serialization import save_model
    from .training import predict, train_epoch

    if args.save is not None and not args.force:
        from pathlib import Path

        target = Path(args.save) if str(args.save).endswith(".npz") else Path(str(args.save) + ".npz")
        if target.exists():
            raise UserError(f"{target} already exists; pass --force to overwrite it")
    if args.threads is not None:
        set_num_threads(args.threads)
    info = DATASETS[args.dataset]
    train_x, train_y = _load_split(args.dataset, args.data, "train", args.download)
    test_x, test_y = _load_split(args.dataset, args.data, "test", args.download)
    if args.train_limit is not None:
        train_x, train_y = train_x[: args.train_limit], train_y[: args.train_limit]

    manual_seed(args.seed)
    model = lenet5(10, activation=args.activation, pool=args.pool, rng=np.random.default_rng(args.seed))
    model.config.update(dataset=args.dataset, normalize=[info.mean, info.std])
    if args.optimizer == "sgd":
        lr = 0.03 if args.lr is None else args.lr
        if args.nesterov and args.momentum == 0:
            raise UserError("--nesterov needs --momentum > 0")
        optimizer = SGD(model.parameters(), lr=lr, momentum=args.momentum, weight_decay=args.weight_decay,
                        nesterov=args.nesterov)
    else:
        lr = 1e-3 if args.lr is None else args.lr
        optimizer = Adam(model.parameters(), lr=lr, weight_decay=args.weight_decay)
    norm = (info.mean, info.std)
    train_batches = BatchIterator(train_x, train_y, args.batch_size, shuffle=True, normalize=norm,
                                  rng=np.random.default_rng(args.seed + 1))
    test_batches = BatchIterator(test_x, test_y, 1000, normalize=norm)
    loss_fn = CrossEntropyLoss()
    hide_bar = args.quiet or not sys.stderr.isatty()
    print(f"fastconv {__version__}: training lenet5 ({args.activation}, {args.pool} pool) on "
          f"{args.dataset}: {len(train_x)} train / {len(test_x)} test images, {args.optimizer} lr={lr}, "
          f"batch {args.batch_size}, {args.epochs} epochs, {__import__('fastconv').get_num_threads()} threads",
          flush=True)
    status = 0
    try:
        for epoch in range(1, args.epochs + 1):
            if args.lr_schedule == "cosine":
                optimizer.lr = lr * 0.5 * (1 + np.cos(np.pi * (epoch - 1) / args.epochs))
            with _progress_bar(len(train_x), f"epoch {epoch}/{args.epochs}", hide_bar) as bar:
                def progress(n, loss, rate, bar=bar):
                    bar.update(n)
                    bar.set_postfix(loss=f"{loss:.4f}", img_s=f"{rate:.0f}", refresh=False)

                stats = train_epoch(model, loss_fn, optimizer, train_batches, progress)
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
                  f"{record['seconds']:.1f} s  {record['images_per_second']:.0f} img/s", flush=True)
            if args.metrics:
                with open(args.metrics, "a") as f:
                    f.write(json.dumps(record) + "\n")
    except KeyboardInterrupt:
        print("interrupted: stopping after the last completed step", file=sys.stderr, flush=True)
        status = 130
    if args.save is not None:
        path = save_model(model, args.save, force=True)
        print(f"saved model to {path}", flush=True)
    return status


def cmd_evaluate(args):
    import numpy as np

    from .datasets import DATASETS, BatchIterator
    from .serialization import ModelFileError, load_model
    from .training import confusion_matrix, predict

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


def cmd_info(args):
    from ._info import format_info

    print(format_info())
    return 0


def build_parser():
    parser = _Parser(prog="fastconv", description="Fast CPU convolutions and a small CNN trainer.")
    parser.add_argument("--version", action="version", version=f"fastconv {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    t = sub.add_parser("train", help="train LeNet-5 on MNIST or Fashion-MNIST",
                       description="Train LeNet-5; prints one summary line per epoch.")
    t.add_argument("--model", choices=["lenet5"], default="lenet5")
    t.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default="mnist")
    t.add_argument("--data", metavar="DIR", help="folder with the IDX files (default: $FASTCONV_DATA, then the cache)")
    t.add_argument("--download", action="store_true", help="download missing files (checksum-verified)")
    t.add_argument("--epochs", type=_positive_int, default=10)
    t.add_argument("--batch-size", type=_positive_int, default=64)
    t.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd")
    t.add_argument("--lr", type=_nonneg_float, help="learning rate (default 0.03 for sgd, 0.001 for adam)")
    t.add_argument("--lr-schedule", choices=["cosine", "constant"], default="cosine",
                   help="per-epoch learning-rate schedule (default cosine decay)")
    t.add_argument("--momentum", type=_nonneg_float, default=0.9, help="SGD momentum (default 0.9)")
    t.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=True,
                   help="Nesterov momentum for SGD (default on)")
    t.add_argument("--weight-decay", type=_nonneg_float, default=0.0)
    t.add_argument("--activation", choices=["relu", "tanh"], default="relu")
    t.add_argument("--pool", choices=["max", "avg"], default="max")
    t.add_argument("--threads", type=_positive_int, help="kernel threads (default: OMP_NUM_THREADS or all CPUs)")
    t.add_argument("--seed", type=_nonneg_int, default=0)
    t.add_argument("--train-limit", type=_positive_int, metavar="N", help="train on the first N images only")
    t.add_argument("--save", metavar="PATH.npz", help="save the trained model here")
    t.add_argument("--force", action="store_true", help="overwrite an existing --save file")
    t.add_argument("--metrics", metavar="PATH.jsonl", help="append one JSON object per epoch here")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="test accuracy and confusion matrix of a saved model")
    e.add_argument("model", metavar="PATH.npz")
    e.add_argument("--dataset", choices=["mnist", "fashion-mnist"], help="default: the one it was trained on")
    e.add_argument("--data", metavar="DIR")
    e.add_argument("--download", action="store_true")
    e.set_defaults(func=cmd_evaluate)

    i = sub.add_parser("info", help="print version, OpenMP, threads and BLAS facts")
    i.set_defaults(func=cmd_info)
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
        return 2


if __name__ == "__main__":
    sys.exit(main())
