"""Reading untrusted inputs: only regular files are opened (never a FIFO, a device or a folder, which could
hang or never end), and whole-file reads are bounded by a size, not by what `st_size` claims."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from vvc_lightning.errors import VVCError
from vvc_lightning.video.output_paths import special_kind


class NotRegularFile(ValueError):
    """A path that exists but is not a regular file; the message says what it is ("a FIFO (named pipe)")."""


class TooLarge(ValueError):
    """A file holds more bytes than the reader takes; `size` is what it holds (at least `limit` + 1)."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"it is {size} bytes (at most {limit})")
        self.size, self.limit = size, limit


def _kind(path: str | os.PathLike, mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    return special_kind(path) or "not a regular file"


def open_regular(path: str | os.PathLike) -> BinaryIO:
    """`path` opened for binary reading when it is (after links) a regular file; `NotRegularFile` else
    (nothing but a regular file is opened, and a FIFO swapped in meanwhile opens without waiting); OSError
    as `open` raises it."""
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        raise NotRegularFile(_kind(path, mode))
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile(_kind(path, mode))
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | os.PathLike, limit: int) -> bytes:
    """The bytes of regular file `path`, at most `limit` of them (`TooLarge` past it, read no further);
    `NotRegularFile` / OSError as `open_regular`."""
    with open_regular(path) as f:
        size = os.fstat(f.fileno()).st_size
        if size > limit:
            raise TooLarge(size, limit)
        data = f.read(limit + 1)  # a file that grew meanwhile: still no more than limit + 1 bytes
    if len(data) > limit:
        raise TooLarge(len(data), limit)
    return data


class FileBytes:
    """A regular file read on demand, as far as `len` and slicing go (a slice reads just its bytes): a reader
    of a multi-GB file holds only what it asks for. Reads come through a 1 MiB window, so walking small
    records in order costs few system calls; a file cut short meanwhile is one `VVCError` line."""

    WINDOW = 1 << 20

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._file = open_regular(path)
        self._size = os.fstat(self._file.fileno()).st_size
        self._window: tuple[int, bytes] = (0, b"")

    def __len__(self) -> int:
        return self._size

    def close(self) -> None:
        self._file.close()

    def _read(self, start: int, n: int) -> bytes:
        parts, fd = [], self._file.fileno()
        while n > 0:
            got = os.pread(fd, min(n, 1 << 30), start)
            if not got:
                raise VVCError(f"'{self.path}' was cut short while it was read (it ends at byte {start} of "
                               f"{self._size}); read it again once nothing writes it")
            parts.append(got)
            start, n = start + len(got), n - len(got)
        return b"".join(parts)

    def __getitem__(self, key: slice) -> bytes:
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError("FileBytes takes slices [a:b] only")
        start, stop, _ = key.indices(self._size)
        if stop <= start:
            return b""
        base, buf = self._window
        if base <= start and stop <= base + len(buf):
            return buf[start - base : stop - base]
        if stop - start >= self.WINDOW:
            return self._read(start, stop - start)
        buf = self._read(start, min(self.WINDOW, self._size - start))
        self._window = (start, buf)
        return buf[: stop - start]
