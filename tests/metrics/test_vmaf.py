"""VMAF through ffmpeg's libvmaf: near 100 for a copy, lower for distortion, one value per frame."""

from __future__ import annotations

import pytest

from tests.metrics.conftest import add_noise, blur
from vvc_lightning.errors import VVCError
from vvc_lightning.metrics import build_metric
from vvc_lightning.metrics.base import frames_to_u8


def test_vmaf_is_high_for_a_copy_and_lower_for_blur(clip):
    m = build_metric("vmaf")
    same = m.scores(frames_to_u8(clip), frames_to_u8(clip))
    worse = m.scores(frames_to_u8(clip), frames_to_u8(blur(add_noise(clip, 5), 9)))
    assert same.shape == (9,) and float(same.mean()) > 95
    assert float(worse.mean()) < float(same.mean()) - 20
    assert m.info()["libvmaf"] != "?"


def test_vmaf_without_libvmaf_in_ffmpeg_is_a_clear_error(clip, monkeypatch):
    from vvc_lightning.metrics import vmaf

    monkeypatch.setattr(vmaf, "ffmpeg_has", lambda kind, name: False)
    with pytest.raises(VVCError, match="no libvmaf filter"):
        build_metric("vmaf").scores(frames_to_u8(clip[:2]), frames_to_u8(clip[:2]))
