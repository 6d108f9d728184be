"""Evaluation outputs: CSV/JSON tables, one RD plot per metric (bpp on x), crops, and an HTML report."""

from __future__ import annotations

import html
import io
import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from vvc_lightning.evaluation.speed import (
    SPEED_COLUMNS,
    present_references,
    ratio_columns,
    row_speed,
    speed_table,
    summary_speed,
)
from vvc_lightning.evaluation.text_tables import csv_text as _csv_text
from vvc_lightning.evaluation.text_tables import html_table as _table
from vvc_lightning.evaluation.text_tables import readable
from vvc_lightning.video.atomic import make_dirs
from vvc_lightning.video.video_io import atomic_path, write_bytes_atomic

ROW_COLUMNS = (
    "codec",
    "label",
    "kind",
    "point",
    "point_label",
    "sequence",
    "frames",
    "width",
    "height",
    "fps",
    "bytes",
    "bpp",
)
ROW_INFO = (
    "intra_pictures",
    "encode_seconds",
    "decode_seconds",
    "encode_fps",
    "decode_fps",
    "version",
    "stream_format",
    "command",
    "decode_command",
    "input_hash",
    "matrix",
    "range",
)
SUMMARY_COLUMNS = ("codec", "label", "kind", "point", "point_label", "sequences", "bytes", "bpp")
HTML_LEFT_OUT = ("label", "point")  # the report's summary: the label heads each codec's section below
BD_COLUMNS = ("metric", "codec", "anchor", "bd_rate_pct", "sequences_used", "sequences", "bd_rate_pooled_pct",
              "note")


def flat_rows(rows: list[dict], keys: list[str]) -> list[dict]:
    """Rows with their metrics as top-level columns (for the CSV)."""
    return [
        {**{c: r.get(c, "") for c in ROW_COLUMNS + ROW_INFO}, **row_speed(r), **r["metrics"]} for r in rows
    ]


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    return obj


def plot_rd(path: Path, summary: list[dict], key: str, info: dict, title: str,
            log_rate: bool = False) -> None:
    """RD curve of metric `key` against bpp (a logarithmic axis with `log_rate`), one line per curve, named
    as the curve (model or setting)."""
    import matplotlib.pyplot as plt

    from vvc_lightning.evaluation.class_plots import rd_figure

    curves = {codec: sorted((s["bpp"], s[key]) for s in summary if s["codec"] == codec
                            and isinstance(s.get(key), int | float) and math.isfinite(s[key]))
              for codec in dict.fromkeys(s["codec"] for s in summary)}
    fig = rd_figure(curves, key, info.get("higher_is_better", True), title, log_rate)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    write_bytes_atomic(path, buf.getvalue())


def pick_crops(rows: list[dict], seq: str) -> list[dict]:
    """Per codec, the row of sequence `seq` whose bpp is closest (in log) to a common target."""
    sub = [r for r in rows if r["sequence"] == seq]
    neural = [r["bpp"] for r in sub if r["kind"] == "neural"]
    target = float(np.median(neural)) if neural else min(r["bpp"] for r in sub)
    out = []
    for codec in dict.fromkeys(r["codec"] for r in sub):
        cand = [r for r in sub if r["codec"] == codec]
        out.append(min(cand, key=lambda r: abs(math.log(r["bpp"]) - math.log(target))))
    return out


def speed_html(speed: list[dict], refs: list[str]) -> str:
    """The speed table: per codec and sequence, encode / decode fps and the ratio to x265 / vvenc."""
    ratios = ratio_columns(refs)
    cols = ["codec", "sequence", "points", "frames", "encode_fps", "decode_fps"] + ratios
    note = ("frames / seconds of encoding and of decoding, pooled over the rate points (cached rows keep the "
            "seconds measured when they were coded); "
            + ("ratio = this codec's fps / the reference's fps on the same sequence, above 1 = faster than "
               + " and ".join(refs) if refs else "no x265 / vvenc rows to compare with"))
    return (f"<div style='display:inline-block;vertical-align:top'><h3>Speed</h3><p style='max-width:600px;"
            f"font-size:12px'>{html.escape(note)}</p>"
            + _table(cols, speed, {c: ".3g" for c in ["encode_fps", "decode_fps"] + ratios}) + "</div>")


