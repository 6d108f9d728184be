"""`python -m vvc_lightning COMMAND ...`: one sub-command per module `vvc_lightning.cli.<name>`."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import warnings

from vvc_lightning.errors import VVCError

COMMAND_MODULES = ("train", "codec", "evaluate", "backbones", "shard", "models")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every available sub-command."""
    parser = argparse.ArgumentParser(
        prog="python -m vvc_lightning",
        description="Perceptual neural video compression with video VAEs (PyTorch Lightning).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"vvc_lightning.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"vvc_lightning.cli.{name}":
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors print one line and return 2."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*is deprecated", category=FutureWarning)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except VVCError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
