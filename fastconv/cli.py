"""The ``fastconv`` command line: ``info`` (and ``train``/``evaluate``)."""
import argparse
import sys

from ._version import __version__


def cmd_info(args):
    from ._info import format_info

    print(format_info())
    return 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="fastconv", description="Fast CPU convolutions and a small CNN trainer."
    )
    parser.add_argument("--version", action="version", version=f"fastconv {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("info", help="print version, OpenMP, threads and BLAS facts")
    p.set_defaults(func=cmd_info)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
