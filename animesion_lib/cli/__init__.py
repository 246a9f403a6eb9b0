"""The ``animesion`` command.

Each subcommand is one module of this package exposing ``HELP`` (a one-line summary),
``add_arguments(parser)`` and ``run(args) -> int``. Modules import torch and friends inside
``run`` only, so ``animesion --help`` answers instantly.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand name -> module in this package, in the order `--help` lists them
SUBCOMMANDS = {
    "make-synthetic": "make_synthetic",
    "info": "info",
    "train": "train",
    "evaluate": "evaluate",
    "predict": "predict",
    "build-dataset": "build_dataset",
    "reproduction-report": "reproduction_report",
}


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Show defaults and keep the hand-wrapped descriptions."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="animesion",
        description="Anime character recognition and tag prediction (Animesion, Dan:mul).",
        formatter_class=_Formatter,
    )
    from animesion_lib import __version__

    parser.add_argument("--version", action="version", version=f"animesion {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in SUBCOMMANDS.items():
        module = importlib.import_module(f"animesion_lib.cli.{module_name}")
        p = sub.add_parser(
            name,
            help=module.HELP,
            description=module.__doc__,
            formatter_class=_Formatter,
        )
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # a known, user-facing error prints one clear line, not a traceback
        from animesion_lib.errors import AnimesionError

        if isinstance(err, AnimesionError):
            print(f"error: {err}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
