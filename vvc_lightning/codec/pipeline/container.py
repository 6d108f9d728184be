"""The .vvc container: a versioned, checksummed header, then one length-prefixed record per GoP.

Layout (all integers little-endian):

    offset  size  field
    0       4     magic b"VVCL"
    4       2     container version (u16, currently 2; version 1 held float entropy parameters)
    6       4     header body length L (u32)
    10      L     header body (see `_BODY`):
                    width u32, height u32, frames u32, fps f64, gop u16, overlap u16, theta f64,
                    tile u32 (0 = untiled), tile_overlap u32, matrix u8, range u8, num_gops u32,
                    latent c u16, t u16, h u32, w u32 (one GoP's latent after padding),
                    then three u16-length-prefixed UTF-8 strings: model identity, checkpoint path, backbone,
                    then (optional, absent in older files) quality f64: the variable-rate quality the
                    file was coded at, NaN for a fixed-rate model
    10+L    4     CRC32 of bytes [0, 10+L)
    then num_gops records, each: payload length u32, CRC32 of payload u32, payload (the latent codec's
    byte string of that GoP).
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import overload

import numpy as np

from vvc_lightning.errors import BitstreamError, CodecOptionError

MAGIC = b"VVCL"
VERSION = 2  # 2: integer entropy parameters (vvc_lightning.codec.entropy.intnet), exact on any machine
MATRICES = ("bt709", "bt601")
RANGES = ("limited", "full")

_PREFIX = struct.Struct("<4sHI")  # magic, version, body length
_BODY = struct.Struct("<IIIdHHdIIBBIHHII")
_RECORD = struct.Struct("<II")  # payload length, crc32
_CRC = struct.Struct("<I")
_STR = struct.Struct("<H")
_QUALITY = struct.Struct("<d")  # appended after the strings; a reader that stops at the strings ignores it

# Limits a header must respect (checked on write and on read, before anything is allocated from it).
MAX_SIDE = 16384  # frame width / height in pixels
MAX_PIXELS = 8192 * 8192  # pixels per frame
MAX_GOP = 257  # frames per GoP
MAX_FPS = 1000.0
MIN_FPS = 0.01  # the lowest frame rate the codec takes (a header stores any in (0, MAX_FPS])
MAX_LATENT_CHANNELS = 4096
MAX_BODY = _BODY.size + 3 * (_STR.size + 0xFFFF) + _QUALITY.size  # the longest header body any writer makes


@dataclass(frozen=True)
class Header:
    """Everything a decoder needs besides the model weights."""

    width: int
    height: int
    frames: int
    fps: float
    gop: int
    overlap: int
    theta: float
    num_gops: int
    latent_shape: tuple[int, int, int, int]
    identity: str
    tile: int = 0
    tile_overlap: int = 0
    matrix: str = "bt709"
    range: str = "limited"
    checkpoint: str = ""
    backbone: str = ""
    version: int = field(default=VERSION)
    quality: float | None = None  # variable-rate quality coded at; None for a fixed-rate model

    def __post_init__(self) -> None:
        if self.matrix not in MATRICES:
            raise BitstreamError(f"colour matrix '{self.matrix}' cannot be stored; use one of {MATRICES}")
        if self.range not in RANGES:
            raise BitstreamError(f"colour range '{self.range}' cannot be stored; use one of {RANGES}")


@dataclass(frozen=True)
class Record:
    """Where one GoP's payload sits in the file."""

    index: int
    offset: int  # of the payload
    length: int
    crc: int


def _pack_str(s: str) -> bytes:
    raw = s.encode("utf-8")
    if len(raw) > 0xFFFF:
        raise BitstreamError(f"header string too long to store ({len(raw)} bytes): {s[:60]}...")
    return _STR.pack(len(raw)) + raw


