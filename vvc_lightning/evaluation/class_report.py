"""The per-class outputs of a run: anchor files per codec, per-class RD plots and BD-rate tables."""

from __future__ import annotations

import re
from pathlib import Path

from vvc_lightning.evaluation.classes import class_bd_rates


def class_report(out: Path, rows: list[dict], external: list[dict], groups: dict[str, str],
                 files: dict[str, str], anchor: str | None, keys: list[str],
                 info: dict, log_rate: bool = False) -> tuple[dict[str, Path], list[dict], list[dict]]:
    """anchors/CODEC.json for every codec evaluated, rd_classes/CLASS_METRIC.{png,pdf,svg}, and with an
    anchor BD-rate tables per class (the anchor-file curves in `external` matched to the sequences
    evaluated) and per sequence. Returns the paths written and the (per class and Average, per sequence)
    BD-rates."""
    from vvc_lightning.evaluation.anchor_file import align, write_anchor_file
    from vvc_lightning.evaluation.class_plots import plot_classes
    from vvc_lightning.evaluation.tables import write_tables
    from vvc_lightning.video.atomic import make_dirs

    paths: dict[str, Path] = {}
    make_dirs(out / "anchors")
    for codec in dict.fromkeys(r["codec"] for r in rows):
        path = out / "anchors" / f"{re.sub(r'[^A-Za-z0-9_.+-]', '_', codec)}.json"
        paths[f"anchor_{codec}"] = write_anchor_file(path, [r for r in rows if r["codec"] == codec], groups,
                                                     files)
    curves = rows + align(external, groups, files)
    hib = {k: bool(info.get(k, {}).get("higher_is_better", True)) for k in keys}
    paths.update(plot_classes(out / "rd_classes", curves, groups, keys, hib, log_rate))
    if anchor is None:
        return paths, [], []
    per_class, per_seq = class_bd_rates(curves, anchor, groups, keys, hib)
    paths.update(write_tables(out, per_class, per_seq))
    return paths, per_class, per_seq
