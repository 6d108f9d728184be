"""Cross-device exactness of the entropy path: encode on the GPU, decode on the GPU and on the CPU.

The symbols' scales and means come from integer networks, so the exact y_hat that the entropy decoder
rebuilds must be bit-identical on both devices (g_s and the backbone are float: their frames may differ
in the last bits). Prints one JSON line and writes the first GPU-made .vvc file to OUT for decoding elsewhere.

    python scripts/gpu_exactness.py CKPT CLIP OUT [--frames 17] [--qualities 0,7]
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch


def exact_latent(codec, data: bytes, quality: float | None) -> torch.Tensor:
    """The float64 y_hat the entropy decoder rebuilds from `data` (before the inverse gain and g_s)."""
    from vvc_lightning.codec.entropy.symbol_check import bind_to_gop
    from vvc_lightning.codec.pipeline import container as bitstream

    header, records = codec.read_header(data)
    _, t, h, w = header.latent_shape
    payloads = [bind_to_gop(bitstream.read_payload(data, r, "gpu stream"), r.index) for r in records]
    lc = codec.model.codec
    with torch.no_grad():
        return lc.decode_y(payloads, t, h, w, lc.rate(quality, exact=True)).cpu()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("ckpt")
    ap.add_argument("clip")
    ap.add_argument("out")
    ap.add_argument("--frames", type=int, default=17)
    ap.add_argument("--qualities", default="0,7")
    ap.add_argument("--device", default="cuda", help="the second device (cpu here only tests the script)")
    args = ap.parse_args()
    from vvc_lightning.codec.pipeline.video_codec import VideoCodec
    from vvc_lightning.store.loader import load
    from vvc_lightning.video.video_io import read_video

    cpu_model = load(args.ckpt).eval()
    gpu_model = copy.deepcopy(cpu_model).to(args.device).eval()
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    video = read_video(args.clip, max_frames=args.frames)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for q in [float(v) for v in args.qualities.split(",")] if cpu_model.codec.qualities else [None]:
        gpu, cpu = (
            VideoCodec(gpu_model, gop=gpu_model.gop, quality=q),
            VideoCodec(cpu_model, gop=cpu_model.gop, quality=q),
        )
        t0 = time.perf_counter()
        data = gpu.encode(video)
        sync()
        t1 = time.perf_counter()
        rec_g = gpu.decode(data).frames
        sync()
        t2 = time.perf_counter()
        rec_c = cpu.decode(data).frames
        t3 = time.perf_counter()
        y_g, y_c = exact_latent(gpu, data, q), exact_latent(cpu, data, q)
        name = f"gpu_q{q:g}.vvc" if q is not None else "gpu.vvc"
        if not rows:  # the device machine returns 8 files at most: keep the first stream only
            (out / name).write_bytes(data)
        n, hh, ww = video.frames.shape[:3]
        rows.append({
            "quality": q, "bytes": len(data), "bpp": 8 * len(data) / (n * hh * ww),
            "y_hat_bit_identical_gpu_cpu": bool(torch.equal(y_g, y_c)), "y_hat_elements": y_g.numel(),
            "frames_max_abs_diff_gpu_cpu": int(np.abs(rec_g.astype(int) - rec_c.astype(int)).max()),
            "gpu_encode_s": t1 - t0, "gpu_decode_s": t2 - t1, "cpu_decode_s": t3 - t2, "file": name,
        })
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else args.device
    summary = {"clip": args.clip, "frames": int(video.frames.shape[0]), "device": device,
               "torch": torch.__version__, "rows": rows}
    print("EXACTNESS " + json.dumps(summary))


if __name__ == "__main__":
    main()
