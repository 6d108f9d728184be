"""Where outputs may go: never onto an input, never into (or over) an existing folder, only known formats;
and temporary files that disappear on an exception, Ctrl-C (SIGINT), SIGTERM or SIGHUP alike."""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

from vvc_lightning.errors import VVCError

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".y4m", ".yuv")
PNG_SUFFIXES = ("", ".png")  # a folder of PNGs


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def special_kind(path: str | os.PathLike) -> str | None:
    """What `path` is (followed through links) when it exists and is neither a regular file nor a folder."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    kinds = ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
             (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"))
    return next((name for test, name in kinds if test(mode)), None)


def input_problem(path: str | os.PathLike) -> str | None:
    """Why `path` cannot be read as an input file ("is an empty string", "does not exist", "is a folder", "is
    a FIFO (named pipe)", ...), or None when it is (after links) a regular file."""
    if not os.fspath(path):
        return "is an empty string"
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        if os.path.islink(path):
            return f"is a link to '{os.readlink(path)}', which does not exist"
        return "does not exist" if isinstance(exc, FileNotFoundError) else f"cannot be read ({exc.strerror})"
    except ValueError:  # a NUL character in the name
        return "is not a valid path"
    if stat.S_ISREG(mode):
        return None
    return "is a folder" if stat.S_ISDIR(mode) else f"is {special_kind(path) or 'not a regular file'}"


def refuse_special(dst: str | os.PathLike) -> None:
    """Fail if `dst` is a device, FIFO or socket: outputs are never streamed into one nor renamed over it."""
    kind = special_kind(dst)
    if kind is not None:
        raise VVCError(
            f"output '{dst}' is {kind}, not a regular file; name a regular file (devices and pipes are "
            "never written into or replaced, --overwrite or not)"
        )


def check_output_path(
    dst: str | os.PathLike, src: str | os.PathLike | None = None, kind: str = "video"
) -> Path:
    """`dst` if it is a place we may write a `kind` ("video" or "bitstream") to; a clear error otherwise.

    Refused: a missing parent folder, the input itself, an existing folder (its contents are never touched),
    a device, FIFO or socket, and for videos a suffix we cannot write. An existing *file* is replaced
    atomically (the CLI refuses it unless --overwrite is given).
    """
    dst = Path(dst)
    parent = dst.parent if str(dst.parent) else Path(".")
    if not parent.is_dir():
        raise VVCError(f"output folder '{parent}' does not exist; create it first")
    refuse_special(dst)
    if src is not None and (_same_file(dst, Path(src)) or dst.resolve() == Path(src).resolve()):
        raise VVCError(f"output '{dst}' is the input file; choose another output path")
    if dst.is_dir():
        raise VVCError(f"output '{dst}' is an existing folder; name a new file or folder (existing ones are "
                       "never emptied)")
    if kind == "video":
        suffix = dst.suffix.lower()
        if suffix not in VIDEO_SUFFIXES + PNG_SUFFIXES:
            raise VVCError(
                f"cannot write '{dst}': use .mp4, .mov, .mkv, .y4m, .yuv, or a new folder name (no suffix) "
                "for PNGs"
            )
        if suffix == ".png" and dst.with_suffix("").exists():
            raise VVCError(f"output folder '{dst.with_suffix('')}' already exists; name a new folder for the "
                           "PNGs")
    return dst


def refuse_existing(dst: str | os.PathLike, overwrite: bool, flag: str = "--overwrite") -> None:
    """Fail if `dst` exists (a file, or a link even to nothing), unless `overwrite` (folders, devices and
    pipes are refused by `check_output_path` in any case; --overwrite replaces a link itself, never its
    target); `flag` is how the message names the way to overwrite (the Python API's overwrite=True)."""
    dst = Path(dst)
    if overwrite:
        return
    if dst.is_file():
        raise VVCError(f"output '{dst}' already exists; remove it, choose another name or pass {flag}")
    if dst.is_symlink():
        raise VVCError(
            f"output '{dst}' is a symbolic link to '{os.readlink(dst)}', which does not exist; remove "
            f"it, choose another name or pass {flag} (to replace the link)"
        )


def decoded_bytes_limit() -> int:
    """The most bytes of decoded frames one decode may hold: half of this machine's memory."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 16 << 30
    return int(os.environ.get("VVC_MAX_DECODED_BYTES", total // 2))


# ------------------------------------------------------------------------------------------ signals
class Terminated(SystemExit):
    """Raised in the main thread by SIGTERM / SIGHUP while a temporary output exists (exit code 128 +
    signal)."""


_SIGNALS = tuple(
    s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s is not None
)
_depth = 0
_saved: dict[int, object] = {}


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(128 + signum)


@contextlib.contextmanager
def cleanup_on_signals() -> Iterator[None]:
    """Within this block SIGTERM/SIGHUP raise `Terminated`, so `finally`/`except` clauses remove temporary
    files (SIGINT already raises KeyboardInterrupt). Nested blocks share one installation; only the main
    thread installs."""
    global _depth
    main = threading.current_thread() is threading.main_thread()
    if main and _depth == 0:
        for s in _SIGNALS:
            if signal.getsignal(s) in (signal.SIG_DFL, None):
                _saved[s] = signal.signal(s, _raise_terminated)
    _depth += main
    try:
        yield
    finally:
        _depth -= main
        if main and _depth == 0:
            for s, old in _saved.items():
                signal.signal(s, old)
            _saved.clear()
