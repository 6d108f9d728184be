"""fit / validate / test end to end: checkpoints carry the config, test reports real and estimated bytes."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import torch

from vvc_lightning.cli.main import main
from vvc_lightning.model import CompressionModel
from vvc_lightning.store.loader import load


def test_checkpoint_alone_rebuilds_the_model_with_cdf_tables(tiny_ckpt):
    state = torch.load(tiny_ckpt, weights_only=True)
    assert state["hyper_parameters"]["config"]["model"]["backbone"]["width"] == 8
    assert state["state_dict"]["codec.entropy_bottleneck._offset"].numel() > 0
    model = load(tiny_ckpt)
    assert type(model) is CompressionModel and not model.training and model.codec.tables_ready()
    assert model.identity() == load(tiny_ckpt).identity()
    assert model.checkpoint_path == str(tiny_ckpt.resolve())


def test_test_command_prints_real_and_estimated_bpp_and_quality(tiny_ckpt, capsys):
    assert (
        main(["test", "--ckpt", str(tiny_ckpt), "test.metrics=[psnr,ms_ssim]", "data.test_max_frames=10"])
        == 0
    )
    out = capsys.readouterr().out
    values = {ln.split()[0]: float(ln.split()[1]) for ln in out.splitlines() if ln.startswith("  test/")}
    assert {"test/bpp", "test/bpp_estimate", "test/psnr", "test/ms_ssim"} <= set(values)
    assert values["test/bpp"] > 0 and values["test/bpp_estimate"] > 0
    assert abs(values["test/bpp"] - values["test/bpp_estimate"]) / values["test/bpp"] < 0.5


def test_validate_command_reports_the_rd_terms(tiny_ckpt, capsys):
    assert main(["validate", "--ckpt", str(tiny_ckpt)]) == 0
    out = capsys.readouterr().out
    assert "val/bpp" in out and "val/psnr" in out


def test_unknown_override_of_a_stored_config_is_refused(tiny_ckpt, capsys):
    assert main(["test", "--ckpt", str(tiny_ckpt), "data.test_dirr=x"]) == 2
    assert "unknown config key 'data.test_dirr'" in capsys.readouterr().err


@pytest.mark.slow
def test_quickstart_fits_and_tests_within_five_minutes(tmp_path):
    start = time.time()
    fit = subprocess.run(
        [sys.executable, "-m", "vvc_lightning", "fit", "--config", "quickstart.yaml", f"run_dir={tmp_path}",
         "trainer.enable_progress_bar=false"], capture_output=True, text=True)
    assert fit.returncode == 0, fit.stderr[-3000:]
    test = subprocess.run(
        [sys.executable, "-m", "vvc_lightning", "test", "--ckpt", str(tmp_path / "last.ckpt")],
        capture_output=True,
        text=True,
    )
    assert test.returncode == 0, test.stderr[-3000:]
    assert "test/bpp@q0 " in test.stdout and "test/psnr@q7 " in test.stdout  # the shipped model, three rates
    assert time.time() - start < 300
