"""The per-GoP check of decoded content: a CRC32 of the quantised latent symbols, stored before the rANS
string.

The encoder feeds every symbol it codes (z, then each (group, pass) step of y) to a `SymbolDigest`; the
decoder feeds the symbols it decodes and compares. A payload whose rANS string was damaged (with its record
CRC recomputed), or one decoded with another model or build, then fails with an error instead of frames.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from vvc_lightning.errors import BitstreamError

_DIGEST = struct.Struct("<I")
DIGEST_SIZE = _DIGEST.size


class SymbolCheckError(BitstreamError):
    """Decoded symbols differ from the encoded ones (the codec names the GoP and file)."""


class SymbolDigest:
    """A running CRC32 over int32 symbols, in coding order."""

    def __init__(self) -> None:
        self.value = 0

    def update(self, symbols: object) -> None:
        """Add symbols (a flat int32 array or a list of ints) to the digest."""
        self.value = zlib.crc32(np.asarray(symbols, dtype="<i4").tobytes(), self.value)

    def seal(self, string: bytes) -> bytes:
        """The payload stored for a GoP: the digest, then the rANS string."""
        return _DIGEST.pack(self.value) + string

    def verify(self, expected: int) -> None:
        """Fail with SymbolCheckError unless the digest equals `expected`."""
        if self.value != expected:
            raise SymbolCheckError("decoded symbols fail their check")


def bind_to_gop(payload: bytes, index: int) -> bytes:
    """The payload with its stored digest tied to (or, applied again, untied from) GoP `index`, so that
    records swapped or moved within a file fail the check too (the digest is XORed with a per-index
    constant)."""
    if len(payload) < DIGEST_SIZE:
        return payload
    (digest,) = _DIGEST.unpack_from(payload)
    return _DIGEST.pack(digest ^ zlib.crc32(b"GoP" + index.to_bytes(8, "little"))) + bytes(
        payload[DIGEST_SIZE:]
    )


def open_payload(payload: bytes) -> tuple[int, bytes]:
    """(stored digest, rANS string) of a GoP payload."""
    if len(payload) < DIGEST_SIZE:
        raise BitstreamError(f"a GoP payload of {len(payload)} bytes is too short to hold its symbol check")
    return _DIGEST.unpack_from(payload)[0], bytes(payload[DIGEST_SIZE:])
