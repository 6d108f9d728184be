"""`fit` from weights alone: start from a shipped model (`model.init`), or resume from a weights-only file.

`model.init: zoo:NAME` (or any trained model `vvc_lightning.store.loader` reads: an exported NAME.safetensors
with NAME.json beside it, a `fit` checkpoint) takes the architecture (model.backbone, model.codec,
model.gop, and model.loss.lmbda_range unless the config sets one) and the weights of that model, then trains
from step 0 with the config's stages and data. A
model.backbone.* or model.codec.* key the config sets (away from the packaged default) to another value than
the model's is an error naming both; a model.gop set that way applies (the weights fit any GoP length).

`fit --ckpt NAME.safetensors` / `--ckpt zoo:NAME` resumes from an exported model: its weights, a fresh
optimizer, and the step, epoch and stage it records. A Lightning checkpoint of a fixed-rate model given to a
variable-rate config resumes the same way (its gain vectors start from their initial values).
"""

from __future__ import annotations

import logging
from typing import Any

import lightning.pytorch as pl
from omegaconf import DictConfig, OmegaConf, open_dict

from vvc_lightning.errors import VVCError
from vvc_lightning.model import architecture
from vvc_lightning.store.loader import Source, is_weights_only, read_checkpoint, resolve
from vvc_lightning.store.zoo import load_state

log = logging.getLogger("vvc_lightning")
BUILT = ("gop", "backbone", "codec")  # the architecture's sections that model.init takes over (not the loss)


class ResumeAt(pl.Callback):
    """Sets the trainer's step and epoch counters before training starts (fresh optimizer, recorded step)."""

    def __init__(self, step: int, epoch: int) -> None:
        self.step, self.epoch = int(step), int(epoch)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        loop = trainer.fit_loop.epoch_loop
        loop.automatic_optimization.optim_progress.optimizer.step.total.completed = self.step
        loop.manual_optimization.optim_step_progress.total.completed = self.step
        loop._batches_that_stepped = self.step
        for tracker in (trainer.fit_loop.epoch_progress.current, trainer.fit_loop.epoch_progress.total):
            tracker.ready = tracker.started = tracker.processed = tracker.completed = self.epoch


def _init_source(spec: str) -> Source:
    """The trained model that model.init names (any spec the loader takes but a released VAE)."""
    source = resolve(spec)
    if source.state is None:
        raise VVCError(f"model.init '{spec}' is a released VAE, not a trained model; set "
                       f"model.backbone.pretrained={spec} (and model.init=null) to start from it")
    return source


def _adopt_architecture(
    cfg: DictConfig, stored_model: dict[str, Any] | DictConfig, origin: str
) -> DictConfig:
    """The config with the architecture (`vvc_lightning.model.architecture`) of a trained model's stored
    `model` section: its gop, backbone, codec, and its lmbda_range unless the config sets one."""
    from vvc_lightning.configuration.config import apply_overrides, packaged_defaults
    from vvc_lightning.configuration.ranges import check_test_qualities

    stored = architecture(stored_model)
    _refuse_conflicts(cfg, stored, origin)
    keep_gop = _user_value(cfg, "gop", stored)
    defaults = packaged_defaults().model
    cfg = cfg.copy()
    with open_dict(cfg):
        for key in BUILT:  # a section's keys the record leaves out (a fixed-rate codec's) at their defaults
            value = stored[key]
            cfg.model[key] = OmegaConf.merge(defaults[key], value) if isinstance(value, dict) else value
        if (
            cfg.model.loss.get("lmbda_range") is None
            and stored.get("loss", {}).get("lmbda_range") is not None
        ):
            cfg.model.loss.lmbda_range = list(stored["loss"]["lmbda_range"])
        cfg.model.backbone.weights = None
        if keep_gop is not None:  # the weights do not depend on the GoP length: the config's applies
            cfg.model.gop = keep_gop
            log.info(
                "model.init: model.gop=%d from the config (%s was trained at %s)",
                keep_gop,
                origin,
                stored["gop"],
            )
    OmegaConf.set_struct(cfg.model.backbone, False)
    cfg = apply_overrides(cfg, [])
    check_test_qualities(cfg)  # against the qualities of the model taken over
    return cfg


