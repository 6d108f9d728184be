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
from vvc_lightning.codec.pipeline import container as bitstream
from vvc_lightning.errors import VVCError, WeightsError
from vvc_lightning.store.export import export_model
from vvc_lightning.store.loader import load
from vvc_lightning.store.zoo import ENV, attach_curve, get_entry, list_models
from vvc_lightning.video.video_io import write_video

VR = ["model.codec.qualities=4", "model.loss.lmbda_range=[0.01,0.4]"]
SHORT = ["trainer.limit_val_batches=1", "trainer.enable_progress_bar=false", "stages.1.start_step=1",
         "stages.2.start_step=3"]


def _fit(
    run_dir: Path,
    overrides: list[str],
    configs: tuple[str, ...] = ("quickstart_scratch.yaml",),
    ckpt=None,
    stages: bool = True,
) -> Path:
    """A few steps of the tiny quickstart (one thread: tiny tensors, and a busy machine) -> last.ckpt."""
    from tests.conftest import one_thread
    from vvc_lightning.configuration.config import load_config
    from vvc_lightning.training.trainer import fit

    short = SHORT if stages else SHORT[:2]
    cfg = load_config(list(configs), TINY_OVERRIDES + short + [f"run_dir={run_dir}", *overrides])
    with one_thread():
        fit(cfg, None if ckpt is None else str(ckpt))
    return run_dir / "last.ckpt"


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> Path:
    """A models folder on $VVC_LIGHTNING_MODELS with 'tiny-vr', exported from a 4-step variable-rate fit."""
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
    return subprocess.run(
        [sys.executable, "-m", "vvc_lightning", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ},
    )


def test_export_writes_half_weights_int_tables_and_a_record(zoo):
    from safetensors import safe_open

    entry = get_entry("tiny-vr")
    rec = entry.record
    assert rec["qualities"] == 4 and rec["lmbda_range"] == [0.01, 0.4] and rec["backbone"] == "lean_vae_lite"
    assert rec["training"]["global_step"] == 4 and rec["training"]["data"]["name"] == "folder"
    assert rec["config"]["model"]["codec"]["qualities"] == 4 and rec["curve"] == []
    with safe_open(str(entry.weights), "pt") as f:
        keys = list(f.keys())
        assert not any("optimizer" in k for k in keys)
        assert f.get_tensor("codec.gaussian_conditional._quantized_cdf").dtype == torch.int32
        assert f.get_tensor("codec.g_a.0.weight").dtype == torch.float16
        assert f.get_tensor("codec.gain.y_gain").dtype == torch.float32
    model = load("tiny-vr")
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
    assert "tiny-vr" in out and "lean_vae_lite c=16" in out and "not measured" in out and "4 steps" in out
    assert main(["models", "tiny-vr"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "tiny-vr"


def test_compress_with_model_and_decompress_from_the_header_in_a_fresh_process(zoo, tmp_path, bikes_frames):
    src = tmp_path / "clip.y4m"
    write_video(src, small_clip(bikes_frames, 9, 48, 64), 25.0)
    sizes = {}
    for q in ("0", "1.5", "3"):
        assert (
            main(
                [
                    "compress",
                    str(src),
                    "-o",
                    str(tmp_path / f"q{q}.vvc"),
                    "--model",
                    "tiny-vr",
                    "--quality",
                    q,
                ]
            )
            == 0
        )
        sizes[q] = (tmp_path / f"q{q}.vvc").stat().st_size
    assert sizes["0"] <= sizes["1.5"] <= sizes["3"] and sizes["0"] < sizes["3"]
    header, _ = bitstream.unpack_header((tmp_path / "q1.5.vvc").read_bytes())
    assert header.quality == 1.5 and header.checkpoint == "zoo:tiny-vr"
    assert header.identity == get_entry("tiny-vr").identity
    r = run_cli("decompress", tmp_path / "q1.5.vvc", "-o", tmp_path / "png")  # a fresh process, no --ckpt
    assert r.returncode == 0, r.stderr[-2000:]
    from vvc_lightning.codec.pipeline.video_codec import VideoCodec

    here = VideoCodec(load("tiny-vr")).decode((tmp_path / "q1.5.vvc").read_bytes())
    assert np.array_equal(read_pngs(tmp_path / "png"), here.frames)


def read_pngs(folder: Path) -> np.ndarray:
    import cv2

    return np.stack([cv2.imread(str(p))[..., ::-1] for p in sorted(folder.glob("*.png"))])


def test_compress_with_lmbda_picks_the_matching_quality(zoo, tmp_path, bikes_frames):
    src = tmp_path / "clip.y4m"
    write_video(src, small_clip(bikes_frames, 5, 32, 32), 25.0)
    assert (
        main(["compress", str(src), "-o", str(tmp_path / "a.vvc"), "--model", "tiny-vr", "--lmbda", "0.4"])
        == 0
    )
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
        load("tiny-vr")


def test_fit_resumes_from_an_exported_weights_only_file(zoo, tmp_path):
    entry = get_entry("tiny-vr")
    ckpt = _fit(
        tmp_path,
        VR + ["trainer.max_steps=6", "trainer.val_check_interval=2", "checkpoint.every_n_train_steps=2"],
        ckpt=entry.weights,
    )
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
                           "test.qualities=[0,3]"],  # quickstart's [0, 4, 7] are beyond tiny-vr's 4 qualities
                configs=("quickstart.yaml",), stages=False)
    state = torch.load(ckpt, weights_only=True)
    model_cfg = state["hyper_parameters"]["config"]["model"]
    assert model_cfg["backbone"]["latent_channels"] == 16 and model_cfg["codec"]["qualities"] == 4  # adopted
    assert state["global_step"] == 2 and state["hyper_parameters"]["config"]["stages"][0]["name"] == "joint"
    shipped = load("tiny-vr").state_dict()
    tuned = state["state_dict"]
    moved = max(
        float((tuned[k].float() - shipped[k].float()).abs().max()) for k in shipped if k.endswith("weight")
    )
    assert moved < 0.05  # two fine-tuning steps from the shipped weights, not a fresh start


