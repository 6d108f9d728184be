"""What `fit` prints: each Lightning line once, no product tips, no warning caused by our own stored records,
no 'checkpoint directory not empty' on a new run."""

from __future__ import annotations

import subprocess
import sys

import torch

from tests.conftest import THREE_STAGES_FAST, TINY_OVERRIDES


def test_fit_from_a_record_naming_an_alias_prints_each_line_once_and_no_warning(tiny_ckpt, tmp_path):
    state = torch.load(tiny_ckpt, weights_only=True)
    state["hyper_parameters"]["config"]["model"]["backbone"]["name"] = "lean_vae"  # as the shipped record
    stored = tmp_path / "alias.ckpt"
    torch.save(state, stored)
    overrides = [o for o in TINY_OVERRIDES if not o.startswith("model.init")]
    run = subprocess.run(
        [sys.executable, "-m", "vvc_lightning", "fit", "--config", "quickstart_scratch.yaml", *overrides,
         *THREE_STAGES_FAST, f"model.init={stored}", f"run_dir={tmp_path / 'run'}", "trainer.max_steps=1"],
        capture_output=True, text=True,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    err = run.stderr
    assert "deprecated" not in err, err
    assert err.count("GPU available") == 1 and "Tip" not in err and "litlogger" not in err, err
    assert "exists and is not empty" not in err and "LeafSpec" not in err, err
