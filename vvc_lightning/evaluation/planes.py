"""4:2:0 sources as they are: the classic codecs code the source's own planes (piped raw to ffmpeg at the
source's bit depth) and are measured on their decoded planes; the neural codec gets RGB made from the planes
(`video.chroma`) and its RGB output is made 4:2:0 again for the same plane metrics (`metrics.yuv`). RGB
metrics compare RGB made from the source's and each classic codec's planes in the same way, or the neural
codec's own RGB output. A source that is not 4:2:0 (RGB, 4:4:4, full-range yuvj420p, odd sizes) keeps the
RGB path: `baselines` makes its 4:2:0 input and brings the output back to RGB.
"""

from __future__ import annotations

import functools
import hashlib
import re
import shlex
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from vvc_lightning.errors import FrameCountError, VVCError
from vvc_lightning.evaluation.sequence import Coded, Sequence
from vvc_lightning.video.chroma import Planes, change_depth, conversion, rgb_to_planes
from vvc_lightning.video.ffmpeg import ffmpeg_exe, run_ffmpeg
from vvc_lightning.video.plane_source import (
    PIX_FMTS,
    PlaneFrames,
    PlaneReader,
    PlaneSource,
    join_frames,
    pix_fmt,
)

RGB_SOURCES = ("RGB sources (and 4:2:0 ones that are not plain yuv420p / yuv420p10le of even size): today's "
               "path, 8-bit yuv420p made from RGB by vvc_lightning.video.colour (2x2 mean chroma), decoded "
               "back to RGB by chroma repetition; psnr_y is Y' computed from RGB")
CONVERSION_VERSION = 1  # bump when the RGB made from planes (or back) changes


# ------------------------------------------------------------------------------------------- sources
def probe(path: Path, max_frames: int | None = None) -> PlaneSource | None:
    """The 4:2:0 planes of a file named by plain --data: a raw .yuv (`Name_WxH_FPS.yuv`, `_10bit` for 10
    bits) or a container whose first video stream is yuv420p / yuv420p10le of even size; None otherwise."""
    from vvc_lightning.evaluation.testsets import raw_sequence

    if path.is_dir():
        return None
    if path.suffix.lower() == ".yuv":
        seq = raw_sequence(path)
        if seq.bit_depth not in PIX_FMTS.values() or seq.width % 2 or seq.height % 2:
            return None
        n = int(seq.frames or 0) if max_frames is None else min(int(seq.frames or 0), max_frames)
        return PlaneSource(path, seq.width, seq.height, seq.bit_depth, n, seq.fps)
    return _probe_container(path, max_frames)


def _probe_container(path: Path, max_frames: int | None) -> PlaneSource | None:
    import av

    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                return None
            s = c.streams.video[0]
            fmt, w, h = s.codec_context.pix_fmt, s.codec_context.width, s.codec_context.height
            if fmt not in PIX_FMTS or w % 2 or h % 2 or not w:
                return None
            fps = float(s.average_rate or s.guessed_rate or 25.0)
            n = 0
            for packet in c.demux(s):
                n += packet.size > 0
                if max_frames is not None and n >= max_frames:
                    break
    except av.error.FFmpegError:
        return None
    return PlaneSource(path, w, h, PIX_FMTS[fmt], n, fps, "container") if n else None


def spec_source(path: Path, width: int, height: int, bit_depth: int, frames: int,
                fps: float) -> PlaneSource | None:
    """The planes of a dataset spec's raw sequence (its first `frames` frames); None above 10 bits."""
    if bit_depth not in PIX_FMTS.values() or width % 2 or height % 2:
        return None
    return PlaneSource(path, width, height, bit_depth, frames, fps)


def plane_sequence(name: str, src: PlaneSource, label: str, matrix: str = "bt709",
                   rng: str = "limited") -> Sequence:
    """A sequence whose RGB frames are made from `src`'s planes on demand, identified by its samples."""
    digest = hashlib.sha1(f"{src.digest()}|{matrix}|{rng}|{CONVERSION_VERSION}".encode()).hexdigest()[:16]
    return Sequence(name, PlaneFrames(src, matrix, rng), src.fps, label, digest, planes=src)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------ classic codecs
