"""Hostile bitstreams: header limits before allocation, a rANS decoder that never reads past its payload,
a per-GoP symbol check naming the damaged GoP, and decoding independent of the thread count."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from compressai.ans import BufferedRansEncoder, RansDecoder
from compressai.entropy_models import GaussianConditional
from compressai.models.base import get_scale_table

from tests.conftest import small_clip
from tests.fuzz_vvc import _records, _with_payload, consistent_header
from vvc_lightning.codec.entropy.rans_bounded import BoundedRansDecoder
from vvc_lightning.codec.pipeline.video_codec import VideoCodec
from vvc_lightning.errors import BitstreamError
from vvc_lightning.video.video_io import Video


@pytest.fixture(scope="module")
def stream(tiny_model, bikes_frames) -> dict:
    codec = VideoCodec(tiny_model, gop=5, batch=2)
    data = codec.encode(Video(small_clip(bikes_frames, 9, 24, 40), 25.0))
    return {"codec": codec, "data": data, "frames": codec.decode(data).frames}


@pytest.fixture(scope="module")
def gaussian() -> dict:
    gc = GaussianConditional(None)
    gc.update_scale_table(get_scale_table(), force=True)
    tables = (gc._quantized_cdf.tolist(), gc._cdf_length.int().tolist(), gc._offset.int().tolist())
    g = torch.Generator().manual_seed(0)
    scales = torch.rand(4000, generator=g) * 5 + 0.11
    values = torch.round(torch.randn(4000, generator=g) * scales * 3).int()
    values[::97] = torch.randint(-70000, 70000, values[::97].shape, generator=g).int()  # escapes (bypass)
    indexes = gc.build_indexes(scales).int().tolist()
    enc = BufferedRansEncoder()
    enc.encode_with_indexes(values.tolist(), indexes, *tables)
    return {"tables": tables, "indexes": indexes, "values": values.tolist(), "string": enc.flush()}


# ------------------------------------------------------------------------------- 2: bounded rANS
def test_bounded_decoder_matches_compressai_including_escapes(gaussian):
    ref = RansDecoder()
    ref.set_stream(gaussian["string"])
    expected = ref.decode_stream(gaussian["indexes"], *gaussian["tables"])
    dec = BoundedRansDecoder()
    dec.set_stream(gaussian["string"])
    half = len(gaussian["indexes"]) // 2
    got = dec.decode_stream(gaussian["indexes"][:half], *gaussian["tables"])
    got += dec.decode_stream(gaussian["indexes"][half:], *gaussian["tables"])
    dec.finish()
    assert got == expected == gaussian["values"]


@pytest.mark.parametrize("damage", ["truncate", "zeros", "ones", "random", "extend"])
def test_bounded_decoder_fails_on_damage_without_reading_past(gaussian, damage):
    s = gaussian["string"]
    rng = np.random.default_rng(0)
    data = {
        "truncate": s[: len(s) // 3], "zeros": bytes(len(s)), "ones": b"\xff" * len(s),
        "random": rng.integers(0, 256, len(s), dtype=np.uint8).tobytes(), "extend": s + b"\x01\x02\x03\x04",
    }[damage]
    dec = BoundedRansDecoder()
    with pytest.raises(BitstreamError):
        dec.set_stream(data)
        dec.decode_stream(gaussian["indexes"], *gaussian["tables"])
        dec.finish()


@pytest.mark.parametrize(
    ("width", "height", "gop", "frames"),
    [
        (16384, 16384, 5, 5),
        (65528, 65528, 5, 5),
        (4096, 4096, 5, 5),
        (2048, 2048, 5, 5),
        (64, 64, 65533, 65533),
        (512, 256, 5, 1000),
    ],
)
def test_crafted_headers_with_valid_crcs_fail_fast(stream, width, height, gop, frames):
    """Headers claiming huge frames, GoPs or frame counts fail in well under a second or two."""
    crafted = consistent_header(stream["data"], width, height, gop, frames)
    t0 = time.perf_counter()
    with pytest.raises(BitstreamError):
        stream["codec"].decode(crafted, label="crafted.vvc")
    assert time.perf_counter() - t0 < 10


# --------------------------------------------------------------------------- 3: undetected damage
@pytest.mark.parametrize("damage", ["empty", "truncated", "zeroed", "random", "swapped"])
def test_damaged_payload_with_recomputed_crc_is_an_error_naming_the_gop(stream, damage):
    data = stream["data"]
    pos, n = _records(data)[1]
    payload = data[pos + 8 : pos + 8 + n]
    other = _records(data)[0]
    new = {
        "empty": b"", "truncated": payload[: n // 2], "zeroed": bytes(n),
        "random": np.random.default_rng(1).integers(0, 256, n, dtype=np.uint8).tobytes(),
        "swapped": data[other[0] + 8 : other[0] + 8 + other[1]],
    }[damage]
    bad = _with_payload(data, 1, new)
    for _ in range(2):  # the same damaged file fails the same way every time
        with pytest.raises(BitstreamError, match=r"^GoP 1 of damaged\.vvc"):
            stream["codec"].decode(bad, label="damaged.vvc")


def test_symbol_check_catches_a_payload_from_another_model(stream, tiny_config):
    """A stream decoded by a model with other entropy tables fails its symbol check, giving no frames."""
    from vvc_lightning.training.model import VideoCompressionModel

    torch.manual_seed(5)
    other = VideoCompressionModel(tiny_config).eval()
    other.codec.update_tables(force=True)
    data = stream["data"]
    pos, n = _records(data)[0]
    from vvc_lightning.codec.entropy.symbol_check import bind_to_gop

    payload = bind_to_gop(data[pos + 8 : pos + 8 + n], 0)
    header_shape = stream["codec"].read_header(data)[0].latent_shape
    with pytest.raises(BitstreamError):
        other.codec.decompress([payload], header_shape, None)


def test_record_crc_catches_plain_flips(stream):
    data = bytearray(stream["data"])
    pos, _ = _records(bytes(data))[0]
    data[pos + 20] ^= 0x10
    with pytest.raises(BitstreamError, match="CRC32"):
        stream["codec"].decode(bytes(data))


# ------------------------------------------------------------------------------ 9: thread count
def test_decoding_gives_identical_frames_whatever_the_thread_count(stream):
    before = torch.get_num_threads()
    outs = []
    for n in (1, 2, 3):  # explicit counts: the codec would otherwise choose fewer on a busy machine
        outs.append(VideoCodec(stream["codec"].model, batch=2, threads=n).decode(stream["data"]).frames)
    assert torch.get_num_threads() == before  # restored after each run
    assert all(np.array_equal(outs[0], o) for o in outs[1:])
    assert np.array_equal(outs[0], stream["frames"])
