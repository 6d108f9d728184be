"""Hostile configs: values in range, interpolations type-checked, bounded YAML, Lightning's
trainer.default_root_dir accepted as the run folder."""

from __future__ import annotations

import time

import pytest

from vvc_lightning.configuration.config import load_config
from vvc_lightning.errors import ConfigError


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.gop=70001", "model.gop must be 1 + 4k frames (5, 9, 13, 17, ...) and at most 257, got 70001"),
        ("optim.lr=.nan", "config key 'optim.lr' must be a finite number above 0"),
        ("optim.lr=.inf", "config key 'optim.lr' must be a finite number above 0"),
        ("optim.aux_lr=0", "config key 'optim.aux_lr' must be a finite number above 0"),
        ("model.loss.lmbda=-1", "config key 'model.loss.lmbda' must be a finite number above 0"),
        ("model.loss.alpha=-0.5", "config key 'model.loss.alpha' must be a finite number >= 0"),
        ("trainer.max_steps=-5", "config key 'trainer.max_steps' must be a whole number >= 1 (or -1: no "
                                 "limit)"),
        ("trainer.precision=64-evil", "config key 'trainer.precision' must be one of"),
        ("trainer.max_steps=${oc.env:HOME}", "config key 'trainer.max_steps' must be an integer"),
        ("stages.0.lr=-1e-4", "config key 'stages.0.lr' must be a finite number above 0"),
        ("model.loss.lmbda_range=[0.5,0.1]", "model.loss.lmbda_range' must be [lo, hi] with 0 < lo < hi"),
        ("checkpoint.every_n_train_steps=0", "config key 'checkpoint.every_n_train_steps' must be"),
        ("trainer.accelerator=banana", "config key 'trainer.accelerator' must be one of auto, gpu, cpu"),
        ("trainer.strategy=banana", "config key 'trainer.strategy' must be one of auto, ddp,"),
        ("optim.decay=banana", "config key 'optim.decay' must be one of constant, cosine, got 'banana'"),
        ("model.loss.lpips_net=vgg16", "config key 'model.loss.lpips_net' must be one of alex, vgg"),
        ("optim.betas=[2,3]", "'optim.betas' must be two numbers in [0, 1) (e.g. [0.9, 0.999]), got [2, 3]"),
        ("optim.betas=0.9", "config key 'optim.betas' must be a list (like [0.9, 0.999]), got 0.9"),
        ("model=1", "config key 'model' must be a mapping of its keys (such as gop: 9), got 1 (override"),
        ("stages={a: 1}", "config key 'stages' must be a list (like [{'name': 'vae'"),
        ("trainer=[1,2]", "'trainer' must be a mapping of its keys (such as max_steps: 100000), got [1, 2]"),
        ("model.loss=null", "'model.loss' must be a mapping of its keys (such as lmbda: 0.1), got null"),
        ("trainer.accumulate_grad_batches=0", "'trainer.accumulate_grad_batches' must be a whole number"),
        ("trainer.check_val_every_n_epoch=0", "'trainer.check_val_every_n_epoch' must be a whole number"),
        ("trainer.num_nodes=0", "config key 'trainer.num_nodes' must be a whole number >= 1, got 0"),
        ("seed=-1", "config key 'seed' must be a whole number from 0 to 4294967295, got -1"),
        ("model.codec.context_hidden=-1", "'model.codec.context_hidden' must be a whole number >= 1"),
        ("model.codec.groups=[0,16]", "'model.codec.groups' must be a list of channel counts >= 1"),
        ("test.metrics=[psnr,banana]", "config key 'test.metrics': unknown metric 'banana'. Known metrics: "),
        ("trainer.num_sanity_val_steps=-5", "'trainer.num_sanity_val_steps' must be a whole number >= 0"),
    ],
)
def test_out_of_range_values_are_one_config_error(override, message):
    with pytest.raises(ConfigError) as err:
        load_config(["quickstart.yaml"], [override])
    assert message in str(err.value) and len(str(err.value).splitlines()) == 1


def test_an_interpolation_is_resolved_and_type_checked_like_any_value(monkeypatch):
    monkeypatch.setenv("VVC_TEST_STEPS", "7")
    assert (
        load_config(["quickstart.yaml"], ["trainer.max_steps=${oc.env:VVC_TEST_STEPS}"]).trainer.max_steps
        == 7
    )
    monkeypatch.setenv("VVC_TEST_STEPS", "seven")
    with pytest.raises(ConfigError, match="'trainer.max_steps' must be an integer .* got 'seven'"):
        load_config(["quickstart.yaml"], ["trainer.max_steps=${oc.env:VVC_TEST_STEPS}"])


