"""`compress` of a whole clip in a pseudo-terminal: what its progress line shows, and when.

    python benchmarks/progress_tty.py [--frames 250] [--out benchmarks/results/progress_tty.json]

Runs `python -m vvc_lightning compress bikes.mp4 --model vvc-lean-vr` with stderr on a pty and records each
redraw of the progress line with the seconds since start: the first one, how often it moves, the last one.
"""

from __future__ import annotations

import argparse
import json
import os
import pty
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    from tests.conftest import bikes_path

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=250)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "progress_tty.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        master, slave = pty.openpty()
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "vvc_lightning", "compress", bikes_path(), "-o", f"{tmp}/b.vvc", "--model",
             "vvc-lean-vr", "--max-frames", str(args.frames)],
            stderr=slave, stdout=subprocess.PIPE, text=True, cwd=ROOT,
        )
        os.close(slave)
        redraws, buf = [], b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
            *done, buf = buf.split(b"\r")
            now = round(time.perf_counter() - start, 2)
            redraws += [(now, d.decode(errors="replace").strip()) for d in done if d.strip()]
        os.close(master)
        summary = proc.stdout.read() if proc.stdout else ""
        proc.wait()
    lines = [(t, text) for t, text in redraws if "frames/s" in text]
    seconds = round(time.perf_counter() - start, 1)
    report = {"frames": args.frames, "returncode": proc.returncode, "seconds": seconds,
              "redraws": len(lines), "first": lines[:1], "last": lines[-1:], "every_25th": lines[::25],
              "summary": summary.strip()}
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return proc.returncode


if __name__ == "__main__":
    raise SystemExit(main())
