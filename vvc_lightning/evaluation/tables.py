"""BD-rate tables for a paper: per class and Average (a row per codec, a column per class) as CSV,
Markdown and LaTeX, one table per metric; per-sequence BD-rates as CSV and Markdown."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from vvc_lightning.evaluation.classes import AVERAGE
from vvc_lightning.evaluation.text_tables import csv_text as _csv_text
from vvc_lightning.video.video_io import write_bytes_atomic

LABELS = {"psnr": "RGB PSNR", "psnr_y": "PSNR-Y", "psnr_u": "PSNR-U", "psnr_v": "PSNR-V",
          "psnr_yuv": "YUV-PSNR (6:1:1)", "ms_ssim": "MS-SSIM (RGB)", "ms_ssim_y": "MS-SSIM-Y",
          "ms_ssim_u": "MS-SSIM-U", "ms_ssim_v": "MS-SSIM-V",
          "ms_ssim_yuv": "YUV-MS-SSIM (6:1:1)", "lpips": "LPIPS", "stlpips": "ST-LPIPS", "fid": "FID",
          "kid": "KID", "vmaf": "VMAF"}
METHOD = ("BD-rate in %, negative = fewer bits at equal quality; PCHIP on log-rate over the overlapping "
          "quality interval (>= 3 points); a class curve averages its sequences' bpp and metric at each rate "
          "point weighted by frame count; Average = plain mean of the class BD-rates")
SEQ_COLUMNS = ("metric", "codec", "anchor", "class", "sequence", "bd_rate_pct", "note")


def label(metric: str) -> str:
    """The metric's name in a table ('PSNR-Y' for psnr_y)."""
    return LABELS.get(metric, metric)


def classes_of(per_class: list[dict]) -> list[str]:
    """The class columns in order, Average last."""
    return [c for c in dict.fromkeys(e["class"] for e in per_class) if c != AVERAGE] + [AVERAGE]


