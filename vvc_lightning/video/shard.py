"""Writing videos into webdataset tar shards (video bytes + JSON metadata), atomically and resumably.

The shard plan (which video goes into which shard) depends only on the inputs and options, so a
killed run re-run with the same arguments skips the finished shards and writes the rest. Each shard
appears under its final name only once complete; an interrupted one leaves at most a hidden temp file.
"""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import re
import tarfile
import zipfile
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vvc_lightning.errors import VVCError
from vvc_lightning.video.shard_sources import VideoItem, find_inputs, sample_key
from vvc_lightning.video.video_io import atomic_path, write_bytes_atomic

PLAN_FILE = "shards.plan.json"
INDEX_FILE = "shards.json"
SHARD_NAME = "shard-{:06d}.tar"
JSON_BOUND = 512  # the fixed part of a video's JSON (keys, numbers, SHA-256), bytes
END_BLOCKS = 2 * 512  # tar's end-of-archive blocks; the archive is then padded to tarfile.RECORDSIZE
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
                f"video '{it.origin}' ({it.size} bytes) does not fit a shard of --max-shard-size {max_bytes} bytes "
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


def probe_bytes(data: bytes, label: str, min_frames: int) -> tuple[dict[str, Any] | None, str]:
    """(frames/fps/width/height by decoding, '') or (None, reason) for a video that fails or is short."""
    from vvc_lightning.video.video_sources import AVSource, ClipError

    if not data:
        return None, "empty file"
    src = AVSource(data, label=label)
    try:
        n, h, w = src.probe()
        fps = src.fps()
    except ClipError as exc:
        return None, exc.reason
    except Exception as exc:  # noqa: BLE001  (any decoder failure is a skip, not a crash)
        return None, f"does not decode ({type(exc).__name__})"
    if n < min_frames:
        return None, f"too short (< {min_frames} frames)"
    return {"frames": n, "fps": fps, "width": w, "height": h}, ""


_ZIPS: dict[str, zipfile.ZipFile] = {}


def _load_and_probe(args: tuple[VideoItem, int]) -> tuple[bytes | None, dict[str, Any] | None, str]:
    item, min_frames = args
    try:
        data = item.read(_ZIPS)
    except (OSError, zipfile.BadZipFile, KeyError) as exc:
        return None, None, f"unreadable ({type(exc).__name__})"
    info, reason = probe_bytes(data, item.origin, min_frames)
    return (data if info else None), info, reason


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

    @property
    def videos(self) -> int:
        return sum(s.videos for s in self.shards)

    @property
    def bytes(self) -> int:
        return sum(s.bytes for s in self.shards)

    def skip_reasons(self) -> Counter[str]:
        return Counter(s["reason"] for sh in self.shards for s in sh.skipped)

    def pattern(self) -> str:
        """Brace pattern naming every shard, for data.train_shards."""
        n = len(self.shards)
        last = SHARD_NAME.format(n - 1)
        return str(self.outdir / (last if n == 1 else SHARD_NAME.replace("{:06d}", f"{{000000..{n - 1:06d}}}")))

    def text(self) -> str:
        """The closing summary printed by the CLI."""
        lines = [*self.notes]
        reasons = self.skip_reasons()
        skipped = sum(reasons.values())
        lines.append(f"videos written: {self.videos}")
        lines.append(f"videos skipped: {skipped}" + (f" ({', '.join(f'{v} {k}' for k, v in reasons.most_common())})"
                                                     if skipped else ""))
        for sh in self.shards:
            for s in sh.skipped[:3]:
                lines.append(f"  skipped {s['origin']}: {s['reason']}")
        empty = sum(1 for s in self.shards if s.videos == 0)
        lines.append(f"shards: {len(self.shards)} ({self.written_now} written now, {self.resumed} already done"
                     + (f", {empty} empty" if empty else "") + ")")
        lines.append(f"bytes: {self.bytes} ({self.bytes / 1e9:.2f} GB)")
        lines.append(f"use: data.train_shards={self.pattern()}")
        return "\n".join(lines)


def _plan_doc(src: Path, shards: list[list[VideoItem]], max_bytes: int, min_frames: int) -> dict[str, Any]:
    listing = [[f"{it.key}={it.origin}:{it.size}" for it in sh] for sh in shards]
    digest = hashlib.sha256(json.dumps(listing).encode()).hexdigest()
    return {"version": 1, "source": str(src), "max_shard_size": max_bytes, "min_frames": min_frames,
            "shards": len(shards), "videos": sum(map(len, shards)), "digest": digest}


