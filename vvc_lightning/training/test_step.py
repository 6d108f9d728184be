"""The `test` step: each test sequence goes through the real codec (bytes) and the rate estimate, GoP by GoP.

The test split gives each sequence lazily (a `TestSequence` whose `iter_frames()` reads it again frame by
frame); the rate estimate, the encoder and the metrics (reference read again beside the streaming decoder)
each take one pass a few GoPs at a time, so memory does not grow with the sequence length. A whole
sequence given as a tensor (1,3,N,H,W) (uint8, or float in [-1,1]) is accepted too.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf
from torch import Tensor

from vvc_lightning.codec.entropy.gain import quality_label
from vvc_lightning.codec.pipeline.gop import iter_gops
from vvc_lightning.training.losses import bits
from vvc_lightning.video.video_io import DEFAULT_FPS, frames_to_tensor, tensor_to_frames

log = logging.getLogger("vvc_lightning")


@torch.no_grad()
def estimated_bits(model, frames: Iterable[np.ndarray], gop: int, overlap: int, batch: int,
                   quality: float | None = None) -> float:
    """Likelihood-estimated bits of a sequence (uint8 frames (H,W,3), any iterable) cut into the same
    (padded, overlapping) GoPs as the codec, `batch` GoPs at a time."""
    total, chunk = 0.0, []
    for gop_frames, _ in iter_gops(iter(frames), gop, overlap):
        chunk.append(gop_frames)
        if len(chunk) == batch:
            total += _chunk_bits(model, chunk, quality)
            chunk = []
    if chunk:
        total += _chunk_bits(model, chunk, quality)
    return total


def _chunk_bits(model, chunk: list[np.ndarray], quality: float | None) -> float:
    h, w = chunk[0].shape[1:3]
    s = model.backbone.spatial_stride
    ph, pw = -(-h // s) * s - h, -(-w // s) * s - w
    x = torch.stack([frames_to_tensor(c) for c in chunk]).to(model.device)
    x = torch.nn.functional.pad(x, (0, pw, 0, ph, 0, 0), mode="replicate")  # as the codec pads
    out = model.codec(model.backbone.encode(x), model.codec.rate(quality))
    return float(bits(out.y_likelihoods) + bits(out.z_likelihoods))


def sequence_frames(x: Tensor) -> np.ndarray:
    """uint8 frames (N,H,W,3) of a sequence (3,N,H,W): a view of a uint8 one, or a float one rounded."""
    if x.dtype == torch.uint8:
        return x.cpu().permute(1, 2, 3, 0).numpy()
    return tensor_to_frames(x)


def run_test_sequence(model, x: Any, index: int) -> dict[str, float]:
    """Code one whole sequence (lazy `TestSequence`, or a tensor (1,3,N,H,W)) at each of test.qualities
    (variable rate; metrics named test/NAME@qQ) or once; log real and estimated bpp and the quality
    metrics."""
    qualities = model.cfg.test.get("qualities")
    if not qualities:
        return _run_at(model, x, index, None, "")
    results: dict[str, float] = {}
    for q in qualities:
        results.update(_run_at(model, x, index, float(q), quality_label(q)))
    return results


def _frame_source(x: Any) -> Callable[[], Iterator[np.ndarray]]:
    """A function giving a fresh iterator over the sequence's uint8 frames (H,W,3) at each call."""
    if hasattr(x, "iter_frames"):
        return x.iter_frames
    if x.shape[0] != 1:
        raise ValueError(
            f"the test split must give one whole sequence per batch, got a batch of {x.shape[0]}"
        )
    frames = sequence_frames(x[0])
    return lambda: iter(frames)


