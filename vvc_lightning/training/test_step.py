"""The `test` step: each test sequence goes through the real codec (bytes) and the rate estimate."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from vvc_lightning.codec.gop import GopPlan
from vvc_lightning.training.losses import bits
from vvc_lightning.video.video_io import Video, frames_to_tensor, tensor_to_frames


@torch.no_grad()
def estimated_bits(model, frames: np.ndarray, gop: int, overlap: int, batch: int, quality: float | None = None) -> float:
    """Likelihood-estimated bits of a sequence cut into the same (padded, overlapping) GoPs as the codec."""
    n, h, w = frames.shape[:3]
    plan = GopPlan(n, gop, overlap, model.backbone.temporal_stride)
    s = model.backbone.spatial_stride
    ph, pw = -(-h // s) * s - h, -(-w // s) * s - w
    total = 0.0
    clips = [frames_to_tensor(frames[plan.gop_indices(g)]) for g in range(plan.num_gops)]
    for i in range(0, len(clips), batch):
        x = torch.stack(clips[i : i + batch]).to(model.device)
        x = torch.nn.functional.pad(x, (0, pw, 0, ph, 0, 0), mode="replicate")  # as the codec pads
        out = model.codec(model.backbone.encode(x), quality)
        total += float(bits(out.y_likelihoods) + bits(out.z_likelihoods))
    return total


def run_test_sequence(model, x: Tensor, index: int) -> dict[str, float]:
    """Code one whole sequence (1,3,N,H,W) at each of test.qualities (variable rate; metrics named
    test/NAME@qQ) or once; log real and estimated bpp and the quality metrics."""
    qualities = model.cfg.test.get("qualities")
    if not qualities:
        return _run_at(model, x, index, None, "")
    results: dict[str, float] = {}
    for q in qualities:
        results.update(_run_at(model, x, index, float(q), f"@q{float(q):g}"))
    return results


def _run_at(model, x: Tensor, index: int, quality: float | None, suffix: str) -> dict[str, float]:
    """One sequence at one quality; returns and logs the results (keys + suffix)."""
    from vvc_lightning.codec.video_codec import VideoCodec
    from vvc_lightning.evaluation.metrics import VideoMetrics

    cfg = model.cfg.test
    if x.shape[0] != 1:
        raise ValueError(f"the test split must give one whole sequence per batch, got a batch of {x.shape[0]}")
    frames = tensor_to_frames(x[0])
    n, h, w = frames.shape[:3]
    pixels = n * h * w
    dm = getattr(model.trainer, "datamodule", None) if model._trainer is not None else None
    fps_list = getattr(dm, "test_fps", None) or []
    fps = float(fps_list[index]) if index < len(fps_list) else 25.0
    gop, overlap, batch = model.gop, int(cfg.overlap), int(cfg.batch)
    results: dict[str, float] = {
        "bpp_estimate": estimated_bits(model, frames, gop, overlap, batch, quality) / pixels,
        "frames": float(n),
    }
    rec = frames
    if cfg.real_bytes:
        codec = VideoCodec(model, gop=gop, overlap=overlap, theta=float(cfg.theta), batch=batch, tile=cfg.tile,
                           quality=quality)
        data = codec.encode(Video(frames, fps))
        rec = codec.decode(data).frames
        results["bpp"] = len(data) * 8 / pixels
    metrics = VideoMetrics(list(cfg.metrics), device=model.device)
    metrics.update(frames_to_tensor(frames)[None], frames_to_tensor(rec)[None])
    results.update(metrics.compute())
    results = {f"{k}{suffix}": v for k, v in results.items()}
    model.log_dict({f"test/{k}": v for k, v in results.items()}, on_step=False, on_epoch=True, batch_size=1)
    return results
