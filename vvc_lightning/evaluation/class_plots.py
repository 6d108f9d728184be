"""RD plots per class and metric for a paper: one named curve per codec (anchor-file curves included), the
class curve over the sequences every curve has, rate in bpp, units on the quality axis; PNG, PDF, SVG."""

from __future__ import annotations

import io
import re
from pathlib import Path

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


def plot_classes(folder: Path, rows: list[dict], groups: dict[str, str], keys: list[str],
                 higher_is_better: dict[str, bool]) -> dict[str, Path]:
    """folder/CLASS_METRIC.{png,pdf,svg} for every class and metric; returns {name: path}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    make_dirs(folder)
    codecs = list(dict.fromkeys(r["codec"] for r in rows))
    paths: dict[str, Path] = {}
    for group in dict.fromkeys(groups.values()):
        seqs = [s for s, g in groups.items() if g == group]
        have = {(r["codec"], r["sequence"]) for r in rows}
        common = [s for s in seqs if all((c, s) in have for c in codecs)]
        for key in keys:
            fig, ax = plt.subplots(figsize=(5.5, 4), dpi=120)
            for codec in codecs:
                pts = sorted((p["bpp"], p["value"]) for p in class_curve(
                    (r for r in rows if r["codec"] == codec), common, key))
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=codec)
            arrow = "higher is better" if higher_is_better.get(key, True) else "lower is better"
            ax.set_xlabel("rate (bpp)")
            ax.set_ylabel(f"{label(key)}{unit(key)}, {arrow}")
            ax.set_title(f"{group}: {len(common)} of {len(seqs)} sequence(s), frame-weighted", fontsize=10)
            ax.grid(True, alpha=0.3)
            if ax.lines:
                ax.legend(fontsize=8)
            fig.tight_layout()
            for fmt in FORMATS:
                buf = io.BytesIO()
                fig.savefig(buf, format=fmt)
                path = folder / f"{_safe(group)}_{_safe(key)}.{fmt}"
                write_bytes_atomic(path, buf.getvalue())
                paths[f"rd_{group}_{key}_{fmt}"] = path
            plt.close(fig)
    return paths
