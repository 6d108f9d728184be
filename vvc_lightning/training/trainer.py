"""Building the Trainer, DataModule and model from a config, and running fit / validate / test."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.fabric.utilities.exceptions import MisconfigurationException
from omegaconf import DictConfig

from vvc_lightning.configuration.config import section_kwargs
from vvc_lightning.errors import ConfigError, first_line
from vvc_lightning.registry import BACKBONES, DATAMODULES
from vvc_lightning.training.checkpoint import AtomicCheckpointIO
from vvc_lightning.training.preflight import check_machine, check_run_dir

log = logging.getLogger("vvc_lightning")


class _NoAdverts(logging.Filter):
    """Drops Lightning's product tips ('💡 Tip: ... try installing litlogger ...')."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")


def quiet_lightning() -> None:
    """Lightning's log lines once each: through the root logger's handler when the application set one up
    (Lightning's own console handler would print them a second time), and without its product tips."""
    lightning = logging.getLogger("lightning")
    if logging.getLogger().handlers:
        for handler in list(lightning.handlers):
            if type(handler) is logging.StreamHandler:
                lightning.removeHandler(handler)
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _NoAdverts) for f in rank_zero.filters):
        rank_zero.addFilter(_NoAdverts())
    for handler in logging.getLogger().handlers:  # log lines never land at the end of a progress bar
        if type(handler) is logging.StreamHandler and not isinstance(handler.stream, _BarSafeStream):
            handler.setStream(_BarSafeStream(handler.stream))
    # Lightning's own use of a torch API it does not control: nothing a user can act on
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")


class _BarSafeStream:
    """A text stream written through `tqdm.write`, which lifts any progress bar off its line first."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        from tqdm import tqdm

        tqdm.write(text.removesuffix("\n"), file=self.stream)

    def flush(self) -> None:
        self.stream.flush()


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
    cfg: DictConfig, callbacks: list[pl.Callback] | None = None, log_version: int | None = None,
    **overrides: Any,
) -> pl.Trainer:
    """A Trainer with the stage schedule, periodic + last checkpoints (atomic), the config's callbacks
    (`trainer.callbacks`) after ours, then `callbacks`, and the config's loggers (CSV by default) in
    run_dir/logs/version_N (`log_version`: N; None: the next free one)."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    from vvc_lightning.training.stages import StageSchedule
    from vvc_lightning.training.step_bar import with_step_bar
    from vvc_lightning.training.trainer_parts import build_callbacks, build_loggers

    quiet_lightning()
    run_dir = Path(str(cfg.run_dir))
    kwargs = dict(cfg.trainer)
    configured = build_callbacks(kwargs.pop("callbacks", None))
    logger_spec = kwargs.pop("logger", None)
    kwargs.update(overrides)
    if "logger" not in overrides:
        kwargs["logger"] = build_loggers(logger_spec, run_dir, log_version)
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
    cbs = with_step_bar([schedule, ckpt_cb, *configured, *(callbacks or [])], kwargs)
    kwargs.setdefault("enable_model_summary", False)
    try:
        return pl.Trainer(
            default_root_dir=str(run_dir), callbacks=cbs, plugins=[AtomicCheckpointIO()], **kwargs
        )
    except (MisconfigurationException, ValueError, TypeError, ImportError) as exc:
        # Lightning checks its arguments in its constructor with any of these (fsdp on a CPU: ValueError;
        # xla without torch_xla: ModuleNotFoundError; single_xla without a device: TypeError)
        raise ConfigError(
            f"lightning's Trainer refuses the trainer.* settings: {first_line(exc)}"
        ) from exc


def fit(cfg: DictConfig, ckpt: str | None = None, callbacks: list[pl.Callback] | None = None) -> pl.Trainer:
    """Train from `cfg` (resuming from `ckpt` when given: weights, optimizer, step and stage)."""
    from vvc_lightning.training.trainer_parts import build_callbacks, build_loggers, log_version
    from vvc_lightning.training.warm_start import prepare_fit

    check_machine(cfg.trainer)  # before anything slow: fail in one line when the machine lacks the devices
    check_run_dir(cfg.run_dir)
    version = log_version(cfg.run_dir, ckpt)
    build_loggers(cfg.trainer.get("logger"), cfg.run_dir, version)  # a bad logger or callback: one line now
    build_callbacks(cfg.trainer.get("callbacks"))
    pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
    # model.init (a shipped model's weights) and weights-only resumes; a Lightning checkpoint passes through.
    # The config was checked (with its warnings) when loaded: an alias a stored record names warns nothing.
    with BACKBONES.stored_names():
        cfg, model, ckpt, resume = prepare_fit(cfg, ckpt)
    datamodule = build_datamodule(cfg)
    trainer = build_trainer(cfg, callbacks, version)
    trainer.callbacks[:0] = resume  # before the stage schedule, which reads the step
    with warnings.catch_warnings():
        if not any(Path(str(cfg.run_dir)).glob("*.ckpt")):  # a new run: run_dir holds logs, not checkpoints
            warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt)
    return trainer


def stored_config(ckpt: str, overrides: list[str] | None = None) -> tuple[DictConfig, Any]:
    """(the stored config of a trained model (any spec the loader takes) plus `overrides`, its source)."""
    from vvc_lightning.configuration.config import apply_overrides
    from vvc_lightning.store.loader import resolve

    source = resolve(ckpt)
    return (apply_overrides(source.config.copy(), overrides) if overrides else source.config), source


def evaluate_split(split: str, ckpt: str, overrides: list[str] | None = None) -> list[dict[str, float]]:
    """Run `validate` or `test` on a trained model (any spec the loader takes) with its stored config (plus
    `overrides`), in the stage it was taken at, so validate uses that stage's loss. `test` writes its
    results per sequence and quality into the run folder (`test_step.write_results`)."""
    from vvc_lightning.training.test_step import write_results

    cfg, source = stored_config(ckpt, overrides)
    if split == "validate":
        return run_split(split, source, cfg)[0]
    results, model, trainer = run_split(split, source, cfg)
    if trainer.is_global_zero:
        folder = Path(ckpt).parent if Path(ckpt).is_file() else Path(str(cfg.run_dir))
        write_results(folder, model.test_rows, results, cfg, ckpt)
    return results


def run_split(split: str, source: Any, cfg: DictConfig) -> tuple[list[dict[str, float]], Any, pl.Trainer]:
    """(results, module, trainer) of `validate` or `test` of the model a loader `source` holds, by `cfg`."""
    from vvc_lightning.configuration.config import stage_index
    from vvc_lightning.store.loader import build
    from vvc_lightning.training.model import VideoCompressionModel

    model = VideoCompressionModel.from_model(build(source), cfg)
    model.stage = cfg.stages[stage_index(cfg.stages, source.step, source.epoch)]
    model.eval()
    datamodule = build_datamodule(cfg)
    # test shows its own progress per sequence (frames of each pass), not Lightning's bar of sequences
    bar = {"enable_progress_bar": False} if split == "test" else {}
    trainer = build_trainer(cfg, logger=False, devices=1, strategy="auto", **bar)
    run = trainer.validate if split == "validate" else trainer.test
    return run(model, datamodule=datamodule, verbose=False), model, trainer
