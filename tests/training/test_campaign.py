"""The campaign: the accept/reject rule on ST-LPIPS BD-rate, the history entry, and writing the outcome."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vvc_lightning.errors import WeightsError
from vvc_lightning.store.zoo import packaged_dir
from vvc_lightning.training.campaign import (
    Decision,
    commit,
    decide,
    entry_in,
    file_sha256,
    history_entry,
    portable_path,
)

ROOT = Path(__file__).resolve().parents[2]
NAME = "vvc-lean-vr"
SHIPPED = json.loads((packaged_dir() / f"{NAME}.json").read_text())
STEP0 = int(SHIPPED["training"]["global_step"])
RUNS0 = len(SHIPPED.get("history") or [])  # history entries the shipped record already holds
# the stage list of a record at step 2535 whose joint stage began at 1068 (the first shipped record)
STAGES_2535 = [
    {"name": "vae", "train": ["backbone"], "start_step": 0, "lr": 1e-3, "loss": "vae"},
    {"name": "codec", "train": ["codec"], "start_step": 458, "lr": 1e-3, "loss": "rd"},
    {"name": "joint", "train": ["backbone", "codec"], "start_step": 1068, "lr": 2e-4, "loss": "rd"},
]
PREV = [
    {"point": f"m@q{q}", "quality": float(q), "bpp": r, "psnr": p, "stlpips": s}
    for q, r, p, s in [
        (0, 0.02, 22.0, 0.40),
        (2, 0.05, 24.0, 0.30),
        (4, 0.10, 25.5, 0.22),
        (6, 0.20, 26.5, 0.16),
    ]
]


def scaled(curve: list[dict], factors: list[float]) -> list[dict]:
    """The curve with each point's rate multiplied by its factor (same ST-LPIPS)."""
    return [{**p, "bpp": p["bpp"] * f} for p, f in zip(curve, factors, strict=True)]


def no_absolute_paths(obj: object) -> bool:
    if isinstance(obj, dict):
        return all(no_absolute_paths(v) for v in obj.values())
    if isinstance(obj, list):
        return all(no_absolute_paths(v) for v in obj)
    return not (isinstance(obj, str) and os.path.isabs(obj))


def test_fewer_bits_at_equal_stlpips_is_accepted():
    d = decide(PREV, scaled(PREV, [0.8] * 4))
    assert d.accept and d.bd_rate_stlpips == pytest.approx(-20.0, abs=1e-6)
    assert "-20.00 %" in d.reason


def test_more_bits_at_equal_stlpips_is_rejected():
    d = decide(PREV, scaled(PREV, [1.25] * 4))
    assert not d.accept and d.bd_rate_stlpips == pytest.approx(25.0, abs=1e-6)
    assert "+25.00 %" in d.reason and "not below 0" in d.reason


def test_lower_stlpips_at_the_same_rates_is_better():
    """ST-LPIPS falls as quality rises: the same bits with lower ST-LPIPS is an improvement, higher is not."""
    better = [{**p, "stlpips": p["stlpips"] - 0.01} for p in PREV]
    worse = [{**p, "stlpips": p["stlpips"] + 0.01} for p in PREV]
    assert decide(PREV, better).accept and decide(PREV, better).bd_rate_stlpips < 0
    assert not decide(PREV, worse).accept and decide(PREV, worse).bd_rate_stlpips > 0


def test_crossing_curves_are_judged_on_the_mean_over_the_overlap():
    cheap_low_dear_high = scaled(PREV, [0.6, 0.8, 1.05, 1.1])
    dear_low_cheap_high = scaled(PREV, [1.4, 1.2, 0.98, 0.95])
    a, b = decide(PREV, cheap_low_dear_high), decide(PREV, dear_low_cheap_high)
    assert math.isfinite(a.bd_rate_stlpips) and math.isfinite(b.bd_rate_stlpips)
    assert a.accept and a.bd_rate_stlpips < 0  # the low-rate saving outweighs the high-rate loss
    assert not b.accept and b.bd_rate_stlpips > 0
    back = decide(cheap_low_dear_high, PREV)  # previous and new swapped: the sign flips
    assert back.bd_rate_stlpips > 0 and not back.accept


def test_non_overlapping_curves_are_rejected_saying_why():
    far_better = [{**p, "stlpips": p["stlpips"] / 4} for p in PREV]  # 0.04-0.1 against 0.16-0.40
    d = decide(PREV, far_better)
    assert not d.accept and math.isnan(d.bd_rate_stlpips)
    assert "do not overlap" in d.reason and "previous 0.1600-0.4000" in d.reason


