"""`fit` refusals: what the machine lacks, an unwritable run_dir, keys model.init would replace
and Lightning's trainer.default_root_dir all end in seconds in one line, with nothing created."""

from __future__ import annotations

import os
import subprocess
import time

import pytest
import torch

from vvc_lightning.cli.main import main
from vvc_lightning.configuration.config import load_config
from vvc_lightning.store.zoo import get_entry
from vvc_lightning.training.warm_start import _adopt_architecture


def fit_fails_fast(capsys, tmp_path, *overrides: str, run_dir: str | None = None) -> str:
    """`fit --config quickstart.yaml OVERRIDES` in-process: exit 2 within seconds, one stderr line."""
    argv = ["fit", "--config", "quickstart.yaml", f"run_dir={run_dir or tmp_path / 'run'}", *overrides]
    start = time.monotonic()
    assert main(argv) == 2
    assert time.monotonic() - start < 15, "fit should fail before building anything"
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert not (tmp_path / "run").exists()
    return err


@pytest.mark.timeout(120)
def test_more_devices_than_cores_fails_in_one_line(capsys, tmp_path):
    err = fit_fails_fast(capsys, tmp_path, "trainer.accelerator=cpu", "trainer.devices=1000")
    assert (
        "trainer.devices=1000 asks for 1000 CPU cores but this machine has" in err
        and "trainer.devices=" in err
    )


@pytest.mark.timeout(120)
@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_a_gpu_accelerator_without_a_gpu_fails_in_one_line(capsys, tmp_path):
    err = fit_fails_fast(capsys, tmp_path, "trainer.accelerator=gpu")
    assert err == ("error: trainer.accelerator=gpu but this machine has no usable CUDA GPU; "
                   "use trainer.accelerator=cpu (or auto)")


@pytest.mark.timeout(120)
def test_a_run_dir_that_cannot_be_written_fails_in_one_line(capsys, tmp_path):
    afile = tmp_path / "a_file"
    afile.write_text("mine")
    err = fit_fails_fast(capsys, tmp_path, run_dir=str(afile / "run"))
    assert f"run_dir '{afile / 'run'}' cannot be written (Not a directory)" in err
    assert afile.read_text() == "mine"
    # Lightning's name for the run folder goes through the same check.
    err = fit_fails_fast(
        capsys, tmp_path, f"trainer.default_root_dir={afile / 'lit'}", run_dir=str(afile / "lit")
    )
    assert f"run_dir '{afile / 'lit'}' cannot be written" in err


@pytest.mark.timeout(120)
def test_a_run_dir_on_a_read_only_filesystem_fails_in_one_line(capsys, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(ro)], capture_output=True
    ).returncode:
        pytest.skip("mounting a tmpfs is not permitted here")
    try:
        err = fit_fails_fast(capsys, tmp_path, run_dir=str(ro / "run"))
    finally:
        subprocess.run(["umount", str(ro)], check=True)
    assert err == (
        f"error: run_dir '{ro / 'run'}' cannot be written (Read-only file system); give a writable "
        "folder: run_dir=runs/NAME"
    )


@pytest.mark.timeout(120)
@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_run_dir_fails_in_one_line_and_leaves_no_folder(capsys, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        err = fit_fails_fast(capsys, tmp_path, run_dir=str(locked / "a" / "b"))
    finally:
        locked.chmod(0o700)
    assert "cannot be written (Permission denied)" in err and list(locked.iterdir()) == []


@pytest.mark.timeout(120)
def test_a_backbone_that_model_init_would_replace_is_an_error_naming_both(capsys, tmp_path):
    weights = tmp_path / "vae.safetensors"
    err = fit_fails_fast(
        capsys, tmp_path, "model.backbone.name=lean_vae_base", f"model.backbone.pretrained={weights}"
    )
    assert "model.backbone.name=lean_vae_base conflicts with model.init=zoo:vvc-lean-vr" in err
    assert "model.backbone.name=lean_vae" in err and "model.init=null" in err
    err = fit_fails_fast(
        capsys, tmp_path, "model.backbone.name=lean_vae", f"model.backbone.weights={weights}"
    )
    assert f"model.backbone.weights={weights} conflicts with model.init=zoo:vvc-lean-vr" in err
    err = fit_fails_fast(capsys, tmp_path, "model.codec.qualities=4")
    assert "model.codec.qualities=4 conflicts" in err and "model.codec.qualities=8" in err


def test_keys_that_fit_the_init_model_are_kept_or_applied():
    stored = get_entry("vvc-lean-vr").record["config"]["model"]
    same = load_config(["quickstart.yaml"], ["model.backbone.name=lean_vae", "model.backbone.width=128"])
    assert _adopt_architecture(same, stored, "zoo:vvc-lean-vr").model.backbone.width == 128
    longer_gop = load_config(["quickstart.yaml"], ["model.gop=17"])
    longer = _adopt_architecture(longer_gop, stored, "zoo:vvc-lean-vr")
    assert longer.model.gop == 17 and longer.model.codec.qualities == 8  # the GoP length fits any weights
