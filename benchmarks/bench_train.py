"""Backbone size and cost, and seconds per training step on this machine, at default and quickstart settings.

    python benchmarks/bench_train.py -o benchmarks/results/bench_train.json [--skip-default-steps]

Per backbone and setting: parameters (backbone, codec), multiply-adds per frame (FlopCounterMode, 256x256
and the setting's crop, T=9), and the median seconds of a full optimizer step (eq. 2, joint stage) on a
batch of the setting's size. Random weights; speed only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from vvc_lightning.complexity import count_parameters, macs_per_frame
from vvc_lightning.configuration.config import load_config
from vvc_lightning.training.model import VideoCompressionModel

SETTINGS = {
    "default": {"configs": ["{b}.yaml"], "overrides": ["data.name=folder"], "batch": 4, "crop": 256},
    "quickstart": {
        "configs": ["quickstart_scratch.yaml"],
        "batch": 2,
        "crop": 64,
        "overrides": [
            "model.backbone.name={b}",
            "model.backbone.latent_channels=32",
            "model.backbone.width={w}",
        ],
    },
}


QUICK_WIDTH = {
    "cv_vae": 16,
    "lean_vae": 64,
}  # quickstart_scratch.yaml uses lean_vae at 64; cv_vae at 16 is its alternative


def step_seconds(model: VideoCompressionModel, batch: int, crop: int, steps: int) -> float:
    """Median seconds of forward + backward + AdamW step."""
    model.train()
    model.stage = model.cfg.stages[-1]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    loss_fn = model.loss_fn()
    x = torch.rand(batch, 3, 9, crop, crop) * 2 - 1
    times = []
    for i in range(steps + 1):
        t = time.perf_counter()
        out = model(x)
        terms = loss_fn(x, out["x_hat"], out["likelihoods"]["y"], out["likelihoods"]["z"])
        opt.zero_grad(set_to_none=True)
        (terms.loss + model.codec.aux_loss()).backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - t)
    return float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-o", "--out", default="benchmarks/results/bench_train.json")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--skip-default-steps", action="store_true", help="no step timing at default settings")
    ap.add_argument(
        "--default-batch", type=int, default=4, help="batch of the default-setting step (paper: 4)"
    )
    ap.add_argument(
        "--default-crop", type=int, default=256, help="crop of the default-setting step (paper: 256)"
    )
    ap.add_argument("--only", default=None, help="one backbone only")
    ap.add_argument("--setting", default=None, choices=list(SETTINGS), help="one setting only")
    args = ap.parse_args()
    SETTINGS["default"]["batch"], SETTINGS["default"]["crop"] = args.default_batch, args.default_crop
    rows = []
    for name, setting in SETTINGS.items():
        if args.setting and name != args.setting:
            continue
        for b in ("cv_vae", "lean_vae") if args.only is None else (args.only,):
            cfg = load_config([c.format(b=b) for c in setting["configs"]],
                              [o.format(b=b, w=QUICK_WIDTH[b]) for o in setting["overrides"]]
                              + ["model.loss.perceptual=ms-ssim"])
            torch.manual_seed(0)
            model = VideoCompressionModel(cfg)
            row = {
                "backbone": b,
                "setting": name,
                "backbone_kwargs": {k: v for k, v in cfg.model.backbone.items() if k != "name"},
                "params_backbone": count_parameters(model.backbone),
                "params_codec": count_parameters(model.codec),
                "macs_per_frame_256": macs_per_frame(model.backbone, T=9, H=256, W=256)["total"],
                "batch": setting["batch"],
                "crop": setting["crop"],
            }
            if not (name == "default" and args.skip_default_steps):
                row["s_per_step"] = step_seconds(model, setting["batch"], setting["crop"], args.steps)
            rows.append(row)
            print(row, flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    env = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
           "torch_threads": torch.get_num_threads(), "torch": torch.__version__, "device": "cpu"}
    out.write_text(json.dumps({"env": env, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