@functools.cache
def encoder_pix_fmts(ffmpeg_codec: str) -> tuple[str, ...]:
    """The pixel formats an ffmpeg encoder takes."""
    out = subprocess.run([ffmpeg_exe(), "-hide_banner", "-h", f"encoder={ffmpeg_codec}"],
                         capture_output=True, text=True).stdout
    m = re.search(r"Supported pixel formats:\s*(.*)", out)
    return tuple(m.group(1).split()) if m else ()


def input_depth(enc: Any, bit_depth: int) -> int:
    """The bit depth the encoder is fed: the source's where it takes it, else 10 (8-bit samples x 4, as
    vvenc needs), else 8 (rounded)."""
    fmts = encoder_pix_fmts(enc.ffmpeg_codec)
    for depth in (bit_depth, 10, 8):
        if pix_fmt(depth) in fmts:
            return depth
    raise VVCError(f"{enc.name}: ffmpeg's {enc.ffmpeg_codec} takes neither yuv420p nor yuv420p10le")


def _set_after(args: list[str], flag: str, value: str) -> list[str]:
    """`args` with the value after the first `flag` replaced."""
    out = list(args)
    out[out.index(flag) + 1] = value
    return out


def run_fed(args: list[str], cwd: Path, what: str, data: Iterable[bytes]) -> tuple[str, float]:
    """Run ffmpeg with `data` written to its standard input; (stderr, seconds) as `run_ffmpeg`."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([ffmpeg_exe(), *args], cwd=cwd, stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=err)
        assert proc.stdin is not None
        try:
            for block in data:
                proc.stdin.write(block)
            proc.stdin.close()
        except BrokenPipeError:
            pass  # ffmpeg stopped reading: its exit status and log say why
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        code = proc.wait()
        err.seek(0)
        log = err.read().decode(errors="replace")
    if code != 0:
        tail = " | ".join(log.strip().splitlines()[-4:])
        raise VVCError(f"{what} failed (ffmpeg exit {code}): {tail}")
    return log, time.perf_counter() - start


class DecodedPlanes:
    """A classic codec's decoded raw planes (at the depth it was fed), read as the source's bit depth."""

    def __init__(self, raw: PlaneSource, bit_depth: int) -> None:
        self.raw, self.bit_depth = raw, bit_depth

    def read(self, start: int, count: int) -> Planes:
        return change_depth(self.raw.read(start, count), self.raw.bit_depth, self.bit_depth)

    def rgb(self, matrix: str, rng: str) -> Iterator[np.ndarray]:
        """RGB frames made from the planes as the source's are (`PlaneFrames`)."""
        view = PlaneFrames(PlaneSource(self.raw.path, self.raw.width, self.raw.height, self.bit_depth,
                                       self.raw.frames, self.raw.fps), matrix, rng)
        for _, planes in self.raw.chunks():
            yield from view.rgb(change_depth(planes, self.raw.bit_depth, self.bit_depth))


