"""Registry: names, unknown names, and a real third-party plugin found through its entry point."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

from vvc_lightning.errors import ConfigError, RegistryError, VVCError
from vvc_lightning.registry import BACKBONES, DATAMODULES, Registry

PLUGIN = '''
"""A third-party backbone: pixel-unshuffle + 3D convolutions, temporal stride 4, spatial stride 8."""
import torch
from torch import nn
from vvc_lightning.backbones.base import VideoBackbone


class TinyBackbone(VideoBackbone):
    def __init__(self, latent_channels: int = 16, weights: str | None = None):
        super().__init__()
        self.latent_channels = latent_channels
        self.enc = nn.Conv3d(3 * 64, latent_channels, 1)
        self.dec = nn.Conv3d(latent_channels, 3 * 64 * 4, 1)

    def encode(self, x):
        self.check_input(x)
        b, c, t, h, w = x.shape
        first, rest = x[:, :, :1], x[:, :, 1:]
        if rest.shape[2]:
            rest = rest.reshape(b, c, -1, 4, h, w).mean(3)
        x = torch.cat([first, rest], 2)
        x = nn.functional.pixel_unshuffle(x.transpose(1, 2).reshape(-1, c, h, w), 8)
        x = x.reshape(b, -1, x.shape[1], h // 8, w // 8).transpose(1, 2)
        return self.enc(x)

    def decode(self, z):
        b, _, t, h, w = z.shape
        y = self.dec(z).reshape(b, 4, 3 * 64, t, h, w)
        rest = [y[:, :, :, 1:].permute(0, 2, 3, 1, 4, 5).reshape(b, 3 * 64, -1, h, w)] if t > 1 else []
        frames = [y[:, 0, :, :1], *rest]
        y = torch.cat(frames, 2)
        T = y.shape[2]
        y = nn.functional.pixel_shuffle(y.transpose(1, 2).reshape(-1, 3 * 64, h, w), 8)
        return y.reshape(b, T, 3, h * 8, w * 8).transpose(1, 2)
'''


def make_plugin_distribution(root: Path) -> Path:
    """A real installed distribution: a package plus its .dist-info with an entry point."""
    pkg = root / "tiny_vae_plugin"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent(PLUGIN))
    info = root / "tiny_vae_plugin-0.3.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tiny-vae-plugin\nVersion: 0.3.1\n")
    (info / "entry_points.txt").write_text("[vvc_lightning.backbones]\ntiny = tiny_vae_plugin:TinyBackbone\n")
    (info / "RECORD").write_text("")
    return root


def test_unknown_name_lists_known_names_and_suggests():
    with pytest.raises(RegistryError) as err:
        BACKBONES.get("lean-vae")
    assert "Known backbones: cv_vae, cv_vae_causal, cv_vae_sd21" in str(err.value)
    assert "Did you mean 'lean_vae'" in str(err.value)


def test_builtins_are_registered_with_their_source():
    assert BACKBONES.entry("cv_vae_causal").source == "built-in"
    assert BACKBONES.entry("cv_vae", warn=False).source == "built-in alias of cv_vae_causal"
    assert {"folder", "openvid", "yuv"} <= set(DATAMODULES.names())


def test_two_classes_cannot_take_one_name():
    reg = Registry("thing", "vvc_lightning.test_things")

    @reg.register("a")
    class A:
        pass

    with pytest.raises(RegistryError, match="taken"):

        @reg.register("a")
        class B:
            pass


def test_plugin_backbone_is_listed_and_trains_a_step(tmp_path):
    site = make_plugin_distribution(tmp_path / "site")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    listing = subprocess.run(
        [sys.executable, "-m", "vvc_lightning", "backbones", "--no-macs"],  # MACs: tests/cli/test_main.py
        capture_output=True,
        text=True,
        env=env,
    )
    assert listing.returncode == 0, listing.stderr
    row = next(ln for ln in listing.stdout.splitlines() if ln.startswith("tiny "))
    assert "plugin: tiny-vae-plugin 0.3.1" in row
    run_dir = tmp_path / "run"
    fit = subprocess.run(
        [
            sys.executable, "-m", "vvc_lightning", "fit", "--config", "quickstart_scratch.yaml",
            "model.backbone.name=tiny", "model.backbone.latent_channels=16", "model.loss.perceptual=ms-ssim",
            f"run_dir={run_dir}", "trainer.max_steps=2", "stages.1.start_step=1", "stages.2.start_step=2",
            "data.crop_size=32", "data.batch_size=1", "trainer.limit_val_batches=0",
            "trainer.enable_progress_bar=false",
        ],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert fit.returncode == 0, fit.stderr[-3000:]
    assert (run_dir / "last.ckpt").is_file()
    import torch

    state = torch.load(run_dir / "last.ckpt", weights_only=True)
    assert state["hyper_parameters"]["config"]["model"]["backbone"]["name"] == "tiny"
    assert state["global_step"] == 2


def test_deprecated_aliases_warn_once_and_build_the_same_classes_and_keys(monkeypatch):
    from vvc_lightning import deprecation
    from vvc_lightning.backbones.cv_vae import CVVAE
    from vvc_lightning.backbones.lean_vae import LeanVAE

    monkeypatch.setattr(deprecation, "_WARNED", set())  # a fresh process as far as warnings go
    assert BACKBONES.aliases() == {"cv_vae": "cv_vae_causal", "lean_vae": "lean_vae_lite"}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert BACKBONES.get("cv_vae") is CVVAE and BACKBONES.get("lean_vae") is LeanVAE
        old = BACKBONES.create("lean_vae", width=16, latent_channels=8)
        old_again = BACKBONES.create("lean_vae", width=16, latent_channels=8)
        new = BACKBONES.create("lean_vae_lite", width=16, latent_channels=8)
    messages = [str(w.message) for w in caught if issubclass(w.category, FutureWarning)]
    assert messages == ["backbone 'cv_vae' is deprecated; use 'cv_vae_causal'",
                        "backbone 'lean_vae' is deprecated; use 'lean_vae_lite'"]
    assert list(old.state_dict()) == list(new.state_dict()) and type(old) is type(new) is type(old_again)


def test_canonical_names_and_listings_do_not_warn(monkeypatch):
    from vvc_lightning import deprecation

    monkeypatch.setattr(deprecation, "_WARNED", set())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert BACKBONES.canonical("lean_vae") == "lean_vae_lite"
        assert BACKBONES.canonical("lean_vae_lite") == "lean_vae_lite"
        assert BACKBONES.entry("cv_vae", warn=False).source == "built-in alias of cv_vae_causal"


def test_the_packaged_configs_name_no_deprecated_backbone(monkeypatch):
    from omegaconf import OmegaConf

    from vvc_lightning import deprecation
    from vvc_lightning.configuration.config import (
        find_config,
        load_config,
        packaged_configs,
        packaged_defaults,
    )

    aliases = BACKBONES.aliases()
    assert packaged_defaults().model.backbone.name not in aliases
    for name in packaged_configs():
        assert OmegaConf.select(OmegaConf.load(find_config(name)), "model.backbone.name") not in aliases, name
    monkeypatch.setattr(deprecation, "_WARNED", set())
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        load_config(["quickstart_scratch.yaml"])
        load_config(["zoo_lean_vr.yaml"])


def test_variants_are_presets_of_one_family():
    from vvc_lightning.backbones.cv_vae_official import CVVAEOfficial

    sd21, sd3 = BACKBONES.get("cv_vae_sd21"), BACKBONES.get("cv_vae_sd3")
    assert issubclass(sd21, CVVAEOfficial) and issubclass(sd3, CVVAEOfficial)
    assert sd21.registry_name == "cv_vae_sd21" and sd3.variant_defaults == {"layout": "sd3"}
    assert inspect.signature(sd3).parameters["layout"].default == "sd3"
    assert BACKBONES.create("cv_vae_sd3", width=32, latent_channels=8).layout == "sd3"
    assert BACKBONES.create("cv_vae_sd3", width=32, latent_channels=8, layout="sd21").layout == "sd21"
    with pytest.raises(ConfigError, match="widht"):
        BACKBONES.create("cv_vae_sd21", widht=32)


def test_an_alias_cannot_hide_a_registered_name():
    reg = Registry("thing", "vvc_lightning.test_things")

    @reg.register("a")
    class A:
        pass

    with pytest.raises(RegistryError, match="alias 'a'"):
        reg.register_deprecations({"a": "b"})


def test_model_init_takes_a_current_name_for_the_alias_its_record_names():
    from vvc_lightning.configuration.config import load_config
    from vvc_lightning.store.zoo import get_entry
    from vvc_lightning.training.warm_start import _adopt_architecture

    record = get_entry("vvc-lean-vr").record
    assert record["config"]["model"]["backbone"]["name"] == "lean_vae"  # the shipped record stays as it is
    stored = record["config"]["model"]
    cfg = _adopt_architecture(load_config(["zoo_lean_vr.yaml"]), stored, "zoo:vvc-lean-vr")
    assert cfg.model.backbone.width == 128
    with pytest.raises(VVCError, match="model.backbone.name=lean_vae_base conflicts"):
        _adopt_architecture(load_config(["zoo_lean_vr.yaml"], ["model.backbone.name=lean_vae_base"]), stored,
                            "zoo:vvc-lean-vr")