def test_an_unknown_init_model_is_one_clear_error(tmp_path, capsys):
    assert (
        main(["fit", "--config", "quickstart_scratch.yaml", "model.init=zoo:nope", f"run_dir={tmp_path}"])
        == 2
    )
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
    assert "not measured" not in listed["tiny-vr"]  # its curve is in the record
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


# ------------------------------------------------------------------ untrusted model folders
def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def _copy_entry(entry, folder: Path, name: str | None = None) -> tuple[Path, Path]:
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    name = name or entry.name
    shutil.copy(entry.weights, folder / f"{name}.safetensors")
    shutil.copy(entry.record_path, folder / f"{name}.json")
    return folder / f"{name}.json", folder / f"{name}.safetensors"


def _bad_records(folder: Path) -> None:
    """Records no export writes: invalid UTF-8, JSON nested 10^5 deep, `params` "abc", a curve of ints."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in [
        ("broken", b'{"format": 1, "name": "\xff\xfe"}'),
        ("deep", b"[" * 100_000 + b"]" * 100_000),
        ("abc", None),
        ("ints", None),
    ]:
        if text is None:
            rec = json.loads(get_entry("tiny-vr").record_path.read_text())
            rec.update({"params": "abc"} if name == "abc" else {"curve": [1, 2]})
            text = json.dumps(rec).encode()
        (folder / f"{name}.json").write_bytes(text)
        (folder / f"{name}.safetensors").write_bytes(get_entry("tiny-vr").weights.read_bytes())


def test_malformed_records_are_skipped_with_a_warning_and_block_no_other_model(zoo, tmp_path, monkeypatch,
                                                                              bikes_frames, caplog):
    src = _clip(tmp_path, bikes_frames)
    assert main(["compress", str(src), "-o", str(tmp_path / "a.vvc"), "--model", "tiny-vr"]) == 0
    _bad_records(tmp_path / "bad")
    monkeypatch.setenv(ENV, os.pathsep.join([str(tmp_path / "bad"), str(zoo)]))
    r = run_cli("models")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "tiny-vr" in r.stdout and "vvc-lean-vr" in r.stdout and "Traceback" not in r.stderr
    warned = [line for line in r.stderr.splitlines() if "skipped model record" in line]
    assert len(warned) == 4 and all(
        any(f"{n}.json" in w for w in warned) for n in ("broken", "deep", "abc", "ints")
    )
    assert "not UTF-8" in r.stderr and "nests deeper" in r.stderr
    assert (
        main(["decompress", str(tmp_path / "a.vvc"), "-o", str(tmp_path / "out.y4m")]) == 0
    )  # a genuine file
    assert (
        main(
            ["compress", str(src), "-o", str(tmp_path / "b.vvc"), "--model", "vvc-lean-vr", "--quality", "0"]
        )
        == 0
    )
    assert any("skipped model record" in m and "deep.json" in m for m in caplog.messages)


def _clip(tmp_path: Path, bikes_frames) -> Path:
    src = tmp_path / "clip.y4m"
    write_video(src, small_clip(bikes_frames, 5, 32, 32), 25.0)
    return src


def test_using_a_malformed_record_is_one_line_naming_it(zoo, tmp_path, monkeypatch, capsys, bikes_frames):
    _bad_records(tmp_path / "bad")
    monkeypatch.setenv(ENV, str(tmp_path / "bad"))
    src = _clip(tmp_path, bikes_frames)
    for name, problem in [("broken", "is not UTF-8 text"), ("deep", "nests deeper than"),
                          ("abc", "'params' is \"abc\""), ("ints", "'curve' point 0 is 1")]:
        assert main(["compress", str(src), "-o", str(tmp_path / "a.vvc"), "--model", name]) == 2
        line = _one_line(capsys)
        assert (
            line.startswith(f"error: model '{name}' ({tmp_path / 'bad' / name}.json): ") and problem in line
        )
        assert line.endswith("fix or remove that file")


def _crafted(tmp_path: Path, monkeypatch, change, fix_sha: bool = True) -> str:
    """A copy of tiny-vr as 'crafted' whose record (change(rec, state)) or weights were changed."""
    from safetensors.torch import load_file, save_file

    rec_path, weights = _copy_entry(get_entry("tiny-vr"), tmp_path / "crafted", "crafted")
    rec, state = json.loads(rec_path.read_text()), load_file(str(weights))
    change(rec, state)
    save_file(state, str(weights))
    if fix_sha and "sha256" in rec:
        import hashlib

        rec["sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()
    rec_path.write_text(json.dumps(rec))
    monkeypatch.setenv(ENV, os.pathsep.join([str(tmp_path / "crafted"), os.environ[ENV]]))
    return "crafted"


def _cdf(state, key: str, value) -> None:
    state[key] = value(state[key]).contiguous()


@pytest.mark.parametrize(
    "change, problem",
    [
        (
            lambda r, s: r["config"]["model"]["backbone"].update(width=2**21),
            "'config.model.backbone.width' is 2097152",
        ),
        (lambda r, s: r.update(latent_channels=2**20), "'latent_channels' is 1048576"),
        (lambda r, s: r.update(qualities=10**6), "'qualities' is 1000000"),
        (lambda r, s: r["config"]["model"]["backbone"].update(width=16), "parameters but the record says"),
        (lambda r, s: r["training"].update(global_step=1e400), "it holds Infinity"),
        (
            lambda r, s: s.update({"codec.h_s.0.weight": s["codec.h_s.0.weight"] * float("nan")}),
            "NaN or infinite",
        ),
        (
            lambda r, s: s.update({"codec.h_s.4.weight": s["codec.h_s.4.weight"].float() * 1e9}),
            "too large for an exact integer",
        ),
        (
            lambda r, s: _cdf(s, "codec.gaussian_conditional._quantized_cdf", lambda t: t.flip(1)),
            "row 0 is not a CDF",
        ),
        (
            lambda r, s: _cdf(s, "codec.entropy_bottleneck._quantized_cdf", torch.zeros_like),
            "row 0 is not a CDF",
        ),
        (
            lambda r, s: _cdf(
                s,
                "codec.entropy_bottleneck._quantized_cdf",
                lambda t: torch.cat([t, torch.zeros(t.shape[0], 70_000, dtype=t.dtype)], 1),
            ),
            "of at most 65537",
        ),
        (lambda r, s: _cdf(s, "codec.gaussian_conditional._offset", lambda t: t - 2**30), "has an offset of"),
        (
            lambda r, s: (r.update(identity="ab" * 32), r.pop("sha256")),
            "not the abababababab its record claims",
        ),
    ],
)
def test_a_crafted_entry_is_refused_before_anything_is_built(
    zoo, tmp_path, monkeypatch, capsys, change, problem, bikes_frames
):
    name = _crafted(tmp_path, monkeypatch, change)
    src = _clip(tmp_path, bikes_frames)
    assert main(["compress", str(src), "-o", str(tmp_path / "a.vvc"), "--model", name]) == 2
    line = _one_line(capsys)
    assert line.startswith(f"error: model '{name}' (") and problem in line, line
    assert "tiny-vr" in [e.name for e in list_models()]  # and the genuine entry stays usable


def test_a_same_named_entry_does_not_shadow_the_one_a_file_was_made_with(
    zoo, tmp_path, monkeypatch, bikes_frames
):
    from tests.fuzz_records import make_entry

    src = _clip(tmp_path, bikes_frames)
    assert main(["compress", str(src), "-o", str(tmp_path / "a.vvc"), "--model", "tiny-vr"]) == 0
    make_entry(
        tmp_path / "user", "tiny-vr", seed=5
    )  # another model under the same name, in an earlier folder
    monkeypatch.setenv(ENV, os.pathsep.join([str(tmp_path / "user"), str(zoo)]))
    assert get_entry("tiny-vr").record_path.parent == tmp_path / "user"  # --model NAME: first folder wins
    assert main(["decompress", str(tmp_path / "a.vvc"), "-o", str(tmp_path / "out.y4m")]) == 0  # by identity


def test_files_holding_more_than_tensors_are_refused_in_one_line(tmp_path):
    from vvc_lightning.backbones.lean_vae import LeanVAE
    from vvc_lightning.backbones.pretrained import read_state_dict
    from vvc_lightning.metrics.perceptual import build_lpips

    class Payload:
        def __reduce__(self):
            return (print, ("this would run",))

    crafted = tmp_path / "crafted.pt"
    torch.save({"conv.weight": torch.zeros(1), "x": Payload()}, crafted)
    for read in (lambda: read_state_dict(crafted), lambda: build_lpips("alex", crafted),
                 lambda: LeanVAE(width=8, latent_channels=16).load_weights(crafted)):
        with pytest.raises(WeightsError) as info:
            read()
        text = str(info.value)
        assert (
            "\n" not in text and f"'{crafted}' holds more than tensors (pickled code) and is refused" in text
        )
        assert "weights_only" not in text


def test_export_to_an_existing_file_is_one_line(zoo, tmp_path, capsys):
    target = tmp_path / "models"
    target.write_bytes(b"mine")
    ckpt = tmp_path / "x.ckpt"
    ckpt.write_bytes(b"")
    assert main(["export", "--ckpt", str(ckpt), "--name", "m", "-o", str(target)]) == 2
    assert "is a file, not a folder" in _one_line(capsys) and target.read_bytes() == b"mine"


@pytest.mark.parametrize("content, problem", [
    (b"codec,point,bpp\nours,tiny-vr@q0,0.1\xff\n", "is not UTF-8 text"),
    (b"codec,point,bpp,psnr\nours,tiny-vr@q0,0.1,20\nours,tiny-vr@q3,inf,30\n", "'bpp' is inf"),
    (b"codec,point,bpp,psnr\nours,tiny-vr@q0,nan,20\n", "'bpp' is nan"),
])
def test_attach_curve_refuses_bad_csvs_in_one_line_and_keeps_the_record(
    zoo, tmp_path, capsys, content, problem
):
    csv_path = tmp_path / "summary.csv"
    csv_path.write_bytes(content)
    before = get_entry("tiny-vr").record_path.read_bytes()
    assert main(["models", "tiny-vr", "--attach-curve", str(csv_path), "--codec", "ours"]) == 2
    assert problem in _one_line(capsys)
    assert get_entry("tiny-vr").record_path.read_bytes() == before


def test_records_hold_no_absolute_paths(zoo):
    def strings(obj):
        if isinstance(obj, dict):
            return [s for v in obj.values() for s in strings(v)]
        return (
            [s for v in obj for s in strings(v)]
            if isinstance(obj, list)
            else [obj]
            if isinstance(obj, str)
            else []
        )

    for entry in (get_entry("tiny-vr"), get_entry("vvc-lean-vr")):
        assert not [s for s in strings(entry.record) if os.path.isabs(s)], entry.name


def test_fit_from_an_exported_file_with_a_malformed_record_is_one_line(tmp_path):
    from vvc_lightning.errors import VVCError
    from vvc_lightning.store.loader import resolve

    weights = tmp_path / "m.safetensors"
    weights.write_bytes(b"\0" * 16)
    for bad in (b"\xff\xfe not utf-8", b"[" * 100_000, b'{"format": 1, "identity": "x"}'):
        (tmp_path / "m.json").write_bytes(bad)
        with pytest.raises(VVCError, match="record '.*m.json': .*; re-export the model"):
            resolve(str(weights))
