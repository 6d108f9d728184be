"""Reading and writing videos (PyAV containers, raw .yuv, .y4m, PNG folders), always atomically on write."""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vvc_lightning.errors import VVCError
from vvc_lightning.video.atomic import atomic_path
from vvc_lightning.video.colour import yuv420_to_rgb
from vvc_lightning.video.video_writer import VideoWriter

DEFAULT_FPS = 25.0  # frame rate of a video that states none (raw .yuv without it in its name, PNG folder)
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


def rgb24(frame, src_colorspace: object = None) -> np.ndarray:
    """A decoded PyAV frame as uint8 RGB (H, W, 3), converted on this thread alone.

    FFmpeg's scaler otherwise keeps a thread pool in the process, whose locks a `fork`ed child (a
    DataLoader worker) inherits without its threads: the child's first conversion then waits forever.
    """
    if src_colorspace is None:
        return frame.to_ndarray(format="rgb24", threads=1)
    return frame.reformat(format="rgb24", src_colorspace=src_colorspace, threads=1).to_ndarray()


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
        fps = float(stream.average_rate or stream.guessed_rate or DEFAULT_FPS)
        try:
            for frame in container.decode(stream):
                yield rgb24(frame), fps
        except av.error.FFmpegError as exc:
            raise VVCError(f"'{path_label}' does not decode: {exc}") from exc


def iter_png_folder(path: str | Path) -> Iterator[np.ndarray]:
    """RGB uint8 frames of a folder of PNGs (as `decompress` writes them), in name order, read one at a
    time."""
    from vvc_lightning.video.images import decode_image

    names = sorted(Path(path).glob("*.png"))
    if not names:
        raise VVCError(f"folder '{path}' holds no .png frame; give a video file or a folder of PNG frames")
    for name in names:
        yield decode_image(name)


def iter_video(path: str | Path, **yuv_kwargs) -> Iterator[np.ndarray]:
    """RGB uint8 frames (H,W,3) of any video PyAV reads, a raw .yuv file or a PNG folder, read one at a
    time."""
    path = Path(path)
    if not path.exists():
        raise VVCError(f"video '{path}' does not exist")
    if path.is_dir():
        yield from iter_png_folder(path)
        return
    if path.suffix.lower() == ".yuv":
        yield from iter_yuv(path, **yuv_kwargs)
        return
    for frame, _ in _iter_av(str(path), str(path)):
        yield frame


def video_fps(path: str | Path, default: float = DEFAULT_FPS) -> float:
    """The frame rate of a video file (from the name for .yuv)."""
    path = Path(path)
    if path.is_dir():  # a PNG folder has no frame rate
        return default
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
    frames, fps = [], DEFAULT_FPS
    for f, rate in _iter_av(io.BytesIO(data), label):
        frames.append(f)
        fps = rate
    if not frames:
        raise VVCError(f"{label} holds no decodable frame")
    return Video(np.stack(frames), fps)


# ------------------------------------------------------------------------------------------- writing
def write_bytes_atomic(path: str | Path, data: bytes, replace: bool = True) -> None:
    """Write `data` to `path` so that no partial file is ever visible (a file there is replaced only when
    `replace`; see `atomic_path`)."""
    with atomic_path(path, replace=replace) as tmp:
        tmp.write_bytes(data)


def write_video(
    path: str | Path,
    frames: Iterable[np.ndarray],
    fps: float,
    crf: int = 12,
    matrix: str | None = None,
    rng: str = "limited",
) -> Path:
    """Write RGB uint8 frames (an (N,H,W,3) array or any iterable of (H,W,3)) as .mp4 (H.264), .y4m (4:2:0),
    .yuv, or a folder of PNGs, frame by frame and atomically; returns the path written.

    Colour: .y4m carries no matrix tag and FFmpeg and most players read it as BT.601, so .y4m defaults to
    BT.601; raw .yuv defaults to BT.709 (as the HEVC/UVG test sets); limited range unless `rng` says full.
    """
    size = tuple(frames.shape[1:3]) if isinstance(frames, np.ndarray) and frames.ndim == 4 else None
    with VideoWriter(path, fps, crf=crf, matrix=matrix, rng=rng, size=size) as writer:
        for frame in frames:
            writer.write(frame)
    return writer.path


# --------------------------------------------------------------------------------- tensor conversion
def frames_to_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 (N,H,W,3) -> float (3,N,H,W) in [-1,1]."""
    t = torch.from_numpy(np.ascontiguousarray(frames)).permute(3, 0, 1, 2).float()
    return t / 127.5 - 1.0


def tensor_to_frames(x: torch.Tensor) -> np.ndarray:
    """float (3,N,H,W) in [-1,1] -> uint8 (N,H,W,3), rounded and clipped."""
    x = ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(1, 2, 3, 0).contiguous().numpy()
