"""DDP through Lightning: two CPU processes (gloo) see different clips and end with identical weights."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

SCRIPT = """
import hashlib, sys
import lightning.pytorch as pl
import torch
from vvc_lightning.configuration.config import load_config
from vvc_lightning.training.trainer import fit

out = sys.argv[1]


class Record(pl.Callback):
    def __init__(self):
        self.hashes = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.hashes.append(hashlib.sha1(module.frames(batch).numpy().tobytes()).hexdigest())

    def on_train_end(self, trainer, module):
        torch.save({"hashes": self.hashes, "world": trainer.world_size,
                    "state": {k: v.clone() for k, v in module.state_dict().items()}},
                   f"{out}/rank{trainer.global_rank}.pt")


cfg = load_config(["quickstart_scratch.yaml"], [
    "model.backbone.width=8", "model.backbone.latent_channels=16", "model.codec.transform_blocks=1",
    "model.loss.perceptual=ms-ssim", f"run_dir={out}/run", "trainer.max_steps=4",
    "stages.1.start_step=1", "stages.2.start_step=3",
    "trainer.strategy=ddp", "trainer.devices=2", "trainer.accelerator=cpu",
    "data.crop_size=32", "data.batch_size=1", "data.epoch_length=8",
    "trainer.limit_val_batches=0", "trainer.enable_progress_bar=false",
])
fit(cfg, callbacks=[Record()])
"""


@pytest.mark.slow
def test_two_cpu_ranks_see_different_clips_and_end_with_identical_weights(tmp_path):
    script = tmp_path / "ddp_run.py"
    script.write_text(textwrap.dedent(SCRIPT))
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r0["world"] == 2 and r1["world"] == 2
    assert len(r0["hashes"]) == len(r1["hashes"]) == 4
    assert not set(r0["hashes"]) & set(r1["hashes"]), "both ranks trained on the same clips"
    assert r0["state"].keys() == r1["state"].keys()
    for k in r0["state"]:
        assert torch.equal(r0["state"][k], r1["state"][k]), k