def check_limits(h: Header, label: str = "bitstream") -> None:
    """Fail unless every size in the header is within the container's limits."""

    def bad(what: str) -> BitstreamError:
        return BitstreamError(
            f"{label} header {what}; the file is damaged or was not written by vvc-lightning"
        )

    if not (1 <= h.width <= MAX_SIDE and 1 <= h.height <= MAX_SIDE and h.width * h.height <= MAX_PIXELS):
        raise bad(f"claims frames of {h.width}x{h.height} (limit {MAX_SIDE} per side, {MAX_PIXELS} pixels)")
    if h.frames < 1 or h.num_gops < 1 or h.num_gops > h.frames:
        raise bad(f"claims {h.frames} frames in {h.num_gops} GoPs")
    if not 1 <= h.gop <= MAX_GOP or h.overlap >= h.gop:
        raise bad(f"claims a GoP of {h.gop} frames with overlap {h.overlap} (limit {MAX_GOP})")
    if not (math.isfinite(h.fps) and 0 < h.fps <= MAX_FPS):
        raise bad(f"claims a frame rate of {h.fps} (must be in (0, {MAX_FPS:g}])")
    if not (math.isfinite(h.theta) and 0 <= h.theta <= 1):
        raise bad(f"claims a GoP blend weight theta of {h.theta} (must be in [0, 1])")
    if h.tile > MAX_SIDE or h.tile_overlap > MAX_SIDE:
        raise bad(f"claims tiles of {h.tile} pixels with overlap {h.tile_overlap}")
    c, t, lh, lw = h.latent_shape
    if not (1 <= c <= MAX_LATENT_CHANNELS and 1 <= t <= h.gop and 1 <= lh <= h.height and 1 <= lw <= h.width):
        raise bad(f"claims a latent of shape {h.latent_shape} for {h.width}x{h.height} frames")


def pack_header(h: Header) -> bytes:
    """Serialize a header (prefix, body, CRC32)."""
    check_limits(h, "the new")
    c, t, lh, lw = h.latent_shape
    try:
        body = _BODY.pack(
            h.width, h.height, h.frames, float(h.fps), h.gop, h.overlap, float(h.theta), h.tile,
            h.tile_overlap, MATRICES.index(h.matrix), RANGES.index(h.range), h.num_gops, c, t, lh, lw,
        )
    except struct.error as exc:
        raise BitstreamError(f"a header field is out of range for the container: {exc}") from exc
    body += _pack_str(h.identity) + _pack_str(h.checkpoint) + _pack_str(h.backbone)
    body += _QUALITY.pack(math.nan if h.quality is None else float(h.quality))
    head = _PREFIX.pack(MAGIC, VERSION, len(body)) + body
    return head + _CRC.pack(zlib.crc32(head))


def pack_record(payload: bytes) -> bytes:
    """One GoP record: length, CRC32, payload."""
    if len(payload) > 0xFFFFFFFF:
        raise BitstreamError(f"a GoP payload of {len(payload)} bytes does not fit a record")
    return _RECORD.pack(len(payload), zlib.crc32(payload)) + payload


def pack(header: Header, payloads: list[bytes]) -> bytes:
    """A whole container."""
    if len(payloads) != header.num_gops:
        raise BitstreamError(
            f"header announces {header.num_gops} GoPs but {len(payloads)} payloads were given"
        )
    return pack_header(header) + b"".join(pack_record(p) for p in payloads)


def _read_str(data: bytes, pos: int, end: int, what: str) -> tuple[str, int]:
    if pos + _STR.size > end:
        raise BitstreamError(f"header is too short to hold the {what}; the file is damaged")
    (n,) = _STR.unpack_from(data, pos)
    pos += _STR.size
    if pos + n > end:
        raise BitstreamError(f"header is too short to hold the {what}; the file is damaged")
    try:
        return data[pos : pos + n].decode("utf-8"), pos + n
    except UnicodeDecodeError as exc:
        raise BitstreamError(f"the {what} in the header is not UTF-8; the file is damaged") from exc


