"""bench_train_throughput.py's CPU smoke path: before and after in one run, every field of the JSON, the
device bank's clips, and the same loss on the same batch for every fp32 configuration."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

from ..conftest import TINY_OVERRIDES, one_thread

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_train_throughput.py"
PHASES = {"data", "forward", "backward", "optimizer", "total"}


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_train_throughput", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def smoke_data(tmp_path_factory, bench):
    from throughput_env import write_smoke_data  # on sys.path once the benchmark is loaded

    return write_smoke_data(tmp_path_factory.mktemp("smoke_data"))


def test_bank_of_the_smoke_data_gives_seeded_clips_of_the_recipe(bench, smoke_data):
    from vvc_lightning.datamodules.device_clips import ClipBank
    from vvc_lightning.datamodules.motion import Motion
    from vvc_lightning.video.video_sources import ClipSpec

    bank = ClipBank.build([str(smoke_data / "shards" / "train" / "shard-000000.tar")],
                          sorted((smoke_data / "stills").iterdir()), ClipSpec(9, 3, 32), Motion(), 0.6, "cpu")
    assert (len(bank.videos), len(bank.photos)) == (2, 2)
    x = bank.batch(5, torch.Generator().manual_seed(0))
    assert x.shape == (5, 3, 9, 32, 32) and x.dtype == torch.float32
    assert -1 <= float(x.min()) and float(x.max()) <= 1
    assert torch.equal(x, bank.batch(5, torch.Generator().manual_seed(0)))


def test_smoke_run_writes_before_and_after_with_every_field(bench, smoke_data, tmp_path):
    out = tmp_path / "smoke.json"
    args = ["--smoke", "--data", str(smoke_data), "-o", str(out), "--flags", "fused", "--batches", "2",
            "--steps", "1", "--warmup", "0", "--no-profile"]
    for o in TINY_OVERRIDES:
        args += ["--override", o]
    with one_thread():
        assert bench.main(args) == 0
    r = json.loads(out.read_text())
    assert r["smoke"] is True and "NOT a measurement" in r["note"]
    for key in ("device", "torch", "torch_threads", "load_average_start", "load_average_end", "cpu_cores"):
        assert key in r["env"], key
    assert r["env"]["device"] == "cpu" and r["peak_chip"] is None and "unknown" in r["peaks_tflops"]
    assert r["recipe"]["frames"] == 9 and r["recipe"]["crop"] == 32 and r["macs_per_frame_backbone"] > 0
    assert r["bank"]["videos"] == 2 and r["bank"]["photos"] == 2
    names = [row["name"] for row in r["runs"]]
    assert names[:3] == ["before", "bank", "bank+fused"] and len(names) == 4, (names, r["errors"])
    before = r["runs"][0]
    for row in r["runs"]:
        assert row["clips_per_s"] > 0 and set(row["s_per_step_phased"]) == PHASES
        assert all(v >= 0 for v in row["s_per_step_phased"].values())
        assert row["achieved_tflops"] > 0 and row["fraction_of_peak"] is None and row["peak_kind"] == "fp32"
        assert math.isfinite(row["loss_fixed_batch"]) and row["speedup_vs_before"] > 0
        # fp32, the same initial weights, batch and codec noise: the data path must not change the loss
        assert row["loss_rel_diff_vs_before"] < 1e-5, row
    assert before["path"] == "before" and before["speedup_vs_before"] == pytest.approx(1.0)
    assert r["best"]["name"] in names and float(r["flops_per_step"]["2"]) > 0


def test_profile_names_where_a_step_spends_its_time(bench, smoke_data):
    from vvc_lightning.configuration.config import load_config
    from vvc_lightning.datamodules.device_clips import ClipBank, DeviceClipLoader
    from vvc_lightning.datamodules.motion import Motion
    from vvc_lightning.video.video_sources import ClipSpec

    cfg = load_config(["zoo_lean_vr.yaml"], TINY_OVERRIDES)
    bank = ClipBank.build(
        [], sorted((smoke_data / "stills").iterdir()), ClipSpec(9, 2, 32), Motion(), 0.0, "cpu"
    )
    with one_thread():
        step = bench.Step(cfg, torch.device("cpu"), "joint", set())
        ops = bench.top_ops(step, iter(DeviceClipLoader(bank, 2, 1)), steps=1, top=10)
    assert len(ops) == 10 and all(o["ms_per_step"] >= 0 and 0 <= o["share"] <= 1 for o in ops)
    assert ops == sorted(ops, key=lambda o: -o["ms_per_step"])
    assert any("conv" in o["op"] for o in ops)  # convolutions are among the dearest operators


def test_unknown_option_is_one_clear_line(bench, capsys, tmp_path):
    assert bench.main(["--flags", "warp", "-o", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --flags: unknown option warp") and "\n" not in err
    assert not (tmp_path / "x.json").exists()