def _check_plan(outdir: Path, plan: dict[str, Any]) -> None:
    path = outdir / PLAN_FILE
    if path.is_file():
        old = json.loads(path.read_text())
        if old.get("digest") != plan["digest"] or old.get("min_frames") != plan["min_frames"]:
            raise VVCError(
                f"'{outdir}' holds shards of a different plan (other inputs or options: was "
                f"{old.get('videos')} videos, max_shard_size {old.get('max_shard_size')}, min_frames "
                f"{old.get('min_frames')}); write to a new folder or delete that one"
            )
    write_bytes_atomic(path, json.dumps(plan, indent=1).encode())


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _complete_tar(path: Path, keys: set[str]) -> ShardStats | None:
    """Stats of a shard that reads as a whole tar of this plan's videos (each JSON with its video, of the size
    and SHA-256 the JSON says, ending in tarfile's end-of-archive blocks), else None."""
    size = path.stat().st_size
    if size < END_BLOCKS or size % tarfile.RECORDSIZE:
        return None
    try:
        with tarfile.open(path) as tar:
            members = {m.name: m for m in tar.getmembers()}
            end = max((m.offset_data + -(-m.size // 512) * 512 for m in members.values()), default=0)
            with open(path, "rb") as f:  # after the last member: only the zero end blocks and padding
                f.seek(end)
                if f.read() != bytes(size - end):
                    return None
            videos = 0
            for name, m in members.items():
                if not name.endswith(".json"):
                    continue
                meta = json.loads(tar.extractfile(m).read())
                key = meta.get("key")
                data = [v for n, v in members.items() if n.startswith(f"{key}.") and n != name]
                if key not in keys or len(data) != 1 or data[0].size != meta.get("bytes"):
                    return None
                if hashlib.sha256(tar.extractfile(data[0]).read()).hexdigest() != meta.get("sha256"):
                    return None
                videos += 1
            if len(members) != 2 * videos:
                return None
    except (tarfile.TarError, OSError, EOFError, ValueError, AttributeError):
        return None
    return ShardStats(path.name, videos, size, sha256=_sha256(path))


def _verified(path: Path, recorded: dict[str, Any] | None, group: list[VideoItem]) -> ShardStats | None:
    """The stats of a finished shard if it is intact (size and SHA-256 as recorded in the index, or, without a
    record, a complete tar of this group's videos); None if it is damaged or truncated and must be redone."""
    if recorded is not None and recorded.get("sha256"):
        if path.stat().st_size != recorded.get("bytes") or _sha256(path) != recorded["sha256"]:
            return None
        return ShardStats(**recorded)
    return _complete_tar(path, {it.key for it in group})


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
    from tqdm import tqdm

    outdir = Path(outdir).expanduser()
    max_bytes = parse_size(max_shard_size)
    items, _, notes = find_inputs(src, csv_path)
    assign_keys(items)
    shards = plan_shards(items, max_bytes)
    outdir.mkdir(parents=True, exist_ok=True)
    for stale in outdir.glob(".shard-*.tmp.tar"):
        stale.unlink()  # temp files of a killed run
    _check_plan(outdir, _plan_doc(Path(src), shards, max_bytes, min_frames))
    index_path = outdir / INDEX_FILE
    old_index = json.loads(index_path.read_text()) if index_path.is_file() else {}
    old_stats = {s["name"]: s for s in old_index.get("shards", [])}
    summary = Summary(outdir, [], notes=notes)
    bar = tqdm(total=len(items), unit="video", desc="shard", disable=not progress)
    # spawn, not fork: a forked child inherits the parent's threads and open handles (torch, numba, zip files)
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) if workers > 1 else None
    try:
        for i, group in enumerate(shards):
            path = outdir / SHARD_NAME.format(i)
            if path.is_file():
                st = _verified(path, old_stats.get(path.name), group)
                if st is not None:
                    summary.shards.append(st)
                    summary.resumed += 1
                    bar.update(len(group))
                    continue
                summary.notes.append(f"{path.name} was damaged or incomplete: written again")
            summary.shards.append(_write_one(path, group, min_frames, pool, bar, max_bytes))
            summary.written_now += 1
            _write_index(index_path, summary)
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    _write_index(index_path, summary)
    if summary.videos == 0:
        reasons = summary.skip_reasons()
        why = ", ".join(f"{v} {k}" for k, v in reasons.most_common()) or "no input video"
        raise VVCError(f"no video was written from '{src}' ({why}); check the source folder and --min-frames")
    return summary


def _write_one(path: Path, group: list[VideoItem], min_frames: int, pool, bar, max_bytes: int) -> ShardStats:
    stats = ShardStats(path.name)
    jobs = [(it, min_frames) for it in group]
    results = pool.map(_load_and_probe, jobs) if pool is not None else map(_load_and_probe, jobs)
    with atomic_path(path) as tmp:
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
            _fill(tar, group, results, stats, bar)
        if tmp.stat().st_size > max_bytes:  # the plan's bound failed: never leave an oversized shard
            raise VVCError(f"{path.name} came out at {tmp.stat().st_size} bytes, over --max-shard-size {max_bytes}")
    stats.bytes = path.stat().st_size
    stats.sha256 = _sha256(path)
    return stats


def _fill(tar: tarfile.TarFile, group: list[VideoItem], results, stats: ShardStats, bar) -> None:  # noqa: ANN001
    """Add each video of `group` that loaded and probed (with its JSON) to `tar`; record the skipped ones."""
    for it, (data, info, reason) in zip(group, results, strict=True):
        bar.update(1)
        if data is None:
            stats.skipped.append({"origin": it.origin, "reason": reason})
            continue
        ext = Path(it.name).suffix.lower().lstrip(".")
        meta = {"key": it.key, "name": it.name, "origin": it.origin, "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(), **info}
        if it.meta:
            meta["csv"] = it.meta
        _tar_add(tar, f"{it.key}.json", json.dumps(meta, ensure_ascii=False).encode())
        _tar_add(tar, f"{it.key}.{ext}", data)
        stats.videos += 1


def _write_index(path: Path, summary: Summary) -> None:
    doc = {
        "pattern": summary.pattern(),
        "videos": summary.videos,
        "bytes": summary.bytes,
        "skipped": dict(summary.skip_reasons()),
        "shards": [vars(s) for s in summary.shards],
    }
    write_bytes_atomic(path, json.dumps(doc, indent=1).encode())
