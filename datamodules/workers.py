"""Loader workers that cannot inherit a held lock, and a watchdog for a loader that delivers nothing.

A process that has converted video frames with FFmpeg's scaler holds the scaler's thread pool; a child
made by `fork` inherits its locks but not its threads and waits forever in its first conversion. Workers
therefore start from a fork server (a fresh interpreter that never decodes, with torch, PyAV and the
datamodules imported once) or, where there is none, by `spawn`.
"""

from __future__ import annotations

import faulthandler
import functools
import multiprocessing
import os
import re
import shutil
import signal
import tempfile
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from torch.utils.data import DataLoader

from vvc_lightning.errors import ConfigError, VVCError

DEFAULT_TIMEOUT_S = 300.0
PRELOAD = ["numpy", "torch", "av", "webdataset", "vvc_lightning.datamodules.streaming",
           "vvc_lightning.datamodules.clips", "vvc_lightning.video.video_sources"]
_DUMP_SIGNAL = getattr(signal, "SIGUSR1", None)
_KEEP_OPEN: list = []  # a worker's dump file stays open for faulthandler


class LoaderStalled(VVCError):
    """A data loader delivered no batch within its timeout; the message names the worker and where it
    waits."""


def worker_context(extra: list[str] | tuple[str, ...] = ()) -> multiprocessing.context.BaseContext:
    """The start method of loader workers and of process pools that may decode video: the fork server
    (torch, PyAV, our readers and the modules `extra` preloaded once, by the call that starts it), else
    spawn."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        from multiprocessing import forkserver

        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload([*PRELOAD, *extra])
        forkserver.ensure_running()  # the server preloads while the caller goes on
        return ctx
    return multiprocessing.get_context("spawn")


def check_timeout(value: Any, key: str = "data.loader_timeout") -> float:
    """A loader timeout in seconds (0: wait forever), or a ConfigError naming the key."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or not 0 <= value < float("inf"):
        raise ConfigError(f"{key} must be a number of seconds >= 0 (0: wait forever), got {value!r}")
    return float(value)


def loader_options(num_workers: int, timeout: float) -> dict[str, Any]:
    """DataLoader keyword arguments for `num_workers` workers: safe start method, persistent workers and
    the watchdog's timeout (nothing of these without workers)."""
    if num_workers == 0:
        return {"num_workers": 0}
    return {"num_workers": num_workers, "multiprocessing_context": worker_context(),
            "persistent_workers": True, "timeout": timeout}


def _arm_dump(dump_dir: str, user_init: Callable[[int], None] | None, worker_id: int) -> None:
    """In a worker: write every thread's Python stack to `dump_dir/PID.txt` on the dump signal."""
    if _DUMP_SIGNAL is not None:
        f = open(os.path.join(dump_dir, f"{os.getpid()}.txt"), "w")  # noqa: SIM115 - kept open
        _KEEP_OPEN.append(f)
        faulthandler.register(_DUMP_SIGNAL, file=f, all_threads=True)
    if user_init is not None:
        user_init(worker_id)


_FRAME = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+) in (?P<func>\S+)')


def _short(path: str) -> str:
    """A source path from the working folder, the package or site-packages on (`vvc_lightning/video/x.py`)."""
    rel = os.path.relpath(path) if os.path.isabs(path) else path
    if not rel.startswith(".."):
        return rel.replace("\\", "/")
    parts = path.replace("\\", "/").split("/")
    for anchor in ("vvc_lightning", "site-packages"):
        if anchor in parts:
            i = len(parts) - 1 - parts[::-1].index(anchor)
            return "/".join(parts[i + (anchor == "site-packages"):])
    return "/".join(parts[-2:])


def where_it_waits(dump: str, depth: int = 4) -> str:
    """'f (file:line) <- g (file:line) ...' of the thread that took the signal (innermost first)."""
    blocks = re.split(r"\n(?=(?:Current thread|Thread) 0x)", dump.strip())
    block = next((b for b in blocks if b.startswith("Current thread")), blocks[0] if blocks else "")
    frames = [f"{m['func']} ({_short(m['file'])}:{m['line']})" for m in _FRAME.finditer(block)]
    return " <- ".join(frames[:depth]) if frames else "an unknown place (no Python stack could be read)"


def _describe_stall(it: Any, dump_dir: str | None, timeout: float) -> str:
    """One line naming each live worker of iterator `it` and where it waits."""
    workers = [(i, w) for i, w in enumerate(getattr(it, "_workers", [])) if w.is_alive()]
    places = {i: "its start-up (it has not begun loading)" for i, _ in workers}
    armed = {}
    if dump_dir is not None and _DUMP_SIGNAL is not None:
        for i, w in workers:
            path = os.path.join(dump_dir, f"{w.pid}.txt")
            if os.path.exists(path):  # only a worker that has armed its dump takes the signal
                try:
                    os.kill(w.pid, _DUMP_SIGNAL)
                    armed[i] = path
                except OSError:
                    continue
        deadline = time.monotonic() + 3.0
        while armed and time.monotonic() < deadline:
            time.sleep(0.1)
            for i, path in list(armed.items()):
                if os.path.getsize(path) > 0:
                    time.sleep(0.1)  # let the dump finish
                    with open(path) as f:
                        places[i] = where_it_waits(f.read())
                    del armed[i]
    named = "; ".join(f"worker {i} (pid {w.pid}) waits in {places[i]}" for i, w in workers)
    named = named or "no worker is alive"
    return (f"the data loader delivered no batch in {timeout:g} s: {named}; stopped. If loading is just "
            "slow, raise data.loader_timeout (0 waits forever)")


class _Watched:
    """An iterator over a multi-process loader's batches that turns a timeout into LoaderStalled."""

    def __init__(self, it: Iterator, loader: WatchedDataLoader) -> None:
        self._it, self._loader = it, loader

    def __iter__(self) -> _Watched:
        return self

    def __next__(self) -> Any:
        try:
            return next(self._it)
        except RuntimeError as exc:
            if "timed out" not in str(exc):
                raise
            dump_dir = getattr(self._it, "_vvc_dump_dir", None)
            message = _describe_stall(self._it, dump_dir, self._loader.timeout)
            shutdown = getattr(self._it, "_shutdown_workers", None)
            if shutdown is not None:
                shutdown()
            self._loader._iterator = None  # a persistent loader starts new workers on its next pass
            raise LoaderStalled(message) from None

    def __len__(self) -> int:
        return len(self._it)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["_it"], name)


class WatchedDataLoader(DataLoader):
    """A DataLoader whose workers, when it has a timeout, dump their stacks so that a stall is reported
    as one line naming the worker and where it waits (LoaderStalled), never waited on forever."""

    def _get_iterator(self):
        if self.num_workers == 0 or not self.timeout or _DUMP_SIGNAL is None:
            return super()._get_iterator()
        dump_dir = tempfile.mkdtemp(prefix="vvc-loader-")
        user_init = self.worker_init_fn
        self.worker_init_fn = functools.partial(_arm_dump, dump_dir, user_init)
        try:
            it = super()._get_iterator()
        finally:
            self.worker_init_fn = user_init
        it._vvc_dump_dir = dump_dir
        weakref.finalize(it, shutil.rmtree, dump_dir, True)
        return it

    def __iter__(self):
        it = super().__iter__()
        return _Watched(it, self) if self.num_workers > 0 and self.timeout else it


__all__ = ["DEFAULT_TIMEOUT_S", "LoaderStalled", "WatchedDataLoader", "check_timeout", "loader_options",
           "where_it_waits", "worker_context"]
