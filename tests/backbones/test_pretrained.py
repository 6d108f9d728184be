"""`pretrained=`: random state dicts from the official manifest, written in each released file format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from vvc_lightning.backbones.pretrained import (
    RELEASES,
    Release,
    convert_state_dict,
    detect_release,
    load_pretrained,
    official_to_ours,
    read_state_dict,
    register_release,
)
from vvc_lightning.errors import WeightsError
from vvc_lightning.registry import BACKBONES

MANIFEST = json.loads((Path(__file__).parent / "data" / "official_vae_state_dicts.json").read_text())
PRESET = {"cvvae_sd21_z4": ("cv_vae_sd21", 4), "cvvae_sd3_z16": ("cv_vae_sd3", 16),
          "leanvae_z4": ("lean_vae_base", 4), "leanvae_z16": ("lean_vae_base", 16)}
SUB = {"cvvae_sd21_z4": "vae3d", "cvvae_sd3_z16": "vae3d_sd3"}


def scaled(release: str) -> dict[str, list[int]]:
    """The manifest's shapes; CV-VAE widths divided by 4 (128/256/512 -> 32/64/128) to keep tests small."""
    if release.startswith("leanvae"):
        return MANIFEST[release]
    return {k: [d // 4 if d % 128 == 0 else d for d in s] for k, s in MANIFEST[release].items()}


def build(release: str, c: int | None = None, **kw) -> torch.nn.Module:
    name, z = PRESET[release]
    extra = {} if release.startswith("leanvae") else {"width": 32}
    return BACKBONES.create(name, latent_channels=c or z, **extra, **kw).eval()


def random_state(release: str, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(s, generator=g) * 0.1 for k, s in scaled(release).items()}


def write(fmt: str, state: dict[str, torch.Tensor], tmp: Path, release: str) -> Path:
    """`state` in one released format; returns what `pretrained=` is set to."""
    if fmt in ("diffusers_safetensors", "diffusers_bin", "hub_root"):
        root = tmp / "CV-VAE"
        folder = root / SUB[release] if fmt == "hub_root" else root
        folder.mkdir(parents=True)
        (folder / "config.json").write_text(json.dumps({"_class_name": "CVVAEModel"}))
        if fmt == "diffusers_bin":
            torch.save(state, folder / "diffusion_pytorch_model.bin")
        else:
            save_file(state, str(folder / "diffusion_pytorch_model.safetensors"))
        return root
    if fmt == "safetensors":
        save_file(state, str(tmp / "vae.safetensors"))
        return tmp / "vae.safetensors"
    if fmt == "pt":
        torch.save(state, tmp / "vae.pt")
        return tmp / "vae.pt"
    if fmt == "ckpt":  # as released on the hub: LeanVAE keys under state_dict, plus the args
        torch.save({"state_dict": state, "args": {"latent_dim": 4}}, tmp / "LeanVAE-dim4.ckpt")
        return tmp / "LeanVAE-dim4.ckpt"
    if fmt == "lightning_ckpt":  # a training checkpoint: LightningModule prefix, loss networks beside
        sd = {f"autoencoder.{k}": v for k, v in state.items()}
        sd["discriminator.conv.weight"] = torch.zeros(4, 3, 3, 3)
        torch.save({"state_dict": sd, "epoch": 3, "global_step": 10}, tmp / "last.ckpt")
        return tmp / "last.ckpt"
    raise AssertionError(fmt)


CASES = [("cvvae_sd21_z4", "diffusers_safetensors"), ("cvvae_sd21_z4", "diffusers_bin"),
         ("cvvae_sd21_z4", "hub_root"), ("cvvae_sd3_z16", "safetensors"), ("cvvae_sd3_z16", "pt"),
         ("cvvae_sd3_z16", "hub_root"), ("leanvae_z4", "ckpt"), ("leanvae_z16", "lightning_ckpt")]


@pytest.mark.parametrize("release", list(PRESET))
def test_full_size_manifest_fills_the_preset_exactly(release):
    name, z = PRESET[release]
    with torch.device("meta"):
        model = BACKBONES.create(name, latent_channels=z)
        state = {k: torch.empty(s) for k, s in MANIFEST[release].items()}
        _, report = convert_state_dict(model, state, release.rsplit("_", 1)[0])
    assert report.reinitialised == []
    assert report.dropped == (["std_layer.weight", "std_layer.bias"] if release.startswith("leanvae") else [])
    cv = release.startswith("cvvae")
    assert sorted(report.adapted) == (["encoder.conv_out.bias", "encoder.conv_out.weight"] if cv else [])
    assert len(report.loaded) + len(report.adapted) == len(model.state_dict())


@pytest.mark.parametrize(("release", "fmt"), CASES)
def test_every_tensor_lands_where_the_map_says(release, fmt, tmp_path, capsys):
    state = random_state(release)
    z = PRESET[release][1]
    model = build(release, c=z + 4, pretrained=str(write(fmt, state, tmp_path, release)))
    line = capsys.readouterr().out
    assert "tensors loaded" in line and " re-initialised" in line
    ours = model.state_dict()
    adapted = RELEASES[release.rsplit("_", 1)[0]].adapted
    for key, src in state.items():
        mapped = official_to_ours(key, release.rsplit("_", 1)[0])
        if mapped is None:
            assert key.startswith("std_layer.")
            continue
        if mapped not in adapted:
            assert torch.equal(ours[mapped].flatten(), src.flatten()), key
            continue
        dim, doubled = adapted[mapped]
        if doubled:
            src = src.narrow(dim, 0, src.shape[dim] // 2)  # official mean half
        assert torch.equal(ours[mapped].narrow(dim, 0, z), src), key  # official filters embedded
        assert not ours[mapped].narrow(dim, z, 4).any(), key  # new channels start at zero


@pytest.mark.parametrize(("official", "ours", "release"), [
    ("decoder.up_blocks.0.upsamplers.0.conv.weight", "decoder.up.3.upsample.conv.weight", "cvvae_sd3"),
    ("decoder.up_blocks.3.resnets.2.norm1.bias", "decoder.up.0.block.2.norm1.bias", "cvvae_sd3"),
    ("encoder.mid_block.attentions.0.to_out.0.weight", "encoder.mid.attn_1.proj_out.weight", "cvvae_sd3"),
    ("encoder.mid_block.resnets.1.conv2.weight", "encoder.mid.block_2.conv2.weight", "cvvae_sd3"),
    ("encoder.down_blocks.1.resnets.0.conv_shortcut.bias", "encoder.down.1.block.0.nin_shortcut.bias",
     "cvvae_sd3"),
    ("decoder.mid.attn_1.q_t.weight", "decoder.mid.attn_1.q_t.weight", "cvvae_sd21"),
    ("encoder.fusion_layer.ffd_layer.3.4.weight", "encoder.fusion_layer.3.ffn.mlp.fc2.weight", "leanvae"),
    ("autoencoder.latent_bottleneck.backward_l.1.dconv_layer.0.ds_conv.bias",
     "latent_bottleneck.backward_l.1.0.dwconv.conv.bias", "leanvae"),
    ("decoder.video_high_proj.0.weight", "decoder.video_high_proj.weight", "leanvae"),
])
def test_official_names_map_to_ours(official, ours, release):
    assert official_to_ours(official, release) == ours


@pytest.mark.parametrize("release", ["cvvae_sd21_z4", "leanvae_z4"])
def test_c_equal_z_is_bit_identical_to_the_converted_state_dict(release, tmp_path):
    fmt = "safetensors" if release.startswith("cvvae") else "ckpt"
    path = write(fmt, random_state(release), tmp_path, release)
    a = build(release, pretrained=str(path))
    torch.manual_seed(123)
    b = build(release)
    converted, _ = convert_state_dict(b, read_state_dict(path), release.rsplit("_", 1)[0])
    torch.save(converted, tmp_path / "converted.pt")
    b.load_weights(tmp_path / "converted.pt")
    x = torch.rand(1, 3, 5, 16, 16) * 2 - 1
    with torch.no_grad():
        za, zb = a.encode(x), b.encode(x)
        assert torch.equal(za, zb) and torch.equal(a.decode(za), b.decode(zb))


@pytest.mark.parametrize("release", ["cvvae_sd3_z16", "leanvae_z16"])
def test_wider_latent_starts_from_the_official_function(release, tmp_path):
    path = write("pt", random_state(release), tmp_path, release)
    z = PRESET[release][1]
    small, wide = build(release, pretrained=str(path)), build(release, c=z + 16, pretrained=str(path))
    x = torch.rand(1, 3, 5, 16, 16) * 2 - 1
    with torch.no_grad():
        zs, zw = small.encode(x), wide.encode(x)
        assert torch.equal(zw[:, :z], zs) and not zw[:, z:].any()
        torch.testing.assert_close(wide.decode(zw), small.decode(zs), rtol=1e-5, atol=1e-5)


def test_misfit_names_key_and_both_shapes(tmp_path):
    state = random_state("cvvae_sd21_z4")
    state["encoder.down.0.block.0.conv1.weight"] = torch.zeros(32, 32, 1, 3, 3)
    path = write("safetensors", state, tmp_path, "cvvae_sd21_z4")
    key = r"encoder\.down\.0\.block\.0\.conv1\.weight"
    with pytest.raises(WeightsError, match=key + r".*\(32, 32, 1, 3, 3\).*\(32, 32, 3, 3, 3\)"):
        build("cvvae_sd21_z4", pretrained=str(path))


def test_too_narrow_latent_and_wrong_family_are_refused(tmp_path):
    path = write("safetensors", random_state("cvvae_sd3_z16"), tmp_path, "cvvae_sd3_z16")
    latent_keys = r"(encoder\.conv_out|decoder\.conv_in)\.weight"
    with pytest.raises(WeightsError, match=latent_keys + r".*latent_channels >= the release.s 16"):
        build("cvvae_sd3_z16", c=8, pretrained=str(path))
    with pytest.raises(WeightsError, match="cv_vae_sd3"):
        build("cvvae_sd21_z4", c=16, pretrained=str(path))
    with pytest.raises(WeightsError, match="lean_vae_base"):
        BACKBONES.create("lean_vae_base", pretrained=str(path))
    with pytest.raises(WeightsError, match="do not exist"):
        build("leanvae_z4", pretrained=str(tmp_path / "missing.ckpt"))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot read pretrained weights"):
        build("leanvae_z4", pretrained=str(tmp_path / "junk.pt"))


@pytest.mark.parametrize("release", list(PRESET))
def test_each_release_is_recognised_and_defined_by_its_family(release):
    name = release.rsplit("_", 1)[0]
    assert detect_release({k: torch.empty(0) for k in MANIFEST[release]}) == name
    rules = RELEASES[name]
    assert rules.rename.__module__ == rules.family.__module__  # the conversion lives in the family's file
    assert issubclass(BACKBONES.get(rules.preset), rules.family)


def test_a_release_registered_by_another_family_loads_through_the_same_reader(tmp_path, capsys):
    class Toy(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = torch.nn.Linear(2, 3)

    toy = register_release(Release("toy_v1", Toy, "toy", matches=lambda keys: "net.fc.weight" in keys,
                                   rename=lambda key: key.replace("net.fc.", "proj.")))
    try:
        state = {"net.fc.weight": torch.randn(3, 2), "net.fc.bias": torch.randn(3)}
        save_file(state, str(tmp_path / "toy.safetensors"))
        model = Toy()
        load_pretrained(model, tmp_path / "toy.safetensors")
        assert torch.equal(model.proj.weight, state["net.fc.weight"])
        assert "pretrained toy_v1" in capsys.readouterr().out
        with pytest.raises(WeightsError, match="toy_v1 release but the backbone is .*; use toy"):
            build("leanvae_z4", pretrained=str(tmp_path / "toy.safetensors"))
    finally:
        del RELEASES[toy.name]
    with pytest.raises(WeightsError, match=r"none of the known releases \(cvvae_sd21 \(cv_vae_sd21\)"):
        detect_release(state)
