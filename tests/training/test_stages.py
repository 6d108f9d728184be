"""Stage-freeze schedule: frozen parts get no gradient and no update, eval-mode norms, resume mid-stage."""

from __future__ import annotations

import lightning.pytorch as pl
import torch

from tests.conftest import THREE_STAGES_FAST
from vvc_lightning.configuration.config import apply_overrides
from vvc_lightning.training.trainer import fit

# cv_vae has GroupNorm layers, to check that frozen norms stay in eval mode
FAST = ["model.backbone.name=cv_vae", *THREE_STAGES_FAST]


class Recorder(pl.Callback):
    """Records per step: stage, which parameters got gradients, which changed, module modes, group lrs."""

    def __init__(self) -> None:
        self.steps: list[dict] = []
        self._before: dict[str, torch.Tensor] = {}

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self._before = {n: p.detach().clone() for n, p in module.named_parameters()}
        norms = [m for n, m in module.named_modules() if isinstance(m, torch.nn.GroupNorm)]
        self.steps.append(
            {
                "step": trainer.global_step,
                "stage": module.stage.name,
                "lrs": {g["name"]: g["lr"] for g in trainer.optimizers[0].param_groups},
                "backbone_norms_training": [m.training for m in norms if m in set(module.backbone.modules())],
                "codec_training": module.codec.g_a.training,
            }
        )

    def on_after_backward(self, trainer, module):
        self.steps[-1]["grads"] = {n for n, p in module.named_parameters() if p.grad is not None}

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.steps[-1]["changed"] = {
            n for n, p in module.named_parameters() if not torch.equal(p.detach(), self._before[n])
        }


def _run(tiny_config, tmp_path, extra: list[str], ckpt: str | None = None) -> Recorder:
    cfg = apply_overrides(tiny_config.copy(), [f"run_dir={tmp_path}", *FAST, *extra])
    rec = Recorder()
    fit(cfg, ckpt, callbacks=[rec])
    return rec


def test_frozen_parameters_get_no_gradient_and_stay_bit_identical(tiny_config, tmp_path):
    rec = _run(tiny_config, tmp_path, ["trainer.max_steps=6", "checkpoint.every_n_train_steps=100"])
    stages = [s["stage"] for s in rec.steps]
    assert stages == ["vae", "vae", "codec", "codec", "joint", "joint"]
    for s in rec.steps:
        backbone_grads = {n for n in s["grads"] if n.startswith("backbone.")}
        codec_grads = {n for n in s["grads"] if n.startswith("codec.")}
        backbone_changed = {n for n in s["changed"] if n.startswith("backbone.")}
        codec_changed = {n for n in s["changed"] if n.startswith("codec.")}
        if s["stage"] == "vae":
            assert backbone_grads and not codec_grads and backbone_changed and not codec_changed
        elif s["stage"] == "codec":
            assert codec_grads and not backbone_grads and codec_changed and not backbone_changed
        else:
            assert backbone_grads and codec_grads and backbone_changed and codec_changed


def test_frozen_norm_layers_stay_in_eval_mode(tiny_config, tmp_path):
    rec = _run(tiny_config, tmp_path, ["trainer.max_steps=5", "checkpoint.every_n_train_steps=100"])
    for s in rec.steps:
        assert s["backbone_norms_training"], "the backbone has GroupNorm layers"
        expect_backbone = s["stage"] in ("vae", "joint")
        assert all(t == expect_backbone for t in s["backbone_norms_training"]), s
        assert s["codec_training"] == (s["stage"] != "vae")


def test_each_stage_sets_its_learning_rate_and_zero_for_frozen_groups(tiny_config, tmp_path):
    rec = _run(tiny_config, tmp_path, ["trainer.max_steps=5", "checkpoint.every_n_train_steps=100"])
    by_stage = {s["stage"]: s["lrs"] for s in rec.steps}
    assert (
        by_stage["vae"]["backbone"] == 1e-3
        and by_stage["vae"]["codec"] == 0.0
        and by_stage["vae"]["aux"] == 0.0
    )
    assert by_stage["codec"]["backbone"] == 0.0 and by_stage["codec"]["codec"] == 2e-3
    assert by_stage["codec"]["aux"] == float(tiny_config.optim.aux_lr)
    assert by_stage["joint"]["backbone"] == 3e-3 and by_stage["joint"]["codec"] == 3e-3


def test_resume_mid_stage_continues_in_that_stage_with_its_lr(tiny_config, tmp_path):
    first = tmp_path / "first"
    _run(tiny_config, first, ["trainer.max_steps=3", "checkpoint.every_n_train_steps=3"])
    ckpt = first / "last.ckpt"
    assert ckpt.is_file()
    second = tmp_path / "second"
    rec = _run(tiny_config, second, ["trainer.max_steps=5", "checkpoint.every_n_train_steps=100"], str(ckpt))
    assert rec.steps[0]["step"] == 3
    assert rec.steps[0]["stage"] == "codec"
    assert rec.steps[0]["lrs"]["codec"] == 2e-3 and rec.steps[0]["lrs"]["backbone"] == 0.0
    assert not {n for n in rec.steps[0]["changed"] if n.startswith("backbone.")}
    assert rec.steps[1]["stage"] == "joint"
