"""A checkpoint written by `pytorch_lightning` (commit 67e04d4) loads without that package.

tests/data/pre_lightning_lean_vae.ckpt.gz: `python -m vvc_lightning fit --config quickstart_scratch.yaml` at
67e04d4 with model.backbone.width=8 model.backbone.latent_channels=8 model.codec.transform_blocks=1
model.loss.perceptual=ms-ssim data.crop_size=32 trainer.max_steps=2 (stages at steps 0/1/2), kept to the keys
loading needs (weights, config, step; no optimizer or loop state) and gzipped.
"""

from __future__ import annotations

import gzip
import shutil
import sys
from pathlib import Path

import pytest
import torch

from vvc_lightning.store.loader import load, read_checkpoint
from vvc_lightning.training.trainer import evaluate_split

OLD = Path(__file__).resolve().parents[1] / "data" / "pre_lightning_lean_vae.ckpt.gz"
ASSETS = Path(__file__).resolve().parents[2] / "vvc_lightning" / "assets"


@pytest.fixture(scope="module")
def old_ckpt(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("old") / "pre_lightning.ckpt"
    with gzip.open(OLD, "rb") as src, open(path, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return path


def test_the_fixture_is_a_checkpoint_pytorch_lightning_wrote(old_ckpt):
    ckpt = read_checkpoint(old_ckpt)
    assert "pytorch-lightning_version" in ckpt and ckpt["global_step"] == 2
    assert ckpt["hyper_parameters"]["config"]["model"]["backbone"] == {
        "name": "lean_vae",
        "latent_channels": 8,
        "width": 8,
    }


def test_the_loader_reads_a_pytorch_lightning_checkpoint(old_ckpt):
    model = load(old_ckpt)
    assert "pytorch_lightning" not in sys.modules  # nothing in the file needs pytorch_lightning
    assert model.backbone.latent_channels == 8 and model.qualities == 0
    stored = read_checkpoint(old_ckpt)["state_dict"]
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, stored[name]), name
    x = torch.rand(1, 3, 9, 32, 32)
    with torch.no_grad():
        y = model.backbone.decode(model.backbone.encode(x))
    assert y.shape == x.shape and torch.isfinite(y).all()


def test_validate_runs_on_it(old_ckpt, tmp_path):
    clip = str(ASSETS / "quickstart_train.mp4")
    metrics = evaluate_split("validate", str(old_ckpt), [f"run_dir={tmp_path}", f"data.train_dir={clip}",
                                                       f"data.val_dir={clip}", "trainer.limit_val_batches=1"])
    assert (
        len(metrics) == 1 and metrics[0] and all(torch.isfinite(torch.tensor(v)) for v in metrics[0].values())
    )
