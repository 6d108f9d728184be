"""Tiling by memory budget: tiled vs untiled PSNR (per-tile vs shared GroupNorm statistics), and the memory
model's estimate vs the measured peak RSS of one backbone pass. Writes JSON, prints markdown rows.

    python benchmarks/bench_tiling.py --out benchmarks/results/tiling_cpu.json        # ~15 minutes on 2 cores
    python benchmarks/bench_tiling.py --only agreement --quick                        # the first rows only

Agreement: random weights (seed 0) on crops of bikes.mp4, encode + decode through `tiled_round_trip`
(no quantization), and the shipped `zoo:vvc-lean-vr` through the whole `VideoCodec`. Memory: every case
in a fresh process; peak = VmHWM after `clear_refs` minus the RSS before the pass.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
AGREEMENT = [  # backbone, kwargs, frames, height, width, tile, overlap
    ("cv_vae_causal", dict(width=8, latent_channels=8, enc_blocks=1, dec_blocks=1), 1, 64, 256, 160, 64),
    ("cv_vae_causal", dict(width=8, latent_channels=8), 1, 96, 320, 192, 64),
    ("cv_vae_sd21", dict(width=32, latent_channels=8, enc_blocks=1, dec_blocks=1), 5, 64, 256, 160, 64),
    ("lean_vae_lite", dict(width=32, latent_channels=8), 5, 96, 320, 72, 32),
]
ZOO = [(96, 160, 72, 32), (272, 640, 256, 32)]
MEMORY = [(b, kw, side, s) for b, kw in [("zoo", {}), ("cv_vae_causal", dict(width=32, latent_channels=16)),
                                         ("cv_vae_sd21", dict(width=32, latent_channels=16))]
          for side in ("encode", "decode") for s in (128, 256, 512) if not (b != "zoo" and s == 512)]

PROBE = r"""
import ctypes, json, sys, torch
torch.set_num_threads(2)
name, kw, side, size = sys.argv[1], eval(sys.argv[2]), sys.argv[3], int(sys.argv[4])
from vvc_lightning.codec.pipeline.memory import MemoryModel
from vvc_lightning.registry import BACKBONES
if name == "zoo":
    from vvc_lightning.store.loader import load
    bb = load("zoo:vvc-lean-vr").backbone.eval()
else:
    torch.manual_seed(0)
    bb = BACKBONES.get(name)(**kw).eval()
est = MemoryModel(bb).peak(side, 9, size, size)
if side == "decode":
    inp = torch.randn(1, *bb.latent_shape(9, size, size))
else:
    inp = torch.rand(1, 3, 9, size, size) * 2 - 1
def status(key):
    return next(int(ln.split()[1]) * 1024 for ln in open("/proc/self/status") if ln.startswith(key))
ctypes.CDLL("libc.so.6").malloc_trim(0)
open("/proc/self/clear_refs", "w").write("5")
base = status("VmRSS")
with torch.no_grad():
    (bb.decode if side == "decode" else bb.encode)(inp)
