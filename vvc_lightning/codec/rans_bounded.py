"""A bounded rANS decoder, bit-compatible with CompressAI's `RansDecoder` (64-bit state, 32-bit words).

CompressAI's C++ decoder reads its input through a raw pointer with no end check: every renormalisation
and every 4-bit bypass read takes the next 32-bit word, and the bypass loop runs as long as the data says
so, so damaged data makes it read past the payload (a segfault or garbage from the heap). This decoder
makes the same arithmetic in Python with an explicit bound on every read: it never reads a byte past
its payload, never decodes a bypass value wider than 32 bits, and its time is linear in the symbols asked
for plus the payload length. `finish()` checks that the whole payload was consumed and that the state
returned to the encoder's initial one, as it does for every stream the encoder wrote.
"""

from __future__ import annotations

from bisect import bisect_right

from vvc_lightning.errors import BitstreamError

_L = 1 << 31  # RANS64_L: the lower bound of the normalised state
_PRECISION = 16  # CDF precision in bits (CompressAI's `precision`)
_MASK = (1 << _PRECISION) - 1
_BYPASS_BITS = 4  # CompressAI's `bypass_precision`
_BYPASS_MAX = (1 << _BYPASS_BITS) - 1
_MAX_BYPASS_DIGITS = 32 // _BYPASS_BITS  # an int32 value never needs more


class BoundedRansDecoder:
    """Drop-in for `compressai.ans.RansDecoder` (`set_stream`, `decode_stream`) that never reads past its data."""

    def __init__(self) -> None:
        self._words: memoryview | None = None
        self._pos = 0
        self._state = 0
        self._tail = 0

    def set_stream(self, data: bytes) -> None:
        """Start decoding `data` (a whole rANS string)."""
        data = bytes(data)
        self._tail = len(data) % 4
        self._words = memoryview(data)[: len(data) - self._tail].cast("I")
        if len(self._words) < 2:
            raise BitstreamError(f"entropy-coded data is {len(data)} bytes, too short to hold a rANS state")
        self._state = self._words[0] | (self._words[1] << 32)
        self._pos = 2

    def _ended(self) -> BitstreamError:
        return BitstreamError("entropy-coded data ends before all its symbols are decoded")

    def decode_stream(
        self, indexes: list[int], cdfs: list[list[int]], cdf_sizes: list[int], offsets: list[int]
    ) -> list[int]:
        """Decode one symbol per CDF index (same arguments as CompressAI's `decode_stream`)."""
        words = self._words
        if words is None:
            raise BitstreamError("decode_stream called before set_stream")
        n_words, pos, x = len(words), self._pos, self._state
        out = [0] * len(indexes)
        n_cdfs = len(cdfs)
        for i, ci in enumerate(indexes):
            if not 0 <= ci < n_cdfs:
                raise BitstreamError(f"CDF index {ci} out of range 0..{n_cdfs - 1}")
            cdf = cdfs[ci]
            max_value = cdf_sizes[ci] - 2
            cum = x & _MASK
            s = bisect_right(cdf, cum, 0, max_value + 2) - 1
            start = cdf[s]
            x = (cdf[s + 1] - start) * (x >> _PRECISION) + cum - start
            if x < _L:
                if pos >= n_words:
                    raise self._ended()
                x = (x << 32) | words[pos]
                pos += 1
            value = s
            if s == max_value:  # bypass: a count of 4-bit digits (15 continues), then the digits
                digits, val = 0, _BYPASS_MAX
                while val == _BYPASS_MAX:
                    val, x, pos = x & _BYPASS_MAX, x >> _BYPASS_BITS, pos
                    if x < _L:
                        if pos >= n_words:
                            raise self._ended()
                        x = (x << 32) | words[pos]
                        pos += 1
                    digits += val
                    if digits > _MAX_BYPASS_DIGITS:
                        raise BitstreamError("entropy-coded data holds an impossible escape value")
                raw = 0
                for j in range(digits):
                    val, x = x & _BYPASS_MAX, x >> _BYPASS_BITS
                    if x < _L:
                        if pos >= n_words:
                            raise self._ended()
                        x = (x << 32) | words[pos]
                        pos += 1
                    raw |= val << (j * _BYPASS_BITS)
                if raw >= 1 << 31:  # the C++ decoder accumulates in an int32
                    raw -= 1 << 32
                value = -(raw >> 1) - 1 if raw & 1 else (raw >> 1) + max_value
            out[i] = value + offsets[ci]
        self._pos, self._state = pos, x
        return out

    def finish(self) -> None:
        """Fail unless the data was consumed exactly, as a stream written by the encoder always is."""
        if self._words is None or self._tail or self._pos != len(self._words) or self._state != _L:
            raise BitstreamError("entropy-coded data does not end where its symbols end")
