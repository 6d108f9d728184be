"""Lightning's habits: loggers and callbacks from the config, --print-config, resume into the same log
version, `test` results kept in the run folder, each command's own usage on a parse error."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import lightning.pytorch as pl
import pytest
import yaml

from tests.conftest import THREE_STAGES_FAST, TINY_OVERRIDES
from vvc_lightning.cli.main import main

FAST = [*TINY_OVERRIDES, *THREE_STAGES_FAST, "trainer.log_every_n_steps=1",
        "checkpoint.every_n_train_steps=2"]


class MarkerCallback(pl.Callback):
    """A callback a config names by class path: writes `path` with the steps it saw at the end of fit."""

    def __init__(self, path: str, greeting: str = "hello") -> None:
        self.path, self.greeting = Path(path), greeting

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.path.write_text(f"{self.greeting} {trainer.global_step}")


@pytest.fixture(scope="module")
def resumed_run(tmp_path_factory) -> Path:
    """2 steps with TensorBoard + CSV and two callbacks from a YAML file, then resumed to 4 steps."""
    run = tmp_path_factory.mktemp("habits")
    config = run.parent / f"{run.name}.yaml"
    config.write_text(yaml.safe_dump({"trainer": {
        "logger": ["csv", "tensorboard"],
        "callbacks": [
            {"class_path": "LearningRateMonitor", "init_args": {"logging_interval": "step"}},
            {"class_path": f"{__name__}.MarkerCallback", "init_args": {"path": str(run / "marker.txt")}},
        ],
    }}))
    common = ["fit", "--config", "quickstart_scratch.yaml", "--config", str(config), f"run_dir={run}", *FAST]
    assert main([*common, "trainer.max_steps=2"]) == 0
    assert (run / "marker.txt").read_text() == "hello 2"
    assert main([*common, "--ckpt", str(run / "last.ckpt"), "trainer.max_steps=4"]) == 0
    return run


def test_fit_logs_to_tensorboard_and_runs_callbacks_given_in_yaml(resumed_run):
    version = resumed_run / "logs" / "version_0"
    assert len(list(version.glob("events.out.tfevents.*"))) == 2  # one per fit, in the run's own version
    assert (resumed_run / "marker.txt").read_text() == "hello 4"
    with open(version / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert any(r.get("lr-AdamW/backbone") for r in rows)  # LearningRateMonitor logged the stage lrs


def test_a_resumed_run_appends_to_its_own_log_version(resumed_run):
    assert [p.name for p in (resumed_run / "logs").iterdir()] == ["version_0"]
    with open(resumed_run / "logs" / "version_0" / "metrics.csv", newline="") as f:
        steps = [int(r["step"]) for r in csv.DictReader(f) if r.get("train/loss")]
    assert steps == [0, 1, 2, 3]


def test_print_config_output_and_the_runs_hparams_are_taken_back_by_fit(resumed_run, tmp_path, capsys):
    args = ["--config", "quickstart_scratch.yaml", f"run_dir={resumed_run}", *FAST, "trainer.max_steps=4",
            "trainer.logger=[csv, tensorboard]"]
    assert main(["fit", *args, "--print-config"]) == 0
    printed = capsys.readouterr().out
    assert yaml.safe_load(printed)["trainer"]["logger"] == ["csv", "tensorboard"]
    again = tmp_path / "printed.yaml"
    again.write_text(printed)
    assert main(["fit", "--config", str(again), "--print_config"]) == 0
    assert capsys.readouterr().out == printed
    hparams = resumed_run / "logs" / "version_0" / "hparams.yaml"
    assert main(["fit", "--config", str(hparams), "--print-config"]) == 0
    stored = yaml.safe_load(hparams.read_text())["config"]
    assert yaml.safe_load(capsys.readouterr().out) == stored


def test_test_writes_its_results_per_sequence_into_the_run_folder(tiny_ckpt, capsys):
    assert main(["test", "--ckpt", str(tiny_ckpt), "test.metrics=[psnr]", "data.test_max_frames=9"]) == 0
    folder = max((tiny_ckpt.parent / "test").glob("version_*"))
    with open(folder / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["sequence"] for r in rows] == ["quickstart_test"] and float(rows[0]["bpp"]) > 0
    report = json.loads((folder / "results.json").read_text())
    assert report["sequences"][0]["psnr"] == pytest.approx(float(rows[0]["psnr"]))
    assert report["mean"]["test/bpp"] == pytest.approx(float(rows[0]["bpp"]))
    assert "test.metrics" not in (folder / "config.yaml").read_text()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.callbacks=[{class_path: nowhere.Thing}]", "trainer.callbacks.0.class_path 'nowhere.Thing' "
                                                            "cannot be imported"),
        ("trainer.callbacks=[{class_path: EarlyStopping, init_args: {monitr: x}}]", "'trainer.callbacks.0."
                                                                                    "init_args.monitr'"),
        ("trainer.callbacks=[{class_path: LearningRateMonitor, args: {}}]", "class_path: ..., init_args"),
        ("trainer.logger={class_path: torch.nn.Linear}", "is not a Lightning Logger class"),
    ],
)
def test_bad_loggers_and_callbacks_are_one_line_errors(override, message, tmp_path, capsys):
    assert main(["fit", "--config", "quickstart_scratch.yaml", f"run_dir={tmp_path}", *FAST, override]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="wandb is installed")
def test_a_logger_whose_package_is_missing_names_the_extra(tmp_path, capsys):
    assert main(["fit", "--config", "quickstart_scratch.yaml", f"run_dir={tmp_path}", *FAST,
                 "trainer.logger=wandb"]) == 2
    assert "pip install 'vvc-lightning[logging]'" in capsys.readouterr().err


def test_parse_errors_print_the_commands_usage(capsys):
    with pytest.raises(SystemExit):
        main(["test", "--config", "x.yaml", "--ckpt", "last.ckpt"])
    err = capsys.readouterr().err
    assert "usage: python -m vvc_lightning test" in err and "unrecognized arguments: --config" in err