def write_html(path: Path, rows: list[dict], summary: list[dict], bd: list[dict], meta: dict, keys: list[str],
               plots: dict[str, str], crops: dict[str, list[tuple[str, str]]]) -> None:
    """The report: protocol, BD-rates, summary, plots, crops, command lines, per-sequence rows."""
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>vvc-lightning evaluation</title><style>"
        "body{font-family:sans-serif;margin:2em;max-width:1300px}img{max-width:100%}"
        "table{border-collapse:collapse;margin:1em 0;"
        "font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px}th{background:#eee}"
        "figure{display:inline-block;margin:4px;text-align:center}figcaption{font-size:12px}"
        "code{font-size:12px;word-break:break-all}</style></head><body>",
        "<h1>Rate-quality evaluation</h1>",
        f"<p>{esc(meta['created'])} · vvc-lightning {esc(meta['vvc_lightning'])} · torch {esc(meta['torch'])}"
        f" · {esc(meta['ffmpeg'])}</p>",
        "<h2>Protocol</h2><ul>",
        f"<li>Rate: {esc(meta['rate'])}</li>",
        f"<li>Intra period of the classic codecs: {esc(str(meta['intra_period']))}</li>",
        *([f"<li>BD-rate anchor: {esc(meta['anchor'])}</li>"] if meta.get("anchor") else []),
        *(f"<li>Note: {esc(n)}</li>" for n in meta.get("notes", [])),
        *(f"<li>Colour — {esc(k.replace('_', ' '))}: {esc(readable(v))}</li>"
          for k, v in meta["colour"].items()),
        "</ul>",
        "<h3>Metrics</h3>",
        _table(
            ["metric", "protocol"],
            [{"metric": k, "protocol": readable(v)} for k, v in meta["metrics"].items()],
        ),
    ]
    if bd:
        codecs = list(dict.fromkeys(b["codec"] for b in bd))
        recs = []
        for k in keys:
            rec: dict[str, Any] = {"metric": k}
            for c in codecs:
                b = next((x for x in bd if x["metric"] == k and x["codec"] == c), None)
                rec[c] = b["bd_rate_pct"] if b else float("nan")
                rec[f"{c} (pooled)"] = b["bd_rate_pooled_pct"] if b else float("nan")
            recs.append(rec)
        cols = ["metric"] + [x for c in codecs for x in (c, f"{c} (pooled)")]
        parts += [
            f"<h2>BD-rate (%) against {esc(bd[0]['anchor'])}</h2>",
            "<p>PCHIP Bjøntegaard delta rate; negative = fewer bits at equal quality. First column: mean of "
            "per-sequence BD-rates; pooled: on the curves averaged over sequences (FID/KID pooled over all "
            "patches). Blank: not computable (see bdrate.csv notes).</p>",
            _table(cols, recs, {c: ".2f" for c in cols}),
        ]
    if meta.get("test_set"):
        from vvc_lightning.evaluation.tables import classes_html

        parts.append(classes_html(meta["test_set"], meta.get("bd_rate_classes", [])))
    refs = present_references(rows)
    speed_cols = ["encode_fps", "decode_fps"] + ratio_columns(refs)
    parts += ["<h2>Summary (mean over sequences)</h2>",
              _table([c for c in SUMMARY_COLUMNS if c not in HTML_LEFT_OUT] + keys + speed_cols, summary),
              "<h2>RD curves and speed</h2><div>"]
    parts += [f"<img src='{esc(p)}' alt='{esc(k)}' style='vertical-align:top;max-width:49%'>"
              for k, p in plots.items()]
    parts += [speed_html(speed_table(rows), refs), "</div>"]
    parts.append("<h2>Decoded crops (centre of the middle frame, rate points of similar bpp)</h2>")
    for seq, items in crops.items():
        parts.append(f"<h3>{esc(seq)}</h3><div>")
        parts += [
            f"<figure><img src='{esc(src)}'><figcaption>{esc(cap)}</figcaption></figure>"
            for src, cap in items
        ]
        parts.append("</div>")
    parts.append("<h2>Codecs and command lines</h2>")
    for name, c in meta["codecs"].items():
        cmd = next((r.get("command", "") for r in rows if r["codec"] == name), "")
        search = meta.get("qp_search", {}).get(name)
        how = (f" (searched to put {search['inside']} points inside every neural curve's rate range)"
               if search else "")
        parts.append(f"<h3>{esc(name)}: {esc(c['label'])}</h3><p>points: {esc(', '.join(c['points']))}"
                     f"{esc(how)}; identity: {esc(readable(c['identity']))}</p>"
                     f"<p><code>{esc(cmd)}</code></p>")
    parts += [
        "<h2>Per sequence</h2>",
        _table(
            list(ROW_COLUMNS[:1]) + ["point_label", "sequence", "bpp"] + keys + ["intra_pictures"],
            flat_rows(rows, keys),
        ),
        "</body></html>",
    ]
    write_bytes_atomic(path, "\n".join(parts).encode())


