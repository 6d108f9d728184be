"""Building the Trainer, DataModule and model from a config, and running fit / validate / test."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.fabric.utilities.exceptions import MisconfigurationException
from omegaconf import DictConfig

from vvc_lightning.config import section_kwargs
from vvc_lightning.errors import ConfigError
from vvc_lightning.registry import DATAMODULES
from vvc_lightning.training.checkpoint import AtomicCheckpointIO
from vvc_lightning.training.preflight import check_machine, check_run_dir

log = logging.getLogger("vvc_lightning")


def build_datamodule(cfg: DictConfig) -> pl.LightningDataModule:
    """The datamodule named by `data.name`, with the other `data.*` keys as its arguments."""
    return DATAMODULES.create(str(cfg.data.name), **section_kwargs(cfg.data))


def _strategy(value: Any) -> Any:
    if value in ("ddp", "ddp_find_unused_parameters_true"):
        from lightning.pytorch.strategies import DDPStrategy

        # Stages freeze parts of the model, so some parameters get no gradient in some steps.
        return DDPStrategy(find_unused_parameters=True)
    return value


def build_trainer(
    cfg: DictConfig, callbacks: list[pl.Callback] | None = None, **overrides: Any
) -> pl.Trainer:
    """A Trainer with the stage schedule, periodic + last checkpoints (atomic) and CSV logs in run_dir."""
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    from vvc_lightning.training.stages import StageSchedule

    run_dir = Path(str(cfg.run_dir))
    kwargs = dict(cfg.trainer)
    kwargs.update(overrides)
    check_machine(kwargs)
    kwargs["strategy"] = _strategy(kwargs.get("strategy", "auto"))
    ckpt_cb = ModelCheckpoint(
        dirpath=run_dir,
        filename="step-{step:07d}",
        every_n_train_steps=int(cfg.checkpoint.every_n_train_steps),
        save_top_k=int(cfg.checkpoint.keep),
        monitor="step",
        mode="max",
        save_last=True,
        auto_insert_metric_name=False,
    )
    o = cfg.optim
    schedule = StageSchedule(cfg.stages, o.lr, o.aux_lr, o.warmup_steps, o.decay, o.min_lr_ratio)
    cbs = [schedule, ckpt_cb, *(callbacks or [])]
    kwargs.setdefault("logger", CSVLogger(save_dir=str(run_dir), name="logs"))
    kwargs.setdefault("enable_model_summary", False)
    try:
        return pl.Trainer(
            default_root_dir=str(run_dir), callbacks=cbs, plugins=[AtomicCheckpointIO()], **kwargs
        )
    except MisconfigurationException as exc:
        raise ConfigError(
            f"lightning's Trainer refuses the trainer.* settings: {str(exc).splitlines()[0]}"
        ) from exc


def fit(cfg: DictConfig, ckpt: str | None = None, callbacks: list[pl.Callback] | None = None) -> pl.Trainer:
    """Train from `cfg` (resuming from `ckpt` when given: weights, optimizer, step and stage)."""
    from vvc_lightning.training.warm_start import prepare_fit

    check_machine(cfg.trainer)  # before anything slow: fail in one line when the machine lacks the devices
    check_run_dir(cfg.run_dir)
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    # model.init (a shipped model's weights) and weights-only resumes; a Lightning checkpoint passes through
    cfg, model, ckpt, resume = prepare_fit(cfg, ckpt)
    datamodule = build_datamodule(cfg)
    trainer = build_trainer(cfg, callbacks)
    trainer.callbacks[:0] = resume  # before the stage schedule, which reads the step
    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt)
    return trainer


def evaluate_split(split: str, ckpt: str, overrides: list[str] | None = None) -> list[dict[str, float]]:
    """Run `validate` or `test` on a trained model (any spec the loader takes) with its stored config (plus
    `overrides`), in the stage it was taken at, so validate uses that stage's loss."""
    from vvc_lightning.config import apply_overrides, stage_index
    from vvc_lightning.loader import build, resolve
    from vvc_lightning.training.model import VideoCompressionModel

    source = resolve(ckpt)
    cfg = apply_overrides(source.config.copy(), overrides) if overrides else source.config
    model = VideoCompressionModel.from_model(build(source), cfg)
    model.stage = cfg.stages[stage_index(cfg.stages, source.step, source.epoch)]
    model.eval()
    datamodule = build_datamodule(cfg)
    trainer = build_trainer(cfg, logger=False, devices=1, strategy="auto")
    run = trainer.validate if split == "validate" else trainer.test
    return run(model, datamodule=datamodule, verbose=False)
