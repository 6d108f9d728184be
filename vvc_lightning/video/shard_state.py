"""What a `shard` output folder already holds: its index and plan files (checked, never trusted blindly), the
journal of the temporaries a run created, and the check that a finished shard is whole."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import socket
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from vvc_lightning.video.atomic import sha256_file
from vvc_lightning.video.shard_sources import VideoItem, member_ext
from vvc_lightning.video.video_io import write_bytes_atomic

JOURNAL_FILE = ".shards.temporaries.json"
TEMP_NAME = re.compile(
    r"\.shard-\d{6}\.[A-Za-z0-9_]+\.tmp\.tar"
)  # what atomic_path names a shard's temporary
END_BLOCKS = 2 * 512  # tar's end-of-archive blocks; the archive is then padded to tarfile.RECORDSIZE
MAX_DOC_BYTES = 256 * 2**20  # a larger index, plan or journal is not one we wrote
MAX_META_BYTES = 16 * 2**20  # a video's JSON in a shard: fixed fields plus one CSV row
PLAN_KEYS = {"version": int, "source": str, "max_shard_size": int, "min_frames": int, "shards": int,
             "videos": int, "digest": str}
INDEX_KEYS = {"pattern": str, "videos": int, "bytes": int, "skipped": dict, "shards": list}
INDEX_OPTIONAL = {"plan_digest": str, "not_videos": list}
SHARD_KEYS = {"name": str, "videos": int, "bytes": int, "skipped": list, "sha256": str}
SKIP_KEYS = {"origin": str, "reason": str}


def _is(value: Any, kind: type) -> bool:
    return isinstance(value, kind) and not (kind is int and isinstance(value, bool)) and (
        kind is not int or value >= 0)


def _fields(doc: Any, required: dict[str, type], optional: dict[str, type] | None = None) -> str | None:
    """What is wrong with `doc` as an object of exactly these keys and types, or None."""
    optional = optional or {}
    if not isinstance(doc, dict):
        return f"a JSON {type(doc).__name__}, not an object"
    unknown = sorted(set(doc) - set(required) - set(optional))
    if unknown:
        return f"unknown key '{unknown[0]}'"
    for key, kind in {**required, **optional}.items():
        if key not in doc:
            if key in required:
                return f"no '{key}'"
        elif not _is(doc[key], kind):
            return f"'{key}' is not a {'non-negative integer' if kind is int else kind.__name__}"
    return None


def _skips_problem(records: list[Any]) -> str | None:
    for s in records:
        why = _fields(s, SKIP_KEYS, {"detail": str})
        if why:
            return f"a skipped entry: {why}"
    return None


def plan_problem(doc: Any) -> str | None:
    """What is wrong with a parsed shards.plan.json, or None."""
    return _fields(doc, PLAN_KEYS)


def index_problem(doc: Any) -> str | None:
    """What is wrong with a parsed shards.json, or None."""
    why = _fields(doc, INDEX_KEYS, INDEX_OPTIONAL)
    if why:
        return why
    for sh in doc["shards"]:
        why = _fields(sh, SHARD_KEYS) or _skips_problem(sh["skipped"])
        if why:
            return f"a shard entry: {why}"
        if not re.fullmatch(r"[0-9a-f]{64}", sh["sha256"]):
            return f"a shard entry: 'sha256' of {sh['name']} is not a SHA-256"
    return _skips_problem(doc.get("not_videos", []))


def load_doc(path: Path, problem: Callable[[Any], str | None]) -> tuple[dict[str, Any] | None, str]:
    """(the JSON document at `path`, '') when it is sound; (None, why) when damaged; (None, '') when
    absent."""
    if not path.exists() and not path.is_symlink():
        return None, ""
    if path.is_symlink() or not path.is_file():
        return None, "not a regular file"
    if path.stat().st_size > MAX_DOC_BYTES:
        return None, f"larger than {MAX_DOC_BYTES // 2**20} MiB"
    try:
        doc = json.loads(path.read_bytes())
    except ValueError:
        return None, "not valid JSON"
    except RecursionError:
        return None, "JSON nested too deep"
    except OSError as exc:
        return None, f"unreadable ({exc.strerror or exc})"
    why = problem(doc)
    return (None, why) if why else (doc, "")


def _journal_problem(doc: Any) -> str | None:
    why = _fields(doc, {"temporaries": list})
    if why:
        return why
    for e in doc["temporaries"]:
        why = _fields(e, {"name": str, "pid": int, "host": str})
        if why or not TEMP_NAME.fullmatch(e["name"]):
            return f"an entry: {why or 'not a shard temporary name'}"
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


@contextlib.contextmanager
def start_undone_on_failure(outdir: Path, plan_name: str, made_dir: bool, shards: list) -> Iterator[None]:
    """A `shard` run that fails before any shard exists (`shards`: those it finished or found) leaves nothing
    behind: not the plan it wrote, nor the output folder it made (a plan found there stays for the rerun)."""
    plan = outdir / plan_name
    fresh = not plan.exists()
    try:
        yield
    except BaseException:
        if fresh and not shards and not any(outdir.glob("shard-*.tar")):
            with contextlib.suppress(OSError):
                plan.unlink(missing_ok=True)
                if made_dir:
                    outdir.rmdir()  # only when empty: a temporary another run is writing keeps it
        raise


class TempJournal:
    """The temporaries `shard` runs created in a folder (name, pid, host), so that a rerun deletes those a
    killed run left behind and never a file it did not create."""

    def __init__(self, outdir: Path) -> None:
        self.outdir = outdir
        self.path = outdir / JOURNAL_FILE
        self.entries: list[dict[str, Any]] = []

    def sweep(self) -> list[str]:
        """Delete the temporaries of runs that are gone; notes for the CLI's summary."""
        doc, why = load_doc(self.path, _journal_problem)
        if why:
            self._save()
            return [f"{self.path} was damaged ({why}): no temporary file was deleted"]
        host, removed = socket.gethostname(), 0
        for e in doc["temporaries"] if doc else []:
            if e["host"] != host or (e["pid"] != os.getpid() and _alive(e["pid"])):
                self.entries.append(e)  # another run's, maybe still writing
                continue
            tmp = self.outdir / e["name"]
            if tmp.is_file() and not tmp.is_symlink():
                tmp.unlink()
                removed += 1
        self._save()
        return [f"deleted {removed} temporary file(s) left by a killed run"] if removed else []

    def add(self, tmp: Path) -> None:
        """Record a temporary this run just created."""
        self.entries.append({"name": tmp.name, "pid": os.getpid(), "host": socket.gethostname()})
        self._save()

    def discard(self, tmp: Path) -> None:
        """Forget a temporary that is renamed or deleted."""
        self.entries = [e for e in self.entries if e["name"] != tmp.name or e["pid"] != os.getpid()]
        self._save()

    def _save(self) -> None:
        if self.entries:
            write_bytes_atomic(self.path, json.dumps({"temporaries": self.entries}).encode())
        elif self.path.is_file():
            self.path.unlink()


