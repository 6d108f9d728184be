"""Finding the videos to shard: a folder (recursively), OpenVid zip parts, and the metadata CSV.

What is a video is decided by probing the file with FFmpeg, not by its suffix: a file whose name does not
say video is opened once here and kept if FFmpeg finds a moving-picture stream in it; every file left out is
reported with its reason. A name that says video only changes the wording (undecodable, not unsupported).
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from vvc_lightning.errors import VVCError

# Names that say "video": such files go straight to the decoding probe, and one FFmpeg cannot open is
# "undecodable" rather than "unsupported". Every other file is probed before it is taken or skipped.
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".y4m", ".mpg", ".mpeg", ".m1v", ".m2v",
                  ".ts", ".m2ts", ".mts", ".vob", ".flv", ".wmv", ".asf", ".3gp", ".ogv", ".mxf", ".dv")
READER_KEYS = (
    "mp4",
    "mkv",
    "webm",
    "avi",
    "mov",
    "m4v",
    "y4m",
)  # datamodules.streaming.VIDEO_KEYS but 'video'
NOT_PROBED = (".csv", ".zip")  # metadata and archives (a zip is opened and its members probed)
STILL_FORMATS = ("image2", "image2pipe")  # FFmpeg demuxers of single pictures; also every '*_pipe'
NAME_COLUMNS = ("video", "file", "filename", "file_name", "video_name", "path", "video_path", "name")
# reading a file or a zip member: missing, encrypted, an unknown compression, a bad CRC or deflate stream
ZIP_READ_ERRORS = (
    OSError,
    zipfile.BadZipFile,
    KeyError,
    EOFError,
    RuntimeError,
    NotImplementedError,
    zlib.error,
)
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


@dataclass
class Inputs:
    """What `find_inputs` found: the candidate videos, the CSV used, notes, and the files skipped as no
    video."""

    items: list[VideoItem]
    csv_path: Path | None
    notes: list[str]
    skipped: list[dict[str, str]]


def read_problem(exc: BaseException) -> str:
    """A short reason a file or zip member could not be read."""
    if isinstance(exc, RuntimeError) and "encrypted" in str(exc):
        return "encrypted, needs a password"
    return (exc.strerror if isinstance(exc, OSError) else None) or type(exc).__name__


def says_video(name: str) -> bool:
    """Whether a file name has a video suffix (a hint for wording only; probing decides)."""
    return Path(name).suffix.lower() in VIDEO_SUFFIXES


def member_ext(name: str) -> str:
    """The extension of a video's member in a shard: its own when the shard reader knows it, else 'video'."""
    ext = Path(name).suffix.lower().lstrip(".")
    return ext if ext in READER_KEYS else "video"


def skip_record(origin: str, reason: str, detail: str) -> dict[str, str]:
    """One skipped file: where it is, the reason's tag (unsupported, undecodable, too short, ...), details."""
    return {"origin": origin, "reason": reason, "detail": detail}


