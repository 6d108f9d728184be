"""The quality ceiling of a model's backbone on a test split, next to the codec's own curve.

Each test sequence is cut into the codec's GoPs (T = gop, overlap 1, the last GoP padded in time), padded
to the backbone stride by edge replication, and reconstructed three ways:
    vae           decode(encode(x)): the backbone alone, latent not quantised
    vae_rounded   decode(round(encode(x))): the latent rounded to integers (no latent codec, no rate)
    transforms    decode(g_s(g_a(encode(x)))) at the top quality's gains, nothing quantised: the ceiling
                  of the whole model with no rate (after joint training the decoder expects g_s's output)
    codec@qQ      the real codec at the given qualities (bytes, bpp; as `evaluate` measures it)
Shared GoP frames are blended as the decoder does (theta); metrics are per-frame means over each sequence,
then the mean over sequences. If the `vae` row is far above the codec's highest quality, the latent codec
(rate) holds quality back; if the codec's top point reaches `vae`, the backbone does.

    python benchmarks/bench_ceiling.py --model zoo:vvc-lean-vr --test-dir data/offline/test \\
        --qualities 0,4,7 --out benchmarks/results/bench_ceiling.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vvc_lightning.codec.entropy.gain import quality_label
from vvc_lightning.codec.pipeline.gop import GopBlender, GopPlan, iter_gops
from vvc_lightning.codec.pipeline.video_codec import VideoCodec
from vvc_lightning.metrics import VideoMetrics
from vvc_lightning.store.loader import load
from vvc_lightning.video.video_io import frames_to_tensor, read_video, tensor_to_frames

VIDEO_SUFFIXES = (".y4m", ".mp4", ".mkv", ".avi", ".mov", ".yuv")


@torch.no_grad()
def backbone_round_trip(
    model: Any, frames: np.ndarray, gop: int, mode: str, theta: float = 0.5
) -> np.ndarray:
    """uint8 (N,H,W,3) through the backbone GoP by GoP (`mode`: see the module doc), shared frames blended."""
    backbone, s = model.backbone, int(model.backbone.spatial_stride)
    n, h, w = frames.shape[:3]
    hp, wp = -(-h // s) * s, -(-w // s) * s
    plan = GopPlan(n, gop, 1, int(backbone.temporal_stride))
    blender, out = GopBlender(plan, theta), np.empty_like(frames)
    for gop_frames, _ in iter_gops(iter(frames), gop, 1):
        x = frames_to_tensor(gop_frames)[None]
        x = F.pad(x, (0, wp - w, 0, hp - h, 0, 0), mode="replicate")
        latent = backbone.encode(x)
        rec = backbone.decode(_latent(model, latent, mode))[0, :, :, :h, :w]
        for index, frame in blender.push(rec):
            out[index] = tensor_to_frames(frame[:, None])[0]
    return out


def _latent(model: Any, latent: torch.Tensor, mode: str) -> torch.Tensor:
    """The latent handed to the backbone decoder in `mode`."""
    if mode == "vae_rounded":
        return torch.round(latent)
    if mode == "transforms":
        codec = model.codec
        gains = codec.rate(None)  # the highest quality (None: a fixed-rate codec)
        return codec._synthesis(codec._analysis(latent, gains), gains, latent.shape[0])
    return latent


def score(metrics: VideoMetrics, ref: np.ndarray, rec: np.ndarray) -> dict[str, float]:
    """Per-frame means of each metric over one sequence."""
    return {k: float(np.mean(v)) for k, v in metrics.sequence(ref, rec).items()}


def sequences(test_dir: Path, max_frames: int | None) -> list[tuple[str, np.ndarray, float]]:
    """(name, uint8 frames, fps) of every video in the folder, sorted by name."""
    paths = sorted(p for p in test_dir.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    if not paths:
        raise SystemExit(
            f"error: no test video in '{test_dir}' (build it: python scripts/build_training_data.py)"
        )
    out = []
    for p in paths:
        video = read_video(p, max_frames=max_frames)
        out.append((p.stem, video.frames, video.fps))
    return out


def measure(
    model_spec: str, test_dir: Path, qualities: list[float], max_frames: int | None
) -> dict[str, Any]:
    """Rows {mode: {sequence: metrics}} and their means over sequences."""
    model = load(model_spec).eval()
    metrics = VideoMetrics(["psnr", "ms_ssim", "stlpips"])
    rows: dict[str, dict[str, dict[str, float]]] = {}
    for name, frames, fps in sequences(test_dir, max_frames):
        pixels = frames.shape[0] * frames.shape[1] * frames.shape[2]
        for mode in ("vae", "vae_rounded", "transforms"):
            rec = backbone_round_trip(model, frames, model.gop, mode)
            rows.setdefault(mode, {})[name] = score(metrics, frames, rec)
        for q in qualities:
            codec = VideoCodec(model, gop=model.gop, quality=q)
            data = codec.encode_frames(iter(frames), fps, len(frames))
            rec = codec.decode(data).frames
            rows.setdefault("codec" + quality_label(q), {})[name] = {"bpp": 8.0 * len(data) / pixels,
                                                          **score(metrics, frames, rec)}
        print(f"{name}: " + "; ".join(f"{m} {rows[m][name]}" for m in rows), flush=True)
    means = {mode: {k: float(np.mean([seq[k] for seq in per.values()])) for k in next(iter(per.values()))}
             for mode, per in rows.items()}
    return {"model": model_spec, "test_dir": test_dir.name, "sequences": sorted(next(iter(rows.values()))),
            "means": means, "per_sequence": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="zoo:vvc-lean-vr")
    ap.add_argument("--test-dir", default="data/offline/test")
    ap.add_argument("--qualities", default="0,4,7", help="codec qualities, comma-separated ('' for none)")
    ap.add_argument("--max-frames", type=int, default=None, help="first N frames of each sequence")
    ap.add_argument("--out", default="benchmarks/results/bench_ceiling.json")
    args = ap.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    qualities = [float(q) for q in args.qualities.split(",") if q.strip()]
    start = time.perf_counter()
    result = measure(args.model, Path(args.test_dir), qualities, args.max_frames)
    result.update(
        seconds=time.perf_counter() - start,
        torch=torch.__version__,
        threads=torch.get_num_threads(),
        machine=platform.processor() or platform.machine(),
        load_average=os.getloadavg(),
    )
    print(f"{'mode':14s} " + " ".join(f"{k:>8s}" for k in ("bpp", "psnr", "ms_ssim", "stlpips")))
    for mode, m in result["means"].items():
        print(
            f"{mode:14s} "
            + " ".join(f"{m.get(k, float('nan')):8.4f}" for k in ("bpp", "psnr", "ms_ssim", "stlpips"))
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
