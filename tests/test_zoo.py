"""The model zoo: export -> models -> compress --model -> decompress from the header in a fresh process;
weights-only resume, model.init (the quickstart fine-tunes a shipped model), clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import TINY_OVERRIDES, small_clip
from vvc_lightning.cli.main import main
from vvc_lightning.codec import container as bitstream
from vvc_lightning.errors import VVCError, WeightsError
from vvc_lightning.pretrained import ENV, attach_curve, export_model, get_entry, list_models, load_pretrained
from vvc_lightning.video.video_io import write_video

VR = ["model.codec.qualities=4", "model.loss.lmbda_range=[0.01,0.4]"]
SHORT = ["trainer.limit_val_batches=1", "trainer.enable_progress_bar=false", "stages.1.start_step=1",
         "stages.2.start_step=3"]


def _fit(run_dir: Path, overrides: list[str], configs: tuple[str, ...] = ("quickstart_scratch.yaml",), ckpt=None,
         stages: bool = True) -> Path:
    """A few steps of the tiny quickstart (one thread: tiny tensors, and a busy machine) -> last.ckpt."""
    from tests.conftest import one_thread
    from vvc_lightning.config import load_config
    from vvc_lightning.training.trainer import fit

    short = SHORT if stages else SHORT[:2]
    cfg = load_config(list(configs), TINY_OVERRIDES + short + [f"run_dir={run_dir}", *overrides])
    with one_thread():
        fit(cfg, None if ckpt is None else str(ckpt))
    return run_dir / "last.ckpt"


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> Path:
    """A models folder on $VVC_LIGHTNING_MODELS holding 'tiny-vr', exported from a 4-step variable-rate fit."""
    root = tmp_path_factory.mktemp("zoo")
    ckpt = _fit(root / "run", VR + ["trainer.max_steps=4", "trainer.val_check_interval=4",
                                    "checkpoint.every_n_train_steps=4"])
    models = root / "models"
    models.mkdir()
    export_model(ckpt, "tiny-vr", models, notes="test model")
    before = os.environ.get(ENV)
    os.environ[ENV] = str(models)
    yield models
    if before is None:
        os.environ.pop(ENV, None)
    else:
        os.environ[ENV] = before


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vvc_lightning", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ})


def test_export_writes_half_weights_int_tables_and_a_record(zoo):
    from safetensors import safe_open

    entry = get_entry("tiny-vr")
    rec = entry.record
    assert rec["qualities"] == 4 and rec["lmbda_range"] == [0.01, 0.4] and rec["backbone"] == "lean_vae"
    assert rec["training"]["global_step"] == 4 and rec["training"]["data"]["name"] == "folder"
    assert rec["config"]["model"]["codec"]["qualities"] == 4 and rec["curve"] == []
    with safe_open(str(entry.weights), "pt") as f:
        keys = list(f.keys())
        assert not any("optimizer" in k for k in keys)
        assert f.get_tensor("codec.gaussian_conditional._quantized_cdf").dtype == torch.int32
        assert f.get_tensor("codec.g_a.0.weight").dtype == torch.float16
        assert f.get_tensor("codec.gain.y_gain").dtype == torch.float32
    model = load_pretrained("tiny-vr")
    assert model.checkpoint_path == "zoo:tiny-vr" and model.codec.qualities == 4


def test_export_never_overwrites_without_force(zoo, tmp_path):
    ckpt = Path(get_entry("tiny-vr").record["training"]["source_checkpoint"])
    with pytest.raises(VVCError, match="already exists"):
        export_model(ckpt, "tiny-vr", zoo)
    with pytest.raises(VVCError, match="must be letters"):
        export_model(ckpt, "../evil", tmp_path)


def test_models_lists_the_entry(zoo, capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "tiny-vr" in out and "lean_vae c=16" in out and "not measured" in out and "4 steps" in out
    assert main(["models", "tiny-vr"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "tiny-vr"


def test_compress_with_model_and_decompress_from_the_header_in_a_fresh_process(zoo, tmp_path, bikes_frames):
    src = tmp_path / "clip.y4m"
    write_video(src, small_clip(bikes_frames, 9, 48, 64), 25.0)
    sizes = {}
    for q in ("0", "1.5", "3"):
        assert main(["compress", str(src), "-o", str(tmp_path / f"q{q}.vvc"), "--model", "tiny-vr", "--quality", q]) == 0
        sizes[q] = (tmp_path / f"q{q}.vvc").stat().st_size
    assert sizes["0"] <= sizes["1.5"] <= sizes["3"] and sizes["0"] < sizes["3"]
    header, _ = bitstream.unpack_header((tmp_path / "q1.5.vvc").read_bytes())
    assert header.quality == 1.5 and header.checkpoint == "zoo:tiny-vr"
    assert header.identity == get_entry("tiny-vr").identity
    r = run_cli("decompress", tmp_path / "q1.5.vvc", "-o", tmp_path / "png")  # a fresh process, no --ckpt
    assert r.returncode == 0, r.stderr[-2000:]
    from vvc_lightning.codec.video_codec import VideoCodec

    here = VideoCodec(load_pretrained("tiny-vr")).decode((tmp_path / "q1.5.vvc").read_bytes())
    assert np.array_equal(read_pngs(tmp_path / "png"), here.frames)


def read_pngs(folder: Path) -> np.ndarray:
    import cv2

    return np.stack([cv2.imread(str(p))[..., ::-1] for p in sorted(folder.glob("*.png"))])


def test_compress_with_lmbda_picks_the_matching_quality(zoo, tmp_path, bikes_frames):
    src = tmp_path / "clip.y4m"
    write_video(src, small_clip(bikes_frames, 5, 32, 32), 25.0)
    assert main(["compress", str(src), "-o", str(tmp_path / "a.vvc"), "--model", "tiny-vr", "--lmbda", "0.4"]) == 0
    assert bitstream.unpack_header((tmp_path / "a.vvc").read_bytes())[0].quality == pytest.approx(3.0)


def test_bad_model_names_give_one_line_listing_the_known_ones(zoo, tmp_path, capsys):
    src = tmp_path / "clip.y4m"
    src.write_bytes(b"")
    assert main(["compress", str(src), "-o", str(tmp_path / "a.vvc"), "--model", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no shipped model named 'nope'" in err[-1] and "tiny-vr" in err[-1]
    assert main(["models", "nope"]) == 2
    assert "known models: tiny-vr" in capsys.readouterr().err
    assert main(["compress", str(src), "-o", str(tmp_path / "a.vvc")]) == 2
    assert "--model NAME" in capsys.readouterr().err


def test_a_damaged_zoo_entry_is_refused(zoo, tmp_path, monkeypatch):
    import shutil

    from safetensors.torch import load_file, save_file

    entry = get_entry("tiny-vr")
    other = tmp_path / "models"
    other.mkdir()
    state = load_file(str(entry.weights))
    state["codec.g_s.0.bias"] = state["codec.g_s.0.bias"] + 1
    save_file(state, str(other / "tiny-vr.safetensors"))
    shutil.copy(entry.record_path, other / "tiny-vr.json")
    monkeypatch.setenv(ENV, str(other))
    with pytest.raises(WeightsError, match="does not match the checksum in its record"):
        load_pretrained("tiny-vr")


def test_fit_resumes_from_an_exported_weights_only_file(zoo, tmp_path):
    entry = get_entry("tiny-vr")
    ckpt = _fit(tmp_path, VR + ["trainer.max_steps=6", "trainer.val_check_interval=2", "checkpoint.every_n_train_steps=2"],
                ckpt=entry.weights)
    state = torch.load(ckpt, weights_only=True)
    assert state["global_step"] == 6  # continued at the recorded step 4
    assert sorted(p.name for p in tmp_path.glob("step-*.ckpt")) == ["step-0000006.ckpt"]


def test_a_fixed_rate_checkpoint_resumes_into_a_variable_rate_config(tiny_ckpt, tmp_path):
    ckpt = _fit(tmp_path, VR + ["trainer.max_steps=5", "trainer.val_check_interval=5"], ckpt=tiny_ckpt)
    state = torch.load(ckpt, weights_only=True)
    assert state["global_step"] == 5 and "codec.gain.y_gain" in state["state_dict"]
    old = torch.load(tiny_ckpt, weights_only=True)["state_dict"]
    key = next(k for k in old if k.startswith("backbone.") and k.endswith("weight"))
    assert torch.allclose(state["state_dict"][key], old[key], atol=0.05)  # its weights, one step on


def test_quickstart_starts_from_a_shipped_model(zoo, tmp_path):
    ckpt = _fit(tmp_path, ["model.init=zoo:tiny-vr", "trainer.max_steps=2", "trainer.val_check_interval=2",
                           "model.backbone.latent_channels=32", "model.backbone.width=64"],
                configs=("quickstart.yaml",), stages=False)
    state = torch.load(ckpt, weights_only=True)
    model_cfg = state["hyper_parameters"]["config"]["model"]
    assert model_cfg["backbone"]["latent_channels"] == 16 and model_cfg["codec"]["qualities"] == 4  # adopted
    assert state["global_step"] == 2 and state["hyper_parameters"]["config"]["stages"][0]["name"] == "joint"
    shipped = load_pretrained("tiny-vr").state_dict()
    tuned = state["state_dict"]
    moved = max(float((tuned[k].float() - shipped[k].float()).abs().max()) for k in shipped if k.endswith("weight"))
    assert moved < 0.05  # two fine-tuning steps from the shipped weights, not a fresh start


def test_an_unknown_init_model_is_one_clear_error(tmp_path, capsys):
    assert main(["fit", "--config", "quickstart_scratch.yaml", "model.init=zoo:nope", f"run_dir={tmp_path}"]) == 2
    assert "no shipped model named 'nope'" in capsys.readouterr().err


def test_evaluate_gives_one_point_per_quality_and_the_curve_goes_into_the_record(zoo, tmp_path, capsys,
                                                                                   bikes_frames):
    from vvc_lightning.evaluation.harness import EvalOptions, evaluate

    write_video(tmp_path / "clip.y4m", small_clip(bikes_frames, 5, 32, 48), 25.0)
    paths = evaluate(EvalOptions(data=str(tmp_path / "clip.y4m"), out=str(tmp_path / "eval"),
                                 ckpts=["zoo:tiny-vr"], qualities=[0, 3], metrics=["psnr"], progress=False))
    attach_curve("tiny-vr", paths["summary"])
    curve = get_entry("tiny-vr").record["curve"]
    assert [p["quality"] for p in curve] == [0.0, 3.0] and curve[0]["bpp"] < curve[1]["bpp"]
    assert main(["models"]) == 0
    listed = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:] if line.strip()}
    assert "not measured" not in listed["tiny-vr"]  # its curve is in the record now
    assert "tiny-vr" in [e.name for e in list_models()]


def test_a_file_from_a_shipped_model_that_is_not_installed_is_one_clear_error(zoo, tmp_path, bikes_frames,
                                                                              monkeypatch, capsys):
    src = tmp_path / "clip.y4m"
    write_video(src, small_clip(bikes_frames, 5, 32, 32), 25.0)
    assert main(["compress", str(src), "-o", str(tmp_path / "a.vvc"), "--model", "tiny-vr"]) == 0
    monkeypatch.setenv(ENV, str(tmp_path / "empty"))
    assert main(["decompress", str(tmp_path / "a.vvc"), "-o", str(tmp_path / "png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "shipped model 'tiny-vr'" in err[0] and "not installed" in err[0]
