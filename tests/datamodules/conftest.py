"""Tiny videos and shards made on the fly: index videos (each frame codes its own number)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from vvc_lightning.datamodules.synthetic import write_index_video

H, W = 48, 64  # frame size of the index videos


def add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    """Append one file to an open tar."""
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_shard(path: Path, samples: list[tuple[str, bytes, dict]]) -> Path:
    """A webdataset shard of (key, mp4 bytes, json metadata) samples."""
    with tarfile.open(path, "w") as tar:
        for key, data, meta in samples:
            add_member(tar, f"{key}.json", json.dumps(meta).encode())
            add_member(tar, f"{key}.mp4", data)
    return path


@pytest.fixture(scope="session")
def index_mp4s(tmp_path_factory) -> list[Path]:
    """Eight H.264 index videos of 30..37 frames (48x64, keyframe every 16)."""
    d = tmp_path_factory.mktemp("index_videos")
    return [write_index_video(d / f"vid{i:02d}.mp4", 30 + i, H, W) for i in range(8)]


@pytest.fixture(scope="session")
def shard_dir(tmp_path_factory, index_mp4s) -> Path:
    """Six shards holding 16 samples (each index video twice, under distinct keys)."""
    d = tmp_path_factory.mktemp("shards")
    samples = []
    for rep in range(2):
        for i, p in enumerate(index_mp4s):
            samples.append((f"r{rep}_vid{i:02d}", p.read_bytes(), {"frames": 30 + i}))
    for s in range(6):
        write_shard(d / f"shard-{s:06d}.tar", samples[s::6])
    return d