@pytest.mark.parametrize("which", ["previous", "new"])
def test_nan_in_either_curve_is_rejected(which):
    bad = [dict(p) for p in PREV]
    bad[2]["stlpips"] = float("nan")
    d = decide(bad, PREV) if which == "previous" else decide(PREV, bad)
    assert not d.accept and math.isnan(d.bd_rate_stlpips)
    assert f"the {which} curve's point m@q4 has a non-finite value" in d.reason


def test_too_few_points_or_non_monotonic_is_rejected():
    assert "2 or more" in decide(PREV, PREV[:1]).reason
    bent = [dict(p) for p in PREV]
    bent[1]["stlpips"] = 0.45  # ST-LPIPS rising with rate
    d = decide(PREV, bent)
    assert not d.accept and "new curve: not monotonic" in d.reason


def test_history_entry_holds_the_run_and_no_absolute_paths(tmp_path):
    manifest = tmp_path / "manifest.json"
    manifest.write_bytes(b'{"items": [1, 2]}')
    d = decide(PREV, scaled(PREV, [0.9] * 4))
    e = history_entry(device="NVIDIA H200", device_seconds=431.26, steps=1200, step_start=2535, step_end=3735,
                      stage="joint", manifest_sha256=file_sha256(manifest), manifest=str(manifest),
                      test_data=str(ROOT / "data" / "offline" / "test"), sequences=["bikes_4", "carphone"],
                      previous_curve=PREV, new_curve=scaled(PREV, [0.9] * 4), decision=d, train_seconds=300)
    assert e["device"] == "NVIDIA H200" and e["device_seconds"] == 431.3 and e["steps"] == 1200
    assert e["global_step"] == [2535, 3735] and e["stage"] == "joint" and e["accepted"] is True
    assert e["data_manifest_sha256"] == hashlib.sha256(b'{"items": [1, 2]}').hexdigest()
    assert e["test_split"]["previous"][0] == {"quality": 0.0, "bpp": 0.02, "psnr": 22.0, "stlpips": 0.4}
    assert e["test_split"]["bd_rate_stlpips_pct"] == pytest.approx(-10.0, abs=1e-4)
    assert no_absolute_paths(e), e
    if Path.cwd() == ROOT:
        assert e["test_split"]["data"] == "data/offline/test"
    assert json.loads(json.dumps(e, allow_nan=False)) == e
    rejected = history_entry(
        device="cpu",
        device_seconds=1,
        steps=0,
        step_start=5,
        step_end=5,
        stage="joint",
        manifest_sha256=None,
        manifest="",
        test_data="",
        sequences=[],
        previous_curve=PREV,
        new_curve=[],
        decision=Decision(False, "why", float("nan")),
    )
    assert rejected["accepted"] is False and rejected["test_split"]["bd_rate_stlpips_pct"] is None


def test_portable_path():
    assert portable_path("/somewhere/else/last.ckpt", "/work") == "last.ckpt"
    assert portable_path("/work/data/x.y4m", "/work") == "data/x.y4m"
    assert portable_path("runs/a.ckpt", "/work") == "runs/a.ckpt"


@pytest.fixture()
def models(tmp_path) -> Path:
    """A copy of the shipped entry in a temporary models folder (the committed files are never written)."""
    folder = tmp_path / "models"
    folder.mkdir()
    for ext in ("json", "safetensors"):
        shutil.copyfile(packaged_dir() / f"{NAME}.{ext}", folder / f"{NAME}.{ext}")
    return folder


def staged_copy(models: Path, tmp_path: Path) -> Path:
    """An export that differs from the shipped one in one weight, with a matching record."""
    from safetensors.torch import load_file, save_file

    staged = tmp_path / "staged"
    staged.mkdir()
    state = load_file(str(models / f"{NAME}.safetensors"))
    key = next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 8)
    state[key] = state[key].clone()
    state[key].view(-1)[0] += 1
    save_file(state, str(staged / f"{NAME}.safetensors"), metadata={"name": NAME})
    rec = json.loads((models / f"{NAME}.json").read_text())
    rec["sha256"] = file_sha256(staged / f"{NAME}.safetensors")
    rec["training"]["global_step"] = 2600
    rec["training"]["source_checkpoint"] = str(tmp_path / "run" / "final.ckpt")
    (staged / f"{NAME}.json").write_text(json.dumps(rec))
    return staged


