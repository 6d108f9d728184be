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


def _command_parser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    """The sub-parser of `command` (the top-level parser when there is none)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            return action.choices[command]
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors print one line and return 2."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*is deprecated", category=FutureWarning)
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if isinstance(getattr(args, "overrides", None), list):  # key=value after an option: overrides too
        args.overrides += [u for u in unknown if "=" in u and not u.startswith("-")]
        unknown = [u for u in unknown if not ("=" in u and not u.startswith("-"))]
    if unknown:  # the command's own usage, not the top-level one
        _command_parser(parser, args.command).error(f"unrecognized arguments: {' '.join(unknown)}")
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
