"""Backbone and datamodule keys checked against their constructors' annotations; Trainer keys the project
owns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import pytest

from vvc_lightning.cli.main import main
from vvc_lightning.configuration.config import load_config
from vvc_lightning.configuration.types import check_types, conforms, describe
from vvc_lightning.errors import ConfigError


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model.backbone.width=abc"], "config key 'model.backbone.width' must be an integer for backbone "
                                       "'lean_vae_lite', got 'abc'"),
        (["model.backbone.mlp_ratio=fast"], "'model.backbone.mlp_ratio' must be a number"),
        (["model.backbone.gradient_checkpointing=1"], "'model.backbone.gradient_checkpointing' must be true "
                                                      "or false"),
        (["model.backbone.name=cv_vae", "model.backbone.channel_mult=7"],
         "'model.backbone.channel_mult' must be a list of integers for backbone 'cv_vae', got 7"),
        (["data.crop_size=big"], "config key 'data.crop_size' must be an integer or null for datamodule "
                                 "'folder'"),
        (["data.train_dir=3"], "'data.train_dir' must be a string or a list of strings or null"),
        (["data.name=yuv", "data.fps=[25]"], "'data.fps' must be a number or null for datamodule 'yuv'"),
    ],
)
def test_a_wrong_type_names_the_key_and_the_expected_type(overrides, message):
    with pytest.raises(ConfigError) as err:
        load_config(["quickstart_scratch.yaml"], overrides)
    assert message in str(err.value)


def test_right_types_pass_and_a_number_spelled_as_text_becomes_a_float():
    cfg = load_config(
        ["quickstart_scratch.yaml"],
        ["model.backbone.mlp_ratio=2e0", "data.crop_size=null", "data.train_dir=[a, b]"],
    )
    assert cfg.model.backbone.mlp_ratio == 2.0 and isinstance(cfg.model.backbone.mlp_ratio, float)
    assert cfg.data.crop_size is None and list(cfg.data.train_dir) == ["a", "b"]


def test_trainer_default_root_dir_is_run_dir_and_other_dirs_point_to_it():
    assert (
        load_config(["quickstart_scratch.yaml"], ["trainer.default_root_dir=/tmp/elsewhere"]).run_dir
        == "/tmp/elsewhere"
    )
    with pytest.raises(ConfigError, match=r"unknown config key 'trainer.root_dir'.*top-level key run_dir"):
        load_config(["quickstart_scratch.yaml"], ["trainer.root_dir=/tmp/elsewhere"])
    with pytest.raises(ConfigError, match="'trainer.plugins' is set by vvc-lightning"):
        load_config(["quickstart_scratch.yaml"], ["trainer.plugins=[]"])


@pytest.mark.parametrize("override", ["model.backbone.width=abc", "trainer.max_steps=abc"])
def test_the_cli_prints_one_line_and_exits_2(override, tmp_path, capsys):
    assert main(["fit", "--config", "quickstart_scratch.yaml", f"run_dir={tmp_path / 'run'}", override]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: config key") and not (tmp_path / "run").exists()


def test_the_checker_on_annotations_a_config_can_spell():
    assert (
        conforms([1, 2], Sequence[int])
        and not conforms("12", Sequence[int])
        and not conforms([1, "a"], list[int])
    )
    assert conforms((1, "a"), tuple[int, str]) and not conforms((1,), tuple[int, str])
    assert conforms("b", Literal["a", "b"]) and not conforms("c", Literal["a", "b"])
    assert conforms(3, float) and not conforms(True, int) and not conforms(1, bool)
    assert describe(int | None) == "an integer or null" and describe(dict[str, int]) == "a mapping"

    def ctor(
        a: int, b: Literal["x", "y"] = "x", c: dict[str, float] | None = None, r: float = 1.0
    ) -> None: ...

    assert check_types(ctor, {"a": 3, "b": "y", "c": {"k": 1}, "r": "1e-3"}, "it") == {"r": 0.001}
    with pytest.raises(ConfigError, match=r"config key 'a' must be an integer for it, got '3.0'"):
        check_types(ctor, {"a": "3.0"}, "it")
    with pytest.raises(ConfigError, match=r"config key 'p.b' must be one of 'x', 'y' for it, got 'z'"):
        check_types(ctor, {"a": 1, "b": "z"}, "it", "p.")
