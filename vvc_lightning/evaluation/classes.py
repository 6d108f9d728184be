"""Averaging as the field does: class curves weighted by frame count, BD-rate per class and sequence.

A curve row is one (codec, sequence, rate point): `codec`, `sequence`, `point`, `frames`, `bpp` and
`metrics` {key: value}. Within a class, at each rate point that every sequence has, bpp and each metric
are averaged over the sequences weighted by their frame counts; the BD-rate of each class curve against
the anchor's (PCHIP on log-rate over the overlapping quality interval, at least 3 points each) fills a
class column, and the Average column is the plain mean of the class BD-rates.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from vvc_lightning.errors import VVCError
from vvc_lightning.metrics.bdrate import try_bd_rate

MIN_POINTS = 3
AVERAGE = "Average"


def class_curve(rows: Iterable[dict], sequences: list[str], key: str) -> list[dict]:
    """Per rate point that every one of `sequences` has: {point, frames, bpp, value}, the bpp and metric
    `key` averaged over the sequences weighted by frame count, in the rows' order of points."""
    by_point: dict[str, dict[str, dict]] = {}
    for r in rows:
        if r["sequence"] in sequences:
            by_point.setdefault(str(r["point"]), {})[r["sequence"]] = r
    out = []
    for point, got in by_point.items():
        if not all(s in got for s in sequences):
            continue
        w = np.array([float(got[s]["frames"]) for s in sequences])
        bpp = np.array([float(got[s]["bpp"]) for s in sequences])
        val = np.array([_value(got[s], key) for s in sequences])
        out.append({"point": point, "frames": int(w.sum()), "bpp": float(w @ bpp / w.sum()),
                    "value": float(w @ val / w.sum())})
    return out


def _value(row: dict, key: str) -> float:
    v = row.get("metrics", {}).get(key)
    return float(v) if isinstance(v, int | float) else math.nan


def _bd(anchor: list[dict], test: list[dict], hib: bool) -> tuple[float, str]:
    return try_bd_rate([p["bpp"] for p in anchor], [p["value"] for p in anchor], [p["bpp"] for p in test],
                       [p["value"] for p in test], higher_is_better=hib, min_points=MIN_POINTS)


def _frames(rows: list[dict], seq: str) -> set[int]:
    return {int(r["frames"]) for r in rows if r["sequence"] == seq}


def class_bd_rates(rows: list[dict], anchor: str, groups: dict[str, str], keys: list[str],
                   higher_is_better: dict[str, bool]) -> tuple[list[dict], list[dict]]:
    """(per class and Average, per sequence) BD-rates of every codec but `anchor`, per metric in `keys`.

    `groups` maps each sequence evaluated to its class (in class order); a class's curves use the
    sequences that both codecs have; each entry says in `note` what it left out and why a value is NaN."""
    classes = list(dict.fromkeys(groups.values()))
    codecs = [c for c in dict.fromkeys(r["codec"] for r in rows) if c != anchor]
    by_codec = {c: [r for r in rows if r["codec"] == c] for c in [anchor, *codecs]}
    per_class, per_seq = [], []
    for key in keys:
        hib = bool(higher_is_better.get(key, True))
        for codec in codecs:
            a_rows, t_rows = by_codec[anchor], by_codec[codec]
            values = []
            for group in classes:
                entry = _class_entry(a_rows, t_rows, [s for s, g in groups.items() if g == group], key, hib)
                per_class.append({"metric": key, "codec": codec, "anchor": anchor, "class": group, **entry})
                values.append(entry["bd_rate_pct"])
            finite = [v for v in values if math.isfinite(v)]
            note = "" if len(finite) == len(values) else f"mean of {len(finite)} of {len(values)} classes"
            per_class.append({"metric": key, "codec": codec, "anchor": anchor, "class": AVERAGE,
                              "bd_rate_pct": float(np.mean(finite)) if finite else math.nan,
                              "sequences": sum(e["sequences"] for e in per_class[-len(values):]),
                              "classes_used": len(finite), "note": note})
            for seq, group in groups.items():
                a = [r for r in a_rows if r["sequence"] == seq]
                t = [r for r in t_rows if r["sequence"] == seq]
                v, why = (_bd(class_curve(a, [seq], key), class_curve(t, [seq], key), hib) if a and t
                          else (math.nan, "not in both curves"))
                per_seq.append({"metric": key, "codec": codec, "anchor": anchor, "class": group,
                                "sequence": seq, "bd_rate_pct": v, "note": why})
    return per_class, per_seq


def _class_entry(a_rows: list[dict], t_rows: list[dict], seqs: list[str], key: str, hib: bool) -> dict:
    """One class's BD-rate over the sequences both curves have, with what it left out."""
    have_a, have_t = {r["sequence"] for r in a_rows}, {r["sequence"] for r in t_rows}
    common = [s for s in seqs if s in have_a and s in have_t]
    notes = []
    if not common:
        return {"bd_rate_pct": math.nan, "sequences": 0, "note": "no sequence of the class in both curves"}
    if len(common) < len(seqs):
        left = [s for s in seqs if s not in common]
        notes.append(f"over {len(common)} of {len(seqs)} sequences ({', '.join(left)} not in both)")
    for s in common:
        fa, ft = _frames(a_rows, s), _frames(t_rows, s)
        if fa != ft:
            notes.append(f"{s}: anchor coded {'/'.join(map(str, sorted(fa)))} frames, test "
                         f"{'/'.join(map(str, sorted(ft)))}")
    v, why = _bd(class_curve(a_rows, common, key), class_curve(t_rows, common, key), hib)
    return {"bd_rate_pct": v, "sequences": len(common), "note": "; ".join(notes + ([why] if why else []))}


def read_anchor_curves(args: list[str]) -> list[dict]:
    """The curve rows of every --anchor-file ('FILE' or 'NAME=FILE'), read before any coding."""
    from vvc_lightning.evaluation.anchor_file import parse_anchor_arg, read_anchor_file

    rows: list[dict] = []
    for arg in args:
        name, file = parse_anchor_arg(arg)
        if any(r["codec"] == name for r in rows):
            raise VVCError(f"two --anchor-file curves are named '{name}'; name them NAME=FILE")
        rows += read_anchor_file(file, name)
    return rows