def run_classic(enc: Any, src: PlaneSource, point: int, work: Path, intra_period: int | None, preset: str,
                matrix: str, rng: str, structure: str) -> Coded:
    """Code `src`'s planes with a classic encoder at `point` and decode them back (kept as a raw file in
    `work` that the returned `Coded` reads from: `planes` and the RGB `stream`)."""
    enc.check_available()
    if intra_period is not None and intra_period < 1:
        raise VVCError(f"intra period must be >= 1 frame or None (one intra per sequence), got "
                       f"{intra_period}")
    work.mkdir(parents=True, exist_ok=True)
    depth = input_depth(enc, src.bit_depth)
    fmt = pix_fmt(depth)
    args = enc.encode_args(src.width, src.height, src.fps, point, intra_period, preset, matrix, rng,
                           structure)
    args = _set_after(_set_after(args, "-pix_fmt", fmt), "-i", "pipe:0")
    feed = (join_frames(change_depth(p, src.bit_depth, depth)) for _, p in src.chunks())
    log, enc_s = run_fed(args, work, f"{enc.name} encode at {enc.rate_option} {point}", feed)
    stream = (work / f"stream.{enc.extension}").read_bytes()
    dec_args = _set_after(enc.decode_args(), "-pix_fmt", fmt)
    _, dec_s = run_ffmpeg(dec_args, work, f"{enc.name} decode")
    raw = PlaneSource(work / "decoded.yuv", src.width, src.height, depth, src.frames, src.fps)
    size = raw.path.stat().st_size if raw.path.is_file() else 0
    if size != src.frames * raw.frame_bytes:
        raise FrameCountError(
            f"{enc.name} {point}: the decoded video has {size / raw.frame_bytes:g} frames but the reference "
            f"has {src.frames}; the stream is incomplete")
    decoded = DecodedPlanes(raw, src.bit_depth)
    fed = fmt if depth == src.bit_depth else (f"{fmt} (the {src.bit_depth}-bit samples x {2 ** (depth - 8)})"
                                              if depth > src.bit_depth else f"{fmt} (rounded from 10 bits)")
    info = {"command": shlex.join(["ffmpeg", *args]), "decode_command": shlex.join(["ffmpeg", *dec_args]),
            "version": enc.version, "intra_pictures": enc.count_intra(stream), "encode_seconds": enc_s,
            "decode_seconds": dec_s, "stream_format": enc.raw_format, "preset": preset,
            "structure": structure,
            "input": f"the planes of {src.path.name} ({src.describe()}) piped as {fed}"}
    return Coded(None, len(stream), info, stream=decoded.rgb(matrix, rng), planes=decoded)


# ------------------------------------------------------------------------------------------ metrics
def plane_metrics(names: list[str], seqs: list[Sequence],
                  rgb_info: dict[str, dict]) -> tuple[list[str], dict[str, dict], list[str]]:
    """The plane metric keys to add where a sequence is 4:2:0 (none otherwise), their protocol (psnr_y
    saying both meanings) and the notes on frame sizes; an MS-SSIM plane metric that no sequence's planes
    are large enough for is left out (said in one note), not added as NaN."""
    from vvc_lightning.metrics import yuv

    planar = [q for q in seqs if getattr(q, "planes", None) is not None]
    if not planar:
        return [], {}, []
    sizes = dict.fromkeys((q.planes.height, q.planes.width) for q in planar)
    wanted = yuv.keys_for(names)
    keys = [k for k in wanted if not all(yuv.note(k, h, w) for h, w in sizes)]
    info = {k: yuv.info(k) for k in keys}
    if "psnr_y" in info and "psnr_y" in rgb_info:
        info["psnr_y"] = {"name": "psnr_y", "higher_is_better": True, "4:2:0 sources": info["psnr_y"],
                          "RGB sources": rgb_info["psnr_y"]}
    notes = list(dict.fromkeys(n for k in keys for h, w in sizes if (n := yuv.note(k, h, w))))
    left = [k for k in wanted if k not in keys]
    if left:
        frames = ", ".join(f"{w}x{h}" for h, w in sizes)
        planes = "luma and chroma" if "ms_ssim_y" in left else "chroma"
        notes.append(f"{', '.join(left)} left out: the {planes} planes of {frames} frames are too small for "
                     f"five scales with the 11x11 window (each side must exceed {yuv.SMALLEST} px)")
    return keys, info, notes


