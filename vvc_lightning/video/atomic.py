"""Atomic outputs: a temporary beside the target, renamed onto it on success, removed on an error or signal.

Every write, flush, close, fsync and rename is checked: a full disk, a quota, a file-size limit, a read-only
file system or a folder without write permission ends in one `VVCError` line naming the path and the cause."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from vvc_lightning.errors import VVCError
from vvc_lightning.video.output_paths import cleanup_on_signals, refuse_special

# errno -> what to do about it; these only ever come from writing (never from reading an input)
WRITE_FIXES = {
    errno.ENOSPC: "free space or choose another folder",
    errno.EDQUOT: "free space (disk quota) or choose another folder",
    errno.EFBIG: "choose a folder whose file system (or file-size limit) takes a file this large",
    errno.EROFS: "choose a folder on a writable file system",
    errno.EACCES: "choose a folder you may write to",
    errno.EPERM: "choose a folder you may write to",
}


class WriteError(VVCError):
    """An output could not be written (full disk, read-only file system, no permission ...)."""


def write_error(
    path: str | os.PathLike, exc: BaseException, tmp: str | os.PathLike | None = None
) -> WriteError | None:
    """The one-line error for an OSError raised while writing `path` (through `tmp`), or None when `exc` is
    not a write failure of that output (e.g. an input that cannot be read keeps its own error)."""
    if not isinstance(exc, OSError) or exc.errno not in WRITE_FIXES:
        return None
    names = [
        Path(os.fsdecode(n))
        for n in (exc.filename, exc.filename2)
        if isinstance(n, (str, bytes, os.PathLike))
    ]
    ours = [Path(path), *([Path(tmp)] if tmp is not None else [])]
    # e.g. sendfile names src, dst
    if names and not any(n == p or p in n.parents for n in names for p in ours):
        return None
    return WriteError(
        f"cannot write '{path}': {os.strerror(exc.errno)}; {WRITE_FIXES[exc.errno]} (nothing was written)"
    )


def make_dirs(path: str | os.PathLike) -> Path:
    """Create folder `path` (and its parents) if missing; a one-line error when that is not possible."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:
        raise VVCError(
            f"cannot create folder '{path}': a file of that name is in the way; choose another"
        ) from exc
    except OSError as exc:
        fix = WRITE_FIXES.get(exc.errno or 0, "choose another folder")
        raise WriteError(f"cannot create folder '{path}': {exc.strerror or exc}; {fix}") from exc
    return path


def _fsync(path: Path) -> None:
    """Flush a finished temporary file to the disk (late quota / space errors surface here, not after a
    crash)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(tmp: Path) -> None:
    if tmp.is_dir() and not tmp.is_symlink():
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: str | Path, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` on success, delete it on an error, Ctrl-C
    or SIGTERM. A folder is only ever created new: an existing one at `path` is refused, never emptied; a
    device, FIFO or socket at `path` is refused, never replaced. Write failures become one-line
    `WriteError`s."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise VVCError(f"output folder '{parent}' does not exist; create it first")
    refuse_special(path)
    if path.is_dir() or (is_dir and (path.exists() or path.is_symlink())):
        raise VVCError(f"output '{path}' already exists as a folder or file; name a new one (nothing was "
                       "changed)")
    umask = os.umask(0)
    os.umask(umask)
    with cleanup_on_signals():
        try:
            if is_dir:
                tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent))
                os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700; give the folder the usual permissions
            else:
                fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=parent)
                os.close(fd)
                tmp = Path(name)
                os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
        except OSError as exc:
            raise (write_error(path, exc, parent) or exc) from exc
        try:
            yield tmp
            if is_dir and (path.exists() or path.is_symlink()):
                raise VVCError(f"output '{path}' appeared while writing; the new copy was not moved onto it")
            if not is_dir:
                _fsync(tmp)
            refuse_special(path)  # appeared while writing: never rename over a device, FIFO or socket
            os.replace(tmp, path)
        except BaseException as exc:
            _remove(tmp)
            err = write_error(path, exc, tmp)
            if err is not None:
                raise err from exc
            raise


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB pieces (how shards and zoo entries are checked after writing)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
