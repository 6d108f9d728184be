"""The loggers and callbacks a config names: `trainer.logger` (csv, tensorboard, wandb, or Lightning's
`{class_path, init_args}` form, or a list of them) and `trainer.callbacks` (a list in that form).

Loggers write into `run_dir/logs/version_N` (W&B: `run_dir/wandb`, offline unless told otherwise); a run
that resumes a checkpoint of its own run_dir appends to that run's newest version.
"""

from __future__ import annotations

import csv
import importlib
import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment
from omegaconf import DictConfig, ListConfig, OmegaConf

from vvc_lightning.errors import ConfigError
from vvc_lightning.registry import check_kwargs

LOG_FOLDER = "logs"
# short name -> (class path, package the logger needs: the `logging` extra installs it)
LOGGERS: dict[str, tuple[str, str | None]] = {
    "csv": ("lightning.pytorch.loggers.CSVLogger", None),
    "tensorboard": ("lightning.pytorch.loggers.TensorBoardLogger", "tensorboard"),
    "wandb": ("lightning.pytorch.loggers.WandbLogger", "wandb"),
}
EXTRA = "logging"
SPEC_KEYS = {"class_path", "init_args"}


class _AppendingWriter(ExperimentWriter):
    """Lightning's CSV writer, but an existing metrics.csv is kept and appended to (a resumed run)."""

    def _check_log_dir_exists(self) -> None:
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as f:
                self.metrics_keys = next(csv.reader(f), [])


class AppendingCSVLogger(CSVLogger):
    """CSVLogger whose version folder may already hold the metrics of the run it continues."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment


def _plain(value: Any) -> Any:
    """A config node as plain Python values (resolved)."""
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value


def log_version(run_dir: str | Path, ckpt: str | None) -> int:
    """The log version of a run: the newest one in run_dir/logs when resuming a checkpoint that lies in
    run_dir (the run it continues), else the next free one."""
    root = Path(run_dir) / LOG_FOLDER
    versions = sorted(
        int(p.name[len("version_"):]) for p in root.glob("version_*") if p.name[len("version_"):].isdigit()
    ) if root.is_dir() else []
    own = ckpt is not None and Path(ckpt).is_file() and Path(ckpt).resolve().parent == Path(run_dir).resolve()
    if not versions:
        return 0
    return versions[-1] if own else versions[-1] + 1


def resolve_class(path: Any, base: type, where: str) -> type:
    """The class a `class_path` names: a dotted path, or a bare name from Lightning's loggers / callbacks."""
    if not isinstance(path, str) or not path.strip():
        raise ConfigError(f"{where}.class_path must be a class's dotted path (e.g. "
                          f"{_example(base)}), got {path!r}")
    short = "lightning.pytorch.loggers" if base is Logger else "lightning.pytorch.callbacks"
    module, _, name = path.strip().rpartition(".")
    try:
        cls = getattr(importlib.import_module(module or short), name, None)
    except ImportError as exc:
        raise ConfigError(f"{where}.class_path '{path}' cannot be imported ({exc}); give an importable "
                          f"dotted path such as {_example(base)}") from exc
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ConfigError(f"{where}.class_path '{path}' is not a Lightning {base.__name__} class; give one "
                          f"such as {_example(base)}")
    return cls


def _example(base: type) -> str:
    return LOGGERS["tensorboard"][0] if base is Logger else "lightning.pytorch.callbacks.LearningRateMonitor"


def _spec(item: Any, where: str) -> tuple[Any, dict[str, Any]]:
    """(class path, init args) of a `{class_path, init_args}` mapping or a bare class path."""
    if isinstance(item, str):
        return item, {}
    if not isinstance(item, Mapping) or "class_path" not in item or set(item) - SPEC_KEYS:
        raise ConfigError(f"{where} must be {{class_path: ..., init_args: {{...}}}} as in Lightning's CLI, "
                          f"got {item!r}")
    args = item.get("init_args") or {}
    if not isinstance(args, Mapping):
        raise ConfigError(f"{where}.init_args must be a mapping of the class's arguments, got {args!r}")
    return item["class_path"], dict(args)


def _build(cls: type, args: dict[str, Any], where: str) -> Any:
    """`cls(**args)`, unknown keys and refused values as one-line ConfigErrors."""
    check_kwargs(cls, args, cls.__name__, f"{where}.init_args.")
    try:
        return cls(**args)
    except (TypeError, ValueError) as exc:
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{where}: {cls.__name__} refuses its init_args: {why}") from exc


def build_callbacks(spec: Any) -> list[Callback]:
    """The callbacks of `trainer.callbacks` (null, one spec or a list of specs), in order."""
    spec = _plain(spec)
    items = [] if spec is None else spec if isinstance(spec, list) else [spec]
    out = []
    for i, item in enumerate(items):
        where = f"trainer.callbacks.{i}"
        path, args = _spec(item, where)
        out.append(_build(resolve_class(path, Callback, where), args, where))
    return out


def build_loggers(spec: Any, run_dir: str | Path, version: int | None = None) -> list[Logger] | bool:
    """The loggers of `trainer.logger`: null / true (CSV), false (none), a short name (csv, tensorboard,
    wandb), a `{class_path, init_args}` mapping, or a list of those; each defaults to run_dir."""
    spec = _plain(spec)
    if spec is False:
        return False
    items = ["csv"] if spec is None or spec is True else spec if isinstance(spec, list) else [spec]
    loggers = []
    for i, item in enumerate(items):
        where = "trainer.logger" if not isinstance(spec, list) else f"trainer.logger.{i}"
        if isinstance(item, str) and item.strip().lower() in LOGGERS:
            item = item.strip().lower()
        path, args = _spec(item, where)
        if isinstance(path, str) and path in LOGGERS:
            path, package = LOGGERS[path]
        else:
            leaf = str(path).rsplit(".", 1)[-1]
            package = next((p for c, p in LOGGERS.values() if c.rsplit(".", 1)[1] == leaf), None)
        if package and importlib.util.find_spec(package) is None:
            raise ConfigError(f"{where} {item if isinstance(item, str) else path} needs the '{package}' "
                              f"package: pip install 'vvc-lightning[{EXTRA}]' (or pip install {package})")
        cls = resolve_class(path, Logger, where)
        if cls is CSVLogger:
            cls = AppendingCSVLogger
        loggers.append(_build(cls, {**_defaults(cls, run_dir, version), **args}, where))
    return loggers


def _defaults(cls: type, run_dir: str | Path, version: int | None) -> dict[str, Any]:
    """The run-folder arguments a logger class takes: save_dir, and the versioned logs folder."""
    if issubclass(cls, (CSVLogger, TensorBoardLogger)):
        extra = {"default_hp_metric": False} if issubclass(cls, TensorBoardLogger) else {}
        return {"save_dir": str(run_dir), "name": LOG_FOLDER, "version": version, **extra}
    if cls.__name__ == "WandbLogger":
        return {"save_dir": str(run_dir), "offline": True}
    return {}
