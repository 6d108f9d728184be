"""Byte counts as the memory budget (`CodecOptions.max_memory`, `--max-memory`) spells them: '512M', '8G'.

Kept apart from `memory` (which needs torch) so the command line can parse and show sizes without it."""

from __future__ import annotations

import re

from vvc_lightning.errors import VVCError

DEFAULT_MAX_MEMORY = 8 << 30  # the default budget of a pass (CodecOptions.max_memory)
_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_bytes(text: str | int, name: str = "max_memory") -> int:
    """Bytes of '512M', '8G', '1.5G', '1073741824' (K/M/G/T: powers of 1024), or VVCError naming `name`."""
    if isinstance(text, int):
        value = text
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*", str(text).upper())
        if m is None:
            raise VVCError(f"{name} takes a size like 512M, 8G or a number of bytes, got '{text}'")
        value = int(float(m.group(1)) * _UNITS[m.group(2)])
    if value < 1 << 20:
        raise VVCError(f"{name} must be at least 1M (e.g. 8G), got '{text}'")
    return value


def size_text(n: int) -> str:
    """A byte count as `max_memory` takes it, rounded up: '700M', '5.7G'."""
    return f"{-(-n // 2**20)}M" if n < 2**30 else f"{-(-n * 10 // 2**30) / 10:g}G"
