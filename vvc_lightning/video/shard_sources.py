"""Finding the videos to shard: a folder (recursively), OpenVid zip parts, and the metadata CSV."""

from __future__ import annotations

import csv
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vvc_lightning.errors import VVCError

VIDEO_EXTS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".y4m")
NAME_COLUMNS = ("video", "file", "filename", "file_name", "video_name", "path", "video_path", "name")
SPLIT_PART = re.compile(r".*_part[a-z]{2}$|.*\.zip\.\d+$|.*\.z\d\d$", re.IGNORECASE)


@dataclass
class VideoItem:
    """One input video: where its bytes are, its name, size, and its CSV row (if any)."""

    name: str  # file name, e.g. 'celebv_abc_2.mp4'
    origin: str  # 'path' or 'archive.zip:member', for messages and metadata
    size: int
    path: str  # the file, or the zip archive
    member: str | None = None  # member inside the zip
    meta: dict[str, Any] = field(default_factory=dict)
    key: str = ""

    def read(self, zips: dict[str, zipfile.ZipFile] | None = None) -> bytes:
        """The video file's bytes."""
        if self.member is None:
            return Path(self.path).read_bytes()
        if zips is not None:
            if self.path not in zips:
                zips[self.path] = zipfile.ZipFile(self.path)
            return zips[self.path].read(self.member)
        with zipfile.ZipFile(self.path) as z:
            return z.read(self.member)


def sample_key(name: str) -> str:
    """A webdataset key from a file name: the stem with anything but letters, digits, - and _ as '_'."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", Path(name).stem) or "video"


def _zip_items(path: Path, root: Path) -> list[VideoItem]:
    try:
        with zipfile.ZipFile(path) as z:
            infos = [i for i in z.infolist() if not i.is_dir() and Path(i.filename).suffix.lower() in VIDEO_EXTS]
    except (zipfile.BadZipFile, OSError) as exc:
        raise VVCError(
            f"'{path}' is not a readable zip ({exc}); a split OpenVid part must be joined first "
            "(cat OpenVid_partN_part* > OpenVid_partN.zip)"
        ) from exc
    rel = _rel(path, root)
    return [
        VideoItem(Path(i.filename).name, f"{rel}:{i.filename}", i.file_size, str(path), i.filename)
        for i in sorted(infos, key=lambda i: i.filename)
    ]


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def find_inputs(src: str | Path, csv_path: str | Path | None = None) -> tuple[list[VideoItem], Path | None, list[str]]:
    """(videos in a stable order, the CSV used or None, notes) for SRC: a folder, a .zip, a video or a CSV."""
    src = Path(src).expanduser()
    notes: list[str] = []
    if not src.exists():
        raise VVCError(f"shard source '{src}' does not exist; give a folder of videos, OpenVid zip parts or a CSV")
    if src.suffix.lower() == ".csv":
        csv_path, root = csv_path or src, src.parent
    else:
        root = src if src.is_dir() else src.parent
    if src.is_dir() or src.suffix.lower() == ".csv":
        files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    else:
        files = [src]
    items: list[VideoItem] = []
    for p in files:
        suffix = p.suffix.lower()
        if suffix in VIDEO_EXTS:
            items.append(VideoItem(p.name, _rel(p, root), p.stat().st_size, str(p)))
        elif suffix == ".zip":
            items += _zip_items(p, root)
        elif SPLIT_PART.match(p.name):
            notes.append(f"ignored split archive piece {_rel(p, root)}: join the pieces into one .zip first")
    if csv_path is None and src.is_dir():
        csvs = sorted(src.glob("*.csv"))
        if len(csvs) == 1:
            csv_path = csvs[0]
            notes.append(f"using metadata CSV {csvs[0].name} (found in SRC)")
        elif len(csvs) > 1:
            notes.append(f"{len(csvs)} CSV files in SRC; pick one with --csv to attach metadata")
    if not items:
        raise VVCError(f"no video ({', '.join(VIDEO_EXTS)}) or zip of videos found in '{src}'")
    if csv_path is not None:
        notes += attach_csv(items, Path(csv_path))
    return items, (Path(csv_path) if csv_path else None), notes


def _value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def attach_csv(items: list[VideoItem], csv_path: Path) -> list[str]:
    """Attach each video's CSV row (matched by file name) as `meta`; returns notes on unmatched names."""
    if not csv_path.is_file():
        raise VVCError(f"--csv '{csv_path}' does not exist")
    by_name: dict[str, list[VideoItem]] = {}
    for it in items:
        by_name.setdefault(it.name, []).append(it)
        by_name.setdefault(Path(it.name).stem, []).append(it)
    rows = 0
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        cols = {c.strip().lower(): c for c in reader.fieldnames or []}
        name_col = next((cols[c] for c in NAME_COLUMNS if c in cols), None)
        if name_col is None:
            raise VVCError(
                f"CSV '{csv_path}' has no file-name column (looked for {', '.join(NAME_COLUMNS)}); "
                f"its columns are {', '.join(reader.fieldnames or [])}"
            )
        for row in reader:
            rows += 1
            name = Path(str(row.get(name_col, "")).strip()).name
            for it in by_name.get(name, []):
                it.meta = {k.strip(): _value(v) for k, v in row.items() if k is not None and v is not None}
    matched = sum(1 for it in items if it.meta)
    notes = [f"CSV {csv_path.name}: {rows} rows, {matched} of {len(items)} videos matched"]
    if matched < len(items):
        notes.append(f"{len(items) - matched} videos have no CSV row (written without CSV metadata)")
    return notes