def not_video(f: IO[bytes], name: str) -> tuple[str, str] | None:
    """None if FFmpeg finds a moving-picture stream in the open file `f`, else (reason, detail)."""
    import av

    try:
        with av.open(f) as c:
            fmt = c.format.name
            moving = [s for s in c.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
            pictures = len(c.streams.video) - len(moving)
    except Exception as exc:  # whatever FFmpeg rejects is not a video we can use
        if says_video(name):
            return "undecodable", f"FFmpeg cannot open it, {type(exc).__name__}"
        return "unsupported", "not a video format FFmpeg reads"
    if not moving:
        return (
            "unsupported",
            "no video stream, only audio or a cover picture" if pictures else "no video stream",
        )
    if fmt in STILL_FORMATS or fmt.endswith("_pipe"):
        return "unsupported", f"a still image, {fmt.removesuffix('_pipe')}"
    return None


def probe_bytes(data: bytes, label: str, min_frames: int) -> tuple[dict[str, Any] | None, tuple[str, str]]:
    """(frames/fps/width/height by decoding, ('', '')), or (None, (reason, detail)) for a file that is no
    video FFmpeg reads (unsupported), fails to decode (undecodable) or is short (too short)."""
    from vvc_lightning.video.video_sources import AVSource, ClipError

    if not data:
        return None, ("unsupported", "empty file")
    why = not_video(io.BytesIO(data), label)
    if why is not None:
        return None, why
    src = AVSource(data, label=label)
    try:
        n, h, w = src.probe()
        fps = src.fps()
    except ClipError as exc:
        return None, (
            "undecodable",
            "no frame decodes" if "no decodable frame" in str(exc) else "decoding fails",
        )
    except Exception as exc:  # any decoder failure is a skip, not a crash
        return None, ("undecodable", f"decoding fails, {type(exc).__name__}")
    if n < min_frames:
        return None, ("too short", f"{n} frames, fewer than --min-frames {min_frames}")
    return {"frames": n, "fps": fps, "width": w, "height": h}, ("", "")


_ZIPS: dict[str, zipfile.ZipFile] = {}


def load_and_probe(
    args: tuple[VideoItem, int],
) -> tuple[bytes | None, dict[str, Any] | None, tuple[str, str]]:
    """(bytes, probe info, ('', '')) of a video to shard, or (None, None, (reason, detail)) of a skipped
    file."""
    item, min_frames = args
    try:
        data = item.read(_ZIPS)
    except ZIP_READ_ERRORS as exc:
        return None, None, ("unreadable", read_problem(exc))
    info, why = probe_bytes(data, item.origin, min_frames)
    return (data if info else None), info, why


def sample_key(name: str) -> str:
    """A webdataset key from a file name: the stem with anything but letters, digits, - and _ as '_'."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", Path(name).stem) or "video"


def _ignored(name: str) -> bool:
    base = Path(name).name
    return base.startswith(".") or "__MACOSX" in Path(name).parts or Path(name).suffix.lower() in NOT_PROBED


def _zip_items(path: Path, root: Path, skipped: list[dict[str, str]]) -> list[VideoItem]:
    rel = _rel(path, root)
    items = []
    try:
        with zipfile.ZipFile(path) as z:
            for i in sorted(z.infolist(), key=lambda i: i.filename):
                if i.is_dir() or _ignored(i.filename):
                    continue
                origin = f"{rel}:{i.filename}"
                if not says_video(i.filename):
                    try:
                        with z.open(i) as f:
                            why = not_video(f, i.filename)
                    except ZIP_READ_ERRORS as exc:  # encrypted, an unknown compression, a bad CRC
                        why = "unreadable", read_problem(exc)
                    if why is not None:
                        skipped.append(skip_record(origin, *why))
                        continue
                items.append(VideoItem(Path(i.filename).name, origin, i.file_size, str(path), i.filename))
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise VVCError(
            f"'{path}' is not a readable zip ({exc}); a split OpenVid part must be joined first "
            "(cat OpenVid_partN_part* > OpenVid_partN.zip)"
        ) from exc
    return items


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _file_item(p: Path, root: Path, skipped: list[dict[str, str]]) -> VideoItem | None:
    origin = _rel(p, root)
    if not says_video(p.name):
        try:
            with open(p, "rb") as f:
                why = not_video(f, p.name)
        except OSError as exc:
            why = "unreadable", exc.strerror or type(exc).__name__
        if why is not None:
            skipped.append(skip_record(origin, *why))
            return None
    return VideoItem(p.name, origin, p.stat().st_size, str(p))


def refuse_source_inside(src: Path, outdir: Path) -> None:
    """The output folder must not be the source folder nor hold it: its files are never taken as inputs."""
    root = src.parent if src.suffix.lower() == ".csv" else src
    if not (root.is_dir() and outdir.exists()):
        return
    root_real, out_real = root.resolve(), outdir.resolve()
    if root_real == out_real or root_real.is_relative_to(out_real):
        what = "is the source folder" if root_real == out_real else f"holds the source folder '{root}'"
        raise VVCError(f"-o '{outdir}' {what}; shards go to a folder of their own, outside the source (its "
                       f"files are never read as inputs): name another one, e.g. -o '{root.name}-shards'")


def find_inputs(src: str | Path, csv_path: str | Path | None = None, exclude: Path | None = None) -> Inputs:
    """The videos of SRC (a folder, a .zip, a video or a CSV) in a stable order, the files that are no video,
    and notes; files under `exclude` (the output folder) are left out."""
    src = Path(src).expanduser()
    notes: list[str] = []
    skipped: list[dict[str, str]] = []
    if not src.exists():
        raise VVCError(
            f"shard source '{src}' does not exist; give a folder of videos, OpenVid zip parts or a CSV"
        )
    if src.suffix.lower() == ".csv":
        csv_path, root = csv_path or src, src.parent
    else:
        root = src if src.is_dir() else src.parent
    skip_dir = exclude.resolve() if exclude is not None else None
    if src.is_dir() or src.suffix.lower() == ".csv":
        every = [p for p in root.rglob("*") if p.is_file()
                 and not (skip_dir is not None and p.resolve().is_relative_to(skip_dir))]
        files = sorted(
            p for p in every if not any(part.startswith(".") for part in p.relative_to(root).parts)
        )
        if len(files) < len(every):
            notes.append(f"left out {len(every) - len(files)} hidden file(s) (a name or folder starting with "
                         "'.')")
    else:
        files = [src]
    items: list[VideoItem] = []
    for p in files:
        if p.suffix.lower() == ".zip":
            items += _zip_items(p, root, skipped)
        elif SPLIT_PART.match(p.name):
            notes.append(f"ignored split archive piece {_rel(p, root)}: join the pieces into one .zip first")
        elif p.suffix.lower() != ".csv" and (item := _file_item(p, root, skipped)) is not None:
            items.append(item)
    if csv_path is None and src.is_dir():
        csvs = sorted(src.glob("*.csv"))
        if len(csvs) == 1:
            csv_path = csvs[0]
            notes.append(f"using metadata CSV {csvs[0].name} (found in SRC)")
        elif len(csvs) > 1:
            notes.append(f"{len(csvs)} CSV files in SRC; pick one with --csv to attach metadata")
    if not items:
        listed = "; ".join(f"{s['origin']}: {s['reason']}" for s in skipped[:3])
        raise VVCError(f"no video or zip of videos found in '{src}'" + (f" ({listed})" if listed else "")
                       + "; give a folder holding videos FFmpeg can decode")
    if csv_path is not None:
        notes += attach_csv(items, Path(csv_path))
    return Inputs(items, Path(csv_path) if csv_path else None, notes, skipped)


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
        raise VVCError(f"--csv '{csv_path}' does not exist or is not a file")
    by_name: dict[str, list[VideoItem]] = {}
    for it in items:
        by_name.setdefault(it.name, []).append(it)
        by_name.setdefault(Path(it.name).stem, []).append(it)
    rows = 0
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
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
                    it.meta = {
                        k.strip(): _value(v) for k, v in row.items() if k is not None and v is not None
                    }
    except UnicodeDecodeError as exc:
        raise VVCError(
            f"metadata CSV '{csv_path}' is not UTF-8 text (an invalid byte after row {rows}); "
            "save it as UTF-8, or move it out of SRC / leave out --csv"
        ) from exc
    except csv.Error as exc:
        raise VVCError(
            f"metadata CSV '{csv_path}' cannot be read at line {reader.line_num + 1} ({exc}); "
            "fix that line, or move the file out of SRC / leave out --csv"
        ) from exc
    except OSError as exc:
        raise VVCError(f"cannot read metadata CSV '{csv_path}': {exc.strerror or exc}") from exc
    matched = sum(1 for it in items if it.meta)
    notes = [f"CSV {csv_path.name}: {rows} rows, {matched} of {len(items)} videos matched"]
    if matched < len(items):
        notes.append(f"{len(items) - matched} videos have no CSV row (written without CSV metadata)")
    return notes
