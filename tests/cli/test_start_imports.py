"""The command line starts light: `--help` and `models` import no torch, and `compress` / `decompress` import
neither torchmetrics, Lightning, timm, torchvision nor CompressAI's training parts (each checked in a fresh
process, through `vvc_lightning.cli.main.main`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

FROZEN = Path(__file__).resolve().parents[1] / "data" / "frozen"
# modules a codec command must not import (what they cost: seconds before the first frame)
HEAVY = ("torchmetrics", "lightning", "timm", "torchvision", "torch_geometric", "matplotlib", "scipy.stats",
         "compressai.datasets", "compressai.zoo", "compressai.models", "compressai.losses",
         "vvc_lightning.metrics", "vvc_lightning.datamodules", "vvc_lightning.training", "torch._dynamo",
         "sympy")

RUN = """
import contextlib, io, json, sys
from vvc_lightning.cli.main import main
heavy = json.loads(sys.argv[1])
after = []
for argv in json.loads(sys.argv[2]):
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
    found = sorted(m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in heavy))
    after.append({"code": code, "found": found, "torch": "torch" in sys.modules})
print(json.dumps(after))
"""


def imported(*commands: list[str]) -> list[dict]:
    """Run `commands` one after the other through `main` in one fresh process; after each: its exit code,
    the HEAVY modules imported so far, and whether torch is."""
    proc = subprocess.run([sys.executable, "-c", RUN, json.dumps(HEAVY), json.dumps(commands)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_help_and_models_import_no_torch_and_the_codec_commands_no_heavy_library(tmp_path):
    import numpy as np

    from vvc_lightning.video.video_io import write_video

    clip = tmp_path / "clip.y4m"
    write_video(clip, np.load(FROZEN / "bikes11.npz")["frames"][:5], 25)
    vvc, decoded = tmp_path / "clip.vvc", tmp_path / "decoded.y4m"
    after = imported(["--help"], ["models"], ["compress", "--help"], ["decompress", "--help"],
                     ["compress", str(clip), "-o", str(vvc), "--model", "vvc-lean-vr", "--quality", "0"],
                     ["decompress", str(vvc), "-o", str(decoded)])
    assert [a["code"] for a in after] == [0] * 6
    assert not any(a["torch"] for a in after[:4]), "--help or models imported torch"
    assert vvc.stat().st_size > 0 and decoded.stat().st_size > 0
    assert after[-1]["found"] == []
