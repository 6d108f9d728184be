"""The datamodules drive a real Lightning fit/test loop (a trivial model), with and without validation."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch

from vvc_lightning.registry import DATAMODULES


class Probe(pl.LightningModule):
    """A one-parameter model that records the batch shapes it sees."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.shapes: dict[str, list[tuple]] = {"train": [], "val": [], "test": []}

    def training_step(self, batch, _):
        self.shapes["train"].append(tuple(batch.shape))
        return (batch.mean() - self.w) ** 2

    def validation_step(self, batch, _):
        self.shapes["val"].append(tuple(batch.shape))

    def test_step(self, batch, _):  # a batch is the list of one lazy test sequence
        self.shapes["test"].append(tuple(batch[0].frames().shape))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def trainer(**kw) -> pl.Trainer:
    return pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, **kw)


@pytest.mark.parametrize("with_val", [True, False])
def test_folder_fit_and_test(index_mp4s, with_val):
    files = [str(p) for p in index_mp4s[:3]]
    dm = DATAMODULES.create("folder", train_dir=files, val_dir=files if with_val else None, test_dir=files[0],
                            crop_size=16, batch_size=2, epoch_length=4, test_max_frames=10)
    model = Probe()
    trainer(max_steps=3).fit(model, datamodule=dm)
    assert model.shapes["train"] == [(2, 3, 9, 16, 16)] * 3
    # one epoch (2 steps) ends within 3 steps: one validation pass over 3 clips = batches of 2 and 1
    assert model.shapes["val"] == ([(2, 3, 9, 16, 16), (1, 3, 9, 16, 16)] if with_val else [])
    trainer().test(model, datamodule=dm, verbose=False)
    assert model.shapes["test"] == [(10, 48, 64, 3)]


def test_openvid_fit_with_resampled_epochs_and_ordered_validation(shard_dir):
    dm = DATAMODULES.create(
        "openvid",
        train_shards=str(shard_dir),
        val_shards=str(shard_dir / "shard-000000.tar"),
        crop_size=16,
        batch_size=2,
        epoch_length=4,
        num_workers=1,
    )
    model = Probe()
    trainer(max_epochs=2).fit(model, datamodule=dm)
    assert model.shapes["train"] == [(2, 3, 9, 16, 16)] * 4
    assert len(model.shapes["val"]) == 4  # 3 samples in shard 0 -> batches of 2 and 1, per epoch
