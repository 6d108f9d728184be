"""A header claiming millions of GoPs is checked against the file before per-record state exists."""

from __future__ import annotations

import struct
import time
import tracemalloc

import numpy as np
import pytest

from vvc_lightning.codec.pipeline import container as bitstream
from vvc_lightning.codec.pipeline.container import Header
from vvc_lightning.codec.pipeline.determinism import model_identity
from vvc_lightning.codec.pipeline.video_codec import VideoCodec
from vvc_lightning.errors import BitstreamError


def crafted(model, gops: int, payload: bytes | None) -> bytes:
    """A header (16x16, GoP 1, no overlap, `gops` frames) for `model`, then `gops` records of `payload`
    (None: no record at all)."""
    header = Header(
        width=16,
        height=16,
        frames=gops,
        fps=25.0,
        gop=1,
        overlap=0,
        theta=0.5,
        num_gops=gops,
        latent_shape=tuple(int(v) for v in model.backbone.latent_shape(1, 16, 16)),
        identity=model_identity(model),
        quality=None if model.codec.qualities == 0 else 0.0,
    )
    if payload is None:
        return bitstream.pack_header(header)
    return bitstream.pack_header(header) + bitstream.pack_record(payload) * gops


def _peak(fn) -> tuple[int, Exception | None]:
    """Peak traced bytes while fn() runs, and what it raised."""
    tracemalloc.start()
    err = None
    try:
        fn()
    except Exception as exc:  # returned for the test to judge
        err = exc
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak, err


def test_empty_records_fail_before_any_per_record_state(tiny_model):
    """300,000 empty 8-byte records (2.4 MB): one line at once, with less memory than the file itself
    (no Record object is built per claimed record)."""
    data = crafted(tiny_model, 300_000, b"")
    codec = VideoCodec(tiny_model)
    t0 = time.perf_counter()
    peak, err = _peak(lambda: next(codec.decode_frames(data, label="crafted.vvc")))
    assert isinstance(err, BitstreamError) and time.perf_counter() - t0 < 5
    assert "claims 300000 GoP records" in str(err) and "\n" not in str(err)
    assert peak < len(data) // 4, f"{peak} bytes traced for a {len(data)}-byte file"
    peak, err = _peak(lambda: codec.decode(data, label="crafted.vvc"))
    assert isinstance(err, BitstreamError) and peak < len(data) // 4


def test_a_header_claiming_16_million_gops_over_a_few_records_fails_at_once(tiny_model):
    data = crafted(tiny_model, 16_000_000, None) + bitstream.pack_record(b"1234") * 10
    t0 = time.perf_counter()
    with pytest.raises(
        BitstreamError, match="claims 16000000 GoP records but the 120 bytes after it hold at most 10"
    ):
        VideoCodec(tiny_model).read_header(data, "crafted.vvc")
    assert time.perf_counter() - t0 < 1


def test_a_short_record_is_named(tiny_model):
    data = bytearray(crafted(tiny_model, 3, b"12345678"))
    end = len(data) - 2 * 16  # record 1 claims 2 bytes; the file keeps its size with a trailing remainder
    struct.pack_into("<I", data, end, 2)
    with pytest.raises(
        BitstreamError, match="^GoP 1 of crafted.vvc holds 2 bytes, fewer than the 4 any GoP needs"
    ):
        VideoCodec(tiny_model).read_header(bytes(data), "crafted.vvc")


def test_the_record_index_takes_16_bytes_a_record(tiny_model):
    """50,000 minimal records (12 bytes each in the file): the index stays compact, at most ~1.3x the file."""
    data = crafted(tiny_model, 50_000, b"\x00" * 4)
    holder: list = []
    peak, err = _peak(lambda: holder.append(bitstream.unpack(data, min_payload=4)))
    assert err is None
    records = holder[0][1]
    assert len(records) == 50_000 and records[-1].offset + 4 == len(data) and records[7].index == 7
    assert [r.index for r in records[2:4]] == [2, 3] and records[-1].length == 4
    assert peak < 16 * 50_000 + (1 << 20), f"{peak} bytes traced for {len(records)} records"
    assert np.all(np.frombuffer(data[-4:], np.uint8) == 0)