def unpack_header(data: bytes, label: str = "bitstream") -> tuple[Header, int]:
    """Parse and verify the header; returns it and the offset of the first record. Only the header's bytes
    are read from `data` (bytes, or anything sliced like them, such as a file read on demand)."""
    size = len(data)
    data = bytes(data[: _PREFIX.size + MAX_BODY + _CRC.size])  # no header is longer
    if size < _PREFIX.size:
        raise BitstreamError(f"{label} is {size} bytes, too short to be a vvc-lightning bitstream")
    magic, version, body_len = _PREFIX.unpack_from(data, 0)
    if magic != MAGIC:
        raise BitstreamError(
            f"{label} is not a vvc-lightning bitstream (starts with {magic!r}, expected {MAGIC!r}); "
            "pass a file written by `vvc_lightning compress`"
        )
    if version > VERSION:
        raise BitstreamError(
            f"{label} uses container version {version}, newer than this vvc-lightning reads (up to "
            f"{VERSION}); upgrade vvc-lightning to decode it"
        )
    if version == 1:
        raise BitstreamError(
            f"{label} uses container version 1, whose float entropy parameters this vvc-lightning (container "
            f"version {VERSION}, exact integer entropy model) cannot reproduce; re-encode the source video "
            "with this version (or decode it with the vvc-lightning release and checkpoint that wrote it)"
        )
    if version < 1:
        raise BitstreamError(f"{label} has an invalid container version {version}; the file is damaged")
    end = _PREFIX.size + body_len
    if body_len > MAX_BODY:
        raise BitstreamError(
            f"{label} header claims a body of {body_len} bytes (at most {MAX_BODY}); the file is damaged"
        )
    if end + _CRC.size > size:
        raise BitstreamError(f"{label} is truncated inside its header ({size} bytes); the file is damaged")
    (crc,) = _CRC.unpack_from(data, end)
    if crc != zlib.crc32(data[:end]):
        raise BitstreamError(f"{label} header fails its CRC32 check; the file is damaged")
    if body_len < _BODY.size:
        raise BitstreamError(f"{label} header body is {body_len} bytes, too short; the file is damaged")
    (w, h, n, fps, gop, ov, theta, tile, tile_ov, mi, ri, ngops, c, t, lh, lw) = _BODY.unpack_from(
        data, _PREFIX.size
    )
    if mi >= len(MATRICES) or ri >= len(RANGES):
        raise BitstreamError(f"{label} header names an unknown colour matrix/range code ({mi}, {ri})")
    pos = _PREFIX.size + _BODY.size
    identity, pos = _read_str(data, pos, end, "model identity")
    ckpt, pos = _read_str(data, pos, end, "checkpoint path")
    backbone, pos = _read_str(data, pos, end, "backbone name")
    quality = None
    if pos + _QUALITY.size <= end:
        (q,) = _QUALITY.unpack_from(data, pos)
        quality = None if math.isnan(q) else q
        if quality is not None and not (0.0 <= quality < 65536.0):
            raise BitstreamError(f"{label} header holds an invalid quality {quality}; the file is damaged")
    header = Header(
        width=w, height=h, frames=n, fps=fps, gop=gop, overlap=ov, theta=theta, num_gops=ngops,
        latent_shape=(c, t, lh, lw), identity=identity, tile=tile, tile_overlap=tile_ov,
        matrix=MATRICES[mi], range=RANGES[ri], checkpoint=ckpt, backbone=backbone, version=version,
        quality=quality,
    )
    check_limits(header, label)
    return header, end + _CRC.size


