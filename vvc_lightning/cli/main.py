"""`python -m vvc_lightning COMMAND ...`: one sub-command per module `vvc_lightning.cli.<name>`."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import importlib
import logging
import os
import signal
import sys
import threading
import warnings
from collections.abc import Iterator
from types import FrameType

from vvc_lightning.errors import VVCError

COMMAND_MODULES = ("train", "codec", "evaluate", "backbones", "shard", "models")
# Commands whose outputs are all closed (written atomically) when they return: the process leaves without
# the interpreter's teardown, which with torch loaded costs about 1 s here (its libraries' destructors),
# 15 % of a 33-frame decompress. atexit handlers still run (`leave`).
FAST_EXIT = frozenset({"compress", "decompress", "models", "backbones"})
_RAN: list[str] = []


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


def _exit_interrupted(signum: int, frame: FrameType | None) -> None:
    """Ctrl-C before the command runs (imports, parsing): nothing is written yet, so leave at once."""
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    os.write(2, b"interrupted\n")
    os._exit(130)


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    """Ctrl-C while the command runs: a KeyboardInterrupt, so its temporaries are removed on the way out."""
    _INTERRUPTED.append(signum)
    raise KeyboardInterrupt


_INTERRUPTED: list[int] = []


@contextlib.contextmanager
def _sigint_policy() -> Iterator[None]:
    """SIGINT leaves at once during start-up and raises KeyboardInterrupt once the command runs (see
    `_command_starts`); the caller's handler is restored after. Only on the main thread (signals' rule)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGINT, _exit_interrupted)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


def _command_starts() -> None:
    """From here on Ctrl-C raises KeyboardInterrupt (outputs in progress clean up after themselves)."""
    if signal.getsignal(signal.SIGINT) is _exit_interrupted:
        signal.signal(signal.SIGINT, _raise_interrupted)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors print one line and return 2; Ctrl-C (SIGINT) at any point prints
    "interrupted" and returns 130 (whatever the interrupted code raised on the way out)."""
    del _INTERRUPTED[:]
    del _RAN[:]
    with _sigint_policy():
        try:
            return _main(argv)
        except Exception:  # e.g. an import that a KeyboardInterrupt broke (ImportError) or a C++ error
            if not _INTERRUPTED:
                raise
            print("interrupted", file=sys.stderr)
            return 130


def _main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the command; user errors print one line and return 2."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    warnings.filterwarnings("ignore", message=".*torch.jit.script.*is deprecated", category=FutureWarning)
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if isinstance(getattr(args, "overrides", None), list):  # key=value after an option: overrides too
        args.overrides += [u for u in unknown if "=" in u and not u.startswith("-")]
        unknown = [u for u in unknown if not ("=" in u and not u.startswith("-"))]
    if unknown:  # the command's own usage, not the top-level one
        _command_parser(parser, args.command).error(f"unrecognized arguments: {' '.join(unknown)}")
    _command_starts()
    _RAN[:] = [args.command]
    try:
        return int(args.func(args) or 0)
    except VVCError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def leave(code: int) -> None:
    """End the process with `code` after `main`: a FAST_EXIT command runs the atexit handlers, flushes the
    standard streams and leaves without the interpreter's teardown; any other command exits normally."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the command is done: Ctrl-C now changes nothing
    if _RAN and _RAN[0] in FAST_EXIT and threading.current_thread() is threading.main_thread():
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)
    raise SystemExit(code)


def run() -> None:
    """The console script `vvc-lightning`: `main`, then `leave`."""
    leave(main())


if __name__ == "__main__":
    run()
