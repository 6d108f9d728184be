"""Classic codecs through the ffmpeg that imageio-ffmpeg ships: x265 (HEVC), vvenc (VVC), SVT-AV1, x264.

Every codec gets the same input, 8-bit 4:2:0 Y'CbCr made from the RGB frames by `vvc_lightning.video.colour`
(BT.709 limited range by default; vvenc, which takes 10-bit input only, gets the same samples times 4
and its output is rounded back to 8 bits), the same intra period (default: one intra picture per
sequence; `intra_period=N` for one every N frames), and writes a raw elementary stream (`-f hevc`,
`-f vvc`, `-f obu`, `-f h264`) whose size is the rate. The exact command lines are returned, with the
ffmpeg and encoder versions, and the number of intra pictures found in the stream.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from vvc_lightning.errors import VVCError
from vvc_lightning.registry import Registry
from vvc_lightning.video.colour import rgb_to_yuv420, yuv420_to_rgb
from vvc_lightning.video.ffmpeg import ffmpeg_exe, ffmpeg_has, ffmpeg_version, run_ffmpeg
from vvc_lightning.video.video_io import Video

ENCODERS = Registry("baseline codec", "vvc_lightning.baselines")
register_encoder = ENCODERS.register
COLORSPACE_TAGS = {"bt709": "bt709", "bt601": "smpte170m"}
RANGE_TAGS = {"limited": "tv", "full": "pc"}


# ------------------------------------------------------------------------------- stream parsing
def annexb_nals(data: bytes) -> list[int]:
    """Offsets of the first header byte of every NAL unit in an Annex-B byte stream."""
    return [m.end() for m in re.finditer(b"\x00\x00\x01", data)]


def _ue(bits: str, pos: int) -> tuple[int, int]:
    """Exp-Golomb unsigned value at `pos` of a bit string; (value, next position)."""
    zeros = 0
    while pos + zeros < len(bits) and bits[pos + zeros] == "0":
        zeros += 1
    value = int(bits[pos + zeros : pos + 2 * zeros + 1], 2) - 1
    return value, pos + 2 * zeros + 1


def _leb128(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def av1_intra_frames(data: bytes) -> int:
    """KEY_FRAME and INTRA_ONLY frame headers in a low-overhead AV1 OBU stream."""
    pos, count = 0, 0
    while pos < len(data):
        header = data[pos]
        obu_type, has_ext, has_size = (header >> 3) & 0xF, (header >> 2) & 1, (header >> 1) & 1
        pos += 1 + has_ext
        if not has_size:
            raise VVCError("AV1 stream without OBU sizes; cannot count intra frames")
        size, pos = _leb128(data, pos)
        if obu_type in (3, 6) and size:  # FRAME_HEADER, FRAME
            first = data[pos]
            if not first & 0x80 and ((first >> 5) & 0x3) in (0, 2):  # shown-new frame, KEY or INTRA_ONLY
                count += 1
        pos += size
    return count


# ---------------------------------------------------------------------------------------- encoders
@dataclass
class BaselineRun:
    """One classic-codec encode/decode of one sequence at one rate point."""

    codec: str
    point: int
    frames: np.ndarray  # decoded RGB uint8 (N,H,W,3)
    stream_bytes: int
    bpp: float
    command: str
    decode_command: str
    version: str
    intra_pictures: int
    encode_seconds: float
    decode_seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


class Encoder:
    """A classic codec behind ffmpeg; subclasses give the codec-specific arguments."""

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    ffmpeg_codec: ClassVar[str] = ""
    raw_format: ClassVar[str] = ""
    extension: ClassVar[str] = ""
    rate_option: ClassVar[str] = "qp"
    default_points: ClassVar[tuple[int, ...]] = ()
    default_preset: ClassVar[str] = ""
    bit_depth: ClassVar[int] = 8
    version_pattern: ClassVar[str] = ""
    point_range: ClassVar[tuple[int, int]] = (0, 51)  # the lowest and highest rate point the encoder takes
    default_structure: ClassVar[str] = "ra"
    name_preset: ClassVar[bool] = True  # a setting's name spells its preset even when it is the default

    def codec_args(self, point: int, intra_period: int | None, preset: str,
                   structure: str = "ra") -> list[str]:
        """ffmpeg arguments after `-c:v CODEC` (rate point, intra period, preset; structure 'ld': low delay,
        no picture reordering; 'ra': the encoder's own reordering)."""
        raise NotImplementedError

    def count_intra(self, data: bytes) -> int:
        """Intra pictures in a raw stream of this codec."""
        raise NotImplementedError

    @property
    def pix_fmt(self) -> str:
        return "yuv420p" if self.bit_depth == 8 else "yuv420p10le"

    def check_available(self) -> None:
        """VVCError when this ffmpeg lacks the encoder."""
        if not ffmpeg_has("encoders", self.ffmpeg_codec):
            raise VVCError(
                f"baseline '{self.name}' needs ffmpeg's {self.ffmpeg_codec} encoder, which '{ffmpeg_exe()}' "
                "lacks; "
                f"install imageio-ffmpeg==0.8.1 or set IMAGEIO_FFMPEG_EXE to an ffmpeg built with it"
            )

    def encode_args(self, width: int, height: int, fps: float, point: int, intra_period: int | None,
                    preset: str, matrix: str, rng: str, structure: str = "ra") -> list[str]:
        """The full ffmpeg argument list, reading input.yuv and writing stream.EXT in the working folder."""
        # colour tags on the input side: as output options they make ffmpeg convert the samples
        return [
            "-hide_banner",
            "-nostdin",
            "-y",
            "-f",
            "rawvideo",
            "-pix_fmt",
            self.pix_fmt,
            "-s",
            f"{width}x{height}",
            "-r",
            f"{fps:g}",
            "-colorspace",
            COLORSPACE_TAGS[matrix],
            "-color_range",
            RANGE_TAGS[rng],
            "-i",
            f"input{self.bit_depth}.yuv",
            "-c:v",
            self.ffmpeg_codec,
            *self.codec_args(point, intra_period, preset, structure),
            "-f",
            self.raw_format,
            f"stream.{self.extension}",
        ]

    def decode_args(self) -> list[str]:
        """ffmpeg arguments decoding stream.EXT to raw decoded.yuv, every frame kept."""
        return ["-hide_banner", "-nostdin", "-y", "-f", self.raw_format, "-i", f"stream.{self.extension}",
                "-f", "rawvideo", "-pix_fmt", self.pix_fmt, "-fps_mode", "passthrough", "decoded.yuv"]

    def version_from(self, log: str, stream: bytes) -> str:
        """The encoder version named in an encode's log (or stream)."""
        m = re.search(self.version_pattern, log)
        return m.group(1) if m else "unknown"

    @functools.cached_property
    def version(self) -> str:
        """Encoder version, from a tiny probe encode (cached)."""
        self.check_available()
        with tempfile.TemporaryDirectory(prefix="vvc_probe_") as tmp:
            video = Video(np.full((2, 64, 64, 3), 128, np.uint8), 25.0)
            write_input(Path(tmp), video.frames, self.bit_depth, "bt709", "limited")
            args = self.encode_args(64, 64, 25.0, self.default_points[-1], None, self.default_preset,
                                    "bt709", "limited")
            args = [a for a in args if a != "filter_units=remove_types=6" and a != "-bsf:v"]
            log, _ = run_ffmpeg(args, Path(tmp), f"{self.name} version probe")
            return self.version_from(log, (Path(tmp) / f"stream.{self.extension}").read_bytes())

    def run(self, video: Video, point: int, workdir: str | os.PathLike, intra_period: int | None = None,
            preset: str | None = None, matrix: str = "bt709", rng: str = "limited",
            structure: str = "ra") -> BaselineRun:
        """Encode `video` at `point`, decode it back, and measure the raw stream."""
        self.check_available()
        if intra_period is not None and intra_period < 1:
            raise VVCError("intra period must be >= 1 frame or None (one intra per sequence), got "
                           f"{intra_period}")
        work = Path(workdir)
        work.mkdir(parents=True, exist_ok=True)
        n, h, w = video.num_frames, video.height, video.width
        ph, pw = h + h % 2, w + w % 2
        write_input(work, video.frames, self.bit_depth, matrix, rng)
        preset = preset or self.default_preset
        args = self.encode_args(pw, ph, video.fps, point, intra_period, preset, matrix, rng, structure)
        log, enc_s = run_ffmpeg(args, work, f"{self.name} encode at {self.rate_option} {point}")
        stream = (work / f"stream.{self.extension}").read_bytes()
        dec_args = self.decode_args()
        _, dec_s = run_ffmpeg(dec_args, work, f"{self.name} decode")
        frames = read_output(work / "decoded.yuv", n, pw, ph, self.bit_depth, matrix, rng, self.name)[
            :, :h, :w
        ]
        return BaselineRun(
            codec=self.name, point=int(point), frames=frames, stream_bytes=len(stream),
            bpp=len(stream) * 8 / (n * w * h), command=shlex.join(["ffmpeg", *args]),
            decode_command=shlex.join(["ffmpeg", *dec_args]), version=self.version,
            intra_pictures=self.count_intra(stream), encode_seconds=enc_s, decode_seconds=dec_s,
            extra={"preset": preset, "intra_period": intra_period, "padded_to": [pw, ph],
                   "structure": structure},
        )


def write_input(work: Path, frames: np.ndarray, bit_depth: int, matrix: str, rng: str) -> Path:
    """Raw 4:2:0 input (8-bit, or 10-bit as the 8-bit samples times 4), padded to even size by edge copy."""
    path = work / f"input{bit_depth}.yuv"
    h, w = frames.shape[1:3]
    with open(path, "wb") as f:
        for frame in frames:
            if h % 2 or w % 2:
                frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
            for plane in rgb_to_yuv420(frame, matrix, rng):
                f.write(plane.tobytes() if bit_depth == 8 else (plane.astype("<u2") << 2).tobytes())
    return path


def read_output(
    path: Path, n: int, w: int, h: int, bit_depth: int, matrix: str, rng: str, name: str
) -> np.ndarray:
    """Decoded raw 4:2:0 frames -> RGB uint8 (N,h,w,3); the frame count must be `n`."""
    bps = 1 if bit_depth == 8 else 2
    frame_size = w * h * 3 // 2 * bps
    size = path.stat().st_size if path.is_file() else 0
    if size != n * frame_size:
        raise VVCError(f"{name} decoded {size / frame_size:g} frames, expected {n}; the stream is incomplete")
    raw = np.fromfile(path, np.uint8 if bps == 1 else "<u2")
    out = np.empty((n, h, w, 3), np.uint8)
    per = w * h * 3 // 2
    for i in range(n):
        buf = raw[i * per : (i + 1) * per]
        if bps == 2:
            buf = np.clip((buf.astype(np.int32) + 2) >> 2, 0, 255).astype(np.uint8)
        y = buf[: w * h].reshape(h, w)
        u = buf[w * h : w * h * 5 // 4].reshape(h // 2, w // 2)
        v = buf[w * h * 5 // 4 :].reshape(h // 2, w // 2)
        out[i] = yuv420_to_rgb(y, u, v, matrix, rng)
    return out


@register_encoder("x265")
class X265(Encoder):
    """HEVC by x265: constant QP, infinite GOP unless an intra period is given, no scene-cut intra."""

    name, label, ffmpeg_codec, raw_format, extension = "x265", "HEVC (x265)", "libx265", "hevc", "hevc"
    default_points = (19, 23, 27, 31, 35)
    default_preset = "veryslow"
    version_pattern = r"HEVC encoder version (\S+)"

    def codec_args(self, point: int, intra_period: int | None, preset: str,
                   structure: str = "ra") -> list[str]:
        gop = "keyint=-1" if intra_period is None else f"keyint={intra_period}:min-keyint={intra_period}"
        ld = ":bframes=0" if structure == "ld" else ""
        return ["-preset", preset, "-x265-params", f"qp={point}:{gop}:scenecut=0{ld}:info=0"]

    def count_intra(self, data: bytes) -> int:
        return sum(1 for p in annexb_nals(data) if p + 2 < len(data) and 16 <= (data[p] >> 1) & 0x3F <= 23
                   and data[p + 2] & 0x80)


@register_encoder("vvenc")
class VVenC(Encoder):
    """VVC by vvenc (10-bit internal as vvenc requires): constant QP, IntraPeriod -1 (first picture only)."""

    name, label, ffmpeg_codec, raw_format, extension = "vvenc", "VVC (vvenc)", "libvvenc", "vvc", "vvc"
    default_points = (22, 26, 30, 34, 38)
    default_preset = "medium"
    bit_depth = 10
    version_pattern = r"libvvenc version: (\S+)"
    point_range = (0, 63)
    name_preset = False

    def codec_args(self, point: int, intra_period: int | None, preset: str,
                   structure: str = "ra") -> list[str]:
        # low delay: vvenc's low-delay GOP of 8 without reordering (it takes no IDR/CRA refresh there)
        ld = ":DecodingRefreshType=none:GOPSize=8:PicReordering=0" if structure == "ld" else ""
        return ["-preset", preset, "-qp", str(point), "-vvenc-params",
                f"IntraPeriod={-1 if intra_period is None else intra_period}{ld}"]

    def count_intra(self, data: bytes) -> int:
        return sum(1 for p in annexb_nals(data) if p + 1 < len(data) and 7 <= (data[p + 1] >> 3) & 0x1F <= 9)


@register_encoder("svtav1")
class SvtAv1(Encoder):
    """AV1 by SVT-AV1: CRF, keyint -1 (first frame only) unless an intra period is given, no scene
    detection."""

    name, label, ffmpeg_codec, raw_format, extension = "svtav1", "AV1 (SVT-AV1)", "libsvtav1", "obu", "obu"
    rate_option = "crf"
    default_points = (15, 23, 31, 39, 47)
    default_preset = "4"
    version_pattern = r"SVT-AV1 Encoder Lib (\S+)"
    point_range = (1, 63)
    name_preset = False

    def codec_args(self, point: int, intra_period: int | None, preset: str,
                   structure: str = "ra") -> list[str]:
        ld = ":pred-struct=1" if structure == "ld" else ""
        return ["-preset", preset, "-crf", str(point), "-svtav1-params",
                f"keyint={-1 if intra_period is None else intra_period}:scd=0{ld}"]

    def count_intra(self, data: bytes) -> int:
        return av1_intra_frames(data)


@register_encoder("x264")
class X264(Encoder):
    """AVC by x264: constant QP, infinite GOP unless an intra period is given; its version SEI is removed."""

    name, label, ffmpeg_codec, raw_format, extension = "x264", "AVC (x264)", "libx264", "h264", "h264"
    default_points = (20, 24, 28, 32, 36)
    default_preset = "veryslow"
    version_pattern = r"x264 - (core \d+(?: r\d+ \w+)?)"

    def codec_args(self, point: int, intra_period: int | None, preset: str,
                   structure: str = "ra") -> list[str]:
        gop = (
            "keyint=infinite" if intra_period is None else f"keyint={intra_period}:min-keyint={intra_period}"
        )
        ld = ":bframes=0" if structure == "ld" else ""
        return ["-preset", preset, "-x264-params", f"qp={point}:{gop}:scenecut=0{ld}",
                "-bsf:v", "filter_units=remove_types=6"]

    def version_from(self, log: str, stream: bytes) -> str:
        m = re.search(self.version_pattern.encode(), stream)
        return m.group(1).decode() if m else "unknown"

    def count_intra(self, data: bytes) -> int:
        count = 0
        for p in annexb_nals(data):
            if p + 4 >= len(data) or (data[p] & 0x1F) not in (1, 5):
                continue
            bits = "".join(f"{b:08b}" for b in data[p + 1 : p + 5])
            first_mb, pos = _ue(bits, 0)
            slice_type, _ = _ue(bits, pos)
            count += first_mb == 0 and slice_type % 5 in (2, 4)  # I or SI picture
        return count


@functools.cache
def get_encoder(name: str) -> Encoder:
    """The baseline codec registered as `name` (x265, vvenc, svtav1, x264)."""
    return ENCODERS.get(name)()


def encoder_versions(names: list[str]) -> dict[str, str]:
    """{codec: version} plus {'ffmpeg': first line of ffmpeg -version}."""
    out = {"ffmpeg": ffmpeg_version()}
    for n in names:
        out[n] = get_encoder(n).version
    return out
