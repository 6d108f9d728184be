"""Atomic outputs: a temporary beside the target, renamed onto it on success, removed on an error or signal.

Every write, flush, close, fsync and rename is checked: a full disk, a quota, a file-size limit, a read-only
file system or a folder without write permission ends in one `VVCError` line naming the path and the cause.
Unless the caller may replace the target (`replace=True`, e.g. --overwrite), the last step never replaces
anything: a file is hard-linked to its name (or renamed with RENAME_NOREPLACE), so of two runs writing one
output, exactly one wins and the other says so in one line."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import functools
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


class OutputTaken(VVCError):
    """Another run wrote the output while this one was writing it; this run's copy was discarded."""


def _taken(path: Path) -> OutputTaken:
    return OutputTaken(
        f"output '{path}' appeared while this run was writing it (another run?); it was kept and this run's "
        "copy discarded: name another output"
    )


_NOREPLACE_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP,
                          errno.EMLINK, errno.EXDEV}


@functools.cache
def _renameat2() -> Any:
    """libc's renameat2, or None where there is none."""
    name = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(name, use_errno=True), "renameat2", None) if name else None
    except OSError:
        return None


def _rename_noreplace(src: Path, dst: Path) -> bool:
    """renameat2(RENAME_NOREPLACE) of `src` onto `dst`: True when done, False where the system or the file
    system lacks it; FileExistsError when `dst` exists."""
    fn = _renameat2()
    if fn is None:
        return False
    at_fdcwd, noreplace = -100, 1
    if fn(at_fdcwd, os.fsencode(src), at_fdcwd, os.fsencode(dst), noreplace) == 0:
        return True
    err = ctypes.get_errno()
    if err == errno.EEXIST:
        raise FileExistsError(err, os.strerror(err), str(dst))
    if err in _NOREPLACE_UNSUPPORTED:
        return False
    raise OSError(err, os.strerror(err), str(src), None, str(dst))


def _place(tmp: Path, path: Path, is_dir: bool) -> None:
    """Move the finished `tmp` to `path` without ever replacing what is there (`OutputTaken` if something is):
    a hard link then an unlink for a file, else RENAME_NOREPLACE, else (neither supported) a check and a
    rename."""
    try:
        if not is_dir:
            try:
                os.link(tmp, path, follow_symlinks=False)
            except OSError as exc:
                if isinstance(exc, FileExistsError) or exc.errno not in _NOREPLACE_UNSUPPORTED:
                    raise
            else:
                with contextlib.suppress(OSError):  # the output is in place either way
                    tmp.unlink()
                return
        if _rename_noreplace(tmp, path):
            return
        if path.exists() or path.is_symlink():
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(path))
        os.rename(tmp, path)
    except FileExistsError as exc:
        raise _taken(path) from exc


def _remove(tmp: Path) -> None:
    if tmp.is_dir() and not tmp.is_symlink():
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: str | Path, is_dir: bool = False, replace: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `path`; move it to `path` on success, delete it on an error, Ctrl-C
    or SIGTERM. A folder is only ever created new: an existing one at `path` is refused, never emptied; a
    device, FIFO or socket at `path` is refused, never replaced. A file replaces one at `path` only when
    `replace`; else one that appears meanwhile is kept (`OutputTaken`). Write failures become one-line
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
            if (is_dir or not replace) and (path.exists() or path.is_symlink()):
                raise _taken(path)
            if not is_dir:
                _fsync(tmp)
            refuse_special(path)  # appeared while writing: never rename over a device, FIFO or socket
            if is_dir or not replace:
                _place(tmp, path, is_dir)
            else:
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
