"""Thread count of the codec under load: never more threads than cores that other processes leave free.

OpenMP threads that share a core with a busy process wait on each other at every barrier: beside one busy
process, two threads on 2 cores encoded at 3.6 frames/s where one thread gave 5.2 (docs: DESIGN.md). The
codec therefore runs `choose_threads(...)` threads: at most the cores this process may use (affinity and
cgroup quota), less the cores other processes keep busy (`/proc/stat` minus this process's own CPU time,
else the 1-minute load average), and at least one. It is re-chosen after every pass (`ThreadGovernor.update`),
which costs nothing: thread counts never change a byte or a pixel (tests/codec/pipeline/test_determinism.py).
An explicit count (`threads=N`, or OMP_NUM_THREADS in the environment) is used as given.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import TracebackType

import torch

SAMPLE_SECONDS = 0.1  # first look at the machine (20 clock ticks on 2 cores), unless a recent look is at hand
MARK_MAX_AGE = 10.0
_last_mark: list = []  # the latest (wall, /proc/stat, process CPU) look of any governor in this process


def choose_threads(limit: int, cores: int, busy: float) -> int:
    """Threads for `cores` usable cores, `busy` of them kept busy by others: at most `limit`, at least 1."""
    free = int(cores - busy + 0.5)  # a core counts as free unless others keep it over half busy
    return max(1, min(limit, cores, free))


def usable_cores() -> int:
    """Cores this process may run on: its CPU affinity, capped by a cgroup CPU quota when there is one."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, int(-(-int(quota) // int(period)))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def _cpu_jiffies() -> tuple[float, float] | None:
    """(busy, total) seconds summed over the CPUs this process may use, from /proc/stat; None elsewhere."""
    try:
        mine = os.sched_getaffinity(0)
        lines = Path("/proc/stat").read_text().splitlines()
    except (AttributeError, OSError):
        return None
    busy = total = 0.0
    for line in lines:
        name, *fields = line.split()
        if not (name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in mine):
            continue
        values = [float(v) for v in fields[:8]]
        idle = values[3] + values[4]  # idle, iowait
        busy, total = busy + sum(values) - idle, total + sum(values)
    hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    return (busy / hz, total / hz) if total else None


class ThreadGovernor:
    """Sets torch's thread count for a run from the load beside it, re-chosen by `update()`, restored on exit.

    threads: an explicit count (used as given), or None to choose from the load, at most torch's current
    count (its default is every core; OMP_NUM_THREADS in the environment counts as explicit).
    """

    def __init__(self, threads: int | None = None) -> None:
        self.fixed = (
            threads
            if threads is not None
            else (torch.get_num_threads() if os.environ.get("OMP_NUM_THREADS") else None)
        )
        self.limit = torch.get_num_threads()
        self.cores = usable_cores()
        self.history: list[int] = []  # threads chosen, in order
        self._saved = 0
        self._mark: tuple[float, tuple[float, float] | None, float] | None = None

    def _sample(self) -> tuple[float, tuple[float, float] | None, float]:
        mark = time.perf_counter(), _cpu_jiffies(), time.process_time()
        _last_mark[:] = [mark]
        return mark

    def others_busy(self) -> float:
        """Cores kept busy by other processes since the last look (this process's own CPU time excluded)."""
        now = self._sample()
        before, self._mark = self._mark, now
        wall = max(now[0] - before[0], 1e-6) if before is not None else 0.0
        own = (now[2] - before[2]) / wall if before is not None else 0.0
        if before is None or before[1] is None or now[1] is None or now[1][1] <= before[1][1]:
            load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
            return max(0.0, load - own)  # no /proc/stat: the 1-minute load average, less this process
        return min(float(self.cores), max(0.0, (now[1][0] - before[1][0]) / wall - own))

    def update(self) -> int:
        """Choose the thread count again from the load since the last call and apply it."""
        n = (
            self.fixed
            if self.fixed is not None
            else choose_threads(self.limit, self.cores, self.others_busy())
        )
        n = max(1, int(n))
        if n != torch.get_num_threads():
            torch.set_num_threads(n)
        self.history.append(n)
        return n

    def __enter__(self) -> ThreadGovernor:
        self._saved = torch.get_num_threads()
        if self.fixed is None:
            recent = _last_mark[0] if _last_mark else None
            age = time.perf_counter() - recent[0] if recent else -1.0
            if SAMPLE_SECONDS <= age <= MARK_MAX_AGE:
                self._mark = recent  # the load since a recent run ended: no need to wait
            else:
                self._mark = self._sample()
                time.sleep(SAMPLE_SECONDS)
        self.update()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if torch.get_num_threads() != self._saved:
            torch.set_num_threads(self._saved)
