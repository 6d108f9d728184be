"""Learning-rate warm-up and cosine decay within each stage (stateless: the same after a resume)."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest

from tests.conftest import THREE_STAGES_FAST
from vvc_lightning.configuration.config import apply_overrides
from vvc_lightning.errors import ConfigError
from vvc_lightning.training.stages import StageSchedule, stage_bounds, stage_lr_factor
from vvc_lightning.training.trainer import fit


class LrRecorder(pl.Callback):
    """The learning rate of every parameter group before each step (after the stage schedule set it)."""

    def __init__(self) -> None:
        self.lrs: list[dict[str, float]] = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.lrs.append({g["name"]: g["lr"] for g in trainer.optimizers[0].param_groups})


def test_factor_warms_up_then_decays_to_the_floor():
    f = [stage_lr_factor(s, 10, 30, warmup=4, decay="cosine", min_ratio=0.1) for s in range(10, 31)]
    assert f[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert all(a >= b for a, b in zip(f[3:-1], f[4:], strict=True))  # non-increasing after the warm-up
    assert f[-1] == pytest.approx(0.1)
    assert stage_lr_factor(50, 10, 30, 4, "cosine", 0.1) == pytest.approx(0.1)  # past the end: the floor
    assert stage_lr_factor(20, 10, 30, 0, "constant", 0.1) == 1.0
    assert stage_lr_factor(20, None, None, 4, "cosine", 0.1) == 1.0  # epoch-based stages: unshaped


def test_bounds_use_next_start_and_max_steps():
    stages = [{"start_step": 0}, {"start_step": 5}, {"start_step": 9}]
    assert stage_bounds(stages, 0, 20) == (0, 5)
    assert stage_bounds(stages, 2, 20) == (9, 20)
    assert stage_bounds(stages, 2, -1) == (9, None)


def test_bad_decay_is_a_config_error():
    with pytest.raises(ConfigError, match="optim.decay"):
        StageSchedule([{"start_step": 0}], 1e-3, 1e-3, decay="linear")


def test_fit_applies_warmup_per_stage(tiny_config, tmp_path):
    cfg = apply_overrides(
        tiny_config.copy(),
        [
            f"run_dir={tmp_path}",
            *THREE_STAGES_FAST,
            "trainer.max_steps=8",
            "optim.warmup_steps=2",
            "optim.decay=cosine",
            "optim.min_lr_ratio=0.5",
        ],
    )
    rec = LrRecorder()
    fit(cfg, callbacks=[rec])
    lrs = [s["backbone"] for s in rec.lrs]
    assert lrs[0] == pytest.approx(0.5e-3) and lrs[1] == pytest.approx(1e-3)  # vae stage: warm-up
    codec = [s["codec"] for s in rec.lrs]
    assert codec[2] == pytest.approx(1e-3) and codec[3] == pytest.approx(2e-3)  # codec stage warms up again
    assert codec[5] == pytest.approx(3e-3) and codec[7] == pytest.approx(
        0.75 * 3e-3
    )  # joint: cosine to max_steps
