"""What an `evaluate` output folder holds across runs: the rows of earlier runs, and the files it wrote.

A rerun keeps the earlier runs' rows (from results.json) of the curves it does not evaluate again (other
models and classic settings); a row of the same model, codec options and sequence content is the same row
whatever the model was called, so a model evaluated again under another name replaces its old rows. The
folder's files that the tool wrote are listed in MANIFEST; a rerun removes the listed files it does not
write again (crops and plots of curves or metrics no longer there) and nothing else: a file the tool did not
write is never touched.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from vvc_lightning.video.video_io import write_bytes_atomic

MANIFEST = ".evaluate-files.json"


def _nan(v: Any) -> Any:
    return math.nan if v is None else v


def previous_rows(out: Path) -> list[dict]:
    """The rows of the last run's results.json in `out` ([] when there is none or it cannot be read)."""
    try:
        doc = json.loads((out / "results.json").read_text())
        rows = [r for r in doc.get("rows", []) if isinstance(r, dict) and "key" in r and "metrics" in r]
    except (OSError, ValueError, AttributeError):
        return []
    for r in rows:
        r["metrics"] = {k: _nan(v) for k, v in r["metrics"].items()}
    return rows


def kept_rows(previous: list[dict], rows: list[dict], specs: list[Any]) -> list[dict]:
    """Earlier rows to keep beside this run's `rows`: not computed again now (by key: the same model and
    sequence under another name is the same row) and of a curve this run does not evaluate."""
    keys = {r["key"] for r in rows}
    names = {s.name for s in specs}
    return [r for r in previous if r["key"] not in keys and r.get("codec") not in names]


def on_sequences(rows: list[dict], seqs: list[Any]) -> list[dict]:
    """The rows of the sequences evaluated now (by content), named as they are named now."""
    names = {q.digest: q.name for q in seqs}
    return [{**r, "sequence": names[r["input_hash"]]} for r in rows if r.get("input_hash") in names]


def tidy(out: Path, written: Iterable[Path]) -> list[str]:
    """Remove the files an earlier run listed as its own that this run did not write, list this run's;
    returns the removed paths (relative to `out`)."""
    root = out.resolve()
    now = sorted({str(Path(p).resolve().relative_to(root)) for p in written
                  if Path(p).resolve().is_relative_to(root)})
    try:
        before = json.loads((out / MANIFEST).read_text())
        before = [p for p in before if isinstance(p, str)] if isinstance(before, list) else []
    except (OSError, ValueError):
        before = []
    removed = []
    for rel in sorted(set(before) - set(now)):
        path = out / rel
        if path.resolve().is_relative_to(root) and path.is_file() and not path.is_symlink():
            path.unlink()
            removed.append(rel)
    write_bytes_atomic(out / MANIFEST, json.dumps(now, indent=0).encode())
    return removed