def test_reject_keeps_the_weights_and_appends_the_history(models, tmp_path):
    before = (models / f"{NAME}.safetensors").read_bytes()
    sha = file_sha256(models / f"{NAME}.safetensors")
    staged = staged_copy(models, tmp_path)
    for n in (1, 2):
        commit(Decision(False, "worse", 3.0), {"run": n, "accepted": False}, NAME, models, staged, sha)
    assert (models / f"{NAME}.safetensors").read_bytes() == before
    rec = json.loads((models / f"{NAME}.json").read_text())
    assert [h.get("run") for h in rec["history"]][RUNS0:] == [1, 2]
    assert rec["training"]["global_step"] == STEP0
    assert no_absolute_paths(rec["training"]) and not os.path.isabs(rec["curve_source"])
    assert entry_in(models, NAME).record["sha256"] == sha  # still loads, checksum intact
    assert sorted(p.name for p in models.iterdir()) == [f"{NAME}.json", f"{NAME}.safetensors"]


def test_accept_replaces_weights_and_record_together(models, tmp_path):
    sha = file_sha256(models / f"{NAME}.safetensors")
    commit(Decision(False, "worse", 3.0), {"run": 1}, NAME, models, None, sha)
    staged = staged_copy(models, tmp_path)
    commit(Decision(True, "better", -4.0), {"run": 2, "accepted": True}, NAME, models, staged, sha)
    assert (models / f"{NAME}.safetensors").read_bytes() == (staged / f"{NAME}.safetensors").read_bytes()
    entry = entry_in(models, NAME)  # the new record's checksum matches the new weights
    assert entry.record["training"]["global_step"] == 2600
    assert [h.get("run") for h in entry.record["history"]][RUNS0:] == [1, 2]
    assert entry.record["training"]["source_checkpoint"] == "final.ckpt"


def test_accept_refuses_a_staged_export_that_does_not_match_its_record(models, tmp_path):
    sha = file_sha256(models / f"{NAME}.safetensors")
    before = {p.name: p.read_bytes() for p in models.iterdir()}
    staged = staged_copy(models, tmp_path)
    (staged / f"{NAME}.safetensors").write_bytes((models / f"{NAME}.safetensors").read_bytes())
    with pytest.raises(WeightsError, match="does not match its record"):
        commit(Decision(True, "better", -4.0), {"run": 1}, NAME, models, staged, sha)
    with pytest.raises(WeightsError, match="changed while this run trained"):
        commit(Decision(True, "better", -4.0), {"run": 1}, NAME, models, staged, "0" * 64)
    assert {p.name: p.read_bytes() for p in models.iterdir()} == before


def load_script():
    spec = importlib.util.spec_from_file_location("campaign_script", ROOT / "scripts" / "campaign.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_script_names_a_missing_entry_in_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    rc = load_script().main(["--models-dir", str(tmp_path / "empty"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: no zoo entry 'vvc-lean-vr' in ")


def record_config_at_2535():
    """The shipped record's config with the stage list it had at step 2535."""
    from vvc_lightning.configuration.config import from_container

    return from_container({**SHIPPED["config"], "stages": STAGES_2535})


def test_continue_stage_restarts_the_last_stage_at_the_recorded_step():
    cfg = record_config_at_2535()
    script = load_script()
    assert script.continue_stage(cfg, 2535, None) == ["stages.2.start_step=2535", "stages.2.lr=0.0002"]
    assert script.continue_stage(cfg, 600, 1e-4) == ["stages.1.lr=0.0001"]  # mid-schedule: stages stay


