"""Peak RSS of `evaluate` on a 1080p 4:2:0 sequence against its length: x265 and a neural model, as JSON.

A synthetic raw 4:2:0 sequence (smooth texture moving, `Synth_WxH_25.yuv`, written frame by frame) is
evaluated for each frame count (--max-frames) in a fresh process: x265 at one QP and the model at one
quality, PSNR and MS-SSIM (RGB and planes). References are read from the file on demand and decoded
frames scored a chunk at a time, so the peak must not grow with the number of frames. Each case records
the evaluating process's peak RSS (its own ru_maxrss, and wait4's, which also covers the ffmpeg
processes it ran; a forked child starts with its parent's RSS, so the two agree unless an encoder
outgrows the evaluator), wall seconds and the rows.

    python benchmarks/bench_eval_memory.py --frames 30,120 --model vvc-lean-vr \\
        --out benchmarks/results/bench_eval_memory.json
    python benchmarks/bench_eval_memory.py --model '' --out benchmarks/results/bench_eval_memory_x265.json
    python benchmarks/bench_eval_memory.py --size 416x240 --out benchmarks/results/bench_eval_memory_416.json
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

ALLOCATOR = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_ARENA_MAX": "1"}  # as bench_stream_rss: live memory
LIMIT_MIB = 6 * 1024
GROWTH = 0.10

CHILD = r"""
import json, resource, sys
from vvc_lightning.evaluation.harness import EvalOptions, evaluate
data, out, n, model, quality, qp, preset, metrics = sys.argv[1:9]
opts = EvalOptions(data=data, out=out, ckpts=[f"zoo:{model}"] if model else [], qualities=[float(quality)],
                   baselines=["x265"], points={"x265": [int(qp)]}, presets={"x265": preset},
                   metrics=metrics.split(","), max_frames=int(n), progress=False)
paths = evaluate(opts)
rows = json.loads(paths["json"].read_text())["rows"]
keep = ("codec", "point", "frames", "bpp", "encode_seconds", "decode_seconds")
print(json.dumps({"rows": [{**{k: r.get(k) for k in keep}, **r["metrics"]} for r in rows],
                  "self_peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def write_sequence(path: Path, n: int, w: int, h: int) -> None:
    """n frames of smooth texture moving, 8-bit 4:2:0, written one frame at a time."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a, b = rng.uniform(20, 60, 2)
    with open(path, "wb") as f:
        for t in range(n):
            y = 128 + 60 * np.sin((xx + 3 * t) / a) * np.cos((yy - 2 * t) / b) + 20 * np.sin((xx + yy) / 7)
            u = 128 + 30 * np.sin((xx[::2, ::2] - t) / b)
            v = 128 + 30 * np.cos((yy[::2, ::2] + t) / a)
            for p in (y, u, v):
                f.write(np.clip(np.round(p), 0, 255).astype(np.uint8).tobytes())


def run_case(args: list[str]) -> dict:
    """One evaluation in a fresh process: its output and its peak RSS as wait4 reports it."""
    env = dict(os.environ, **ALLOCATOR)
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, "-c", CHILD, *args], env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        out.seek(0)
        err.seek(0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"evaluate failed ({' '.join(args)}):\n{err.read().decode()[-3000:]}")
        result = json.loads(out.read().decode().strip().splitlines()[-1])
    return {**result, "wait4_peak_mib": usage.ru_maxrss / 1024, "wall_seconds": time.perf_counter() - start}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="1920x1080", help="WxH")
    p.add_argument("--frames", default="30,120", help="comma-separated frame counts (the first is the base)")
    p.add_argument("--model", default="vvc-lean-vr", help="shipped model (zoo name); '' for x265 alone")
    p.add_argument("--quality", type=float, default=4.0)
    p.add_argument("--qp", type=int, default=32, help="x265 QP")
    p.add_argument("--preset", default="ultrafast", help="x265 preset")
    p.add_argument("--metrics", default="psnr,psnr_y,ms_ssim", help="(LPIPS is scored a chunk at a time too, "
                   "but at 1080p on a CPU it takes about a minute a frame)")
    p.add_argument("--out", default="benchmarks/results/bench_eval_memory.json")
    a = p.parse_args()
    w, h = (int(v) for v in a.size.lower().split("x"))
    counts = [int(v) for v in a.frames.split(",")]
    import torch

    result = {
        "what": "peak RSS of evaluate (fresh process each) on a 4:2:0 .yuv against the frames evaluated",
        "size": f"{w}x{h}", "frames": counts, "model": a.model, "quality": a.quality,
        "x265": {"qp": a.qp, "preset": a.preset}, "metrics": a.metrics, "allocator": ALLOCATOR,
        "command": " ".join([Path(sys.executable).name, *sys.argv]), "machine": platform.machine(),
        "cpus": os.cpu_count(), "torch": torch.__version__, "load_average_before": os.getloadavg(),
        "cases": [],
    }
    with tempfile.TemporaryDirectory(prefix="bench_eval_memory_") as tmp:
        src = Path(tmp) / "data" / f"Synth_{w}x{h}_25.yuv"
        src.parent.mkdir()
        write_sequence(src, max(counts), w, h)
        for n in counts:
            case = {"frames": n, **run_case([str(src.parent), str(Path(tmp) / f"out{n}"), str(n), a.model,
                                             str(a.quality), str(a.qp), a.preset, a.metrics])}
            result["cases"].append(case)
            print(json.dumps(case), flush=True)
    base, last = result["cases"][0], result["cases"][-1]
    result["load_average_after"] = os.getloadavg()
    result["growth"] = {"from_frames": base["frames"], "to_frames": last["frames"],
                        "self_peak_ratio": last["self_peak_mib"] / base["self_peak_mib"],
                        "wait4_peak_ratio": last["wait4_peak_mib"] / base["wait4_peak_mib"]}
    result["passes"] = {"within_10_percent": abs(result["growth"]["wait4_peak_ratio"] - 1) <= GROWTH,
                        "under_6_gib": max(c["wait4_peak_mib"] for c in result["cases"]) < LIMIT_MIB}
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps({"growth": result["growth"], "passes": result["passes"]}))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
