"""GPU figures: training-step time and memory at the paper's settings (fp32 vs bf16-mixed), and codec
encode/decode frames per second with --batch 1 vs 4. Writes JSON. Random weights (speed only).

    python benchmarks/bench_gpu.py -o benchmarks/results/bench_gpu.json [--quick]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from vvc_lightning.configuration.config import load_config
from vvc_lightning.training.model import VideoCompressionModel

DEV = "cuda" if torch.cuda.is_available() else "cpu"
SMOKE: list[str] = []  # --smoke: tiny models on the CPU, to check this script itself
SMALL: dict[str, list[str]] = {}  # --smoke: per-backbone size overrides


def env() -> dict:
    """Hardware and software next to every figure."""
    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return {
        "device": dev,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cpu_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "note": "random weights; speed and memory only",
    }


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def train_step_time(backbone: str, precision: str, batch: int, size: int, steps: int, overrides=()) -> dict:
    """Seconds per optimizer step (eq. 2, joint stage, MS-SSIM as P) and peak GPU memory."""
    cfg = load_config([f"{backbone}.yaml"], ["model.loss.perceptual=ms-ssim", "data.name=folder", *SMOKE,
                                              *SMALL.get(backbone, []), *overrides])
    model = VideoCompressionModel(cfg).to(DEV).train()
    model.stage = cfg.stages[2]
    opt = torch.optim.AdamW(model.parameters(), lr=5e-6)
    x = torch.rand(batch, 3, 9, size, size, device=DEV) * 2 - 1
    loss_fn = model.loss_fn()
    times = []
    if DEV == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for i in range(steps + 2):
        sync()
        t = time.perf_counter()
        with torch.autocast(DEV, dtype=torch.bfloat16, enabled=precision == "bf16-mixed"):
            out = model(x)
            terms = loss_fn(
                x, out["x_hat"].float(), out["likelihoods"]["y"].float(), out["likelihoods"]["z"].float()
            )
        opt.zero_grad(set_to_none=True)
        (terms.loss + model.codec.aux_loss()).backward()
        opt.step()
        sync()
        if i >= 2:
            times.append(time.perf_counter() - t)
        finite = bool(torch.isfinite(terms.loss).item())
    return {
        "backbone": backbone,
        "precision": precision,
        "batch": batch,
        "frames": 9,
        "size": size,
        "s_per_step_median": float(np.median(times)),
        "peak_gpu_mem_gb": torch.cuda.max_memory_allocated() / 2**30 if DEV == "cuda" else None,
        "loss_finite": finite,
        "params_backbone": sum(p.numel() for p in model.backbone.parameters()),
        "params_codec": sum(p.numel() for p in model.codec.parameters()),
    }


def codec_fps(backbone: str, width: int, height: int, frames: int, batch: int) -> dict:
    """Encode / decode frames per second of the real codec (bytes out, bytes in) on the GPU."""
    from vvc_lightning.codec.pipeline.video_codec import VideoCodec
    from vvc_lightning.video.video_io import Video

    cfg = load_config([f"{backbone}.yaml"], ["model.loss.perceptual=ms-ssim", "data.name=folder", *SMOKE,
                                              *SMALL.get(backbone, [])])
    torch.manual_seed(0)
    model = VideoCompressionModel(cfg).to(DEV).eval()
    model.codec.update_tables(force=True)
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (1, height, width, 3), dtype=np.uint8)
    video = Video(np.repeat(base, frames, 0), 25.0)
    codec = VideoCodec(model, gop=9, overlap=1, theta=0.5, batch=batch, tile=0)
    codec.encode(Video(video.frames[:9], 25.0))  # warm-up (cudnn autotune, tables on CPU)
    sync()
    t = time.perf_counter()
    data = codec.encode(video)
    sync()
    enc = time.perf_counter() - t
    enc_timings = dict(codec.timings)
    t = time.perf_counter()
    rec = codec.decode(data)
    sync()
    dec = time.perf_counter() - t
    dec_timings = dict(codec.timings)
    assert rec.num_frames == frames
    return {
        "backbone": backbone,
        "size": f"{width}x{height}",
        "frames": frames,
        "batch": batch,
        "encode_fps": frames / enc,
        "decode_fps": frames / dec,
        "bytes": len(data),
        "encode_latent_codec_share": enc_timings.get("latent_codec", 0)
        / max(enc_timings.get("total", enc), 1e-9),
        "decode_latent_codec_share": dec_timings.get("latent_codec", 0)
        / max(dec_timings.get("total", dec), 1e-9),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-o", "--out", default="benchmarks/results/bench_gpu.json")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--smoke", action="store_true", help="tiny models, CPU allowed: checks the script only")
    ap.add_argument("--skip-train", action="store_true", help="codec figures only")
    args = ap.parse_args()
    if args.smoke:
        SMOKE.extend(["model.backbone.latent_channels=16"])
        SMALL.update(lean_vae=["model.backbone.name=lean_vae", "model.backbone.width=8"],  # the lite variant
                     cv_vae=["model.backbone.width=32"])
        args.quick = True
    else:
        assert torch.cuda.is_available(), "this benchmark needs a GPU"
    torch.backends.cudnn.benchmark = True
    result = {"env": env(), "train": [], "codec": [], "errors": []}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        out.write_text(json.dumps(result, indent=2))

    steps = 3 if args.quick else 5
    size = 64 if args.smoke else 256
    for backbone in () if args.skip_train else ("cv_vae", "lean_vae"):
        for precision in ("32-true", "bf16-mixed"):
            try:
                result["train"].append(train_step_time(backbone, precision, 4, size, steps))
            except Exception as exc:  # record and go on: one failure must not lose the other figures
                result["errors"].append(f"train {backbone} {precision}: {type(exc).__name__}: {exc}")
            print(result["train"][-1] if result["train"] else result["errors"], flush=True)
            if DEV == "cuda":
                torch.cuda.empty_cache()
            save()
    sizes = [(256, 256, 33)] if args.quick else [(256, 256, 33), (1280, 720, 17)]
    if args.smoke:
        sizes = [(64, 64, 17)]
    for backbone in ("lean_vae", "cv_vae"):
        for w, h, n in sizes:
            for batch in (1, 4):
                try:
                    result["codec"].append(codec_fps(backbone, w, h, n, batch))
                    print(result["codec"][-1], flush=True)
                except Exception as exc:
                    result["errors"].append(f"codec {backbone} {w}x{h} b{batch}: {type(exc).__name__}: {exc}")
                    print(result["errors"][-1], flush=True)
                if DEV == "cuda":
                    torch.cuda.empty_cache()
                save()
    save()


if __name__ == "__main__":
    main()
