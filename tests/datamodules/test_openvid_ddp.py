"""`openvid` under a real torch.distributed process group (2 ranks x 2 workers, gloo): each clip once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.utils.data import DataLoader

from vvc_lightning.datamodules.openvid import OpenVidDataModule
from vvc_lightning.datamodules.workers import loader_options


def _rank_main(rank: int, world: int, init_file: str, shards: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        dm = OpenVidDataModule(
            train_shards=shards, resampled=False, crop_size=16, num_workers=2, shuffle_buffer=3
        )
        ds = dm.train_dataloader().dataset  # rank and world size read from torch.distributed
        ds.with_keys = True
        keys = [k for _, k in DataLoader(ds, batch_size=None, **loader_options(2, 120))]
        Path(out, f"rank{rank}.json").write_text(
            json.dumps({"rank": ds.rank, "world": ds.world_size, "keys": keys})
        )
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_real_process_group_splits_shards_exactly_once(shard_dir, tmp_path):
    shards = str(shard_dir / "shard-{000000..000005}.tar")
    mp.spawn(_rank_main, args=(2, str(tmp_path / "init"), shards, str(tmp_path)), nprocs=2, join=True)
    runs = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [(r["rank"], r["world"]) for r in runs] == [(0, 2), (1, 2)]
    keys = runs[0]["keys"] + runs[1]["keys"]
    assert len(keys) == 16 and len(set(keys)) == 16
    assert torch.distributed.is_available()
