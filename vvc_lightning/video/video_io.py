"""Reading and writing videos (PyAV containers, raw .yuv, .y4m, PNG folders), always atomically on write."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vvc_lightning.errors import VVCError
from vvc_lightning.video.colour import rgb_to_yuv420, yuv420_to_rgb
from vvc_lightning.video.output_paths import PNG_SUFFIXES, VIDEO_SUFFIXES, cleanup_on_signals

YUV_NAME = re.compile(r"(?P<w>\d+)x(?P<h>\d+)(?:_(?P<fps>\d+(?:\.\d+)?)(?:fps|hz)?)?", re.IGNORECASE)


@dataclass
class Video:
    """Decoded RGB frames (N,H,W,3) uint8 and their frame rate."""

    frames: np.ndarray
    fps: float

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def height(self) -> int:
        return int(self.frames.shape[1])

    @property
    def width(self) -> int:
        return int(self.frames.shape[2])


def parse_yuv_name(name: str) -> tuple[int, int, float | None]:
    """(width, height, fps or None) from a name like 'BasketballDrive_1920x1080_50.yuv'."""
    matches = list(YUV_NAME.finditer(Path(name).stem))
    m = matches[-1] if matches else None
    if m is None:
        raise VVCError(
            f"cannot tell the size of raw video '{name}': name it like NAME_1920x1080_50.yuv "
            "or give the size explicitly (e.g. --size 1920x1080 --fps 50)"
        )
    fps = float(m.group("fps")) if m.group("fps") else None
    return int(m.group("w")), int(m.group("h")), fps


def iter_yuv(
    path: str | Path,
    width: int | None = None,
    height: int | None = None,
    matrix: str = "bt709",
    rng: str = "limited",
) -> Iterator[np.ndarray]:
    """RGB uint8 frames of a raw 8-bit YUV 4:2:0 file, in order."""
    path = Path(path)
    if width is None or height is None:
        width, height, _ = parse_yuv_name(path.name)
    if width % 2 or height % 2:
        raise VVCError(f"raw 4:2:0 video needs even width and height, got {width}x{height}")
    frame_bytes = width * height * 3 // 2
    size = path.stat().st_size
    if size == 0 or size % frame_bytes:
        raise VVCError(
            f"'{path}' is {size} bytes, not a whole number of {width}x{height} 8-bit 4:2:0 frames "
            f"({frame_bytes} bytes each); check the size in its name or the --size option"
        )
    with open(path, "rb") as f:
        while chunk := f.read(frame_bytes):
            buf = np.frombuffer(chunk, np.uint8)
            y = buf[: width * height].reshape(height, width)
            u = buf[width * height : width * height * 5 // 4].reshape(height // 2, width // 2)
            v = buf[width * height * 5 // 4 :].reshape(height // 2, width // 2)
            yield yuv420_to_rgb(y, u, v, matrix, rng)


def _iter_av(source, path_label: str) -> Iterator[tuple[np.ndarray, float]]:
    import av

    try:
        container = av.open(source)
    except Exception as exc:
        raise VVCError(f"cannot open video '{path_label}': {exc}") from exc
    with container:
        if not container.streams.video:
            raise VVCError(f"'{path_label}' has no video stream")
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 25)
        try:
            for frame in container.decode(stream):
                yield frame.to_ndarray(format="rgb24"), fps
        except av.error.FFmpegError as exc:
            raise VVCError(f"'{path_label}' does not decode: {exc}") from exc


def iter_video(path: str | Path, **yuv_kwargs) -> Iterator[np.ndarray]:
    """RGB uint8 frames (H,W,3) of any video PyAV reads, or of a raw .yuv file."""
    path = Path(path)
    if not path.exists():
        raise VVCError(f"video '{path}' does not exist")
    if path.suffix.lower() == ".yuv":
        yield from iter_yuv(path, **yuv_kwargs)
        return
    for frame, _ in _iter_av(str(path), str(path)):
        yield frame


def video_fps(path: str | Path, default: float = 25.0) -> float:
    """The frame rate of a video file (from the name for .yuv)."""
    path = Path(path)
    if path.suffix.lower() == ".yuv":
        fps = parse_yuv_name(path.name)[2]
        return fps or default
    import av

    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise VVCError(f"'{path}' has no video stream (audio only?); pass a video file")
            s = c.streams.video[0]
            return float(s.average_rate or s.guessed_rate or default)
    except VVCError:
        raise
    except Exception as exc:
        raise VVCError(f"cannot open video '{path}': {exc}") from exc


def read_video(
    path: str | Path,
    max_frames: int | None = None,
    fps: float | None = None,
    **yuv_kwargs,
) -> Video:
    """Decode a whole video (frames are counted, container headers are not trusted)."""
    frames = []
    for i, f in enumerate(iter_video(path, **yuv_kwargs)):
        if max_frames is not None and i >= max_frames:
            break
        frames.append(f)
    if not frames:
        raise VVCError(f"'{path}' holds no decodable frame")
    return Video(np.stack(frames), fps if fps is not None else video_fps(path))


def decode_video_bytes(data: bytes, label: str = "<bytes>") -> Video:
    """Decode an in-memory video file (e.g. an mp4 from a shard)."""
    frames, fps = [], 25.0
    for f, rate in _iter_av(io.BytesIO(data), label):
        frames.append(f)
        fps = rate
    if not frames:
        raise VVCError(f"{label} holds no decodable frame")
    return Video(np.stack(frames), fps)


# ------------------------------------------------------------------------------------------- writing
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


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` so that no partial file is ever visible."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def _write_mp4(path: Path, frames: np.ndarray, fps: float, crf: int) -> None:
    from fractions import Fraction

    import av

    h, w = frames.shape[1:3]
    with av.open(str(path), "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        s.width, s.height = w + (w % 2), h + (h % 2)
        s.pix_fmt = "yuv420p"
        s.options = {"crf": str(crf), "preset": "medium"}
        for f in frames:
            if f.shape[0] != s.height or f.shape[1] != s.width:
                f = np.pad(f, ((0, s.height - h), (0, s.width - w), (0, 0)), mode="edge")
            for pkt in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)


def _write_y4m(path: Path, frames: np.ndarray, fps: float, matrix: str, rng: str) -> None:
    from fractions import Fraction

    h, w = frames.shape[1:3]
    fr = Fraction(fps).limit_denominator(1001)
    with open(path, "wb") as f:
        colour_range = "XCOLORRANGE=LIMITED" if rng == "limited" else "XCOLORRANGE=FULL"
        f.write(f"YUV4MPEG2 W{w} H{h} F{fr.numerator}:{fr.denominator} Ip A1:1 C420 {colour_range}\n".encode())
        for frame in frames:
            if h % 2 or w % 2:
                frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
            y, u, v = rgb_to_yuv420(frame, matrix, rng)
            f.write(b"FRAME\n")
            f.write(y[:h, :w].tobytes())
            f.write(u.tobytes())
            f.write(v.tobytes())


def write_video(
    path: str | Path,
    frames: np.ndarray,
    fps: float,
    crf: int = 12,
    matrix: str | None = None,
    rng: str = "limited",
) -> Path:
    """Write RGB uint8 frames (N,H,W,3) as .mp4 (H.264), .y4m (4:2:0), .yuv, or a folder of PNGs.

    Colour: .y4m carries no matrix tag and FFmpeg and most players read it as BT.601, so .y4m defaults to
    BT.601; raw .yuv defaults to BT.709 (as the HEVC/UVG test sets); limited range unless `rng` says full.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in VIDEO_SUFFIXES + PNG_SUFFIXES:
        raise VVCError(f"cannot write '{path}': use .mp4, .mov, .mkv, .y4m, .yuv or a new folder name for PNGs")
    if suffix in PNG_SUFFIXES:
        import cv2

        target = path.with_suffix("") if suffix == ".png" else path
        with atomic_path(target, is_dir=True) as tmp:
            for i, f in enumerate(frames):
                cv2.imwrite(str(tmp / f"{i:05d}.png"), np.ascontiguousarray(f[..., ::-1]))
        return target
    with atomic_path(path) as tmp:
        if suffix in (".mp4", ".mov", ".mkv"):
            _write_mp4(tmp, frames, fps, crf)
        elif suffix == ".y4m":
            _write_y4m(tmp, frames, fps, matrix or "bt601", rng)
        elif suffix == ".yuv":
            with open(tmp, "wb") as f:
                for frame in frames:
                    for plane in rgb_to_yuv420(frame, matrix or "bt709", rng):
                        f.write(plane.tobytes())
        else:
            raise VVCError(f"cannot write '{path}': use .mp4, .mkv, .y4m, .yuv or a folder for PNGs")
    return path


# --------------------------------------------------------------------------------- tensor conversion
def frames_to_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 (N,H,W,3) -> float (3,N,H,W) in [-1,1]."""
    t = torch.from_numpy(np.ascontiguousarray(frames)).permute(3, 0, 1, 2).float()
    return t / 127.5 - 1.0


def tensor_to_frames(x: torch.Tensor) -> np.ndarray:
    """float (3,N,H,W) in [-1,1] -> uint8 (N,H,W,3), rounded and clipped."""
    x = ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(1, 2, 3, 0).contiguous().numpy()
