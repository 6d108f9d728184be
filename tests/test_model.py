"""The inference model: its identity, its architecture keys, its rates; the LightningModule extends it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vvc_lightning.errors import VVCError
from vvc_lightning.model import CompressionModel, architecture
from vvc_lightning.store.loader import load

SHIPPED = Path(__file__).resolve().parents[1] / "vvc_lightning" / "assets" / "models" / "vvc-lean-vr.json"


@pytest.fixture(scope="module")
def shipped() -> CompressionModel:
    return load("vvc-lean-vr")


def test_the_shipped_model_has_the_identity_its_record_holds(shipped):
    assert type(shipped) is CompressionModel
    assert shipped.identity() == json.loads(SHIPPED.read_text())["identity"]


def test_architecture_leaves_out_the_origin_and_the_rate_keys_of_a_fixed_rate_model():
    model = {
        "gop": 9,
        "init": "zoo:x",
        "backbone": {"name": "lean_vae", "weights": "w.pt", "pretrained": "p", "width": 8},
        "codec": {"groups": None, "qualities": 0, "hyper_gain": True},
        "loss": {"lmbda": 0.1, "lmbda_range": None},
    }
    assert architecture(model) == {
        "gop": 9,
        "backbone": {"name": "lean_vae", "width": 8},
        "codec": {"groups": None},
        "loss": {"lmbda": 0.1},
    }
    assert model["init"] == "zoo:x"  # the caller's dict is left as it was
    variable = {**model, "codec": {"qualities": 4, "hyper_gain": True}, "loss": {"lmbda_range": [0.01, 0.4]}}
    assert architecture(variable)["codec"] == {"qualities": 4, "hyper_gain": True}
    assert architecture(variable)["loss"] == {"lmbda_range": [0.01, 0.4]}


def test_the_lightning_module_is_the_inference_model_with_the_same_state_dict(tiny_config):
    from vvc_lightning.training.model import VideoCompressionModel

    torch.manual_seed(0)
    plain = CompressionModel(tiny_config).eval()
    torch.manual_seed(0)
    lit = VideoCompressionModel(tiny_config).eval()
    assert isinstance(lit, CompressionModel)
    assert list(plain.state_dict()) == list(lit.state_dict())
    assert all(k.startswith(("backbone.", "codec.")) for k in plain.state_dict())
    assert plain.identity() == lit.identity()
    again = VideoCompressionModel.from_model(plain, tiny_config)
    assert again.identity() == plain.identity()


def test_quality_is_checked_against_the_model_in_one_line(shipped, tiny_model):
    assert (
        shipped.qualities == 8 and shipped.check_quality(3.5) == 3.5 and shipped.check_quality(None) is None
    )
    for bad in (9, -0.5, float("nan"), "high"):
        with pytest.raises(VVCError) as info:
            shipped.check_quality(bad)
        assert "\n" not in str(info.value) and "[0, 7]" in str(info.value)
    with pytest.raises(VVCError, match="fixed-rate model"):
        tiny_model.check_quality(1.0)


def test_quality_for_lambda_inverts_the_training_range(shipped):
    lo, hi = shipped.lmbda_range
    assert shipped.quality_for_lambda(lo) == 0.0 and shipped.quality_for_lambda(hi) == pytest.approx(7.0)
    with pytest.raises(VVCError):
        shipped.quality_for_lambda(hi * 2)


def test_the_inference_model_imports_no_lightning():
    code = (
        "import sys, vvc_lightning.model, vvc_lightning.store.loader, vvc_lightning.api, "
        "vvc_lightning.store.zoo;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning')"
        " or m.startswith('vvc_lightning.training')]; print(bad); sys.exit(bool(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
