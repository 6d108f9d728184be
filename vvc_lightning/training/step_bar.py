"""The training progress bar: optimizer steps out of `trainer.max_steps` ("step 12/40"), not the batches of
an epoch (the training sets stream, so an epoch has no length and Lightning's bar had no total)."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ProgressBar, TQDMProgressBar


class StepProgressBar(TQDMProgressBar):
    """Lightning's TQDM bar counting `trainer.global_step` against `trainer.max_steps` (a resumed run starts
    at its step); without max_steps, Lightning's own batches-of-the-epoch count."""

    @staticmethod
    def _steps(trainer: pl.Trainer) -> int | None:
        return trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else None

    def on_train_epoch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        super().on_train_epoch_start(trainer, *args)
        total = self._steps(trainer)
        if total is not None:
            bar = self.train_progress_bar
            bar.total, bar.initial, bar.n = total, 0, trainer.global_step
            bar.set_description("step")
            bar.refresh()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        if self._steps(trainer) is None:
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
            return
        bar, n = self.train_progress_bar, trainer.global_step
        if bar is not None and self._should_update(n, bar.total):
            bar.n = n
            bar.refresh()
            bar.set_postfix(self.get_metrics(trainer, pl_module))


def with_step_bar(callbacks: list[pl.Callback], trainer_kwargs: dict[str, Any]) -> list[pl.Callback]:
    """`callbacks` plus a StepProgressBar where the bar is enabled and no progress bar is given."""
    if trainer_kwargs.get("enable_progress_bar", True) is False:
        return callbacks
    if any(isinstance(c, ProgressBar) for c in callbacks):
        return callbacks
    return [*callbacks, StepProgressBar()]