class RecordIndex(Sequence[Record]):
    """Where each GoP's payload sits, in compact arrays (16 bytes a record, no more than the file holds)."""

    def __init__(self, offsets: np.ndarray, lengths: np.ndarray, crcs: np.ndarray) -> None:
        self._offsets, self._lengths, self._crcs = offsets, lengths, crcs

    def __len__(self) -> int:
        return len(self._offsets)

    @overload
    def __getitem__(self, i: int) -> Record: ...

    @overload
    def __getitem__(self, i: slice) -> list[Record]: ...

    def __getitem__(self, i: int | slice) -> Record | list[Record]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        k = range(len(self))[i]  # IndexError past the end, negative indexes count from it
        return Record(k, int(self._offsets[k]), int(self._lengths[k]), int(self._crcs[k]))


def index_records(
    data: bytes, header: Header, start: int, label: str = "bitstream", min_payload: int = 0
) -> RecordIndex:
    """Walk the record lengths (no CRC check yet); fails on truncation, a missing or an extra record.

    The record count the header claims is checked against the bytes left (each record takes at least
    8 + `min_payload` bytes) before any per-record state exists, and each payload against `min_payload`.
    Only the record prefixes are read from `data` (bytes, or a file read on demand), never the payloads.
    """
    n, left, least = header.num_gops, len(data) - start, _RECORD.size + min_payload
    if n * least > left:
        raise BitstreamError(
            f"{label} header claims {n} GoP records but the {max(left, 0)} bytes after it hold at most "
            f"{max(left, 0) // least}; the file is truncated or damaged"
        )
    offsets, lengths, crcs = np.empty(n, np.uint64), np.empty(n, np.uint32), np.empty(n, np.uint32)
    pos, end, unpack = start, len(data), _RECORD.unpack
    for i in range(n):
        if pos + _RECORD.size > end:
            raise BitstreamError(
                f"{label} is truncated: GoP record {i} of {n} is missing "
                f"(file ends at byte {end}); re-create or re-download it"
            )
        length, crc = unpack(data[pos : pos + _RECORD.size])
        pos += _RECORD.size
        if length < min_payload:
            raise BitstreamError(
                f"GoP {i} of {label} holds {length} bytes, fewer than the {min_payload} any GoP needs; "
                "the file is damaged"
            )
        if pos + length > end:
            raise BitstreamError(
                f"{label} is truncated: GoP record {i} needs bytes up to {pos + length} but the file "
                f"has {end}; re-create or re-download it"
            )
        offsets[i], lengths[i], crcs[i] = pos, length, crc
        pos += length
    if pos != end:
        raise BitstreamError(
            f"{label} has {end - pos} unexpected bytes after its last GoP record; the file is damaged"
        )
    return RecordIndex(offsets, lengths, crcs)


def read_payload(data: bytes, record: Record, label: str = "bitstream") -> bytes:
    """The payload of one record, after its CRC32 check."""
    payload = bytes(data[record.offset : record.offset + record.length])
    if zlib.crc32(payload) != record.crc:
        raise BitstreamError(f"{label}: GoP record {record.index} fails its CRC32 check; the file is damaged")
    return payload


def unpack(data: bytes, label: str = "bitstream", min_payload: int = 0) -> tuple[Header, RecordIndex]:
    """Header and record index of a whole container (payloads are read and checked on demand)."""
    header, start = unpack_header(data, label)
    return header, index_records(data, header, start, label, min_payload)


def iter_payloads(data: bytes, records: Sequence[Record], label: str = "bitstream") -> Iterator[bytes]:
    """Checked payloads of `records`, in order."""
    for r in records:
        yield read_payload(data, r, label)


def check_fps(fps: object) -> float:
    """`fps` as a float from MIN_FPS to MAX_FPS frames per second, or a CodecOptionError naming it."""
    if isinstance(fps, (int, float, np.number)) and not isinstance(fps, bool) and math.isfinite(fps):
        if MIN_FPS <= fps <= MAX_FPS:
            return float(fps)
    raise CodecOptionError(
        "fps", f"must be {MIN_FPS:g} to {MAX_FPS:g} frames per second (e.g. 25 or 29.97), got {fps!r}"
    )
