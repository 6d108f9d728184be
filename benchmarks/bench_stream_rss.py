"""Peak RSS of compress + decompress against the number of frames, per backbone, written as JSON.

Every (backbone, frames) case writes a synthetic clip (a random texture sliding sideways) as raw .yuv,
then compresses it to .vvc and decompresses that to .yuv, each in a fresh process whose peak RSS
(ru_maxrss from wait4) and seconds are recorded. Streaming means the peak does not grow with the number
of frames. The models are randomly initialised from configs/<backbone>.yaml (memory does not depend on
the weights); --width W swaps the official preset the config names for the registry backbone of the same
name (`lean_vae`, `cv_vae`: the same design, width configurable) at width W, so that 1920x1080 fits in
minutes on a 2-core CPU. The JSON records exactly what ran: sizes, frame counts, widths, tile option, the
allocator settings and the growth per case.

    python benchmarks/bench_stream_rss.py --size 1920x1080 --frames 9,27 --width 8 --out r1080.json
    python benchmarks/bench_stream_rss.py --size 384x256 --frames 27,90 --width 16 --out rgrowth.json
    python benchmarks/bench_stream_rss.py --size 1920x1080 --frames 600          # the issue's case (hours)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# glibc: return large freed blocks at once and keep one arena, so the peak measures live memory, not caching
ALLOCATOR = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_ARENA_MAX": "1"}

CHILD = r"""
import sys, torch
from vvc_lightning.configuration.config import load_config
from vvc_lightning.training.model import VideoCompressionModel
from vvc_lightning.codec.pipeline.files import compress_file, decompress_file
from vvc_lightning.codec.pipeline.video_codec import VideoCodec
backbone, width, tile, batch, mode, src, dst = sys.argv[1:8]
overrides = ["model.loss.perceptual=ms-ssim", "model.init=null"]
if width != "default":  # the registry backbone `backbone` at `width` (the configs name the official presets)
    overrides += [f"model.backbone.name={backbone}", f"model.backbone.width={width}"]
torch.manual_seed(0)
model = VideoCompressionModel(load_config([f"{backbone}.yaml"], overrides)).eval()
model.codec.update_tables(force=True)
codec = VideoCodec(model, batch=int(batch), tile=None if tile == "default" else int(tile))
stats = (compress_file if mode == "compress" else decompress_file)(codec, src, dst)
print(stats["seconds"])
"""


def run_child(args: list[str], allocator: bool) -> dict:
    """Run the child codec process; its peak RSS (MiB), wall and coding seconds."""
    env = dict(os.environ, **(ALLOCATOR if allocator else {}))
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, "-c", CHILD, *args], env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"child failed ({' '.join(args)}):\n{err.read().decode()[-3000:]}")
        coding = float(out.read().decode().split()[-1])
    return {"peak_rss_mib": usage.ru_maxrss / 1024, "wall_seconds": time.perf_counter() - start,
            "coding_seconds": coding}


def write_clip(path: Path, n: int, h: int, w: int) -> None:
    """n frames of a random texture sliding sideways, written frame by frame."""
    from vvc_lightning.video.video_io import write_video

    base = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    write_video(path, (np.roll(base, 4 * i, axis=1) for i in range(n)), 25.0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbones", default="lean_vae,cv_vae")
    p.add_argument("--size", default="1920x1080", help="WxH")
    p.add_argument("--frames", default="9,27", help="comma-separated frame counts")
    p.add_argument("--width", default="default", help="registry backbone <name> at this width (default: the "
                   "config's official preset at its own width)")
    p.add_argument("--tile", default="default", help="--tile of the codec (default: the codec's)")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--no-allocator-settings", action="store_true", help="leave glibc malloc at its defaults")
    p.add_argument("--out", default="benchmarks/results/bench_stream_rss.json")
    a = p.parse_args()
    w, h = (int(v) for v in a.size.lower().split("x"))
    counts = [int(v) for v in a.frames.split(",")]
    import torch

    result = {
        "what": "peak RSS of compress and of decompress (fresh process each) against frames",
        "size": f"{w}x{h}",
        "frames": counts,
        "backbone_width": a.width,
        "tile": a.tile,
        "batch": a.batch,
        "weights": "random (model.init=null), seed 0",
        "allocator": {} if a.no_allocator_settings else ALLOCATOR,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "cases": [],
    }
    with tempfile.TemporaryDirectory(prefix="bench_stream_rss_") as tmp:
        for backbone in a.backbones.split(","):
            for n in counts:
                src, vvc, rec = (
                    Path(tmp) / f"c{n}_{w}x{h}_25.yuv",
                    Path(tmp) / f"c{n}.vvc",
                    Path(tmp) / f"d{n}.yuv",
                )
                write_clip(src, n, h, w)
                common = [backbone, a.width, a.tile, str(a.batch)]
                enc = run_child([*common, "compress", str(src), str(vvc)], not a.no_allocator_settings)
                dec = run_child([*common, "decompress", str(vvc), str(rec)], not a.no_allocator_settings)
                case = {"backbone": backbone, "frames": n, "compress": enc, "decompress": dec,
                        "bytes": vvc.stat().st_size, "raw_frame_mib": w * h * 3 / 2**20}
                result["cases"].append(case)
                print(json.dumps(case), flush=True)
                for f in (src, vvc, rec):
                    f.unlink(missing_ok=True)
    for backbone in a.backbones.split(","):
        cases = [c for c in result["cases"] if c["backbone"] == backbone]
        if len(cases) > 1:
            result.setdefault("growth_mib", {})[backbone] = {
                side: cases[-1][side]["peak_rss_mib"] - cases[0][side]["peak_rss_mib"]
                for side in ("compress", "decompress")} | {"from_frames": cases[0]["frames"],
                                                             "to_frames": cases[-1]["frames"]}
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
