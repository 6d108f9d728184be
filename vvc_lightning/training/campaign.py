"""Kept across runs: decide whether a continued model replaces the shipped one, and record every run.

A campaign run continues a shipped zoo model, measures the previous and the new model on the test split at
the same qualities, and keeps the new weights only when their ST-LPIPS curve improved: the Bjøntegaard
delta rate of the new curve against the previous one (bits at equal ST-LPIPS; lower ST-LPIPS is better)
below 0. Either way the model's record gains one history entry (device, device-seconds, steps, data
manifest hash, test-split figures, the decision). `scripts/campaign.py` runs the whole loop.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vvc_lightning.errors import VVCError, WeightsError
from vvc_lightning.store.record import portable_path, portable_strings
from vvc_lightning.video.atomic import sha256_file

METRIC = "stlpips"
FIGURES = ("quality", "bpp", "psnr", "ms_ssim", "stlpips")  # kept per curve point in a history entry
PATH_KEYS = ("source_checkpoint", "curve_source")


@dataclass(frozen=True)
class Decision:
    """Whether the new weights replace the previous ones, why, and the ST-LPIPS BD-rate (%, NaN if none)."""

    accept: bool
    reason: str
    bd_rate_stlpips: float


def _points(curve: Sequence[dict[str, Any]], who: str, metric: str) -> tuple[list[float], list[float]] | str:
    """(rates, metric values) of a curve, or the reason they cannot be used."""
    if len(curve) < 2:
        return f"the {who} curve has {len(curve)} point(s); a BD-rate needs 2 or more"
    rates, values = [], []
    for p in curve:
        label = p.get("point", p.get("quality", "?"))
        try:
            r, v = float(p["bpp"]), float(p[metric])
        except (KeyError, TypeError, ValueError):
            return f"the {who} curve's point {label} has no bpp or {metric}"
        if not (math.isfinite(r) and math.isfinite(v)):
            return f"the {who} curve's point {label} has a non-finite value (bpp {r}, {metric} {v})"
        rates.append(r)
        values.append(v)
    return rates, values


def decide(previous_curve: Sequence[dict[str, Any]], new_curve: Sequence[dict[str, Any]],
           metric: str = METRIC) -> Decision:
    """Accept the new model only if its `metric` BD-rate against the previous model is below 0 (fewer bits
    at equal quality; lower metric is better); NaN, non-monotonic or non-overlapping curves are rejected."""
    from vvc_lightning.metrics.bdrate import try_bd_rate

    nan = float("nan")
    prev, new = _points(previous_curve, "previous", metric), _points(new_curve, "new", metric)
    for got in (prev, new):
        if isinstance(got, str):
            return Decision(False, f"no {metric} BD-rate: {got}", nan)
    assert not isinstance(prev, str) and not isinstance(new, str)
    bd, why = try_bd_rate(prev[0], prev[1], new[0], new[1], higher_is_better=False)
    if why or not math.isfinite(bd):
        why = why.replace("anchor:", "previous curve:").replace("test:", "new curve:")
        if "do not overlap" in why:
            lo_p, hi_p, lo_n, hi_n = min(prev[1]), max(prev[1]), min(new[1]), max(new[1])
            why = (
                f"the curves do not overlap in {metric} (previous {lo_p:.4f}-{hi_p:.4f}, new "
                f"{lo_n:.4f}-{hi_n:.4f}), "
                "so no rate at equal quality can be compared"
            )
        return Decision(False, f"no {metric} BD-rate against the previous model: {why or 'not finite'}", nan)
    if bd < 0:
        return Decision(True, f"{metric} BD-rate {bd:+.2f} % against the previous model "
                              "(below 0: fewer bits at equal quality)", bd)
    return Decision(False, f"{metric} BD-rate {bd:+.2f} % against the previous model (not below 0: no fewer "
                           "bits at equal quality)", bd)


def file_sha256(path: str | os.PathLike) -> str | None:
    """SHA-256 of a file's bytes, or None when there is no such file."""
    path = Path(path)
    return sha256_file(path) if path.is_file() else None


