"""The ffmpeg binary that imageio-ffmpeg ships: where it is, what it has, and running it."""

from __future__ import annotations

import functools
import re
import subprocess
import time
from pathlib import Path

from vvc_lightning.errors import VVCError


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary (imageio-ffmpeg's, or IMAGEIO_FFMPEG_EXE)."""
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception as exc:  # missing package or binary
        raise VVCError(
            f"no ffmpeg found ({exc}); pip install imageio-ffmpeg==0.8.1 or set IMAGEIO_FFMPEG_EXE"
        ) from exc


@functools.cache
def _listing(kind: str) -> str:
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", f"-{kind}"], capture_output=True, text=True,
                          errors="replace")
    return proc.stdout


def ffmpeg_has(kind: str, name: str) -> bool:
    """Whether ffmpeg lists `name` among its `kind` (encoders, decoders, filters, demuxers, bsfs)."""
    return re.search(rf"\s{re.escape(name)}\s", _listing(kind)) is not None


@functools.cache
def ffmpeg_version() -> str:
    """First line of `ffmpeg -version`."""
    out = subprocess.run([ffmpeg_exe(), "-version"], capture_output=True, text=True, errors="replace").stdout
    return out.splitlines()[0] if out else "unknown"


def run_ffmpeg(args: list[str], cwd: Path, what: str) -> tuple[str, float]:
    """Run ffmpeg with `args` in `cwd`; (stderr, seconds); VVCError with ffmpeg's last words on failure."""
    start = time.perf_counter()
    # errors="replace": ffmpeg echoes file names, which need not be UTF-8
    proc = subprocess.run([ffmpeg_exe(), *args], cwd=cwd, capture_output=True, text=True, errors="replace")
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-4:])
        raise VVCError(f"{what} failed (ffmpeg exit {proc.returncode}): {tail}")
    return proc.stderr, seconds
