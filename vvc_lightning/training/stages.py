"""Stage-freeze schedule as a Lightning callback: which parts train, from when, at what learning rate.

Every parameter stays in one fixed AdamW parameter group for the whole run (so optimizer state and
resumed checkpoints line up); a stage only sets `requires_grad`, each group's learning rate (0 for frozen
groups; the stage's lr shaped by `stage_lr_factor`: linear warm-up from the stage start, then cosine
decay to its end, from `optim.warmup_steps` / `optim.decay` / `optim.min_lr_ratio`) and eval mode for modules
whose parameters are all frozen (norm layers included). AdamW skips
parameters without gradients, so frozen weights stay unchanged to the bit. The stage is recomputed from
`global_step` / `current_epoch` before every batch, so a resumed run continues in the right stage.
"""

from __future__ import annotations

import logging
import math

import lightning.pytorch as pl
from omegaconf import DictConfig, ListConfig

from vvc_lightning.configuration.config import stage_index
from vvc_lightning.errors import ConfigError

log = logging.getLogger("vvc_lightning")
DECAYS = ("constant", "cosine")

AUX_GROUP = "aux"  # the optimizer group of the entropy models' quantiles (the aux loss's parameters)


def _matches(name: str, prefixes: list[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def stage_bounds(
    stages: ListConfig | list[DictConfig], idx: int, max_steps: int | None
) -> tuple[int | None, int | None]:
    """(first step, step after the last) of stage `idx` for step-based stages; None where unknown."""
    start = stages[idx].get("start_step")
    end = stages[idx + 1].get("start_step") if idx + 1 < len(stages) else None
    if end is None and idx + 1 == len(stages) and max_steps is not None and max_steps > 0:
        end = max_steps
    return start, end


def stage_lr_factor(
    step: int, start: int | None, end: int | None, warmup: int, decay: str, min_ratio: float
) -> float:
    """Learning-rate multiplier at `step`: linear warm-up over `warmup` steps from the stage start, then
    'cosine' decay to `min_ratio` at the stage end ('constant': none). Stateless, so resume needs nothing."""
    if start is None:
        return 1.0
    k = max(0, step - start)
    factor = 1.0
    if warmup > 0 and k < warmup:
        factor = (k + 1) / warmup
    if decay == "cosine" and end is not None and end - start > warmup:
        t = min(1.0, max(0.0, (k - warmup) / (end - start - warmup)))
        factor *= min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))
    return factor


class StageSchedule(pl.Callback):
    """Applies the `stages:` list of the config to the model and optimizer before each training batch."""

    def __init__(
        self,
        stages: ListConfig | list[DictConfig],
        default_lr: float,
        aux_lr: float,
        warmup_steps: int = 0,
        decay: str = "constant",
        min_lr_ratio: float = 0.1,
    ) -> None:
        self.stages = list(stages)
        self.default_lr = float(default_lr)
        self.aux_lr = float(aux_lr)
        if decay not in DECAYS:
            raise ConfigError(f"optim.decay must be one of {', '.join(DECAYS)}, got '{decay}'")
        if int(warmup_steps) < 0 or not 0.0 <= float(min_lr_ratio) <= 1.0:
            raise ConfigError("optim.warmup_steps must be >= 0 and optim.min_lr_ratio within [0, 1]")
        self.warmup_steps, self.decay, self.min_lr_ratio = int(warmup_steps), str(decay), float(min_lr_ratio)
        self.current: int | None = None

    def stage_index(self, global_step: int, epoch: int) -> int:
        """Index of the stage in force at this step / epoch."""
        return stage_index(self.stages, global_step, epoch)

    def apply(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        """Set requires_grad, group learning rates and train/eval modes for the current stage."""
        idx = self.stage_index(trainer.global_step, trainer.current_epoch)
        stage = self.stages[idx]
        prefixes = [str(p) for p in stage.train]
        known = {n for n, _ in module.named_parameters()}
        for p in prefixes:
            if not any(_matches(n, [p]) for n in known):
                raise ConfigError(
                    f"stage '{stage.name}' trains '{p}', which names no parameters; use module paths such as "
                    "backbone, codec, backbone.decoder"
                )
        for name, param in module.named_parameters():
            param.requires_grad_(_matches(name, prefixes))
        for _, sub in module.named_modules():
            params = list(sub.parameters())
            if params:
                sub.training = any(p.requires_grad for p in params)
        if any(_matches("codec", [p]) or p.startswith("codec") for p in prefixes):
            module.codec._tables_fresh = False
        start, end = stage_bounds(self.stages, idx, trainer.max_steps)
        factor = stage_lr_factor(
            trainer.global_step, start, end, self.warmup_steps, self.decay, self.min_lr_ratio
        )
        lr = float(stage.get("lr") or self.default_lr) * factor
        for opt in trainer.optimizers:
            for group in opt.param_groups:
                trainable = any(p.requires_grad for p in group["params"])
                group["lr"] = (self.aux_lr if group.get("name") == AUX_GROUP else lr) if trainable else 0.0
        module.stage = stage
        if idx != self.current:
            if self.current is not None or trainer.global_step > 0:
                log.info(
                    "stage '%s' from step %d (epoch %d)",
                    stage.name,
                    trainer.global_step,
                    trainer.current_epoch,
                )
            self.current = idx

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.apply(trainer, pl_module)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.apply(trainer, pl_module)
        pl_module.log("train/stage", float(self.current or 0), on_step=True, on_epoch=False)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.training:
            self.apply(trainer, pl_module)
