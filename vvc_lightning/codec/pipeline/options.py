"""The options of a VideoCodec, declared once: defaults, and the checks that need no model.

The CLI (`compress`, `decompress`, `evaluate`), the `test` step (config section `test.codec`) and Python
callers all build a `CodecOptions`; a VideoCodec checks what needs its model (tile sizes against the
backbone stride, the GoP length against its temporal stride, the quality against its range) when it is built.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, fields
from typing import Any

from vvc_lightning.codec.pipeline.container import MATRICES, MAX_GOP, RANGES
from vvc_lightning.codec.pipeline.sizes import DEFAULT_MAX_MEMORY, parse_bytes
from vvc_lightning.errors import CodecOptionError, VVCError

SYNTHESES = ("fp32", "bf16")  # precisions of the synthesis side (g_s, the backbone decoder)
# whole-number fields: (lowest, highest or None, what the value must be, None allowed)
_WHOLE: dict[str, tuple[int, int | None, str, bool]] = {
    "gop": (1, MAX_GOP, f"1 + 4k frames between 1 and {MAX_GOP} (e.g. 9 or 17)", True),
    "overlap": (0, None, "a whole number >= 0 (1: the paper, 0: off)", False),
    "batch": (1, None, "1 or more", False),
    "tile": (0, None, "a size in pixels >= 0 (0: never tile)", True),
    "tile_overlap": (0, None, "a whole number >= 0", True),
    "norm_passes": (0, None, "a whole number >= 0", True),
    "threads": (1, None, "1 or more", True),
}


def _whole(name: str, value: Any, low: int, what: str, high: int | None = None) -> int:
    """`value` as an int from `low` to `high`, or CodecOptionError naming `name`."""
    if (not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < low
            or (high is not None and value > high)):
        raise CodecOptionError(name, f"must be {what}, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class CodecOptions:
    """How a VideoCodec codes: frozen, checked once when made.

    gop: frames per GoP, 1 + 4k (None: the model's own); overlap / theta: frames shared by neighbouring
    GoPs and the earlier GoP's blend weight; batch: backbone items (GoPs, or GoP tiles) per pass, at most;
    tile: tile size in pixels (None: from the memory budget, 0: never tile); tile_overlap in pixels (None: 64
    for GroupNorm/attention backbones, else 32); matrix / rng: the Y'CbCr matrix and range recorded for raw
    .yuv; quality: rate of a variable-rate model (None: its highest); max_memory: budget in bytes of a pass
    (its GoPs' frames and latent coding, and the backbone), '8G' / '512M' accepted and stored as bytes;
    norm_passes: most whole-frame statistics passes of a tiled run (None: until exact, 0: per-tile
    statistics); threads: torch threads (None: chosen from the load beside the run); synthesis: 'fp32', or
    'bf16': g_s and the backbone decoder under bfloat16 autocast where the device has bfloat16 arithmetic
    (faster there; pixels differ slightly from fp32, the decoded symbols and the bytes never do).
    Decoding takes gop/overlap/theta/quality/matrix/rng from the file.
    """

    gop: int | None = None
    overlap: int = 1
    theta: float = 0.5
    batch: int = 4
    tile: int | None = None
    tile_overlap: int | None = None
    matrix: str = "bt709"
    rng: str = "limited"
    quality: float | None = None
    max_memory: int = DEFAULT_MAX_MEMORY
    norm_passes: int | None = None
    threads: int | None = None
    synthesis: str = "fp32"

    def __post_init__(self) -> None:
        for name, (low, high, what, optional) in _WHOLE.items():
            value = getattr(self, name)
            if not (optional and value is None):
                object.__setattr__(self, name, _whole(name, value, low, what, high))
        object.__setattr__(self, "theta", _number("theta", self.theta, 1.0, "a number in [0, 1] (e.g. 0.5)"))
        if self.quality is not None:
            object.__setattr__(self, "quality", _number("quality", self.quality, math.inf, "a number >= 0"))
        _choice("matrix", self.matrix, MATRICES)
        _choice("rng", self.rng, RANGES)
        _choice("synthesis", self.synthesis, SYNTHESES)
        object.__setattr__(self, "max_memory", _memory(self.max_memory))
        if self.gop is not None and 2 * self.overlap >= self.gop:
            half = f"must be less than half the GoP ({self.gop}), got {self.overlap}"
            raise CodecOptionError("overlap", half)

    def replace(self, **changes: Any) -> CodecOptions:
        """A copy with `changes` (field names), checked again."""
        unknown = sorted(set(changes) - {f.name for f in fields(self)})
        if unknown:
            known = ", ".join(field_names())
            raise VVCError(f"unknown codec option(s) {', '.join(unknown)}; known: {known}")
        return CodecOptions(**{**{f.name: getattr(self, f.name) for f in fields(self)}, **changes})


def field_names() -> list[str]:
    """The names of the CodecOptions fields, in declaration order."""
    return [f.name for f in fields(CodecOptions)]


def _number(name: str, value: Any, high: float, what: str) -> float:
    """`value` as a finite float from 0 to `high`, or CodecOptionError naming `name`."""
    if (not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value)
            or not 0 <= value <= high):
        raise CodecOptionError(name, f"must be {what}, got {value!r}")
    return float(value)


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    """CodecOptionError naming `name` unless `value` is one of `choices`."""
    if value not in choices:
        raise CodecOptionError(name, f"must be one of {', '.join(choices)}, got {value!r}")


def _memory(value: Any) -> int:
    """A memory budget ('8G', '512M' or bytes) as bytes, or CodecOptionError naming max_memory."""
    if isinstance(value, bool) or not isinstance(value, (str, numbers.Integral)):
        raise CodecOptionError("max_memory",
                               f"takes a size like 512M, 8G or a number of bytes, got {value!r}")
    try:
        return parse_bytes(value if isinstance(value, str) else int(value), "max_memory")
    except VVCError as exc:
        raise CodecOptionError("max_memory", str(exc).removeprefix("max_memory ")) from None