def write_all(out: Path, rows: list[dict], summary: list[dict], bd: list[dict], meta: dict, keys: list[str],
              seqs: list, crops_dir: Path, log_rate: bool = False) -> dict[str, Path]:
    """Write every output of an evaluation into `out` (RD plots on a log rate axis with `log_rate`); returns
    {name: path}."""
    paths = {"csv": out / "results.csv", "json": out / "results.json", "summary": out / "summary.csv",
             "bdrate": out / "bdrate.csv", "speed": out / "speed.csv", "html": out / "report.html"}
    row_cols = list(ROW_COLUMNS) + keys + list(ROW_INFO)
    summary_speed(summary, rows)
    speed_cols = ["encode_fps", "decode_fps"] + ratio_columns(present_references(rows))
    speed = speed_table(rows)
    write_bytes_atomic(paths["csv"], _csv_text(row_cols, flat_rows(rows, keys)).encode())
    write_bytes_atomic(
        paths["summary"], _csv_text(list(SUMMARY_COLUMNS) + keys + speed_cols, summary).encode()
    )
    write_bytes_atomic(
        paths["speed"],
        _csv_text(list(SPEED_COLUMNS) + ratio_columns(present_references(rows)), speed).encode(),
    )
    write_bytes_atomic(paths["bdrate"], _csv_text(list(BD_COLUMNS), bd).encode())
    doc = {"meta": meta, "metrics": keys, "rows": [{**r, **row_speed(r)} for r in rows], "summary": summary,
           "bd_rate": bd, "speed": speed}
    write_bytes_atomic(paths["json"], json.dumps(_json_safe(doc), indent=1).encode())
    plots = {}
    for k in keys:
        p = out / f"rd_{k}.png"
        plot_rd(p, summary, k, meta["metrics"].get(k, {}), f"mean over {len(seqs)} sequence(s)", log_rate)
        plots[k], paths[f"rd_{k}"] = p.name, p
    crops: dict[str, list[tuple[str, str]]] = {}
    make_dirs(out / "crops")
    for seq in seqs:
        items = []
        ref_src = crops_dir / f"ref-{seq.digest}.png"
        if ref_src.is_file():
            dst = out / "crops" / f"{seq.name}_reference.png"
            _copy(ref_src, dst)
            paths[f"crop_{dst.name}"] = dst
            items.append((f"crops/{dst.name}", "reference"))
        for r in pick_crops(rows, seq.name):
            src = crops_dir / f"{r['key']}.png"
            if src.is_file():
                dst = out / "crops" / f"{seq.name}_{r['codec']}_{r['point_label']}.png"
                _copy(src, dst)
                paths[f"crop_{dst.name}"] = dst
                items.append((f"crops/{dst.name}", f"{r['codec']} {r['point_label']}: {r['bpp']:.4f} bpp"))
        crops[seq.name] = items
    write_html(paths["html"], rows, summary, bd, meta, keys, plots, crops)
    return paths


def _copy(src: Path, dst: Path) -> None:
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
