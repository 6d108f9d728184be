"""Every registered backbone keeps its state-dict keys and shapes (checkpoints and released files load)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from vvc_lightning.registry import BACKBONES

GOLDEN = Path(__file__).parent / "data" / "backbone_state_dict_keys.json"
CONFIGS = {  # label -> (registered name, constructor options); defaults and the options that change layers
    "cv_vae_causal": ("cv_vae_causal", {}),
    "cv_vae_causal_no_attention": ("cv_vae_causal", {"attention": False, "width": 32}),
    "cv_vae_sd21": ("cv_vae_sd21", {}),
    "cv_vae_sd21_causal_frame": ("cv_vae_sd21", {"norm": "frame", "causal_decoder": True, "width": 32}),
    "cv_vae_sd3": ("cv_vae_sd3", {"latent_channels": 16}),
    "cv_vae_sd3_temporal": ("cv_vae_sd3", {"temporal_attention": True, "width": 32}),
    "lean_vae_lite": ("lean_vae_lite", {}),
    "lean_vae_base": ("lean_vae_base", {"latent_channels": 4}),
}


def layout(name: str, options: dict) -> dict[str, list[int]]:
    """Key -> shape of the state dict of `name` built with `options` (on the meta device: no memory)."""
    with torch.device("meta"):
        model = BACKBONES.create(name, **options)
    return {k: list(v.shape) for k, v in model.state_dict().items()}


@pytest.mark.parametrize("label", list(CONFIGS))
def test_state_dict_keys_and_shapes_are_unchanged(label):
    expected = json.loads(GOLDEN.read_text())[label]
    got = layout(*CONFIGS[label])
    assert list(got) == list(expected)  # same keys in the same order
    assert got == expected


def test_every_registered_preset_is_covered():
    names = {name for name, _ in CONFIGS.values()}
    assert set(BACKBONES.names()) - set(BACKBONES.aliases()) <= names


if __name__ == "__main__":  # writes the reference file from the current code
    blocks = []
    for label, cfg in CONFIGS.items():
        rows = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in layout(*cfg).items())
        blocks.append(f"{json.dumps(label)}: {{\n{rows}\n}}")
    GOLDEN.write_text("{\n" + ",\n".join(blocks) + "\n}\n")
