"""Configs: packaged names, paths, repeatable files, overrides, and clear errors."""

from __future__ import annotations

import pytest
import yaml

from vvc_lightning.configuration.config import find_config, load_config, packaged_configs
from vvc_lightning.errors import ConfigError, RegistryError


def test_packaged_configs_are_found_by_bare_name():
    assert {"cv_vae.yaml", "lean_vae.yaml", "quickstart_scratch.yaml"} <= set(packaged_configs())
    assert find_config("cv_vae.yaml").name == "cv_vae.yaml"
    assert find_config("lean_vae").name == "lean_vae.yaml"


def test_a_path_wins_over_a_packaged_name(tmp_path, monkeypatch):
    (tmp_path / "cv_vae.yaml").write_text("seed: 7\n")
    monkeypatch.chdir(tmp_path)
    assert load_config(["quickstart_scratch.yaml", "cv_vae.yaml"]).seed == 7


def test_paper_defaults_in_cv_vae_and_lean_vae_configs():
    for name, backbone in (("cv_vae.yaml", "cv_vae_sd21"), ("lean_vae.yaml", "lean_vae_base")):
        cfg = load_config([name])
        assert cfg.model.backbone.name == backbone
        assert cfg.model.gop == 9 and cfg.model.backbone.latent_channels == 128
        assert cfg.model.loss.lmbda == 0.1 and cfg.model.loss.alpha == 1e-3 and cfg.model.loss.beta == 1.0
        assert cfg.optim.lr == 5e-6 and cfg.data.batch_size == 4
        assert cfg.data.frame_stride == 3 and cfg.data.crop_size == 256 and cfg.data.name == "openvid"
        assert [s.name for s in cfg.stages] == ["vae", "codec", "joint"]


def test_later_configs_and_overrides_win():
    cfg = load_config(
        ["cv_vae.yaml", "quickstart_scratch.yaml"], ["model.loss.lmbda=0.2", "stages.1.start_step=70"]
    )
    assert (
        cfg.model.backbone.name == "lean_vae_lite"
        and cfg.model.backbone.width == 64
        and cfg.model.loss.lmbda == 0.2
        and cfg.stages[1].start_step == 70
    )


def test_a_number_spelt_without_a_dot_is_a_number_inside_an_override_list_too():
    stage = "{name: vae, train: [backbone], start_step: 0, lr: 5e-05, loss: vae}"
    cfg = load_config(["quickstart_scratch.yaml"], ["optim.lr=5e-05", f"stages=[{stage}]"])
    assert cfg.optim.lr == 5e-5 and cfg.stages[0].lr == 5e-5  # YAML 1.1 alone reads both as text
    assert cfg.stages[0].name == "vae" and list(cfg.stages[0].train) == ["backbone"]


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.lamda=0.1", "unknown config key 'model.lamda'"),
        ("model.backbone.widht=8", "unknown config key 'model.backbone.widht' (did you mean "
                                   "'model.backbone.width'?)"),
        ("data.crop=64", "unknown config key 'data.crop'"),
        ("trainer.max_step=3", "did you mean 'trainer.max_steps'"),
        ("model.gop=8", "model.gop must be 1 + 4k"),
        ("model.loss.perceptual=vgg", "model.loss.perceptual must be one of"),
        ("stages.1.loss=mse", "stages.1.loss must be 'vae' (eq. 1) or 'rd' (eq. 2)"),
        ("stages.1.start_step=0", "stages must start in increasing order"),
        ("stages.1.start_epoch=3", "exactly one of start_step or start_epoch"),
        ("nonsense", "must look like key.sub=value"),
    ],
)
def test_bad_keys_and_values_fail_with_the_key_named(override, message):
    with pytest.raises(ConfigError) as err:
        load_config(["quickstart_scratch.yaml"], [override])
    assert message in str(err.value)


def test_unknown_backbone_lists_the_known_ones():
    with pytest.raises(RegistryError, match="Known backbones: .*cv_vae.*lean_vae"):
        load_config(["quickstart_scratch.yaml"], ["model.backbone.name=cv-vae"])


def test_missing_config_file_names_the_packaged_ones():
    with pytest.raises(ConfigError, match="not found .*quickstart_scratch.yaml"):
        load_config(["nope.yaml"])


def test_unknown_key_in_a_config_file_names_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  gopp: 9\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'model.gopp' in .*bad.yaml"):
        load_config([str(bad)])


def test_test_codec_takes_the_codec_options_and_names_a_bad_one():
    cfg = load_config(["quickstart.yaml"], ["test.codec.max_memory=1G", "test.codec.batch=2"])
    assert dict(cfg.test.codec) == {"max_memory": "1G", "batch": 2}
    with pytest.raises(ConfigError, match="^config key 'test.codec.batch' must be 1 or more, got 0$"):
        load_config(["quickstart.yaml"], ["test.codec.batch=0"])
    with pytest.raises(
        ConfigError, match="unknown config key 'test.codec.bacth' .*did you mean 'test.codec.batch'"
    ):
        load_config(["quickstart.yaml"], ["test.codec.bacth=2"])
    with pytest.raises(ConfigError, match="^config key 'test.codec' must be a mapping of codec options"):
        load_config(["quickstart.yaml"], ["test.codec=4"])


def test_stored_configs_with_flat_test_codec_keys_still_load():
    from vvc_lightning.configuration.config import from_container, to_yaml

    stored = load_config(["quickstart.yaml"])
    data = yaml.safe_load(to_yaml(stored))
    data["test"].pop("codec")
    data["test"].update(overlap=1, theta=0.25, batch=2, tile=None)
    cfg = from_container(data)
    assert dict(cfg.test.codec) == {"overlap": 1, "theta": 0.25, "batch": 2, "tile": None}
    assert "batch" not in cfg.test and data["test"]["batch"] == 2  # the caller's dict is left as it was
