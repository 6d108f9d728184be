"""What this process may still allocate, so that a memory budget never plans past it, and an allocation
that fails anyway while coding ends in one line naming the budget.

Three limits are read, the tightest wins: the address-space limit (RLIMIT_AS, `ulimit -v`) less the address
space the process maps now; the memory limit of its cgroup (v2 `memory.max`, v1 `memory.limit_in_bytes`)
less what the cgroup uses beyond reclaimable file cache; and the machine's available memory (MemAvailable).
A pass's budget is at most `SHARE` of that, the rest left to the model, the reader, the writer and the
allocator's own overhead. Only a budget that would not fit changes: a run whose plan fits is coded as before.
"""

from __future__ import annotations

import contextlib
import resource
from collections.abc import Callable, Iterator
from pathlib import Path

from vvc_lightning.codec.pipeline.memory import size_text
from vvc_lightning.errors import CodecOptionError

SHARE = 0.75  # of what may still be allocated, the most a pass's budget takes
_NO_LIMIT = 1 << 60  # cgroup limits at or above this mean none
_OOM_WORDS = ("not enough memory", "can't allocate memory", "cannot allocate memory", "out of memory")


def _read_int(path: Path, key: str | None = None) -> int | None:
    """An integer file (or the `key` line of a 'key value' file, in kB units when it says so)."""
    try:
        text = path.read_text()
    except (OSError, ValueError):
        return None
    if key is None:
        text = text.strip()
        return int(text) if text.isdigit() else None
    for line in text.splitlines():
        parts = line.replace(":", " ").split()
        if len(parts) >= 2 and parts[0] == key and parts[1].isdigit():
            return int(parts[1]) * (1024 if parts[2:3] == ["kB"] else 1)
    return None


def _address_space() -> int | None:
    """RLIMIT_AS less the address space mapped now; None without a limit."""
    soft = resource.getrlimit(resource.RLIMIT_AS)[0]
    if soft == resource.RLIM_INFINITY or soft < 0:
        return None
    return soft - (_read_int(Path("/proc/self/status"), "VmSize") or 0)


def _cgroup_dirs() -> Iterator[tuple[Path, str]]:
    """(folder, version) of this process's memory cgroup, as mounted here (its own path, then the root)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return
    root = Path("/sys/fs/cgroup")
    for line in lines:
        _, controllers, rel = line.split(":", 2) if line.count(":") >= 2 else ("", "", "")
        if controllers == "":
            yield from ((d, "v2") for d in (root / rel.lstrip("/"), root))
        elif "memory" in controllers.split(","):
            yield from ((d, "v1") for d in (root / "memory" / rel.lstrip("/"), root / "memory"))


def _cgroup() -> int | None:
    """The memory cgroup's limit less its usage beyond inactive file cache; None without a limit."""
    names = {"v2": ("memory.max", "memory.current", "inactive_file"),
             "v1": ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")}
    for folder, version in _cgroup_dirs():
        limit_file, usage_file, cache_key = names[version]
        limit = _read_int(folder / limit_file)
        if limit is None:
            continue
        if limit >= _NO_LIMIT:
            return None
        usage = _read_int(folder / usage_file) or 0
        cache = _read_int(folder / "memory.stat", cache_key) or 0
        return limit - max(usage - cache, 0)
    return None


def allocatable() -> tuple[int, str] | None:
    """(bytes this process may still allocate, which limit says so), or None where no limit is known."""
    found = [
        (room, why)
        for room, why in (
            (_address_space(), "its address-space limit (ulimit -v)"),
            (_cgroup(), "its cgroup's memory limit"),
            (_read_int(Path("/proc/meminfo"), "MemAvailable"), "the machine's available memory"),
        )
        if room is not None
    ]
    return min(found) if found else None


def usable_budget(budget: int) -> tuple[int, str]:
    """`budget`, or less where this process may not allocate that much: (bytes, '' or why it is less)."""
    room = allocatable()
    if room is None or int(room[0] * SHARE) >= budget:
        return budget, ""
    cap = max(int(room[0] * SHARE), 1 << 20)
    return cap, f"all that {room[1]} leaves, about {size_text(max(room[0], 0))}"


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether `exc` is an allocation that failed (MemoryError, or torch's RuntimeError saying so)."""
    if isinstance(exc, MemoryError):
        return True
    return isinstance(exc, RuntimeError) and any(w in str(exc).lower() for w in _OOM_WORDS)


@contextlib.contextmanager
def out_of_memory_as_error(side: str, budget: Callable[[], int]) -> Iterator[None]:
    """An allocation that fails inside becomes one `CodecOptionError` naming max_memory (`budget()`: the
    budget the passes were planned with)."""
    try:
        yield
    except (MemoryError, RuntimeError) as exc:
        if not is_out_of_memory(exc):
            raise
        planned = budget()
        smaller = size_text(max(planned // 2, 1 << 20))
        raise CodecOptionError(
            "max_memory",
            f"of {size_text(planned)} was more than this process could allocate: it ran out of memory "
            f"while {side.rstrip('e')}ing; pass a smaller max_memory (e.g. {smaller}) so frames are coded in "
            "tiles, or a smaller gop",
            ("gop",),
        ) from exc
