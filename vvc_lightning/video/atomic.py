"""Atomic outputs: a temporary beside the target, renamed onto it on success, removed on an error or signal."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from vvc_lightning.errors import VVCError
from vvc_lightning.video.output_paths import cleanup_on_signals


@contextlib.contextmanager
def atomic_path(path: str | Path, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` on success, delete it on an error, Ctrl-C or
    SIGTERM. A folder is only ever created new: an existing one at `path` is refused, never emptied."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise VVCError(f"output folder '{parent}' does not exist; create it first")
    if path.is_dir() or (is_dir and path.exists()):
        raise VVCError(f"output '{path}' already exists as a folder or file; name a new one (nothing was changed)")
    umask = os.umask(0)
    os.umask(umask)
    with cleanup_on_signals():
        if is_dir:
            tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent))
            os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700; give the folder the usual permissions
        else:
            fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=parent)
            os.close(fd)
            tmp = Path(name)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
        try:
            yield tmp
            if is_dir and path.exists():
                raise VVCError(f"output '{path}' appeared while writing; the new copy was not moved onto it")
            os.replace(tmp, path)
        except BaseException:
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
            raise