def _run_at(model, x: Any, index: int, quality: float | None, suffix: str) -> dict[str, float]:
    """One sequence at one quality; returns and logs the results (keys + suffix)."""
    from vvc_lightning.codec.pipeline.options import CodecOptions
    from vvc_lightning.codec.pipeline.video_codec import FrameCounter, VideoCodec
    from vvc_lightning.metrics import VideoMetrics
    from vvc_lightning.metrics.stream import StreamingScores, score_decoded
    from vvc_lightning.video.progress import FrameProgress

    cfg = model.cfg.test
    source = _frame_source(x)
    dm = getattr(model.trainer, "datamodule", None) if model._trainer is not None else None
    fps_list = getattr(dm, "test_fps", None) or []
    fps = float(fps_list[index]) if index < len(fps_list) else DEFAULT_FPS
    options = CodecOptions(**OmegaConf.to_container(cfg.codec, resolve=True))
    if quality is not None:  # test.qualities
        options = options.replace(quality=quality)
    gop = options.gop if options.gop is not None else model.gop
    names = getattr(dm, "test_names", None) or []
    name = names[index] if index < len(names) else f"sequence_{index}"
    label = f"test {name}" + (f" at quality {quality:g}" if quality is not None else "")
    counted = FrameCounter(FrameProgress(f"{label}, rate estimate").wrap(source()))
    estimate = estimated_bits(model, counted, gop, options.overlap, options.batch, options.quality)
    n, (h, w) = counted.count, counted.shape
    pixels = n * h * w
    results: dict[str, float] = {"bpp_estimate": estimate / pixels, "frames": float(n)}
    decoded: Iterable[np.ndarray] = source()
    if cfg.real_bytes:
        codec = VideoCodec(model, options.replace(gop=gop))
        data = codec.encode_frames(FrameProgress(f"{label}, encode", n).wrap(source()), fps, n)
        decoded = codec.decode_frames(data)
        results["bpp"] = len(data) * 8 / pixels
    metrics = VideoMetrics(list(cfg.metrics), device=model.device).metrics.values()
    scores = StreamingScores(metrics, what="test")
    try:
        score_decoded(scores, source(), FrameProgress(f"{label}, decode and score", n).wrap(decoded), n, gop)
        results.update(scores.means())
    finally:
        scores.close()
    model.test_rows.append({"sequence": name, "quality": quality, **results})
    results = {f"{k}{suffix}": v for k, v in results.items()}
    model.log_dict({f"test/{k}": v for k, v in results.items()}, on_step=False, on_epoch=True, batch_size=1)
    return results


def write_results(run_dir: Path, rows: list[dict[str, Any]], means: list[dict[str, float]], cfg: Any,
                  ckpt: str) -> Path:
    """Write the test results per sequence and quality (results.csv, results.json with the means, and the
    config tested) into a new folder run_dir/test/version_N; returns that folder."""
    from vvc_lightning.configuration.config import to_yaml
    from vvc_lightning.video.atomic import OutputTaken, atomic_path, make_dirs

    root = make_dirs(Path(run_dir) / "test")
    keys = sorted({k for row in rows for k in row} - {"sequence", "quality"})
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=["sequence", "quality", *keys], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    def finite(row: dict[str, Any]) -> dict[str, Any]:  # strict JSON: NaN / inf as null
        return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in row.items()}

    report = {"checkpoint": str(ckpt), "sequences": [finite(r) for r in rows],
              "mean": finite(means[0]) if means else {}}
    text = json.dumps(report, indent=2, allow_nan=False) + "\n"
    while True:
        taken = [int(p.name[8:]) for p in root.glob("version_*") if p.name[8:].isdigit()]
        folder = root / f"version_{max(taken, default=-1) + 1}"
        try:
            with atomic_path(folder, is_dir=True) as tmp:
                (tmp / "results.csv").write_text(table.getvalue(), encoding="utf-8")
                (tmp / "results.json").write_text(text, encoding="utf-8")
                (tmp / "config.yaml").write_text(to_yaml(cfg), encoding="utf-8")
        except OutputTaken:  # another test run took that version meanwhile: the next one
            continue
        log.info("test results per sequence in %s", folder)
        return folder
