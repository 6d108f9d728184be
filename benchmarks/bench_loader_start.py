"""Start-up cost of loader workers by start method, and what `fork` does after the parent decoded video.

Each case runs in a fresh process: the `openvid` datamodule on small synthetic shards, `--workers`
workers; seconds from the first `iter()` to the first batch (cold: the fork server starts and preloads
here), then a second loader in the same process (warm), and the parent converting frames first
(`decoded_first`): `fork` then stalls, which the watchdog reports. Writes JSON.

    python benchmarks/bench_loader_start.py -o benchmarks/results/bench_loader_start.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CASES = [("fork", False), ("forkserver", False), ("spawn", False), ("forkserver", True), ("fork", True)]


def child(method: str, decoded_first: bool, workers: int, timeout: float) -> dict:
    """One case in this process: first-batch seconds of a cold and of a warm loader."""
    from vvc_lightning.datamodules import workers as W
    from vvc_lightning.datamodules.synthetic import write_index_video
    from vvc_lightning.registry import DATAMODULES
    from vvc_lightning.video.video_sources import AVSource

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.datamodules.conftest import write_shard

    def context():
        if method == "forkserver":
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(W.PRELOAD)
            return ctx
        return multiprocessing.get_context(method)

    W.worker_context = context
    d = Path(tempfile.mkdtemp(prefix="bench-loader-"))
    vids = [write_index_video(d / f"v{i}.mp4", 30 + i, 48, 64) for i in range(4)]
    samples = [(f"k{i}", p.read_bytes(), {"frames": 30 + i}) for i, p in enumerate(vids)]
    for s in range(workers):
        write_shard(d / f"shard-{s:06d}.tar", samples[s::workers])
    if decoded_first:
        list(itertools.islice(AVSource(vids[0]).iter_frames(), 3))
    out: dict = {"method": method, "decoded_first": decoded_first}
    for key in ("cold_s", "warm_s"):
        dm = DATAMODULES.create("openvid", train_shards=str(d), crop_size=16, batch_size=2, epoch_length=8,
                                num_workers=workers, loader_timeout=timeout)
        dm.setup("fit")
        loader = dm.train_dataloader()
        t = time.perf_counter()
        try:
            next(iter(loader))
            out[key] = round(time.perf_counter() - t, 2)
        except W.LoaderStalled as exc:
            out[key] = None
            out["stalled"] = str(exc)
            break
        finally:
            it = loader._iterator
            if it is not None:
                it._shutdown_workers()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--out", default="benchmarks/results/bench_loader_start.json")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=30.0, help="watchdog seconds of fork after decoding")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1] == "1", args.workers, args.timeout)))
        return
    import torch

    load = os.getloadavg()
    results = []
    for method, decoded in CASES:
        timeout = args.timeout if method == "fork" and decoded else 600.0  # only that case may stall
        cmd = [sys.executable, __file__, "--child", method, str(int(decoded)), "--workers", str(args.workers),
               "--timeout", str(timeout)]
        t = time.perf_counter()
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        line = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else "{}"
        row = json.loads(line) if line.startswith("{") else {"error": run.stderr[-500:]}
        row["process_s"] = round(time.perf_counter() - t, 2)
        results.append(row)
        print(row, flush=True)
    report = {
        "what": "seconds from iter() to the first batch of the openvid datamodule (48x64 index videos in "
                "shards), cold (first loader of the process) and warm (second loader)",
        "workers": args.workers, "cases": results,
        "machine": {"cpus": os.cpu_count(), "load_before": [round(x, 2) for x in load],
                    "load_after": [round(x, 2) for x in os.getloadavg()], "python": platform.python_version(),
                    "torch": torch.__version__, "platform": platform.platform()},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
