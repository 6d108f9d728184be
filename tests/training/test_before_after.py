"""`test` of a run fine-tuned from model.init prints the start model's figures beside its own."""

from __future__ import annotations

import re

import pytest

from vvc_lightning.cli.main import main
from vvc_lightning.training.before_after import before_after_table

TEST_ARGS = ["test.metrics=[psnr]", "data.test_max_frames=10"]


@pytest.fixture(scope="module")
def finetuned(tiny_ckpt, tiny_config, tmp_path_factory):
    """A run of one step that started from the tiny checkpoint (model.init)."""
    from vvc_lightning.configuration.config import apply_overrides
    from vvc_lightning.training.trainer import fit

    run_dir = tmp_path_factory.mktemp("from_init")
    cfg = apply_overrides(tiny_config.copy(), [
        f"run_dir={run_dir}", f"model.init={tiny_ckpt}", "trainer.max_steps=1", "trainer.limit_val_batches=0",
        "checkpoint.every_n_train_steps=1", "trainer.enable_progress_bar=false",
    ])
    fit(cfg)
    return run_dir / "last.ckpt"


def _listed(out: str) -> dict[str, float]:
    return {ln.split()[0]: float(ln.split()[1]) for ln in out.splitlines() if ln.startswith("  test/")}


def test_the_start_model_is_tested_alike_and_shown_before_the_fine_tuned_one(tiny_ckpt, finetuned, capsys):
    assert main(["test", "--ckpt", str(tiny_ckpt), *TEST_ARGS]) == 0
    out = capsys.readouterr().out
    assert "before (model.init" not in out  # a run from scratch: nothing to compare with
    start = _listed(out)
    assert main(["test", "--ckpt", str(finetuned), *TEST_ARGS]) == 0
    out = capsys.readouterr().out
    after = _listed(out)
    assert f"before (model.init {tiny_ckpt}) -> after ({finetuned})" in out, out
    header = next(ln for ln in out.splitlines() if ln.startswith("  quality"))
    assert header.split() == ["quality", "bpp", "psnr"]  # real bpp first, no estimate or frame count
    row = next(ln for ln in out.splitlines() if ln.startswith("  -  "))  # fixed rate: one row
    pairs = [(float(a), float(b)) for a, b in re.findall(r"(\S+) -> (\S+)", row)]
    for (before, now), key in zip(pairs, ["test/bpp", "test/psnr"], strict=True):
        assert before == pytest.approx(start[key], rel=1e-3) and now == pytest.approx(after[key], rel=1e-3)
    assert "better: lower bpp; higher psnr" in out


def test_compare_init_false_prints_no_table(finetuned, capsys):
    assert main(["test", "--ckpt", str(finetuned), *TEST_ARGS, "test.compare_init=false"]) == 0
    out = capsys.readouterr().out
    assert "test/psnr " in out and "before (model.init" not in out


def test_the_table_has_a_row_per_quality_and_a_column_per_figure():
    before = {"test/bpp@q0": 0.046, "test/psnr@q0": 17.65, "test/stlpips@q0": 0.524, "test/frames@q0": 25,
              "test/bpp@q7": 0.3827, "test/psnr@q7": 18.77, "test/stlpips@q7": 0.451}
    after = {**before, "test/bpp@q0": 0.0444, "test/bpp_estimate@q0": 0.035, "test/stlpips@q7": 0.462}
    lines = before_after_table("zoo:vvc-lean-vr", "runs/q/last.ckpt", before, after).splitlines()
    assert lines[0] == "test means, before (model.init zoo:vvc-lean-vr) -> after (runs/q/last.ckpt):"
    assert lines[1].split() == ["quality", "bpp", "psnr", "stlpips"]
    assert lines[2] == "  q0       0.0460 -> 0.0444    17.65 -> 17.65      0.524 -> 0.524"
    assert lines[3].split()[0] == "q7" and lines[3].split()[-3:] == ["0.451", "->", "0.462"]
    assert lines[4] == "  better: lower bpp, stlpips; higher psnr"
