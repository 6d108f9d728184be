"""Writing videos into webdataset tar shards (video bytes + JSON metadata), atomically and resumably.

The shard plan (which video goes into which shard) depends only on the inputs and options, so a
killed run re-run with the same arguments skips the finished shards and writes the rest. Each shard
appears under its final name only once complete; a killed run leaves at most a hidden temporary, which the
next run deletes because the folder's journal names it as a shard run's own (never a file it did not create).
"""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import re
import tarfile
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vvc_lightning.errors import VVCError
from vvc_lightning.video.atomic import sha256_file
from vvc_lightning.video.shard_sources import (
    VideoItem,
    find_inputs,
    load_and_probe,
    member_ext,
    refuse_source_inside,
    sample_key,
    skip_record,
)
from vvc_lightning.video.shard_state import (
    END_BLOCKS,
    TempJournal,
    index_problem,
    load_doc,
    plan_problem,
    start_undone_on_failure,
    verify_tar,
)
from vvc_lightning.video.video_io import atomic_path, write_bytes_atomic

PLAN_FILE = "shards.plan.json"
INDEX_FILE = "shards.json"
SHARD_NAME = "shard-{:06d}.tar"
JSON_BOUND = 512  # the fixed part of a video's JSON (keys, numbers, SHA-256), bytes
MAX_LISTED = 50  # skipped files listed in the printed summary; shards.json lists them all
UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
         "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_size(text: str | int) -> int:
    """Bytes from '1GB', '500MB', '1.5GiB' or a plain number."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(text))
    if not m or m.group(2).lower() not in UNITS:
        raise VVCError(f"cannot read size '{text}': write it like 1GB, 500MB, 2GiB or a number of bytes")
    size = int(float(m.group(1)) * UNITS[m.group(2).lower()])
    if size <= 0:
        raise VVCError(f"size must be positive, got '{text}'")
    return size


def _blocks(n: int, size: int = 512) -> int:
    return -(-n // size) * size


def _entry_bound(it: VideoItem) -> int:
    """An upper bound of the bytes a video takes in a shard: two tar headers, its data and its JSON (padded to
    512-byte blocks), and PAX headers when a name is long or not ASCII."""
    name, origin = len(it.name.encode()), len(it.origin.encode())
    meta = len(json.dumps(it.meta)) if it.meta else 0
    pax = 4 * 512 if name > 90 or not (it.name.isascii() and it.origin.isascii()) else 0
    return 2 * 512 + _blocks(it.size) + _blocks(JSON_BOUND + 3 * name + origin + meta) + pax


def _shard_bound(entries: int) -> int:
    return _blocks(entries + END_BLOCKS, tarfile.RECORDSIZE)


def plan_shards(items: list[VideoItem], max_bytes: int) -> list[list[VideoItem]]:
    """Consecutive groups of videos whose shard stays within `max_bytes`; a video that cannot fit any shard
    of that size is an error (raise --max-shard-size), so no shard ever exceeds the limit."""
    shards: list[list[VideoItem]] = []
    current: list[VideoItem] = []
    total = 0
    for it in items:
        size = _entry_bound(it)
        if _shard_bound(size) > max_bytes:
            raise VVCError(
                f"video '{it.origin}' ({it.size} bytes) does not fit a shard of --max-shard-size {max_bytes} "
                "bytes "
                f"(with its tar headers it needs up to {_shard_bound(size)}); raise --max-shard-size"
            )
        if current and _shard_bound(total + size) > max_bytes:
            shards.append(current)
            current, total = [], 0
        current.append(it)
        total += size
    if current:
        shards.append(current)
    return shards


def assign_keys(items: list[VideoItem]) -> None:
    """Give every video a unique webdataset key (its cleaned stem, suffixed _1, _2, ... on clashes)."""
    used: set[str] = set()
    for it in items:
        base = key = sample_key(it.name)
        k = 1
        while key in used:
            key, k = f"{base}_{k}", k + 1
        used.add(key)
        it.key = key


def _tar_add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o444
    tar.addfile(info, io.BytesIO(data))


@dataclass
class ShardStats:
    """What one shard holds and what was left out of it."""

    name: str
    videos: int = 0
    bytes: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)
    sha256: str = ""


@dataclass
class Summary:
    """Totals of a shard run."""

    outdir: Path
    shards: list[ShardStats]
    written_now: int = 0
    resumed: int = 0
    notes: list[str] = field(default_factory=list)
    not_videos: list[dict[str, str]] = field(default_factory=list)  # files found no video before planning

    @property
    def videos(self) -> int:
        return sum(s.videos for s in self.shards)

    @property
    def bytes(self) -> int:
        return sum(s.bytes for s in self.shards)

    def skipped(self) -> list[dict[str, str]]:
        """Every file left out, with its reason, by name."""
        return sorted(
            [*self.not_videos, *(s for sh in self.shards for s in sh.skipped)], key=lambda s: s["origin"]
        )

    def skip_reasons(self) -> Counter[str]:
        return Counter(s["reason"] for s in self.skipped())

    def pattern(self) -> str:
        """Brace pattern naming every shard, for data.train_shards."""
        n = len(self.shards)
        last = SHARD_NAME.format(n - 1)
        return str(
            self.outdir / (last if n == 1 else SHARD_NAME.replace("{:06d}", f"{{000000..{n - 1:06d}}}"))
        )

    def text(self) -> str:
        """The closing summary printed by the CLI."""
        lines = [*self.notes]
        reasons = self.skip_reasons()
        skipped = self.skipped()
        lines.append(f"videos written: {self.videos}")
        lines.append(
            f"files skipped: {len(skipped)}"
            + (f" ({', '.join(f'{v} {k}' for k, v in reasons.most_common())})" if skipped else "")
        )
        for s in skipped[:MAX_LISTED]:
            lines.append(
                f"  skipped {s['origin']}: {s['reason']}" + (f" ({s['detail']})" if s.get("detail") else "")
            )
        if len(skipped) > MAX_LISTED:
            lines.append(f"  ... and {len(skipped) - MAX_LISTED} more, all listed in "
                         f"{self.outdir / INDEX_FILE}")
        empty = sum(1 for s in self.shards if s.videos == 0)
        lines.append(
            f"shards: {len(self.shards)} ({self.written_now} written now, {self.resumed} already done"
            + (f", {empty} empty" if empty else "")
            + ")"
        )
        lines.append(f"bytes: {self.bytes} ({self.bytes / 1e9:.2f} GB)")
        lines.append(f"use: data.train_shards={self.pattern()}")
        return "\n".join(lines)


def _plan_doc(src: Path, shards: list[list[VideoItem]], max_bytes: int, min_frames: int) -> dict[str, Any]:
    listing = [[f"{it.key}={it.origin}:{it.size}" for it in sh] for sh in shards]
    digest = hashlib.sha256(json.dumps(listing).encode()).hexdigest()
    return {"version": 1, "source": str(src), "max_shard_size": max_bytes, "min_frames": min_frames,
            "shards": len(shards), "videos": sum(map(len, shards)), "digest": digest}


def _check_plan(outdir: Path, plan: dict[str, Any], notes: list[str]) -> None:
    path = outdir / PLAN_FILE
    old, why = load_doc(path, plan_problem)
    if why:
        notes.append(f"{path} was damaged ({why}): ignored it, checked the shards against this run's plan, "
                     "wrote it anew")
    elif old is not None and (old["digest"] != plan["digest"] or old["min_frames"] != plan["min_frames"]):
        raise VVCError(
            f"'{outdir}' holds shards of a different plan (other inputs or options: was "
            f"{old['videos']} videos, max_shard_size {old['max_shard_size']}, min_frames "
            f"{old['min_frames']}); write to a new folder or delete that one"
        )
    write_bytes_atomic(path, json.dumps(plan, indent=1).encode())


def _old_records(outdir: Path, digest: str, notes: list[str]) -> dict[str, dict[str, Any]]:
    """The shard records of a sound shards.json written for this plan; {} (shards checked by content) else."""
    path = outdir / INDEX_FILE
    doc, why = load_doc(path, index_problem)
    if why:
        notes.append(f"{path} was damaged ({why}): ignored it and checked every shard's contents")
    if doc is None or doc.get("plan_digest") != digest:
        return {}
    return {s["name"]: s for s in doc["shards"]}


def _refuse_file(outdir: Path) -> None:
    if outdir.exists() and not outdir.is_dir():
        raise VVCError(f"-o '{outdir}' is an existing file, not a folder; name a folder for the shards")


def _prepare_outdir(outdir: Path) -> None:
    _refuse_file(outdir)
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VVCError(f"cannot create the output folder '{outdir}': {exc.strerror or exc}; "
                       "name a folder you can write") from exc


def _verified(path: Path, recorded: dict[str, Any] | None, group: list[VideoItem], min_frames: int
              ) -> ShardStats | None:
    """The stats of a finished shard if it is intact (size and SHA-256 as recorded in the index, or, without a
    record, a whole tar of this group whose members match their JSON and the plan, where each video left
    out is still no video); None if it is damaged or cut short and must be redone."""
    if recorded is not None:
        if path.stat().st_size != recorded["bytes"] or sha256_file(path) != recorded["sha256"]:
            return None
        return ShardStats(**recorded)

    def why_skipped(it: VideoItem) -> dict[str, str] | None:
        data, _, why = load_and_probe((it, min_frames))
        return None if data is not None else skip_record(it.origin, *why)

    found = verify_tar(path, group, why_skipped)
    return None if found is None else ShardStats(path.name, found[0], path.stat().st_size, found[1], found[2])


def write_shards(
    src: str | Path,
    outdir: str | Path,
    max_shard_size: str | int = "1GB",
    min_frames: int = 25,
    csv_path: str | Path | None = None,
    workers: int = 1,
    progress: bool = True,
) -> Summary:
    """Shard the videos of `src` into `outdir`/shard-NNNNNN.tar; resumes a killed run of the same plan."""
    outdir = Path(outdir).expanduser()
    max_bytes = parse_size(max_shard_size)
    _refuse_file(outdir)  # before the inputs are read
    refuse_source_inside(Path(src).expanduser(), outdir)
    found = find_inputs(src, csv_path, exclude=outdir)
    items = found.items
    assign_keys(items)
    shards = plan_shards(items, max_bytes)
    made_dir = not outdir.exists()
    _prepare_outdir(outdir)
    summary = Summary(outdir, [], notes=found.notes, not_videos=found.skipped)
    with start_undone_on_failure(outdir, PLAN_FILE, made_dir, summary.shards):
        _write_plan(src, outdir, shards, max_bytes, min_frames, workers, progress, summary)
    if summary.videos == 0:
        raise VVCError(f"no video was written from '{src}' ({_why_none(summary)}); "
                       "check the source folder and --min-frames")
    return summary


def _write_plan(src: str | Path, outdir: Path, shards: list[list[VideoItem]], max_bytes: int, min_frames: int,
                workers: int, progress: bool, summary: Summary) -> None:
    """Write (or resume) the shards of `shards` into `outdir`, recording each in `summary`."""
    from tqdm import tqdm

    items = [it for group in shards for it in group]
    journal = TempJournal(outdir)
    summary.notes += journal.sweep()
    plan = _plan_doc(Path(src), shards, max_bytes, min_frames)
    _check_plan(outdir, plan, summary.notes)
    old_stats = _old_records(outdir, plan["digest"], summary.notes)
    index_path = outdir / INDEX_FILE
    bar = tqdm(total=len(items), unit="video", desc="shard", disable=not progress)
    # spawn, not fork: a forked child inherits the parent's threads and open handles (torch, numba, zip files)
    pool = (
        ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) if workers > 1 else None
    )
    try:
        for i, group in enumerate(shards):
            path = outdir / SHARD_NAME.format(i)
            if path.is_file():
                st = _verified(path, old_stats.get(path.name), group, min_frames)
                if st is not None:
                    summary.shards.append(st)
                    summary.resumed += 1
                    bar.update(len(group))
                    continue
                summary.notes.append(f"{path.name} was damaged or incomplete: written again")
            summary.shards.append(_write_one(path, group, min_frames, pool, bar, max_bytes, journal))
            summary.written_now += 1
            _write_index(index_path, summary, plan["digest"])
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    _write_index(index_path, summary, plan["digest"])


def _why_none(summary: Summary) -> str:
    by_reason: dict[str, list[str]] = {}
    for s in summary.skipped():
        by_reason.setdefault(s["reason"], []).append(s["origin"])
    parts = [
        f"{len(v)} {k}: {', '.join(v[:3])}" + (", ..." if len(v) > 3 else "") for k, v in by_reason.items()
    ]
    return "; ".join(parts) or "no input video"


def _write_one(path: Path, group: list[VideoItem], min_frames: int, pool, bar, max_bytes: int,
               journal: TempJournal) -> ShardStats:
    stats = ShardStats(path.name)
    jobs = [(it, min_frames) for it in group]
    results = pool.map(load_and_probe, jobs) if pool is not None else map(load_and_probe, jobs)
    try:
        # a damaged shard is replaced; one that another run wrote meanwhile is kept (`OutputTaken`)
        with atomic_path(path, replace=path.is_file()) as tmp:
            journal.add(tmp)
            try:
                with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
                    _fill(tar, group, results, stats, bar)
                if tmp.stat().st_size > max_bytes:  # the plan's bound failed: never leave an oversized shard
                    raise VVCError(f"{path.name} came out at {tmp.stat().st_size} bytes, "
                                   f"over --max-shard-size {max_bytes}")
            except BaseException:
                tmp.unlink(missing_ok=True)
                journal.discard(tmp)
                raise
        journal.discard(tmp)
    except OSError as exc:
        raise VVCError(
            f"cannot write shard '{path}': {exc.strerror or exc}; free space or pick another -o"
        ) from exc
    stats.bytes = path.stat().st_size
    stats.sha256 = sha256_file(path)
    return stats


def _fill(tar: tarfile.TarFile, group: list[VideoItem], results, stats: ShardStats, bar) -> None:
    """Add each video of `group` that loaded and probed (with its JSON) to `tar`; record the skipped ones."""
    for it, (data, info, why) in zip(group, results, strict=True):
        bar.update(1)
        if data is None:
            stats.skipped.append(skip_record(it.origin, *why))
            continue
        meta = {"key": it.key, "name": it.name, "origin": it.origin, "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(), **info}
        if it.meta:
            meta["csv"] = it.meta
        _tar_add(tar, f"{it.key}.json", json.dumps(meta, ensure_ascii=False).encode())
        _tar_add(tar, f"{it.key}.{member_ext(it.name)}", data)
        stats.videos += 1


def _write_index(path: Path, summary: Summary, digest: str) -> None:
    doc = {
        "pattern": summary.pattern(),
        "videos": summary.videos,
        "bytes": summary.bytes,
        "skipped": dict(summary.skip_reasons()),
        "shards": [vars(s) for s in summary.shards],
        "plan_digest": digest,
        "not_videos": summary.not_videos,
    }
    write_bytes_atomic(path, json.dumps(doc, indent=1).encode())
