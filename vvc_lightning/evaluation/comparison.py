"""A comparison that always compares: the neural curves are coded first, then each classic setting at QPs
searched so that its curve has points inside every neural curve's rate range (`qp_search`).

A classic setting given `--points` keeps them; without a neural curve the encoder's default points are
used. The QPs chosen and every probe are recorded (`Search.as_dict`) and summed up in one line each.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from vvc_lightning.evaluation.inputs import CodecSpec, Sequence
from vvc_lightning.evaluation.qp_search import Search, Target, search_points, spread


def run_rows(harness: Any, jobs: list[tuple[CodecSpec, Any, Sequence]], bar: Any) -> list[dict]:
    """The rows of (spec, point, sequence) jobs, cached or coded, counted on the progress bar (with
    `--jobs`, the classic ones started at once in the worker processes, `parallel`)."""
    if hasattr(harness, "prefetch"):
        harness.prefetch(jobs)
    rows = []
    for spec, point, seq in jobs:
        bar.set_postfix_str(f"{spec.name} {spec.point_label(point)} {seq.name}")
        rows.append(harness.run_row(spec, point, seq))
        bar.update()
    return rows


def neural_targets(rows: list[dict], seqs: list[Sequence]) -> list[Target]:
    """Per sequence and neural curve, its rate range [lowest, highest bpp]."""
    out = []
    for seq in seqs:
        for curve in dict.fromkeys(r["codec"] for r in rows if r["kind"] == "neural"):
            bpp = [r["bpp"] for r in rows if r["codec"] == curve and r["sequence"] == seq.name]
            if bpp and min(bpp) > 0:
                out.append(Target(seq.name, curve, min(bpp), max(bpp)))
    return out


def classic_points(harness: Any, specs: list[CodecSpec], neural_rows: list[dict], seqs: list[Sequence],
                   given: set[str], bar: Any) -> dict[str, Search]:
    """Search the QPs of every classic spec not named in `given` against the neural rows' rate ranges, extend
    them until the quality ranges meet (`extend_for_quality`), and set `spec.points`; {spec name: search}."""
    searches: dict[str, Search] = {}
    by_name = {q.name: q for q in seqs}
    for spec in specs:
        if spec.kind != "baseline" or spec.name in given or spec.point_range is None:
            continue
        targets = neural_targets(neural_rows, seqs)
        if not targets:
            continue

        def row_at(seq: str, qp: int, spec: CodecSpec = spec) -> dict:
            bar.total = (bar.total or 0) + 1
            return run_rows(harness, [(spec, qp, by_name[seq])], bar)[0]

        if hasattr(harness, "probe_ahead"):  # --jobs: every sequence's probes at once
            harness.probe_ahead(spec, targets, by_name)
        search = search_points(spec.name, spec.point_range, targets, lambda s, q: float(row_at(s, q)["bpp"]))
        if hasattr(harness, "prefetch"):  # the points chosen, on every sequence, before they are extended
            harness.prefetch([(spec, q, seq) for q in search.points for seq in seqs])
        extend_for_quality(search, spec.point_range, neural_rows, harness.keys, harness.info, row_at)
        spec.points = search.points
        searches[spec.name] = search
    return searches


def extend_for_quality(search: Search, qp_range: tuple[int, int], neural_rows: list[dict], keys: list[str],
                       info: dict[str, dict], row_at: Any) -> None:
    """Add QPs beyond the searched ones where, on a sequence, every classic point is better (or every one
    worse) in a metric than all of a neural curve, so that the quality ranges meet and a BD-rate is defined:
    on each side, up to the farthest QP some metric needs (bisection), spread at least 3 QPs apart; a note
    where even the encoder's last QP does not reach."""
    qmin, qmax = qp_range
    if not search.points:
        return
    edges = {1: max(search.points), -1: min(search.points)}
    ends: dict[int, int] = {}
    why: dict[int, list[str]] = {1: [], -1: []}
    for key in keys:
        hib = bool(info.get(key, {}).get("higher_is_better", True))
        for t in search.targets:
            mine = [r["metrics"].get(key, math.nan) for r in neural_rows
                    if r["codec"] == t.curve and r["sequence"] == t.sequence]
            mine = [v for v in mine if math.isfinite(v)]
            values = [float(row_at(t.sequence, q)["metrics"].get(key, math.nan)) for q in search.points]
            if not mine or not all(math.isfinite(v) for v in values):
                continue
            best, worst = (max(mine), min(mine)) if hib else (min(mine), max(mine))

            def better(v: float, than: float, hib: bool = hib) -> bool:
                return v > than if hib else v < than

            if all(better(v, best) for v in values):  # classic better everywhere: coarser QPs meet it
                side, end = 1, qmax

                def meets(q: int, key: str = key, seq: str = t.sequence, b: float = best) -> bool:
                    return not better(float(row_at(seq, q)["metrics"].get(key, math.nan)), b)
            elif all(better(worst, v) for v in values):  # classic worse everywhere: finer QPs meet it
                side, end = -1, qmin

                def meets(q: int, key: str = key, seq: str = t.sequence, w: float = worst) -> bool:
                    return not better(w, float(row_at(seq, q)["metrics"].get(key, math.nan)))
            else:
                continue
            if side in ends and meets(ends[side]):
                continue
            if edges[side] == end or not meets(end):
                search.notes.append(f"{search.codec} on {t.sequence}: {key} of {t.curve} is not reached even "
                                    f"at QP {end}")
                continue
            lo, hi = ends.get(side, edges[side]), end  # meets(lo) False, meets(hi) True
            while abs(hi - lo) > 1:
                mid = (lo + hi) // 2 if side > 0 else -((-lo - hi) // 2)
                lo, hi = (lo, mid) if meets(mid) else (mid, hi)
            ends[side] = hi
            why[side].append(f"{key} of {t.curve} on {t.sequence}")
    for side, end in ends.items():
        k = max(2, min(4, abs(end - edges[side]) // 3 + 1))
        added = sorted(set(spread(min(edges[side], end), max(edges[side], end), k)) - set(search.points))
        search.points = sorted({*search.points, *added})
        search.notes.append(f"{search.codec}: QPs {','.join(map(str, added))} added so that the quality "
                            f"ranges meet ({'; '.join(why[side])})")


def curve_names(specs: list[CodecSpec], rows: list[dict]) -> list[str]:
    """The curves in order: those of `specs` (that have rows), then those only earlier runs' rows hold."""
    have = dict.fromkeys(r["codec"] for r in rows)
    return [s.name for s in specs if s.name in have] + [c for c in have if c not in {s.name for s in specs}]


def nan_mean(values: list[float]) -> float:
    """The mean of the finite values (NaN when there is none)."""
    finite = [float(v) for v in values if isinstance(v, int | float) and math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


Curve = tuple[str, list[float], list[float]]  # name, rates, values


def why_not(why: str, anchor: Curve, test: Curve, metric: str) -> str:
    """A BD-rate error made whole: the curves by name, and the ranges or points that make it undefined."""
    for role, (name, rates, values) in (("anchor: ", anchor), ("test: ", test)):
        if why.startswith(role) and values and not any(math.isfinite(v) for v in values):
            return f"{name}: no {metric} value (NaN on every point; the notes say why)"
        if why.startswith(role):
            pts = ", ".join(f"{b:.4g} bpp {v:.4g}" for b, v in sorted(zip(rates, values, strict=True)))
            detail = f" ({pts})" if "monotonic" in why or "finite" in why else ""
            return f"{name}: {why[len(role):]}{detail}"
    if "overlap" in why:
        spans = [f"{name} {min(v):.4g}-{max(v):.4g} at {min(r):.4g}-{max(r):.4g} bpp"
                 for name, r, v in (anchor, test) if v]
        return f"the two curves do not overlap in {metric} ({'; '.join(spans)})"
    return why


def summarize(harness: Any, specs: list[CodecSpec], rows: list[dict], seqs: list[Sequence]) -> list[dict]:
    """Per curve x point (the curves of `specs`, then those of earlier runs' rows), by rate: mean bpp and
    metrics over sequences (a metric NaN on a sequence, e.g. MS-SSIM on small frames, left out of its mean);
    FID/KID on the sequences' patches pooled."""
    out = []
    for codec in curve_names(specs, rows):
        mine = [r for r in rows if r["codec"] == codec]
        points = {p: [r for r in mine if r["point"] == p] for p in dict.fromkeys(r["point"] for r in mine)}
        for point, sel in sorted(points.items(), key=lambda kv: nan_mean([r["bpp"] for r in kv[1]])):
            s = {"codec": codec, "label": sel[0]["label"], "kind": sel[0]["kind"], "point": point,
                 "point_label": sel[0]["point_label"], "sequences": len(sel),
                 "bpp": float(np.mean([r["bpp"] for r in sel])), "bytes": int(sum(r["bytes"] for r in sel))}
            for k in harness.keys:
                s[k] = nan_mean([r["metrics"].get(k, math.nan) for r in sel])
            if harness.set_metrics:
                recs = [harness.rec_features(r["key"]) for r in sel]
                names = {r["sequence"] for r in sel}
                ref = np.concatenate([harness.ref_features(q) for q in seqs if q.name in names])
                ref = ref.astype(np.float32)
                for m in harness.set_metrics.values():
                    s[m.key] = (m.from_features(ref, np.concatenate(recs).astype(np.float32))
                                if all(f is not None for f in recs) else float("nan"))
            out.append(s)
    return out


def bd_table(harness: Any, specs: list[CodecSpec], rows: list[dict], summary: list[dict],
             anchor: str | None) -> list[dict]:
    """BD-rate of every curve against the anchor, per metric: mean of per-sequence values, and pooled; where
    one is not defined, the whole reason, naming the curves."""
    from vvc_lightning.metrics.bdrate import try_bd_rate

    if anchor is None:
        return []
    table = []
    seqs = sorted({r["sequence"] for r in rows})
    for k in harness.keys:
        hib = bool(harness.info[k]["higher_is_better"])
        for codec in curve_names(specs, rows):
            if codec == anchor:
                continue

            def curve(items: list[dict], name: str, key: str = k) -> tuple[list[float], list[float]]:
                pts = [r for r in items if r["codec"] == name]
                return [r["bpp"] for r in pts], [r["metrics"].get(key, math.nan) if "metrics" in r else r[key]
                                                 for r in pts]

            per_seq, notes = [], []
            for q in seqs:
                sub = [r for r in rows if r["sequence"] == q]
                a, t = curve(sub, anchor), curve(sub, codec)
                v, why = try_bd_rate(*a, *t, higher_is_better=hib)
                per_seq.append(v)
                if why:
                    notes.append(f"{q}: {why_not(why, (anchor, *a), (codec, *t), k)}")
            a, t = curve(summary, anchor), curve(summary, codec)
            pooled, why = try_bd_rate(*a, *t, higher_is_better=hib)
            finite = [v for v in per_seq if math.isfinite(v)]
            table.append({"metric": k, "codec": codec, "anchor": anchor,
                          "bd_rate_pct": float(np.mean(finite)) if finite else float("nan"),
                          "sequences_used": len(finite), "sequences": len(seqs),
                          "bd_rate_pooled_pct": pooled,
                          "note": "; ".join(notes + ([f"pooled: {why_not(why, (anchor, *a), (codec, *t), k)}"]
                                                     if why else []))})
    return table
