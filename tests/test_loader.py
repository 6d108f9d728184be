"""`loader.load(spec)`: a `fit` checkpoint, an exported file, a zoo name or a released VAE -> the model."""

from __future__ import annotations

import shutil
import warnings

import pytest
import torch

from tests.backbones.test_pretrained import random_state, write
from vvc_lightning.errors import VVCError
from vvc_lightning.model import CompressionModel
from vvc_lightning.store.loader import load, resolve


def _ready(model: CompressionModel) -> None:
    assert type(model) is CompressionModel and not model.training and model.codec.tables_ready()
    assert not hasattr(model, "stage")  # no training stage restored


def test_a_fit_checkpoint_loads_at_its_step(tiny_ckpt):
    source = resolve(tiny_ckpt)
    assert source.kind == "checkpoint" and source.step == 4 and source.config.model.backbone.width == 8
    model = load(tiny_ckpt)
    _ready(model)
    stored = torch.load(tiny_ckpt, weights_only=True)["state_dict"]
    assert all(torch.equal(v, stored[k]) for k, v in model.state_dict().items())


def test_an_exported_file_loads_checked_against_its_record(tiny_ckpt, tmp_path):
    from vvc_lightning.store.export import export_model

    record = export_model(tiny_ckpt, "tiny", tmp_path / "models")
    weights = record.with_suffix(".safetensors")
    model = load(weights)
    _ready(model)
    assert model.checkpoint_path == str(weights.resolve())
    assert resolve(weights).kind == "exported" and resolve(weights).step == 4
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(weights, alone / "tiny.safetensors")
    with pytest.raises(VVCError) as info:
        load(alone / "tiny.safetensors")
    assert "\n" not in str(info.value) and "no record 'tiny.json' beside it" in str(info.value)


def test_a_zoo_model_loads_by_name_with_or_without_the_prefix():
    bare, prefixed = load("vvc-lean-vr"), load("zoo:vvc-lean-vr")
    _ready(bare)
    assert bare.checkpoint_path == prefixed.checkpoint_path == "zoo:vvc-lean-vr"
    assert bare.identity() == prefixed.identity()


def test_a_released_vae_gives_its_backbone_and_a_seeded_fresh_codec(tmp_path, capsys):
    state = random_state("cvvae_sd21_z4")
    path = write("safetensors", state, tmp_path, "cvvae_sd21_z4")
    source = resolve(path)
    assert source.kind == "released" and source.state is None
    model = load(path)
    _ready(model)
    bb = model.cfg.model.backbone
    assert (bb.name, bb.latent_channels, bb.width) == ("cv_vae_sd21", 4, 32)  # read from the file
    assert torch.equal(
        model.state_dict()["backbone.decoder.conv_out.weight"], state["decoder.conv_out.weight"]
    )
    assert "252 tensors loaded" in capsys.readouterr().out  # through the family's pretrained loader
    assert load(path).identity() == model.identity()  # the same latent codec on every load


@pytest.mark.parametrize(
    "spec", ["no-such-model", "zoo:no-such-model", "missing/file.ckpt", "missing/v.safetensors"]
)
def test_an_unknown_spec_is_one_line(spec):
    with pytest.raises(VVCError) as info:
        load(spec)
    text = str(info.value)
    assert "\n" not in text and spec.removeprefix("zoo:") in text


def test_a_file_that_is_no_model_lists_what_is_accepted(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"conv.weight": torch.zeros(2)}, path)
    with pytest.raises(VVCError) as info:
        load(path)
    text = str(info.value)
    assert "\n" not in text and "`fit`" in text and "zoo:NAME" in text and "released CV-VAE / LeanVAE" in text


def test_deprecated_loader_names_warn_once_and_load(tiny_ckpt):
    from vvc_lightning import deprecation
    from vvc_lightning.store import zoo
    from vvc_lightning.training import checkpoint

    deprecation._WARNED.difference_update(
        {"vvc_lightning.store.zoo.load_any_model", "vvc_lightning.training.checkpoint.load_model"}
    )
    for old in (zoo.load_any_model, checkpoint.load_model):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            first, second = old(tiny_ckpt), old(tiny_ckpt)
        assert [w.category for w in caught] == [FutureWarning]
        assert first.identity() == second.identity()
