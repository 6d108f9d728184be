"""`test` of a run that started from a trained model (`model.init`): that model tested the same way, and one
before -> after table of the two, so a fine-tune shows what it changed."""

from __future__ import annotations

import logging
from typing import Any

from omegaconf import DictConfig

from vvc_lightning.codec.entropy.gain import parse_quality_label
from vvc_lightning.errors import RegistryError, VVCError

log = logging.getLogger("vvc_lightning")
SKIPPED = ("bpp_estimate", "frames")  # test figures left out of the table (the real bpp is in it)


def start_model(source: Any, cfg: DictConfig) -> str | None:
    """The `model.init` the run of a loader `source` started from, when its (stored) config `cfg` asks for
    the comparison (`test.compare_init`); else None."""
    spec = getattr(source, "init", None)
    return str(spec) if spec and cfg.test.get("compare_init", True) else None


def test_start_model(cfg: DictConfig, spec: str) -> dict[str, float] | None:
    """Test means of the model `spec` under `cfg` (the tested run's stored config: same data, qualities and
    metrics); None, said in one line, when it cannot be loaded any more."""
    from vvc_lightning.training.trainer import run_split
    from vvc_lightning.training.warm_start import _init_source

    try:
        source = _init_source(spec)
    except VVCError as exc:
        log.warning("no before/after table: the model this run started from cannot be loaded: %s", exc)
        return None
    log.info("testing the model this run started from (model.init %s) for the before/after table", spec)
    results = run_split("test", source, cfg)[0]
    return results[0] if results else None


def _split(key: str) -> tuple[str, float | None]:
    """('psnr', 4.0) of 'test/psnr@q4', ('psnr', None) of 'test/psnr'."""
    name = key.removeprefix("test/")
    quality = parse_quality_label(name)
    return (name.rsplit("@q", 1)[0] if quality is not None else name), quality


def _higher_is_better(name: str) -> bool | None:
    if name == "bpp":
        return False
    from vvc_lightning.metrics.registry import METRICS

    try:
        return bool(METRICS.get(name).higher_is_better)
    except RegistryError:  # a figure no registered metric names: no direction given
        return None


def before_after_table(spec: str, checkpoint: str, before: dict[str, float], after: dict[str, float]) -> str:
    """The test means of `before` (the model `spec`) and `after` (`checkpoint`) side by side, one row per
    quality, `before -> after` per figure (the real bpp first), and which way is better."""
    names: list[str] = []
    qualities: list[float | None] = []
    for key in after:
        name, quality = _split(key)
        if name in SKIPPED or key not in before:
            continue
        names += [name] if name not in names else []
        qualities += [quality] if quality not in qualities else []
    names.sort(key=lambda n: n != "bpp")
    cell = 20
    lines = [f"test means, before (model.init {spec}) -> after ({checkpoint}):",
             "  quality  " + "".join(f"{n:{cell}s}" for n in names).rstrip()]
    for q in qualities:
        suffix = "" if q is None else f"@q{q:g}"
        cells = []
        for n in names:
            key = f"test/{n}{suffix}"
            digits = 4 if n == "bpp" else 2 if "psnr" in n else 3
            cells.append(f"{before[key]:.{digits}f} -> {after[key]:.{digits}f}" if key in before else "-")
        label = "-" if q is None else f"q{q:g}"
        lines.append(f"  {label:9s}" + "".join(f"{c:{cell}s}" for c in cells).rstrip())
    lower = [n for n in names if _higher_is_better(n) is False]
    higher = [n for n in names if _higher_is_better(n)]
    lines.append(f"  better: lower {', '.join(lower) or '-'}; higher {', '.join(higher) or '-'}")
    return "\n".join(lines)
