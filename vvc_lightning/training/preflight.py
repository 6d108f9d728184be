"""Checks before training starts: the machine has the devices the trainer asks for, run_dir can be written."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from vvc_lightning.errors import ConfigError


def cpu_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _requested(devices: Any) -> tuple[int | None, list[int]]:
    """(how many devices, explicit indices) of a trainer.devices value; None = all / auto."""
    if isinstance(devices, (list, tuple)):
        return len(devices), [int(d) for d in devices]
    text = str(devices).strip().lower()
    if text in ("auto", "-1", ""):
        return None, []
    if "," in text:
        idx = [int(d) for d in text.split(",") if d.strip()]
        return len(idx), idx
    try:
        return int(text), []
    except ValueError as exc:
        raise ConfigError(
            f"trainer.devices must be a number, a list of indices or auto, got {devices!r}"
        ) from exc


def check_machine(trainer: Mapping[str, Any]) -> None:
    """ConfigError (one line) when trainer.accelerator / .devices ask for more than this machine has."""
    accelerator = str(trainer.get("accelerator", "auto")).lower()
    devices = trainer.get("devices", "auto")
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if accelerator in ("gpu", "cuda") and gpus == 0:
        raise ConfigError(f"trainer.accelerator={accelerator} but this machine has no usable CUDA GPU; "
                          "use trainer.accelerator=cpu (or auto)")
    if accelerator == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(
            "trainer.accelerator=mps but this machine has no Apple GPU; use trainer.accelerator=cpu (or auto)"
        )
    try:
        count, indices = _requested(devices)
    except ValueError as exc:
        raise ConfigError(
            f"trainer.devices must be a number, a list of indices or auto, got {devices!r}"
        ) from exc
    if count is not None and count < 1:
        raise ConfigError(f"trainer.devices must be at least 1 (or -1 / auto: all), got {devices!r}")
    on_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and gpus > 0)
    if indices and accelerator in ("cpu", "auto") and not on_gpu:
        raise ConfigError(f"trainer.devices={devices} lists device indices, but on the CPU it is a number of "
                          "processes: trainer.devices=1 (or 2 for DDP)")
    if accelerator not in ("gpu", "cuda", "cpu", "auto"):
        return  # mps, tpu, ...: Lightning checks those
    # On the CPU each device is a process: up to one per core (two are always allowed, to try DDP anywhere).
    have, limit, unit = (gpus, gpus, "GPU") if on_gpu else (cpu_cores(), max(cpu_cores(), 2), "CPU core")
    if count is not None and count > limit:
        raise ConfigError(f"trainer.devices={devices} asks for {count} {unit}s but this machine has {have}; "
                          f"use trainer.devices={limit} or fewer")
    if on_gpu and any(i < 0 or i >= have for i in indices):
        raise ConfigError(f"trainer.devices={devices} names a GPU this machine lacks (it has {have}: "
                          f"indices 0 to {have - 1})")


def precheck_machine(cfg: Any) -> None:
    """check_machine on a merged config before it is validated (values that do not resolve are left to the
    validation, which names them)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        trainer = OmegaConf.to_container(cfg.trainer, resolve=True)
    except OmegaConfBaseException:
        return
    if isinstance(trainer, dict):
        check_machine(trainer)


def check_run_dir(run_dir: str | os.PathLike) -> None:
    """Check that run_dir can be made and written (one line when not), removing the folders the check made."""
    path = Path(run_dir)
    created = []
    probe = path
    while not probe.exists() and not probe.is_symlink() and probe != probe.parent:
        created.append(probe)
        probe = probe.parent
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".vvc-write-check-"):
            pass
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise ConfigError(f"run_dir '{run_dir}' cannot be written ({why}); give a writable folder: "
                          "run_dir=runs/NAME") from exc
    finally:
        for folder in created:  # innermost first: only the (still empty) folders this check made
            try:
                folder.rmdir()
            except OSError:
                break
