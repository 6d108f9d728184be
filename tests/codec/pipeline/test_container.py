"""The .vvc container: round trip, and a clear BitstreamError for every kind of damage."""

from __future__ import annotations

import struct
import zlib

import pytest

from vvc_lightning.codec.pipeline import container as bitstream
from vvc_lightning.codec.pipeline.container import Header
from vvc_lightning.errors import BitstreamError


def make_header(**kw) -> Header:
    base = dict(
        width=640, height=272, frames=20, fps=29.97, gop=9, overlap=1, theta=0.5, num_gops=3,
        latent_shape=(16, 3, 34, 80), identity="ab" * 32, tile=256, tile_overlap=32, matrix="bt601",
        range="full", checkpoint="/runs/x/last.ckpt", backbone="cv_vae",
    )
    base.update(kw)
    return Header(**base)


PAYLOADS = [b"first gop", b"", b"\x00\x01" * 100]


def test_header_and_records_round_trip_exactly():
    h = make_header(checkpoint="/päth/with ünïcode.ckpt")
    data = bitstream.pack(h, PAYLOADS)
    back, records = bitstream.unpack(data)
    assert back == h
    assert list(bitstream.iter_payloads(data, records)) == PAYLOADS


def test_layout_starts_with_magic_version_and_body_length():
    data = bitstream.pack(make_header(), PAYLOADS)
    magic, version, body_len = struct.unpack_from("<4sHI", data)
    assert (magic, version) == (b"VVCL", bitstream.VERSION)
    (crc,) = struct.unpack_from("<I", data, 10 + body_len)
    assert crc == zlib.crc32(data[: 10 + body_len])


def test_payload_count_must_match_header():
    with pytest.raises(BitstreamError, match="announces 3 GoPs"):
        bitstream.pack(make_header(), PAYLOADS[:2])


@pytest.mark.parametrize("cut", [3, 12, 60, -1, -150])
def test_truncated_file_is_rejected(cut):
    data = bitstream.pack(make_header(), PAYLOADS)
    with pytest.raises(BitstreamError, match="too short|truncated"):
        bitstream.unpack(data[:cut])


def test_every_single_flipped_byte_is_detected():
    data = bitstream.pack(make_header(), PAYLOADS)
    for pos in range(len(data)):
        bad = bytearray(data)
        bad[pos] ^= 0x20
        with pytest.raises(BitstreamError):
            _, records = bitstream.unpack(bytes(bad))
            list(bitstream.iter_payloads(bytes(bad), records))


def test_wrong_magic_says_it_is_not_a_vvc_file():
    data = b"RIFF" + bitstream.pack(make_header(), PAYLOADS)[4:]
    with pytest.raises(BitstreamError, match="not a vvc-lightning bitstream"):
        bitstream.unpack(data)


def test_newer_container_version_asks_for_an_upgrade():
    data = bytearray(bitstream.pack(make_header(), PAYLOADS))
    struct.pack_into("<H", data, 4, bitstream.VERSION + 1)
    with pytest.raises(BitstreamError, match="newer than this vvc-lightning reads.*upgrade"):
        bitstream.unpack(bytes(data))


def test_trailing_garbage_is_rejected():
    data = bitstream.pack(make_header(), PAYLOADS) + b"xx"
    with pytest.raises(BitstreamError, match="unexpected bytes"):
        bitstream.unpack(data)


def test_damaged_record_names_the_gop():
    data = bytearray(bitstream.pack(make_header(), PAYLOADS))
    _, records = bitstream.unpack(bytes(data))
    data[records[2].offset + 5] ^= 1
    with pytest.raises(BitstreamError, match="GoP record 2 fails its CRC32"):
        bitstream.read_payload(bytes(data), records[2])
    assert bitstream.read_payload(bytes(data), records[0]) == PAYLOADS[0]


def test_unknown_colour_matrix_cannot_be_stored():
    with pytest.raises(BitstreamError, match="colour matrix"):
        make_header(matrix="bt2020")