def pivot(per_class: list[dict]) -> list[dict]:
    """One record per (metric, codec): {metric, codec, anchor, CLASS: BD-rate ..., Average, notes}."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for e in per_class:
        rec = out.setdefault((e["metric"], e["codec"]), {"metric": e["metric"], "codec": e["codec"],
                                                         "anchor": e["anchor"], "notes": []})
        rec[e["class"]] = e["bd_rate_pct"]
        if e.get("note"):
            rec["notes"].append(f"{e['class']}: {e['note']}")
    return [{**r, "notes": "; ".join(r["notes"])} for r in out.values()]


def table_csv(per_class: list[dict]) -> str:
    """metric, codec, anchor, one column per class, Average, notes."""
    recs = [{**r, **{c: "" if not math.isfinite(r.get(c, math.nan)) else f"{r[c]:.4f}"
                     for c in classes_of(per_class)}} for r in pivot(per_class)]
    return _csv_text(["metric", "codec", "anchor", *classes_of(per_class), "notes"], recs)


def _cell(v: float, digits: int = 1) -> str:
    return f"{v:.{digits}f}" if math.isfinite(v) else "n/a"


def _by_metric(per_class: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in pivot(per_class):
        out.setdefault(r["metric"], []).append(r)
    return out


def table_markdown(per_class: list[dict]) -> str:
    """A Markdown table per metric, codecs as rows and classes then Average as columns, notes below."""
    cols = classes_of(per_class)
    parts = [f"BD-rate (%) per class. {METHOD}.", ""]
    for metric, recs in _by_metric(per_class).items():
        parts += [f"### {label(metric)} against {recs[0]['anchor']}", "",
                  "| codec | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
        parts += ["| " + " | ".join([_md(r["codec"])] + [_cell(r.get(c, math.nan)) for c in cols]) + " |"
                  for r in recs]
        notes = [f"- {_md(r['codec'])}: {_md(r['notes'])}" for r in recs if r["notes"]]
        parts += [""] + (notes + [""] if notes else [])
    return "\n".join(parts)


def _md(text: str) -> str:
    return str(text).replace("|", "\\|")


def _tex(text: str) -> str:
    text = str(text).replace("\\", "\0")
    for a, b in (("&", "\\&"), ("%", "\\%"), ("$", "\\$"), ("#", "\\#"), ("_", "\\_"), ("{", "\\{"),
                 ("}", "\\}"), ("~", "\\textasciitilde{}"), ("^", "\\^{}")):
        text = text.replace(a, b)
    return text.replace("\0", "\\textbackslash{}")


def _tex_cell(v: float) -> str:
    return "--" if not math.isfinite(v) else f"{v:.1f}".replace("-", "$-$")


def table_latex(per_class: list[dict]) -> str:
    """A booktabs table per metric: codecs as rows, classes then Average as columns."""
    cols = classes_of(per_class)
    parts = [f"% {METHOD}.", "% needs \\usepackage{booktabs}"]
    for metric, recs in _by_metric(per_class).items():
        parts += ["\\begin{table}[t]", "\\centering",
                  f"\\caption{{BD-rate (\\%) on {_tex(label(metric))} against {_tex(recs[0]['anchor'])} "
                  "(negative: fewer bits at equal quality).}",
                  f"\\begin{{tabular}}{{l{'r' * len(cols)}}}", "\\toprule",
                  "Codec & " + " & ".join(_tex(c) for c in cols) + " \\\\", "\\midrule"]
        parts += [_tex(r["codec"]) + " & " + " & ".join(_tex_cell(r.get(c, math.nan)) for c in cols) + " \\\\"
                  for r in recs]
        parts += ["\\bottomrule", "\\end{tabular}", "\\end{table}", ""]
    return "\n".join(parts)


def sequences_markdown(per_seq: list[dict]) -> str:
    """Per-sequence BD-rates: a Markdown table per metric, sequences as rows and codecs as columns."""
    parts = []
    for metric in dict.fromkeys(e["metric"] for e in per_seq):
        sub = [e for e in per_seq if e["metric"] == metric]
        codecs = list(dict.fromkeys(e["codec"] for e in sub))
        parts += [f"### {label(metric)} against {sub[0]['anchor']}, per sequence", "",
                  "| class | sequence | " + " | ".join(_md(c) for c in codecs) + " |",
                  "|---|---|" + "---:|" * len(codecs)]
        for cls, seq in dict.fromkeys((e["class"], e["sequence"]) for e in sub):
            vals = {e["codec"]: e["bd_rate_pct"] for e in sub if e["sequence"] == seq and e["class"] == cls}
            parts.append(f"| {_md(cls)} | {_md(seq)} | " + " | ".join(_cell(vals[c]) for c in codecs) + " |")
        parts.append("")
    return "\n".join(parts)


def write_tables(out: Path, per_class: list[dict], per_seq: list[dict]) -> dict[str, Path]:
    """bdrate_classes.{csv,md,tex} and bdrate_sequences.{csv,md} in `out` (atomically)."""
    paths = {"classes_csv": out / "bdrate_classes.csv", "classes_md": out / "bdrate_classes.md",
             "classes_tex": out / "bdrate_classes.tex", "sequences_csv": out / "bdrate_sequences.csv",
             "sequences_md": out / "bdrate_sequences.md"}
    seq_recs = [{**e, "bd_rate_pct": "" if not math.isfinite(e["bd_rate_pct"]) else e["bd_rate_pct"]}
                for e in per_seq]
    texts = {"classes_csv": table_csv(per_class), "classes_md": table_markdown(per_class),
             "classes_tex": table_latex(per_class), "sequences_csv": _csv_text(list(SEQ_COLUMNS), seq_recs),
             "sequences_md": sequences_markdown(per_seq)}
    for k, p in paths.items():
        write_bytes_atomic(p, texts[k].encode())
    return paths


def classes_html(test_set: dict[str, Any], per_class: list[dict]) -> str:
    """The report's section on the test set (a table) and the per-class BD-rates (a table per metric)."""
    import html

    from vvc_lightning.evaluation.text_tables import html_table as _table

    about = [{"setting": k.replace("_", " "), "value": v} for k, v in test_set.items() if k != "classes"]
    about += [{"setting": f"class {c}", "value": ", ".join(seqs)}
              for c, seqs in test_set.get("classes", {}).items()]
    parts = ["<h2>Test set</h2>", _table(["setting", "value"], about)]
    if per_class:
        cols = classes_of(per_class)
        parts.append(f"<h2>BD-rate (%) per class</h2><p style='max-width:1000px;font-size:13px'>"
                     f"{html.escape(METHOD)}.</p>")
        for metric, recs in _by_metric(per_class).items():
            parts += [f"<h3>{html.escape(label(metric))} against {html.escape(recs[0]['anchor'])}</h3>",
                      _table(["codec", *cols], recs, {c: ".2f" for c in cols})]
            parts += [f"<p style='font-size:12px;max-width:1000px'>{html.escape(r['codec'])}: "
                      f"{html.escape(r['notes'])}</p>" for r in recs if r["notes"]]
    return "\n".join(parts)
