"""rANS coding bit-compatible with CompressAI's (64-bit state, 32-bit words): a bounded decoder and an
encoder.

CompressAI's C++ decoder reads its input through a raw pointer with no end check: every renormalisation
and every 4-bit bypass read takes the next 32-bit word, and the bypass loop runs as long as the data says
so, so damaged data makes it read past the payload (a segfault or garbage from the heap). This decoder
makes the same arithmetic (a numba kernel over numpy arrays) with an explicit bound on every read: it never
reads a word past its payload, never decodes a bypass value wider than 32 bits, and its time is linear in
the symbols asked for plus the payload length. `finish()` checks that the whole payload was consumed and
that the state returned to the encoder's initial one, as it does for every stream the encoder wrote.

The state is an int64: an encoder-written stream starts with a state in [2**31, 2**63) and every decoding
step keeps it there (one renormalisation per step suffices), so a first state of 2**63 or more is refused.

`RansEncoder` is the matching encoder (the bytes of CompressAI's `BufferedRansEncoder`, checked on random
streams with escapes): symbols come as numpy arrays and are coded by numba kernels, not through Python lists.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from vvc_lightning.errors import BitstreamError

_L = 1 << 31  # RANS64_L: the lower bound of the normalised state
_PRECISION = 16  # CDF precision in bits (CompressAI's `precision`)
_MASK = (1 << _PRECISION) - 1
_BYPASS_BITS = 4  # CompressAI's `bypass_precision`
_BYPASS_MAX = (1 << _BYPASS_BITS) - 1
_MAX_BYPASS_DIGITS = 32 // _BYPASS_BITS  # an int32 value never needs more

_OK, _ENDED, _ESCAPE, _INDEX = 0, 1, 2, 3  # kernel status codes


class RansTables:
    """CDF tables as numpy arrays (rows of `cdfs` padded), the form both numba kernels take."""

    def __init__(self, cdfs: object, cdf_sizes: object, offsets: object) -> None:
        if isinstance(cdfs, np.ndarray) and cdfs.ndim == 2:
            self.cdfs = np.ascontiguousarray(cdfs, dtype=np.int32)
        else:
            rows = [list(r) for r in cdfs]
            self.cdfs = np.zeros((len(rows), max((len(r) for r in rows), default=1)), dtype=np.int32)
            for i, r in enumerate(rows):
                self.cdfs[i, : len(r)] = r
        self.sizes = np.ascontiguousarray(np.asarray(cdf_sizes, dtype=np.int32).reshape(-1))
        self.offsets = np.ascontiguousarray(np.asarray(offsets, dtype=np.int32).reshape(-1))
        if not len(self.sizes) == len(self.offsets) == len(self.cdfs):
            raise ValueError("CDF tables: cdfs, sizes and offsets differ in length")
        if (self.sizes < 2).any() or (self.sizes > self.cdfs.shape[1]).any():
            raise ValueError("CDF tables: a CDF length is outside its row")
        for row, size in zip(self.cdfs, self.sizes, strict=True):  # what keeps the int64 state in range
            cdf = row[:size]
            if cdf[0] != 0 or cdf[-1] != 1 << _PRECISION or (np.diff(cdf) <= 0).any():
                raise ValueError("CDF tables: a CDF is not strictly increasing from 0 to 2**16")


def _as_tables(coder: object, cdfs: object, cdf_sizes: object, offsets: object) -> RansTables:
    """`cdfs` if it is a `RansTables`, else CompressAI-style list tables converted (and checked) once per list
    object, cached on the coder."""
    if isinstance(cdfs, RansTables):
        return cdfs
    cached = coder._tables
    if cached is None or cached[0] is not cdfs:
        cached = coder._tables = (cdfs, RansTables(cdfs, cdf_sizes, offsets))
    return cached[1]


@njit(cache=True, nogil=True)
def _read(words: np.ndarray, pos: int, x: int) -> tuple[int, int, bool]:
    """Renormalise: (state, position, ok); never reads words[len(words)]."""
    if x < _L:
        if pos >= words.shape[0]:
            return x, pos, False
        x = (x << 32) | np.int64(words[pos])
        pos += 1
    return x, pos, True


@njit(cache=True, nogil=True)
def _decode_kernel(
    words: np.ndarray, pos: int, x: int, indexes: np.ndarray, cdfs: np.ndarray, sizes: np.ndarray,
    offsets: np.ndarray, out: np.ndarray,
) -> tuple[int, int, int, int]:
    """Decode len(indexes) symbols into `out`: (status, state, position, symbols done)."""
    n_cdfs = sizes.shape[0]
    for i in range(indexes.shape[0]):
        ci = indexes[i]
        if ci < 0 or ci >= n_cdfs:
            return _INDEX, x, pos, i
        max_value = sizes[ci] - 2
        cum = x & _MASK
        lo, hi = 0, max_value  # largest s in [0, max_value] with cdf[s] <= cum (cdf[0] == 0)
        while lo < hi:
            mid = (lo + hi + 1) >> 1
            if cdfs[ci, mid] <= cum:
                lo = mid
            else:
                hi = mid - 1
        s = lo
        start = np.int64(cdfs[ci, s])
        x = (np.int64(cdfs[ci, s + 1]) - start) * (x >> _PRECISION) + cum - start
        x, pos, ok = _read(words, pos, x)
        if not ok:
            return _ENDED, x, pos, i
        value = np.int64(s)
        if s == max_value:  # bypass: a count of 4-bit digits (15 continues), then the digits
            digits, val = 0, _BYPASS_MAX
            while val == _BYPASS_MAX:
                val = x & _BYPASS_MAX
                x, pos, ok = _read(words, pos, x >> _BYPASS_BITS)
                if not ok:
                    return _ENDED, x, pos, i
                digits += val
                if digits > _MAX_BYPASS_DIGITS:
                    return _ESCAPE, x, pos, i
            raw = np.int64(0)
            for j in range(digits):
                val = x & _BYPASS_MAX
                x, pos, ok = _read(words, pos, x >> _BYPASS_BITS)
                if not ok:
                    return _ENDED, x, pos, i
                raw |= val << (j * _BYPASS_BITS)
            if raw >= np.int64(1) << 31:  # the C++ decoder accumulates in an int32
                raw -= np.int64(1) << 32
            value = -(raw >> 1) - 1 if raw & 1 else (raw >> 1) + max_value
        out[i] = value + offsets[ci]
    return _OK, x, pos, indexes.shape[0]


@njit(cache=True, nogil=True)
def _plan_kernel(
    symbols: np.ndarray, indexes: np.ndarray, cdfs: np.ndarray, sizes: np.ndarray, offsets: np.ndarray,
    start: np.ndarray, freq: np.ndarray, raw: np.ndarray,
) -> int:
    """Each symbol's CDF interval (start, freq) and bypass value (raw, -1 if none); -1 if an index is bad,
    else the number of coder steps they take (one per symbol, plus its bypass digits and their count)."""
    n_cdfs = sizes.shape[0]
    steps = 0
    for i in range(symbols.shape[0]):
        ci = indexes[i]
        if ci < 0 or ci >= n_cdfs:
            return -1
        max_value = sizes[ci] - 2
        value = np.int64(symbols[i]) - offsets[ci]
        r = np.int64(-1)
        if value < 0:
            r = -2 * value - 1
            value = max_value
        elif value >= max_value:
            r = 2 * (value - max_value)
            value = max_value
        start[i] = cdfs[ci, value]
        freq[i] = cdfs[ci, value + 1] - cdfs[ci, value]
        raw[i] = r
        steps += 1
        if r >= 0:
            digits = _bypass_digits(r)
            steps += digits + digits // _BYPASS_MAX + 1
    return steps


@njit(cache=True, nogil=True)
def _bypass_digits(raw: int) -> int:
    """How many 4-bit digits a bypass value takes (0 for 0)."""
    digits = 0
    while (raw >> (digits * _BYPASS_BITS)) != 0:
        digits += 1
    return digits


@njit(cache=True, nogil=True)
def _renormalise(x: np.uint64, out: np.ndarray, ptr: int, freq: np.uint64) -> tuple:
    """Before a step of probability freq / 2**16: move the state's low word into out[ptr - 1] if it is too
    big."""
    if x >= ((np.uint64(_L) >> np.uint64(_PRECISION)) << np.uint64(32)) * freq:
        ptr -= 1
        out[ptr] = np.uint32(x & np.uint64(0xFFFFFFFF))
        x >>= np.uint64(32)
    return x, ptr


@njit(cache=True, nogil=True)
def _put(x: np.uint64, out: np.ndarray, ptr: int, start: np.uint64, freq: np.uint64) -> tuple:
    """One rANS step (ryg's Rans64EncPut), last symbol first."""
    x, ptr = _renormalise(x, out, ptr, freq)
    return ((x // freq) << np.uint64(_PRECISION)) + (x % freq) + start, ptr


@njit(cache=True, nogil=True)
def _put_bits(x: np.uint64, out: np.ndarray, ptr: int, val: np.uint64) -> tuple:
    """A raw 4-bit bypass value (CompressAI's Rans64EncPutBits): renormalised as a step of 2**-4, then (x <<
    4) | val."""
    x, ptr = _renormalise(x, out, ptr, np.uint64(1 << (_PRECISION - _BYPASS_BITS)))
    return (x << np.uint64(_BYPASS_BITS)) | val, ptr


@njit(cache=True, nogil=True)
def _encode_kernel(
    start: np.ndarray, freq: np.ndarray, raw: np.ndarray, out: np.ndarray, state: int, ptr: int
) -> tuple[int, int]:
    """Code the planned symbols, the last first, into out[:ptr] from `state` (in [2**31, 2**63)): (state,
    ptr)."""
    x = np.uint64(state)
    for i in range(start.shape[0] - 1, -1, -1):
        r = raw[i]
        if r >= 0:
            digits = _bypass_digits(r)
            for j in range(digits - 1, -1, -1):  # the raw digits, highest first (read back lowest first)
                x, ptr = _put_bits(x, out, ptr, np.uint64((r >> (j * _BYPASS_BITS)) & _BYPASS_MAX))
            x, ptr = _put_bits(x, out, ptr, np.uint64(digits % _BYPASS_MAX))
            for _ in range(digits // _BYPASS_MAX):  # the digit count: 15 per continuation, then the remainder
                x, ptr = _put_bits(x, out, ptr, np.uint64(_BYPASS_MAX))
        x, ptr = _put(x, out, ptr, np.uint64(start[i]), np.uint64(freq[i]))
    return np.int64(x), ptr


class RansEncoder:
    """Drop-in for `compressai.ans.BufferedRansEncoder` (`encode_with_indexes`, `flush`): the same bytes, from
    numpy arrays in a numba kernel instead of Python lists.

    Symbols outside a CDF's range are bypass-coded as CompressAI does: the escape symbol, then a count of
    4-bit digits (15 per continuation), then the digits, lowest first in the stream."""

    def __init__(self) -> None:
        self._parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._steps = 0
        self._tables: tuple[object, RansTables] | None = None

    def encode_with_indexes(
        self, symbols: object, indexes: object, cdfs: object, cdf_sizes: object = None, offsets: object = None
    ) -> None:
        """Queue symbols (int32, a CDF index each); `cdfs` may be a `RansTables` (then no sizes/offsets)."""
        tables = _as_tables(self, cdfs, cdf_sizes, offsets)
        sym = np.ascontiguousarray(np.asarray(symbols, dtype=np.int32).reshape(-1))
        idx = np.ascontiguousarray(np.asarray(indexes, dtype=np.int32).reshape(-1))
        if sym.shape != idx.shape:
            raise ValueError(f"{sym.size} symbols but {idx.size} CDF indexes")
        start, freq, raw = (
            np.empty(sym.size, np.int32),
            np.empty(sym.size, np.int32),
            np.empty(sym.size, np.int64),
        )
        steps = _plan_kernel(sym, idx, tables.cdfs, tables.sizes, tables.offsets, start, freq, raw)
        if steps < 0:
            raise ValueError(f"a CDF index is out of range 0..{len(tables.sizes) - 1}")
        self._parts.append((start, freq, raw))
        self._steps += steps

    def flush(self) -> bytes:
        """The rANS string of everything queued (then the encoder is empty again)."""
        out = np.empty(self._steps + 2, np.uint32)  # at most one word per step, two for the final state
        state, ptr = _L, len(out)
        for start, freq, raw in reversed(self._parts):
            state, ptr = _encode_kernel(start, freq, raw, out, state, ptr)
        out[ptr - 2 : ptr] = (state & 0xFFFFFFFF, state >> 32)
        self._parts, self._steps = [], 0
        return out[ptr - 2 :].astype("<u4").tobytes()


class BoundedRansDecoder:
    """Drop-in for `compressai.ans.RansDecoder` (`set_stream`, `decode_stream`) that never reads past its
    data."""

    def __init__(self) -> None:
        self._words: np.ndarray | None = None
        self._pos = 0
        self._state = 0
        self._tail = 0
        self._tables: tuple[object, RansTables] | None = None

    def set_stream(self, data: bytes) -> None:
        """Start decoding `data` (a whole rANS string)."""
        data = bytes(data)
        self._tail = len(data) % 4
        if len(data) < 8:
            raise BitstreamError(f"entropy-coded data is {len(data)} bytes, too short to hold a rANS state")
        self._words = np.frombuffer(data, dtype="<u4", count=len(data) // 4).astype(np.uint32)
        state = int(self._words[0]) | (int(self._words[1]) << 32)
        if state >= 1 << 63:
            raise BitstreamError("entropy-coded data starts with a state no encoder writes")
        self._state, self._pos = state, 2

    def decode_stream(
        self, indexes: object, cdfs: object, cdf_sizes: object = None, offsets: object = None
    ) -> list[int]:
        """Decode one symbol per CDF index (CompressAI's `decode_stream` arguments, a list back)."""
        return self.decode_array(indexes, cdfs, cdf_sizes, offsets).tolist()

    def decode_array(
        self, indexes: object, cdfs: object, cdf_sizes: object = None, offsets: object = None
    ) -> np.ndarray:
        """`decode_stream` taking/giving numpy arrays; `cdfs` may be a `RansTables` (then no
        sizes/offsets)."""
        if self._words is None:
            raise BitstreamError("decode_stream called before set_stream")
        tables = _as_tables(self, cdfs, cdf_sizes, offsets)
        idx = np.ascontiguousarray(np.asarray(indexes, dtype=np.int32).reshape(-1))
        out = np.empty(idx.shape[0], dtype=np.int32)
        status, x, pos, done = _decode_kernel(
            self._words, self._pos, self._state, idx, tables.cdfs, tables.sizes, tables.offsets, out
        )
        self._state, self._pos = int(x), int(pos)
        if status == _ENDED:
            raise BitstreamError("entropy-coded data ends before all its symbols are decoded")
        if status == _ESCAPE:
            raise BitstreamError("entropy-coded data holds an impossible escape value")
        if status == _INDEX:
            raise BitstreamError(f"CDF index {int(idx[done])} out of range 0..{len(tables.sizes) - 1}")
        return out

    def finish(self) -> None:
        """Fail unless the data was consumed exactly, as a stream written by the encoder always is."""
        if self._words is None or self._tail or self._pos != len(self._words) or self._state != _L:
            raise BitstreamError("entropy-coded data does not end where its symbols end")