def test_switch_stage_keeps_the_begun_stages_and_starts_the_named_one_at_the_recorded_step():
    from vvc_lightning.configuration.config import apply_overrides
    from vvc_lightning.errors import ConfigError

    cfg = record_config_at_2535()
    script = load_script()
    parts = ["backbone.decoder", "codec.g_s"]
    new = apply_overrides(cfg.copy(), script.switch_stage(cfg, 2535, "decoder", parts, 2e-4))
    assert [(s.name, s.start_step) for s in new.stages] == [("vae", 0), ("codec", 458), ("joint", 1068),
                                                            ("decoder", 2535)]
    assert list(new.stages[3].train) == parts and new.stages[3].loss == "rd" and new.stages[3].lr == 2e-4
    # after a decoder run, the device campaign goes back to the joint stage (its record's definition)
    back = apply_overrides(new.copy(), script.switch_stage(new, 3000, "joint", None, None))
    assert [(s.name, s.start_step) for s in back.stages][-2:] == [("decoder", 2535), ("joint", 3000)]
    assert list(back.stages[-1].train) == ["backbone", "codec"] and back.stages[-1].lr == 2e-4
    # JSON spells 5e-05 without a dot, which once reached the config as text
    slow = apply_overrides(cfg.copy(), script.switch_stage(cfg, 2535, "joint", None, 5e-5))
    assert slow.stages[-1].lr == 5e-5 and [s.name for s in slow.stages] == ["vae", "codec", "joint"]
    after = apply_overrides(slow.copy(), script.switch_stage(slow, 2600, "decoder", parts, 3e-5))
    assert after.stages[2].lr == 5e-5 and after.stages[3].lr == 3e-5
    # the stage in force and last: the same as continue_stage
    assert script.switch_stage(cfg, 2535, "joint", None, None) == script.continue_stage(cfg, 2535, None)
    with pytest.raises(ConfigError, match="no stage named 'decoder' .*vae, codec, joint.*--train"):
        script.switch_stage(cfg, 2535, "decoder", None, None)


DECODER = ["--config", str(ROOT / "configs" / "cpu_campaign.yaml"), "--stage", "decoder", "--train",
           "backbone.decoder,codec.g_s,codec.gain.y_inv"]


@pytest.mark.slow
@pytest.mark.parametrize(("extra", "stage"), [([], "joint"), (DECODER, "decoder")], ids=["joint", "decoder"])
def test_campaign_end_to_end_on_the_quickstart_clips(models, tmp_path, extra, stage):
    """The whole script on the CPU: previous curve, 2 steps, export, new curve, decision, record written;
    also the CPU recipe's decoder stage (scripts/cpu_train.sh STAGE=decoder)."""
    assets = ROOT / "vvc_lightning" / "assets"
    shipped = {p.name: p.read_bytes() for p in packaged_dir().iterdir()}
    before = (models / f"{NAME}.safetensors").read_bytes()
    manifest = tmp_path / "manifest.json"
    manifest.write_text('{"items": []}')
    clip, test = assets / "quickstart_train.mp4", assets / "quickstart_test.mp4"
    cmd = [sys.executable, str(ROOT / "scripts" / "campaign.py"), "--smoke", "--steps", "2", "--models-dir",
           str(models), "--out", str(tmp_path / "out"), "--manifest", str(manifest), "--test-data", str(test),
           "--qualities", "0,7", "--max-frames", "9", *extra, f"run_dir={tmp_path / 'run'}",
           "data.name=folder",
           f"data.train_dir={clip}", f"data.val_dir={clip}", f"data.test_dir={test}", "data.crop_size=64",
           "data.batch_size=2", "data.num_workers=0", "data.epoch_length=8", "trainer.limit_val_batches=0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    last = [ln for ln in res.stdout.splitlines() if ln.startswith("campaign: ")]
    assert len(last) == 1, res.stdout[-3000:]
    rec = json.loads((models / f"{NAME}.json").read_text())
    assert len(rec["history"]) == RUNS0 + 1
    entry = rec["history"][-1]
    assert entry["steps"] == 2 and entry["global_step"] == [STEP0, STEP0 + 2] and entry["stage"] == stage
    assert entry["data_manifest_sha256"] == file_sha256(manifest)
    assert [p["quality"] for p in entry["test_split"]["new"]] == [0.0, 7.0]
    assert no_absolute_paths(rec["history"]) and no_absolute_paths(rec["training"])
    accepted = last[0].startswith("campaign: accepted: ")
    assert entry["accepted"] is accepted and (
        entry["test_split"]["bd_rate_stlpips_pct"] is not None or not accepted
    )
    assert ((models / f"{NAME}.safetensors").read_bytes() == before) is not accepted
    assert entry_in(models, NAME).record["history"][-1] == entry
    assert (tmp_path / "out" / "models" / f"{NAME}.json").read_bytes() == (
        models / f"{NAME}.json"
    ).read_bytes()
    assert {
        p.name: p.read_bytes() for p in packaged_dir().iterdir()
    } == shipped  # the committed files untouched
