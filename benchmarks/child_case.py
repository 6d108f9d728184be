"""A benchmark case in a fresh process: the script run with `args`, an older checkout first on PYTHONPATH."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path


def run_case(script: str, args: list[str], pythonpath: str | None, timeout: float) -> dict:
    """Run `python script *args` from the repository root; its last stdout line is the JSON result.

    pythonpath: a checkout put first on PYTHONPATH (the 'before' version), or None. The result gains the
    wall seconds and the load average (1, 5, 15 min) at start and end; a failure gives {"error": ...}.
    """
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath + os.pathsep + env.get("PYTHONPATH", "")
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, script, *args],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            cwd=Path(__file__).resolve().parent.parent,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {
            "error": f"timed out after {timeout:.0f} s",
            "load_average": {"start": load0, "end": os.getloadavg()},
        }
    if proc.returncode != 0:
        return {
            "error": proc.stderr.strip().splitlines()[-1]
            if proc.stderr.strip()
            else f"exit {proc.returncode}"
        }
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_seconds"] = time.perf_counter() - t0
    result["load_average"] = {"start": load0, "end": os.getloadavg()}  # (1, 5, 15 min), as `uptime` shows
    return result
