"""The README's plugin example (examples/plugin): its entry point names a backbone that meets the contract."""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path

import torch

from vvc_lightning.backbones.base import VideoBackbone

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "examples" / "plugin"


def test_the_entry_point_names_a_backbone_that_round_trips_a_gop():
    project = tomllib.loads((PLUGIN / "pyproject.toml").read_text())["project"]
    target = project["entry-points"]["vvc_lightning.backbones"]["my_vae"]
    module, cls_name = target.split(":")
    spec = importlib.util.spec_from_file_location(module, PLUGIN / module / "__init__.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    backbone = getattr(mod, cls_name)(latent_channels=16)
    assert isinstance(backbone, VideoBackbone)
    x = torch.rand(2, 3, 9, 32, 64) * 2 - 1
    latent = backbone.encode(x)
    assert latent.shape == (2, 16, *backbone.latent_shape(9, 32, 64)[1:])
    assert backbone.decode(latent).shape == x.shape


def test_the_readme_trains_it_from_scratch():
    text = (ROOT / "README.md").read_text()
    assert "pip install -e examples/plugin" in text
    line = next(ln for ln in text.splitlines() if "model.backbone.name=my_vae" in ln)
    assert "--config quickstart_scratch.yaml" in line  # quickstart.yaml's model.init refuses another backbone