def _user_value(cfg: DictConfig, key: str, stored: dict[str, Any]) -> Any:
    """The config's model.KEY when set away from the packaged default and from the record's; else None."""
    from vvc_lightning.configuration.config import packaged_defaults

    mine, default = cfg.model.get(key), packaged_defaults().model.get(key)
    return None if mine == default or mine == stored.get(key) else mine


def _refuse_conflicts(cfg: DictConfig, stored: dict[str, Any], origin: str) -> None:
    """model.backbone.* / model.codec.* set by the config or command line that model.init would replace."""
    from vvc_lightning.configuration.config import packaged_defaults
    from vvc_lightning.registry import BACKBONES

    canon = BACKBONES.canonical

    defaults = packaged_defaults().model
    for section in ("backbone", "codec"):
        mine = OmegaConf.to_container(cfg.model[section], resolve=True)
        default = OmegaConf.to_container(defaults[section], resolve=True)
        theirs = stored.get(section) if isinstance(stored.get(section), dict) else {}
        assert isinstance(mine, dict) and isinstance(default, dict)
        keys = sorted(
            mine, key=lambda k: k != "name"
        )  # a different backbone name first: it explains the rest
        for k in keys:
            v = mine[k]
            if (
                (k in default and default[k] == v)
                or (k in theirs and theirs[k] == v)
                or (k not in theirs and v is None)
            ):
                continue
            if section == "backbone" and k == "weights" and v is None:
                continue
            if section == "backbone" and k == "name" and canon(str(v)) == canon(str(theirs.get(k))):
                continue  # a deprecated alias and its current name are one backbone
            has = f"model.{section}.{k}={theirs[k]}" if k in theirs else f"no model.{section}.{k}"
            raise VVCError(
                f"model.{section}.{k}={v} conflicts with model.init={origin}, whose architecture replaces it "
                f"({origin} has {has}); set model.init=null to train your own model.{section}, or drop "
                f"model.{section}.{k} to fine-tune {origin}"
            )


def prepare_fit(cfg: DictConfig, ckpt: str | None) -> tuple[DictConfig, Any, str | None, list[pl.Callback]]:
    """(config, model, checkpoint for Lightning to resume or None, extra callbacks) for `fit`."""
    from vvc_lightning.training.model import VideoCompressionModel

    init = cfg.model.get("init")
    init_state = None
    if init:
        source = _init_source(str(init))
        cfg = _adopt_architecture(cfg, source.config.model, str(init))
        init_state = source.state
    model = VideoCompressionModel(cfg)
    if init_state is not None:
        missing = load_state(model, init_state, str(init), strict=False)
        log.info("model.init: starting from %s%s", init, " (new gain vectors)" if missing else "")
    if not ckpt:
        return cfg, model, None, []
    if is_weights_only(ckpt):
        source = resolve(ckpt)
        load_state(model, source.state, str(ckpt), strict=False)
        log.info("resuming from weights-only %s at step %d (fresh optimizer)", ckpt, source.step)
        return cfg, model, None, [ResumeAt(source.step, source.epoch)]
    raw = read_checkpoint(ckpt)  # clear error for a missing or foreign file before Lightning tries
    if set(raw["state_dict"]) == set(model.state_dict()):
        return cfg, model, ckpt, []
    load_state(model, raw["state_dict"], str(ckpt), strict=False)  # fails unless only the gains are new
    step, epoch = int(raw.get("global_step", 0)), int(raw.get("epoch", 0))
    log.info("resuming the weights of %s at step %d with new gain vectors (fresh optimizer)", ckpt, step)
    return cfg, model, None, [ResumeAt(step, epoch)]
