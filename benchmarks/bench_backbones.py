"""Every registered backbone preset: parameters, MACs per frame at 256x256 (T=17 and T=9) next to the
official figures, and encode/decode frames per second on this CPU. Writes JSON.

    python benchmarks/bench_backbones.py --out benchmarks/results/backbones_cpu.json

MACs are counted on the meta device (no compute). The fps run is one short pass per preset (after one
warm-up at a tiny size) on a T=`--fps-frames` clip at `--size` (T=1 for presets above `--heavy-gmacs`
per frame), so it is rough on a shared CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from vvc_lightning.complexity import count_parameters, macs_per_frame
from vvc_lightning.registry import BACKBONES

# Official releases: latent z, parameters and MACs as the papers / READMEs give them (None: not given).
OFFICIAL = {
    "cv_vae_sd21": {"release": "AILab-CVC/CV-VAE vae3d", "z": 4, "params": 182.45e6, "macs_17x256x256": None},
    "cv_vae_sd3": {
        "release": "AILab-CVC/CV-VAE vae3d_sd3",
        "z": 16,
        "params": 181.89e6,
        "macs_17x256x256": None,
    },
    "lean_vae_base": {
        "release": "Yumic/LeanVAE LeanVAE-dim4.ckpt",
        "z": 4,
        "params": 39.77e6,
        "macs_17x256x256": {"encode": 58.0e9, "decode": 144.6e9},
    },
}


def _macs(model: torch.nn.Module, size: int) -> dict[str, dict[str, float]]:
    return {f"T{T}": macs_per_frame(model, T=T, H=size, W=size) for T in (17, 9)}


@torch.no_grad()
def _fps(model: torch.nn.Module, frames: int, size: int) -> dict[str, float]:
    model.eval()
    model.decode(model.encode(torch.zeros(1, 3, 1, 16, 16)))  # warm-up
    x = torch.rand(1, 3, frames, size, size) * 2 - 1
    t0 = time.perf_counter()
    z = model.encode(x)
    t1 = time.perf_counter()
    model.decode(z)
    t2 = time.perf_counter()
    return {"encode_fps": frames / (t1 - t0), "decode_fps": frames / (t2 - t1)}


def run(size: int, fps_frames: int, only: list[str] | None, heavy_macs: float = 100e9) -> dict:
    """Measure every preset (aliases point at one of them) and return the JSON record."""
    torch.set_grad_enabled(False)
    aliases = BACKBONES.aliases()
    names = [n for n in BACKBONES.names() if n not in aliases and (not only or n in only)]
    record: dict = {"size": f"{size}x{size}", "fps_frames": fps_frames, "threads": torch.get_num_threads(),
                    "cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                    "torch": torch.__version__, "aliases": aliases, "variants": {}}
    for name in names:
        torch.manual_seed(0)
        model = BACKBONES.create(name)
        row: dict = {"latent_channels": model.latent_channels, "params": count_parameters(model),
                     "macs_per_frame": _macs(model, size)}
        if name in OFFICIAL:
            off = OFFICIAL[name]
            at_z = BACKBONES.create(name, latent_channels=off["z"])
            row["at_official_z"] = {"latent_channels": off["z"], "params": count_parameters(at_z),
                                    "macs_per_frame": _macs(at_z, size)}
            row["official"] = off
            del at_z
        frames = 1 if row["macs_per_frame"]["T17"]["total"] > heavy_macs else fps_frames
        row["fps_frames"] = frames
        row.update(_fps(model, frames, size))
        record["variants"][name] = row
        print(f"{name:14s} params {row['params'] / 1e6:7.2f}M  MACs/frame T17 "
              f"{row['macs_per_frame']['T17']['total'] / 1e9:7.2f}G  enc {row['encode_fps']:.3f} fps  "
              f"dec {row['decode_fps']:.3f} fps", flush=True)
        del model
    return record


def main() -> None:
    """Parse arguments, run, write the JSON atomically."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="benchmarks/results/backbones_cpu.json")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--fps-frames", type=int, default=5, help="frames of the fps clip (1 + 4k)")
    p.add_argument("--only", nargs="*", help="measure only these presets")
    p.add_argument("--heavy-gmacs", type=float, default=100.0,
                   help="presets above this many GMACs/frame are timed on a 1-frame clip (the CPU is shared)")
    args = p.parse_args()
    record = run(args.size, args.fps_frames, args.only, args.heavy_gmacs * 1e9)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1))
    tmp.replace(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