print(json.dumps({"estimate_mib": est / 2**20, "measured_mib": (status("VmHWM") - base) / 2**20}))
"""


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between uint8 arrays."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def _row(label: str, src: np.ndarray, runs: dict[str, tuple[np.ndarray, float]]) -> dict:
    whole = runs["untiled"][0]
    row = {"case": label, **{f"psnr_{k}": psnr(v[0], src) for k, v in runs.items()},
           **{f"agree_{k}": psnr(v[0], whole) for k, v in runs.items() if k != "untiled"},
           **{f"seconds_{k}": v[1] for k, v in runs.items()}}
    cells = (f"{v:.3f}" if isinstance(v, float) else str(v) for v in list(row.values())[1:])
    print(f"| {label} | " + " | ".join(cells) + " |", flush=True)
    return row


def agreement(quick: bool) -> list[dict]:
    """Tiled vs untiled rows (untiled, per-tile statistics, shared statistics)."""
    sys.path.insert(0, str(ROOT))
    from tests.conftest import bikes_path
    from vvc_lightning.codec.pipeline.tile_norm import tiled_round_trip
    from vvc_lightning.codec.pipeline.video_codec import VideoCodec
    from vvc_lightning.registry import BACKBONES
    from vvc_lightning.video.video_io import Video, frames_to_tensor, read_video, tensor_to_frames

    frames = read_video(bikes_path(), max_frames=9).frames

    def crop(n: int, h: int, w: int) -> np.ndarray:
        y0, x0 = min(80, frames.shape[1] - h), min(100, frames.shape[2] - w)
        return np.ascontiguousarray(frames[:n, y0 : y0 + h, x0 : x0 + w])

    def timed(fn, *args):
        start = time.perf_counter()
        out = fn(*args)
        return out, time.perf_counter() - start

    def round_trip(bb, x, tile, ov, passes):
        return tensor_to_frames(tiled_round_trip(bb, x, tile, ov, passes)[0])

    def codec_trip(codec, video):
        return codec.decode(codec.encode(video)).frames

    rows = []
    for name, kw, n, h, w, tile, ov in AGREEMENT[:1] if quick else AGREEMENT:
        torch.manual_seed(0)
        bb = BACKBONES.get(name)(**kw).eval()
        src = crop(n, h, w)
        x = frames_to_tensor(src)[None]
        settings = [("untiled", 0, None), ("per_tile", tile, 0), ("shared", tile, None)]
        runs = {key: timed(round_trip, bb, x, t, ov, p) for key, t, p in settings}
        rows.append(_row(f"{name} random {kw} {n}x{h}x{w} tile {tile}/{ov}", src, runs))
    if quick:
        return rows
    from vvc_lightning.store.loader import load

    model = load("zoo:vvc-lean-vr").eval()
    for h, w, tile, ov in ZOO:
        video = Video(crop(9, h, w), 25)
        runs = {}
        for key, kw in [("untiled", dict(tile=0)),
                        ("per_tile", dict(tile=tile, tile_overlap=ov, norm_passes=0)),
                        ("shared", dict(tile=tile, tile_overlap=ov))]:
            codec = VideoCodec(model, **kw)
            runs[key] = timed(codec_trip, codec, video)
        label = f"lean_vae_lite zoo:vvc-lean-vr 9x{h}x{w} tile {tile}/{ov} (whole codec)"
        rows.append(_row(label, video.frames, runs))
    return rows


def memory(quick: bool) -> list[dict]:
    """Estimate vs measured peak RSS of one 9-frame item, each case in a fresh process."""
    rows = []
    for name, kw, side, size in MEMORY[:2] if quick else MEMORY:
        out = subprocess.run([sys.executable, "-c", PROBE, name, repr(kw), side, str(size)],
                             capture_output=True, text=True, cwd=ROOT)
        res = json.loads(out.stdout.strip().splitlines()[-1])
        row = {"backbone": name, "kwargs": kw, "side": side, "size": size, **res,
               "ratio": res["estimate_mib"] / res["measured_mib"]}
        print(f"| {name} {kw} | {side} | {size} x {size} | {res['estimate_mib']:.0f} | "
              f"{res['measured_mib']:.0f} | {row['ratio']:.2f} |", flush=True)
        rows.append(row)
    return rows


def main() -> None:
    """Run the chosen parts and write JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["agreement", "memory"], default=None)
    ap.add_argument("--quick", action="store_true", help="the first cases only")
    ap.add_argument("--out", default=None, help="JSON file to write")
    args = ap.parse_args()
    result = {"threads": torch.get_num_threads()}
    if args.only in (None, "agreement"):
        result["agreement"] = agreement(args.quick)
    if args.only in (None, "memory"):
        result["memory"] = memory(args.quick)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