def _num(v: Any) -> float | None:
    """A float for JSON: None for NaN / missing."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return round(f, 6) if math.isfinite(f) else None


def figures(curve: Sequence[dict[str, Any]]) -> list[dict[str, float | None]]:
    """The per-point figures a history entry keeps (quality, bpp, PSNR, MS-SSIM, ST-LPIPS)."""
    return [{k: _num(p.get(k)) for k in FIGURES if k in p} for p in curve]


def history_entry(
    *,
    device: str,
    device_seconds: float,
    steps: int,
    step_start: int,
    step_end: int,
    stage: str,
    manifest_sha256: str | None,
    manifest: str,
    test_data: str,
    sequences: Sequence[str],
    previous_curve: Sequence[dict[str, Any]],
    new_curve: Sequence[dict[str, Any]],
    decision: Decision,
    train_seconds: float | None = None,
    notes: str = "",
) -> dict[str, Any]:
    """One training run, as kept in the model record's `history` (no absolute paths)."""
    from vvc_lightning.version import __version__

    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "device": device,
        "device_seconds": round(float(device_seconds), 1),
        "train_seconds": None if train_seconds is None else round(float(train_seconds), 1),
        "steps": int(steps),
        "global_step": [int(step_start), int(step_end)],
        "stage": stage,
        "data_manifest": portable_path(manifest),
        "data_manifest_sha256": manifest_sha256,
        "test_split": {"data": portable_path(test_data), "sequences": list(sequences),
                       "previous": figures(previous_curve), "new": figures(new_curve),
                       "bd_rate_stlpips_pct": _num(decision.bd_rate_stlpips)},
        "accepted": bool(decision.accept),
        "reason": decision.reason,
        "vvc_lightning": __version__,
        "notes": notes,
    }


def portable_record(record: dict[str, Any], root: str | os.PathLike | None = None) -> dict[str, Any]:
    """The record, every absolute path in its training data, config data and source fields made portable."""
    out = dict(record)
    tr = dict(out.get("training") or {})
    for key in PATH_KEYS:
        if key in tr:
            tr[key] = portable_path(tr[key], root)
    if "data" in tr:
        tr["data"] = portable_strings(tr["data"], root)
    out["training"] = tr
    if "curve_source" in out:
        out["curve_source"] = portable_path(out["curve_source"], root)
    if isinstance(out.get("config"), dict):
        cfg = dict(out["config"])
        for key in ("data", "run_dir"):
            if key in cfg:
                cfg[key] = portable_strings(cfg[key], root)
        out["config"] = cfg
    return out


@contextlib.contextmanager
def models_from(folder: str | os.PathLike) -> Iterator[None]:
    """Within the block, zoo names resolve to `folder` first ($VVC_LIGHTNING_MODELS set to it)."""
    from vvc_lightning.store.zoo import ENV

    old = os.environ.get(ENV)
    os.environ[ENV] = str(folder)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = old


def entry_in(folder: str | os.PathLike, name: str) -> Any:
    """The zoo entry `name` of `folder` (not of another folder), its weights checked against its record."""
    from vvc_lightning.store.zoo import get_entry

    folder = Path(folder)
    with models_from(folder):
        entry = get_entry(name)
    if entry.weights.parent.resolve() != folder.resolve():
        raise VVCError(f"no zoo entry '{name}' in {folder} (need {name}.json and {name}.safetensors there)")
    digest = entry.record.get("sha256")
    if digest and file_sha256(entry.weights) != digest:
        raise WeightsError(
            f"'{entry.weights}' does not match the SHA-256 in its record; restore the shipped files"
        )
    return entry


def _write_json(path: Path, record: dict[str, Any]) -> None:
    from vvc_lightning.video.video_io import write_bytes_atomic

    write_bytes_atomic(path, (json.dumps(record, indent=1, allow_nan=False) + "\n").encode())


def commit(decision: Decision, entry: dict[str, Any], name: str, models_dir: str | os.PathLike,
           staged_dir: str | os.PathLike | None, expected_sha256: str | None) -> Path:
    """Append `entry` to the record of `name` in `models_dir`; on accept first put the staged export (its
    record given the whole history) in place of the shipped weights. Returns the record path."""
    from vvc_lightning.video.video_io import write_bytes_atomic

    models_dir = Path(models_dir)
    rec_path, weights = models_dir / f"{name}.json", models_dir / f"{name}.safetensors"
    previous = json.loads(rec_path.read_text())
    if expected_sha256 and file_sha256(weights) != expected_sha256:
        raise WeightsError(f"'{weights}' changed while this run trained; kept it, nothing written")
    history = [*list(previous.get("history") or []), entry]
    if not decision.accept:
        _write_json(rec_path, portable_record({**previous, "history": history}))
        return rec_path
    staged = Path(staged_dir or "")
    new_weights, new_rec = staged / f"{name}.safetensors", staged / f"{name}.json"
    record = json.loads(new_rec.read_text())
    data = new_weights.read_bytes()
    if hashlib.sha256(data).hexdigest() != record.get("sha256"):
        raise WeightsError(f"the staged export '{new_weights}' does not match its record; nothing replaced")
    record = portable_record({**record, "history": history})
    write_bytes_atomic(weights, data)  # the record follows at once; both are written whole or not at all
    _write_json(rec_path, record)
    return rec_path
