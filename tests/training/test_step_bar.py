"""The training bar counts optimizer steps out of trainer.max_steps, from the step a resumed run is at."""

from __future__ import annotations

import lightning.pytorch as pl

from tests.conftest import THREE_STAGES_FAST, TINY_OVERRIDES
from vvc_lightning.training.step_bar import StepProgressBar, with_step_bar


class BarProbe(pl.Callback):
    """Records the step bar's (n, total) at each training batch's end and at the end of training."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, int]] = []

    def _record(self, trainer: pl.Trainer) -> None:
        bar = next(c for c in trainer.callbacks if isinstance(c, StepProgressBar))
        self.seen.append((bar.train_progress_bar.n, bar.train_progress_bar.total))

    def on_train_batch_end(self, trainer: pl.Trainer, *args: object) -> None:
        self._record(trainer)

    def on_train_end(self, trainer: pl.Trainer, *args: object) -> None:
        self._record(trainer)


def test_the_training_bar_shows_step_out_of_max_steps(tmp_path):
    from vvc_lightning.config import load_config
    from vvc_lightning.training.trainer import fit

    overrides = [*TINY_OVERRIDES, *THREE_STAGES_FAST, f"run_dir={tmp_path}", "trainer.max_steps=3",
                 "trainer.enable_progress_bar=true", "checkpoint.every_n_train_steps=3"]
    probe = BarProbe()
    fit(load_config(["quickstart_scratch.yaml"], overrides), callbacks=[probe])
    assert probe.seen[-1] == (3, 3) and [t for _, t in probe.seen] == [3] * len(probe.seen)
    assert [n for n, _ in probe.seen] == sorted(n for n, _ in probe.seen)


def test_the_step_bar_is_added_only_where_no_bar_is_given_and_bars_are_on():
    mine = StepProgressBar()
    assert isinstance(with_step_bar([], {})[-1], StepProgressBar)
    assert with_step_bar([mine], {}) == [mine]
    assert with_step_bar([], {"enable_progress_bar": False}) == []
