"""VMAF (v0.6.1 model) through the libvmaf filter of the ffmpeg that imageio-ffmpeg ships.

Both videos are converted from RGB to 8-bit 4:2:0 Y'CbCr with the same matrix and range (default
BT.709 limited) by `vvc_lightning.video.colour`, so neural and classic codecs are scored the same way.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vvc_lightning.errors import VVCError
from vvc_lightning.metrics.base import VideoMetric, check_sequences, u8_to_frames
from vvc_lightning.metrics.registry import register_metric
from vvc_lightning.video.colour import rgb_to_yuv420
from vvc_lightning.video.ffmpeg import ffmpeg_exe, ffmpeg_has

MODEL = "vmaf_v0.6.1"


def write_yuv420(path: Path, frames: np.ndarray, matrix: str, rng: str) -> tuple[int, int]:
    """Write RGB uint8 frames as raw 8-bit 4:2:0 (padded to even size by edge replication)."""
    h, w = frames.shape[1:3]
    ph, pw = h + h % 2, w + w % 2
    with open(path, "wb") as f:
        for frame in frames:
            if (ph, pw) != (h, w):
                frame = np.pad(frame, ((0, ph - h), (0, pw - w), (0, 0)), mode="edge")
            for plane in rgb_to_yuv420(frame, matrix, rng):
                f.write(plane.tobytes())
    return pw, ph


def vmaf_scores(ref: np.ndarray, rec: np.ndarray, matrix: str = "bt709", rng: str = "limited",
                threads: int = 2, fps: float = 25.0) -> tuple[np.ndarray, str]:
    """Per-frame VMAF of decoded RGB frames against reference frames, and the libvmaf version."""
    exe = ffmpeg_exe()
    if not ffmpeg_has("filters", "libvmaf"):
        raise VVCError(f"the ffmpeg at '{exe}' has no libvmaf filter; install imageio-ffmpeg>=0.5 or set "
                       "IMAGEIO_FFMPEG_EXE to an ffmpeg built with --enable-libvmaf")
    with tempfile.TemporaryDirectory(prefix="vvc_vmaf_") as tmp:
        d = Path(tmp)
        w, h = write_yuv420(d / "ref.yuv", ref, matrix, rng)
        write_yuv420(d / "rec.yuv", rec, matrix, rng)
        raw = ["-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{w}x{h}", "-r", f"{fps:g}"]
        cmd = [
            exe,
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            *raw,
            "-i",
            "rec.yuv",
            *raw,
            "-i",
            "ref.yuv",
            "-lavfi",
            f"[0:v][1:v]libvmaf=model=version={MODEL}:log_fmt=json:log_path=vmaf.json:n_threads={threads}",
            "-f",
            "null",
            "-",
        ]
        proc = subprocess.run(cmd, cwd=d, capture_output=True, text=True)
        if proc.returncode != 0 or not (d / "vmaf.json").is_file():
            raise VVCError(f"VMAF through ffmpeg failed: {proc.stderr.strip()[-400:]}")
        log = json.loads((d / "vmaf.json").read_text())
    values = np.array([f["metrics"]["vmaf"] for f in log["frames"]], np.float64)
    if len(values) != len(ref):
        raise VVCError(f"libvmaf scored {len(values)} frames of {len(ref)}")
    return values, str(log.get("version", "?"))


@register_metric("vmaf")
class VMAF(VideoMetric):
    """VMAF (libvmaf, model vmaf_v0.6.1) per frame on 8-bit 4:2:0 renditions of both videos."""

    name = "vmaf"
    label = "VMAF"
    fast = False

    def __init__(self, matrix: str = "bt709", rng: str = "limited", threads: int = 2, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.matrix, self.rng, self.threads = matrix, rng, int(threads)
        self.version = "?"

    def info(self) -> dict[str, Any]:
        if self.version == "?":  # a 2-frame probe names the libvmaf build
            tiny = np.full((2, 64, 64, 3), 128, np.uint8)
            self.version = vmaf_scores(tiny, tiny, self.matrix, self.rng, 1)[1]
        return {"model": MODEL, "libvmaf": self.version, "input": f"yuv420p 8-bit, {self.matrix} {self.rng}",
                "tool": "ffmpeg libvmaf filter (imageio-ffmpeg)"}

    def scores(self, ref: Tensor, rec: Tensor) -> Tensor:
        check_sequences(ref, rec, self.key)
        values, self.version = vmaf_scores(u8_to_frames(ref), u8_to_frames(rec), self.matrix, self.rng,
                                           self.threads)
        return torch.from_numpy(values)