def _billion_laughs() -> str:
    parts = ["&a0 [1,1,1,1,1,1,1,1,1,1]"]
    parts += [f"&a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    return "[" + ",".join(parts) + "]"  # 10^9 values once the aliases are expanded


@pytest.mark.timeout(60)
def test_a_billion_laughs_override_fails_at_once():
    start = time.monotonic()
    with pytest.raises(ConfigError, match="override 'data.epoch_length' expands to more than 100000 values"):
        load_config(["quickstart.yaml"], ["data.epoch_length=" + _billion_laughs()])
    assert time.monotonic() - start < 20


@pytest.mark.timeout(60)
def test_a_billion_laughs_config_file_fails_at_once(tmp_path):
    bad = tmp_path / "laughs.yaml"
    bad.write_text("data:\n  epoch_length: " + _billion_laughs() + "\n")
    with pytest.raises(ConfigError, match="laughs.yaml' expands to more than"):
        load_config(["quickstart.yaml", str(bad)])


def test_trainer_default_root_dir_is_the_run_folder(tmp_path):
    cfg = load_config(["quickstart.yaml"], [f"trainer.default_root_dir={tmp_path / 'r1'}"])
    assert cfg.run_dir == str(tmp_path / "r1") and "default_root_dir" not in cfg.trainer
    own = tmp_path / "lightning.yaml"
    own.write_text(f"trainer:\n  default_root_dir: {tmp_path / 'r2'}\n")
    cfg = load_config(["quickstart.yaml", str(own)])
    assert cfg.run_dir == str(tmp_path / "r2") and "default_root_dir" not in cfg.trainer


def test_two_different_run_folders_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="name two run folders; give one of them"):
        load_config(["quickstart.yaml"], ["run_dir=a", "trainer.default_root_dir=b"])
    both = tmp_path / "both.yaml"
    both.write_text("run_dir: a\ntrainer:\n  default_root_dir: b\n")
    with pytest.raises(ConfigError, match="two run folders"):
        load_config([str(both)])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model: null\n", "'model' must be a mapping of its keys (such as gop: 9), got null (config"),
        ("stages: {a: 1}\n", "config key 'stages' must be a list"),
        ("trainer: [1, 2]\n", "config key 'trainer' must be a mapping"),
        ("optim: {betas: [2, 3]}\n", "config key 'optim.betas' must be two numbers in [0, 1)"),
        ("- model\n- data\n", "must be a mapping of config keys (model:, data:, trainer:, ...), got a list"),
        ("7\n", "must be a mapping of config keys (model:, data:, trainer:, ...), got the single value 7"),
    ],
)
def test_a_config_file_of_the_wrong_shape_is_one_config_error(tmp_path, text, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(["quickstart_scratch.yaml", str(bad)])
    assert message in str(err.value) and len(str(err.value).splitlines()) == 1


def test_lightning_names_and_betas_in_range_are_accepted():
    cfg = load_config(["quickstart_scratch.yaml"], ["trainer.strategy=DDP", "optim.betas=[0.5, 0.99]",
                                                    "trainer.accelerator=cpu", "optim.decay=cosine"])
    assert cfg.trainer.strategy == "DDP" and list(cfg.optim.betas) == [0.5, 0.99]


_VARIABLE_RATE = ["model.codec.qualities=8", "model.loss.lmbda_range=[0.01,1.0]"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["test.qualities=[1]"], "'test.qualities' is for a variable-rate model, but model.codec.qualities"),
        ([*_VARIABLE_RATE, "test.qualities=[99]"], "'test.qualities' must be a list of numbers in [0, 7]"),
        ([*_VARIABLE_RATE, "test.qualities=[-1]"], "'test.qualities' must be a list of numbers in [0, 7]"),
        ([*_VARIABLE_RATE, "test.qualities=[.nan]"], "'test.qualities' must be a list of numbers in [0, 7]"),
        ([*_VARIABLE_RATE, "test.qualities=3"], "'test.qualities' must be a list of numbers in [0, 7]"),
    ],
)
def test_test_qualities_outside_the_models_range_are_refused_at_fit(overrides, message):
    with pytest.raises(ConfigError) as err:
        load_config(["quickstart_scratch.yaml"], overrides)
    assert message in str(err.value) and len(str(err.value).splitlines()) == 1


def test_test_qualities_in_range_pass_and_a_stored_config_still_loads():
    from vvc_lightning.configuration.config import from_container, to_yaml

    cfg = load_config(["quickstart_scratch.yaml"], [*_VARIABLE_RATE, "test.qualities=[0, 3.5, 7]"])
    assert list(cfg.test.qualities) == [0, 3.5, 7]
    import yaml

    stored = yaml.safe_load(to_yaml(cfg))
    stored["test"]["qualities"] = [99]  # written before fit checked it: the model still loads
    assert list(from_container(stored).test.qualities) == [99]


def test_test_qualities_are_checked_against_the_model_init_takes_over():
    from vvc_lightning.training.warm_start import prepare_fit

    cfg = load_config(["quickstart.yaml"], ["test.qualities=[99]"])  # model.init: vvc-lean-vr, 8 qualities
    with pytest.raises(ConfigError, match=r"'test.qualities' must be a list of numbers in \[0, 7\]"):
        prepare_fit(cfg, None)


@pytest.mark.parametrize("strategy", ["fsdp", "xla", "single_xla"])
def test_a_strategy_lightning_cannot_build_here_is_one_config_error(tmp_path, strategy):
    from vvc_lightning.training.trainer import build_trainer

    cfg = load_config(["quickstart_scratch.yaml"], [f"trainer.strategy={strategy}", "trainer.accelerator=cpu",
                                                    f"run_dir={tmp_path}"])
    with pytest.raises(ConfigError) as err:
        build_trainer(cfg)
    assert "lightning's Trainer refuses the trainer.* settings: " in str(err.value)
    assert len(str(err.value).splitlines()) == 1
