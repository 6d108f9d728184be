"""The numba rANS coder equals CompressAI's C++ one: the bounded decoder on random valid streams (escapes
included), the encoder byte for byte on the same streams."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from compressai.ans import BufferedRansEncoder, RansDecoder
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.models.base import get_scale_table

from vvc_lightning.codec.entropy.rans_bounded import BoundedRansDecoder, RansEncoder, RansTables
from vvc_lightning.errors import BitstreamError


@pytest.fixture(scope="module")
def tables() -> dict:
    gc = GaussianConditional(None)
    gc.update_scale_table(get_scale_table(), force=True)
    torch.manual_seed(0)
    eb = EntropyBottleneck(8)
    eb.update(force=True)
    return {
        name: (
            m._quantized_cdf.tolist(),
            m._cdf_length.reshape(-1).int().tolist(),
            m._offset.reshape(-1).int().tolist(),
        )
        for name, m in (("gc", gc), ("eb", eb))
    }


def _random_stream(tables: dict, seed: int, n: int) -> tuple[bytes, list[tuple[str, list[int], list[int]]]]:
    """A stream of alternating gc / eb chunks with random symbols, a few far outside the tables (bypass)."""
    rng = np.random.default_rng(seed)
    enc = BufferedRansEncoder()
    chunks = []
    for k in range(4):
        name = "gc" if k % 2 == 0 else "eb"
        cdfs, sizes, offsets = tables[name]
        idx = rng.integers(0, len(sizes), n)
        spread = np.array(sizes)[idx] / 2
        values = (
            np.round(rng.normal(0, 1, n) * spread).astype(np.int64)
            + np.array(offsets)[idx]
            + spread.astype(int)
        )
        esc = rng.random(n) < 0.03
        values[esc] = rng.integers(-(2**20), 2**20, esc.sum())
        values[rng.random(n) < 0.002] = rng.choice(
            [-(2**26), 2**26, 70000, -70000]
        )  # wide escapes (CompressAI hangs past 2**28)
        chunk = (name, idx.astype(np.int32).tolist(), values.astype(np.int32).tolist())
        enc.encode_with_indexes(chunk[2], chunk[1], *tables[name])
        chunks.append(chunk)
    return enc.flush(), chunks


@pytest.mark.parametrize("seed", range(6))
def test_numba_decoder_equals_compressai_on_random_streams(tables, seed):
    string, chunks = _random_stream(tables, seed, 3000 + 500 * seed)
    ref, dec, arr = RansDecoder(), BoundedRansDecoder(), BoundedRansDecoder()
    ref.set_stream(string)
    dec.set_stream(string)
    arr.set_stream(string)
    as_arrays = {name: RansTables(*t) for name, t in tables.items()}
    for name, idx, values in chunks:
        expected = ref.decode_stream(idx, *tables[name])
        assert dec.decode_stream(idx, *tables[name]) == expected == values  # list API, like CompressAI
        # array API, as decode_y uses
        got = arr.decode_array(np.asarray(idx, dtype=np.int32), as_arrays[name])
        assert got.dtype == np.int32 and got.tolist() == expected
    dec.finish()
    arr.finish()


def test_state_no_encoder_writes_is_refused(tables):
    string, _ = _random_stream(tables, 0, 100)
    with pytest.raises(BitstreamError, match="state no encoder writes"):
        BoundedRansDecoder().set_stream(string[:4] + b"\x00\x00\x00\x80" + string[8:])


def test_out_of_range_index_and_unfinished_stream_are_errors(tables):
    string, chunks = _random_stream(tables, 1, 200)
    dec = BoundedRansDecoder()
    dec.set_stream(string)
    with pytest.raises(BitstreamError, match="CDF index 999 out of range"):
        dec.decode_stream([999], *tables["gc"])
    dec = BoundedRansDecoder()
    dec.set_stream(string)
    dec.decode_stream(chunks[0][1], *tables["gc"])
    with pytest.raises(BitstreamError, match="does not end where its symbols end"):
        dec.finish()


def test_malformed_tables_are_refused():
    with pytest.raises(ValueError, match="strictly increasing"):
        RansTables([[0, 40000, 30000, 65536]], [4], [0])


@pytest.mark.parametrize("seed", range(6))
def test_numba_encoder_writes_compressai_bytes(tables, seed):
    """RansEncoder (numpy arrays, `RansTables` or list tables) writes the very bytes of CompressAI's
    BufferedRansEncoder: several chunks per string, escapes up to 2**26; an empty string decodes."""
    string, chunks = _random_stream(tables, seed, 3000 + 500 * seed)
    enc = RansEncoder()
    as_arrays = {name: RansTables(*t) for name, t in tables.items()}
    for k, (name, idx, values) in enumerate(chunks):
        if k % 2:
            enc.encode_with_indexes(values, idx, *tables[name])
        else:
            enc.encode_with_indexes(np.asarray(values, np.int32), np.asarray(idx, np.int32), as_arrays[name])
    assert enc.flush() == string
    empty = BoundedRansDecoder()  # (CompressAI's own encoder writes before its buffer when flushed empty)
    empty.set_stream(RansEncoder().flush())
    empty.finish()
    with pytest.raises(ValueError, match="out of range"):
        RansEncoder().encode_with_indexes([0], [len(tables["gc"][1])], as_arrays["gc"])