def verify_tar(path: Path, group: list[VideoItem], why_skipped: Callable[[VideoItem], dict[str, str] | None]
               ) -> tuple[int, list[dict[str, str]], str] | None:
    """(videos, skipped, sha256) of a shard that is a whole tar of `group` in order (each JSON naming its plan
    entry, each video of the size and SHA-256 its JSON gives, then only tar's zero end blocks), and whose
    missing videos are still not videos (`why_skipped` gives None for one that is); None otherwise."""
    size = path.stat().st_size
    if size < END_BLOCKS or size % tarfile.RECORDSIZE:
        return None
    order = {it.key: i for i, it in enumerate(group)}
    present: set[str] = set()
    try:
        with tarfile.open(path) as tar:
            members = tar.getmembers()
            end = max((m.offset_data + -(-m.size // 512) * 512 for m in members), default=0)
            with open(path, "rb") as f:  # after the last member: only the zero end blocks and padding
                f.seek(end)
                if f.read() != bytes(size - end):
                    return None
            if len(members) % 2:
                return None
            last = -1
            for meta_m, data_m in zip(members[::2], members[1::2], strict=True):
                key = meta_m.name.removesuffix(".json")
                if meta_m.name != f"{key}.json" or key not in order or order[key] <= last:
                    return None
                if meta_m.size > MAX_META_BYTES:
                    return None
                it, last = group[order[key]], order[key]
                if data_m.name != f"{key}.{member_ext(it.name)}" or not (meta_m.isfile() and data_m.isfile()):
                    return None
                if data_m.size != it.size:
                    return None
                meta = json.loads(tar.extractfile(meta_m).read())
                data = tar.extractfile(data_m).read()
                expect = {"key": key, "name": it.name, "origin": it.origin, "bytes": it.size,
                          "sha256": hashlib.sha256(data).hexdigest()}
                if len(data) != it.size or any(meta.get(k) != v for k, v in expect.items()):
                    return None
                if json.dumps(meta.get("csv", {}), sort_keys=True) != json.dumps(it.meta, sort_keys=True):
                    return None
                present.add(key)
    except (tarfile.TarError, OSError, EOFError, ValueError, AttributeError, RecursionError):
        return None
    skipped = []
    for it in group:
        if it.key not in present:
            record = why_skipped(it)
            if record is None:  # a video the shard should hold: cut short
                return None
            skipped.append(record)
    return len(present), skipped, sha256_file(path)
