"""Speed beside quality: encode / decode frames per second of every row, and how ours compares with x265 and
vvenc.

A row's fps is its frames over its measured seconds. Per codec and sequence the fps pools the rate points
(all frames over all seconds); the ratio of a codec to a reference codec (x265, vvenc) is its fps over the
reference's fps on the same sequence, so a ratio above 1 means faster than the reference.
"""

from __future__ import annotations

import math
from typing import Any

REFERENCES = ("x265", "vvenc")
SPEED_COLUMNS = ("codec", "label", "kind", "sequence", "points", "frames", "encode_seconds", "decode_seconds",
                 "encode_fps", "decode_fps")


def _fps(frames: float, seconds: Any) -> float:
    try:
        s = float(seconds)
    except (TypeError, ValueError):
        return float("nan")
    return frames / s if math.isfinite(s) and s > 0 else float("nan")


def row_speed(row: dict) -> dict[str, float]:
    """{encode_fps, decode_fps} of one row (NaN where its seconds are missing)."""
    n = float(row["frames"])
    return {
        "encode_fps": _fps(n, row.get("encode_seconds")),
        "decode_fps": _fps(n, row.get("decode_seconds")),
    }


def _pooled(rows: list[dict]) -> dict[str, float]:
    """Frames, seconds and fps of several rows together (rows without a time are left out of that side)."""
    out: dict[str, float] = {"frames": float(sum(int(r["frames"]) for r in rows))}
    for side in ("encode", "decode"):
        timed = [r for r in rows if math.isfinite(row_speed(r)[f"{side}_fps"])]
        seconds = sum(float(r[f"{side}_seconds"]) for r in timed)
        out[f"{side}_seconds"] = seconds if timed else float("nan")
        out[f"{side}_fps"] = _fps(sum(int(r["frames"]) for r in timed), seconds) if timed else float("nan")
    return out


def ratio_columns(references: list[str]) -> list[str]:
    """Names of the ratio columns against each reference codec present (by encoder: encode_vs_x265, ...)."""
    return [f"{side}_vs_{encoder(ref)}" for ref in references for side in ("encode", "decode")]


def encoder(codec: str) -> str:
    """The encoder of a classic setting's name (x265 for x265-veryslow-ra)."""
    return codec.split("-")[0]


def present_references(rows: list[dict]) -> list[str]:
    """The reference codecs that have rows: the first setting of x265 and of vvenc (e.g. x265-veryslow-ra)."""
    codecs = dict.fromkeys(r["codec"] for r in rows if r.get("kind") != "neural")
    found = [next((c for c in codecs if c == ref or c.startswith(f"{ref}-")), None) for ref in REFERENCES]
    return [c for c in found if c is not None]


def speed_table(rows: list[dict]) -> list[dict]:
    """Per codec x sequence: pooled encode / decode fps and the ratio to each reference on that sequence."""
    refs = present_references(rows)
    table = []
    for codec in dict.fromkeys(r["codec"] for r in rows):
        for seq in dict.fromkeys(r["sequence"] for r in rows if r["codec"] == codec):
            sel = [r for r in rows if r["codec"] == codec and r["sequence"] == seq]
            rec: dict[str, Any] = {
                "codec": codec,
                "label": sel[0].get("label", codec),
                "kind": sel[0].get("kind", ""),
                "sequence": seq,
                "points": len(sel),
                **_pooled(sel),
            }
            for ref in refs:
                base = _pooled([r for r in rows if r["codec"] == ref and r["sequence"] == seq])
                for side in ("encode", "decode"):
                    rec[f"{side}_vs_{encoder(ref)}"] = _ratio(rec[f"{side}_fps"], base[f"{side}_fps"])
            table.append(rec)
    return table


def summary_speed(summary: list[dict], rows: list[dict]) -> None:
    """Add encode_fps / decode_fps (pooled over sequences) and the ratios to x265 / vvenc (their rows on the
    same sequences, all rate points) to each summary record (codec x point), in place."""
    refs = present_references(rows)
    for s in summary:
        sel = [r for r in rows if r["codec"] == s["codec"] and r["point"] == s["point"]]
        pooled = _pooled(sel)
        s["encode_fps"], s["decode_fps"] = pooled["encode_fps"], pooled["decode_fps"]
        seqs = {r["sequence"] for r in sel}
        for ref in refs:
            base = _pooled([r for r in rows if r["codec"] == ref and r["sequence"] in seqs])
            for side in ("encode", "decode"):
                s[f"{side}_vs_{encoder(ref)}"] = _ratio(pooled[f"{side}_fps"], base[f"{side}_fps"])


def _ratio(a: float, b: float) -> float:
    return a / b if math.isfinite(a) and math.isfinite(b) and b > 0 else float("nan")
