"""The lpips metric: AlexNet where its weights are found, else ST-LPIPS labelled 'stlpips'."""

from __future__ import annotations

import pytest
import torch

from tests.metrics.conftest import add_noise
from vvc_lightning.errors import WeightsError
from vvc_lightning.metrics import VideoMetrics, build_metric
from vvc_lightning.metrics.base import frames_to_u8


@pytest.fixture
def no_alexnet(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.delenv("VVC_LPIPS_ALEX", raising=False)


def test_lpips_falls_back_to_stlpips_and_says_so_in_its_key_and_protocol(no_alexnet):
    m = build_metric("lpips")
    assert m.key == "stlpips"
    assert "ST-LPIPS used instead" in m.info()["note"]
    assert VideoMetrics(["lpips", "tlp"]).keys == ["stlpips", "tlp_stlpips"]


def test_the_fallback_to_stlpips_is_said_in_one_line_of_the_commands_output(no_alexnet, caplog, monkeypatch):
    from vvc_lightning.metrics import base

    monkeypatch.setattr(base, "_SAID", set())
    with caplog.at_level("WARNING", logger="vvc_lightning"):
        build_metric("lpips")
        build_metric("lpips")
        build_metric("stlpips")  # asked for by name: nothing to say
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and said[0].startswith("lpips: AlexNet LPIPS weights not found")
    assert "reported as 'stlpips'" in said[0]


def test_explicit_alexnet_lpips_fails_with_the_fix_when_weights_are_absent(no_alexnet):
    with pytest.raises(WeightsError, match="alexnet-owt-7be5be79.pth"):
        build_metric("lpips_alex")


def test_lpips_uses_alexnet_when_its_weights_are_given(tmp_path, no_alexnet):
    import torchvision

    path = tmp_path / "alex.pth"
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), path)
    m = build_metric("lpips", weights=str(path))
    assert m.key == "lpips" and m.info()["network"] == "lpips_alex"


def test_stlpips_grows_with_distortion_and_is_zero_for_identical_frames(clip):
    m = build_metric("stlpips")
    a = frames_to_u8(clip)
    same = m.scores(a, a)
    light = m.scores(a, frames_to_u8(add_noise(clip, 4))).mean()
    heavy = m.scores(a, frames_to_u8(add_noise(clip, 40))).mean()
    assert same.shape == (9,) and float(same.abs().max()) < 1e-6
    assert 0 < light < heavy


def test_an_explicit_weights_path_that_is_missing_fails_instead_of_falling_back(no_alexnet, tmp_path,
                                                                                monkeypatch):
    with pytest.raises(WeightsError, match="gone.pth' does not exist"):
        build_metric("lpips", weights=str(tmp_path / "gone.pth"))
    monkeypatch.setenv("VVC_LPIPS_ALEX", str(tmp_path / "gone.pth"))
    with pytest.raises(WeightsError, match="gone.pth"):
        build_metric("lpips")
