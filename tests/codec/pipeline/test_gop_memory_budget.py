"""--max-memory covers each GoP's frames and latent coding, so a long --gop is planned or refused."""

from __future__ import annotations

import re

import numpy as np
import pytest

from tests.conftest import small_clip
from vvc_lightning.codec.pipeline.memory import CODEC_BYTES, MemoryModel, gop_bytes, plan_budget
from vvc_lightning.codec.pipeline.video_codec import VideoCodec
from vvc_lightning.errors import VVCError
from vvc_lightning.video.video_io import Video


def test_a_257_frame_gop_beyond_the_budget_is_refused_before_any_frame_is_coded(tiny_model, bikes_frames):
    """The budget covers the GoP's frames and latent coding too, not only the backbone."""
    codec = VideoCodec(tiny_model, gop=257, max_memory="48M")

    def frames():  # the refusal comes at the first frame, before a 257-frame GoP is read and held
        yield small_clip(bikes_frames, 1, 64, 96)[0]
        raise AssertionError("a second frame was read")

    with pytest.raises(VVCError) as info:
        codec.encode_frames(frames(), 25)
    msg = str(info.value)
    assert "max_memory 48M is too small to encode 257-frame GoPs of 96x64" in msg and "\n" not in msg
    assert re.search(r"need about (\d+)M; raise max_memory above \1M or use a smaller gop", msg)


def test_gops_per_pass_shrink_so_that_the_pass_fits(tiny_model):
    """Each GoP's own bytes count: a budget of about 2.5 GoPs' worth holds 2 GoPs per pass, not --batch 4."""
    latent = int(np.prod(tiny_model.backbone.latent_shape(33, 64, 96)))
    per_gop = gop_bytes("encode", 33, 64, 96, latent)
    assert per_gop >= CODEC_BYTES * latent
    mm = MemoryModel(tiny_model.backbone)
    whole = mm.peak("encode", 33, 64, 96)
    budget = 2 * per_gop + per_gop // 2 + 4 * whole
    plan = plan_budget(mm, "encode", 33, 64, 96, 4, budget, 32, per_gop)
    assert plan.tile == 0 and plan.gops == 2 and plan.gops * per_gop + plan.items * whole <= budget
    assert plan_budget(mm, "encode", 33, 64, 96, 4, budget, 32).gops == 4  # without per-GoP bytes: --batch


def test_a_long_gop_that_fits_round_trips(tiny_model, bikes_frames):
    clip = Video(small_clip(bikes_frames, 3, 32, 48), 25)
    codec = VideoCodec(tiny_model, gop=33, max_memory="256M")
    assert codec.decode(codec.encode(clip)).frames.shape == (3, 32, 48, 3)