class PlaneScores:
    """Per-frame plane metrics of one row, a decoded chunk at a time: the source's planes (read once, in
    order) against the classic codec's decoded planes, or the neural codec's RGB made 4:2:0."""

    def __init__(self, src: PlaneSource, decoded: DecodedPlanes | None, keys: list[str], matrix: str,
                 rng: str) -> None:
        self.src, self.decoded, self.keys, self.matrix, self.rng = src, decoded, keys, matrix, rng
        self.ref = PlaneReader(src)
        self._values: dict[str, list[np.ndarray]] = {k: [] for k in keys}

    def update(self, start: int, rec: np.ndarray) -> None:
        """Score decoded frames start .. start+len(rec)-1 (`rec`: their RGB uint8 (n,H,W,3))."""
        from vvc_lightning.metrics.yuv import plane_scores

        ref = self.ref.take(len(rec))
        out = (self.decoded.read(start, len(rec)) if self.decoded is not None
               else rgb_to_planes(rec, self.src.bit_depth, self.matrix, self.rng))
        for k, v in plane_scores(ref, out, self.src.bit_depth, self.keys).items():
            self._values[k].append(v)

    def values(self) -> dict[str, np.ndarray]:
        return {k: np.concatenate(v) if v else np.zeros(0) for k, v in self._values.items()}


def plane_scores_for(seq: Sequence, coded: Coded, keys: list[str], matrix: str,
                     rng: str) -> PlaneScores | None:
    """The plane scorer of a row, or None where the sequence is not 4:2:0 or no plane metric is wanted."""
    src = getattr(seq, "planes", None)
    if src is None or not keys:
        return None
    return PlaneScores(src, getattr(coded, "planes", None), keys, matrix, rng)


# -------------------------------------------------------------------------------------- the protocol
def colour_protocol(matrix: str, rng: str, seqs: list[Sequence]) -> dict[str, str]:
    """What went to which codec and how it was measured, as the report's protocol states it."""
    planar = {q.name: q.planes.describe() for q in seqs if getattr(q, "planes", None) is not None}
    rgb = [q.name for q in seqs if getattr(q, "planes", None) is None]
    c = conversion(matrix, rng)
    out: dict[str, str] = {}
    if planar:
        out["4:2:0 sources"] = "; ".join(f"{k} ({v})" for k, v in planar.items())
        out["classic codecs (4:2:0 sources)"] = (
            "the source's own planes piped raw to ffmpeg (-f rawvideo -i pipe:0) as yuv420p / yuv420p10le at "
            "the source's bit depth; an encoder that takes only 10 bits (vvenc) gets 8-bit samples x 4 and "
            "its output is rounded back ((v + 2) >> 2), as VTM does with an internal depth of 10; decoded "
            "planes measured as they are")
        out["neural codec (4:2:0 sources)"] = (
            f"8-bit RGB made from the planes ({matrix} {rng}, chroma upsampling: {c['chroma_upsampling']}); "
            f"its RGB output made 4:2:0 at the source's bit depth ({matrix} {rng}, chroma downsampling: "
            f"{c['chroma_downsampling']}) for the plane metrics")
        out["chroma siting"] = c["chroma_siting"]
        out["plane metrics (4:2:0 sources)"] = ("psnr_y / psnr_u / psnr_v per plane (peak 2^bits - 1), "
                                                "psnr_yuv = (6 Y + U + V) / 8, ms_ssim_y / _u / _v / _yuv "
                                                "likewise")
        out["RGB metrics (4:2:0 sources)"] = ("on RGB made with the same upsampling from the source's planes "
                                              "and from each classic codec's decoded planes; the neural "
                                              "codec's own RGB output")
    if rgb:
        out["RGB sources"] = f"{', '.join(rgb)}: {RGB_SOURCES}"
    return out


def colour_path(seq: Sequence, kind: str, matrix: str, rng: str) -> dict[str, Any]:
    """A row's note on what its codec was given and how it was measured (kept in anchor files)."""
    src = getattr(seq, "planes", None)
    if src is None:
        return {"source_format": "rgb", "codec_input": "yuv420p 8-bit made from RGB (see report)"}
    given = ("source planes" if kind != "neural"
             else f"8-bit RGB from the planes ({matrix} {rng}, bilinear chroma, left siting)")
    return {"source_format": src.describe(), "codec_input": given,
            "yuv_metrics_on": "decoded planes" if kind != "neural" else
            f"RGB output made 4:2:0 ({matrix} {rng}, [1,2,1]x[1,1] chroma, left siting)"}
