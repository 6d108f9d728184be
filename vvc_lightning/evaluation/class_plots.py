"""RD plots per class and metric for a paper: one named curve per codec (anchor-file curves included), the
class curve over the sequences every curve has, rate in bpp, units on the quality axis; PNG, PDF, SVG."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

from vvc_lightning.evaluation.classes import class_curve
from vvc_lightning.evaluation.tables import label
from vvc_lightning.video.atomic import make_dirs
from vvc_lightning.video.video_io import write_bytes_atomic

FORMATS = ("png", "pdf", "svg")


def unit(metric: str) -> str:
    """' (dB)' for PSNR-like metrics, '' otherwise."""
    return " (dB)" if metric.startswith("psnr") else ""


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", name)


def rd_figure(curves: dict[str, list[tuple[float, float]]], key: str, higher_is_better: bool, title: str,
              log_rate: bool = False) -> Any:
    """An RD plot (matplotlib Figure): a named line per curve of (bpp, value) points, the rate in bpp on a
    linear or (`log_rate`) logarithmic axis, the metric with its unit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

    fig, ax = plt.subplots(figsize=(5.5, 4), dpi=120)
    for name, pts in curves.items():
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
    if log_rate:
        rates = [p[0] for pts in curves.values() for p in pts if p[0] > 0]
        ax.set_xscale("log")  # ticks 1-2-5 per decade; evenly spaced ones where the rates span 4x or less
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)) if not rates or
                                   max(rates) > 4 * min(rates) else MaxNLocator(6, steps=[1, 2, 2.5, 5, 10]))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    arrow = "higher is better" if higher_is_better else "lower is better"
    ax.set_xlabel("rate (bpp, log scale)" if log_rate else "rate (bpp)")
    ax.set_ylabel(f"{label(key)}{unit(key)}, {arrow}")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3, which="both" if log_rate else "major")
    if ax.lines:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_classes(folder: Path, rows: list[dict], groups: dict[str, str], keys: list[str],
                 higher_is_better: dict[str, bool], log_rate: bool = False) -> dict[str, Path]:
    """folder/CLASS_METRIC.{png,pdf,svg} for every class and metric (rate axis logarithmic with
    `log_rate`); returns {name: path}."""
    import matplotlib.pyplot as plt

    make_dirs(folder)
    codecs = list(dict.fromkeys(r["codec"] for r in rows))
    paths: dict[str, Path] = {}
    for group in dict.fromkeys(groups.values()):
        seqs = [s for s, g in groups.items() if g == group]
        have = {(r["codec"], r["sequence"]) for r in rows}
        common = [s for s in seqs if all((c, s) in have for c in codecs)]
        for key in keys:
            curves = {codec: sorted((p["bpp"], p["value"]) for p in class_curve(
                (r for r in rows if r["codec"] == codec), common, key)) for codec in codecs}
            fig = rd_figure(curves, key, higher_is_better.get(key, True),
                            f"{group}: {len(common)} of {len(seqs)} sequence(s), frame-weighted", log_rate)
            for fmt in FORMATS:
                buf = io.BytesIO()
                fig.savefig(buf, format=fmt)
                path = folder / f"{_safe(group)}_{_safe(key)}.{fmt}"
                write_bytes_atomic(path, buf.getvalue())
                paths[f"rd_{group}_{key}_{fmt}"] = path
            plt.close(fig)
    return paths
