"""GoP splitting with overlap, temporal padding, blending and frame-range selection."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vvc_lightning.codec.pipeline.gop import GopBlender, GopPlan, iter_gops, parse_frame_range
from vvc_lightning.errors import VVCError


@pytest.mark.parametrize(
    "n, gop, overlap, gops",
    [(1, 9, 1, 1), (9, 9, 1, 1), (10, 9, 1, 2), (17, 9, 1, 2), (18, 9, 1, 3), (18, 9, 0, 2), (19, 9, 0, 3),
     (40, 5, 2, 13)],
)
def test_gop_count_covers_every_frame_with_the_fewest_gops(n, gop, overlap, gops):
    plan = GopPlan(n, gop, overlap)
    assert plan.num_gops == gops
    covered = set()
    for g in range(plan.num_gops):
        covered |= set(plan.gop_indices(g).tolist())
    assert covered == set(range(n))
    assert plan.gop_start(plan.num_gops - 1) < n  # the last GoP starts on a real frame


def test_adjacent_gops_share_exactly_overlap_frames():
    plan = GopPlan(30, 9, 1)
    for g in range(plan.num_gops - 1):
        assert plan.gop_indices(g)[-1] == plan.gop_indices(g + 1)[0]


def test_last_gop_is_padded_by_repeating_the_last_frame():
    plan = GopPlan(12, 9, 1)
    assert plan.gop_indices(1).tolist() == [8, 9, 10, 11, 11, 11, 11, 11, 11]


@pytest.mark.parametrize("gop, overlap", [(8, 1), (0, 0), (9, 5), (9, -1), (5, 3)])
def test_invalid_gop_or_overlap_is_rejected(gop, overlap):
    with pytest.raises(VVCError):
        GopPlan(20, gop, overlap)


@pytest.mark.parametrize("n, gop, overlap",
                         [(1, 9, 1), (9, 9, 1), (10, 9, 1), (17, 9, 1), (23, 9, 0), (30, 5, 2)])
def test_streamed_gops_match_the_plan(n, gop, overlap):
    frames = [np.full((2, 2, 3), i, np.uint8) for i in range(n)]
    plan = GopPlan(n, gop, overlap)
    got = list(iter_gops(iter(frames), gop, overlap))
    assert len(got) == plan.num_gops
    for g, (stack, _) in enumerate(got):
        assert stack[:, 0, 0, 0].tolist() == plan.gop_indices(g).tolist()


def _decoded(plan: GopPlan, gops: range, offset: float = 0.0) -> list[torch.Tensor]:
    """Fake reconstructions: GoP g's frame j has value (source index) + g (so shared frames differ)."""
    return [
        torch.tensor(plan.gop_indices(g), dtype=torch.float64).view(1, -1, 1, 1) + g + offset for g in gops
    ]


def test_shared_frames_are_blended_with_theta():
    plan = GopPlan(17, 9, 1)
    blender = GopBlender(plan, theta=0.25)
    out = dict(f for rec in _decoded(plan, range(2)) for f in blender.push(rec))
    assert sorted(out) == list(range(17))
    # frame 8: GoP 0 says 8 + 0, GoP 1 says 8 + 1 -> 0.25 * 8 + 0.75 * 9
    assert out[8].item() == pytest.approx(0.25 * 8 + 0.75 * 9)
    assert out[7].item() == 7 and out[9].item() == 10


def test_overlap_zero_blends_nothing_and_padding_is_dropped():
    plan = GopPlan(12, 9, 0)
    blender = GopBlender(plan, theta=0.5)
    out = dict(f for rec in _decoded(plan, range(2)) for f in blender.push(rec))
    assert sorted(out) == list(range(12))
    assert out[8].item() == 8 and out[9].item() == 10


@pytest.mark.parametrize("a, b", [(0, 1), (8, 9), (7, 10), (9, 17), (16, 33), (20, 40), (0, 40)])
def test_frame_range_decodes_only_needed_gops_and_equals_full_decode(a, b):
    plan = GopPlan(40, 9, 1)
    whole = GopBlender(plan, 0.5)
    full = dict(f for rec in _decoded(plan, range(plan.num_gops)) for f in whole.push(rec))
    need = plan.gops_for_frames(a, b)
    assert all(plan.gop_start(g) < b and plan.gop_start(g) + plan.gop > a for g in need)
    blender = GopBlender(plan, 0.5, first_gop=need.start)
    part = {}
    for rec in _decoded(plan, need):
        part.update({i: f for i, f in blender.push(rec) if a <= i < b})
    assert sorted(part) == list(range(a, b))
    assert all(torch.equal(part[i], full[i]) for i in part)


def test_frame_range_parsing():
    assert parse_frame_range("3:7", 10) == (3, 7)
    assert parse_frame_range(":4", 10) == (0, 4)
    assert parse_frame_range("5:", 10) == (5, 10)
    for bad in ("7:3", "0:11", "x", "1:2:3", "-1:4"):
        with pytest.raises(VVCError, match="^frames "):
            parse_frame_range(bad, 10)
