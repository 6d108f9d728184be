"""Tile grids on the backbone stride, and linear-ramp blending of the seams."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vvc_lightning.codec.pipeline.tiling import axis_tiles, check_tile_options, plan_tiles
from vvc_lightning.errors import VVCError


@pytest.mark.parametrize("length", [8, 248, 256, 264, 272, 640, 1080 + 8, 1920])
@pytest.mark.parametrize("tile, overlap", [(256, 32), (128, 16), (512, 64)])
def test_axis_tiles_cover_on_stride_with_at_least_the_overlap(length, tile, overlap):
    ax = axis_tiles(length, tile, overlap, 8)
    assert ax.size <= tile and ax.size % 8 == 0
    assert all(s % 8 == 0 for s in ax.starts)
    assert ax.starts[0] == 0 and ax.starts[-1] + ax.size == length
    for a, b in zip(ax.starts, ax.starts[1:], strict=False):
        assert a + ax.size - b >= overlap  # neighbours overlap enough
        assert b > a
    if length > tile:  # the fewest tiles of at most `tile` that can overlap by `overlap`
        assert len(ax.starts) == -(-(length - overlap) // (tile - overlap))


def test_1080p_tiles_shrink_to_fit_instead_of_piling_up_at_the_edge():
    ax = axis_tiles(1088, 256, 32, 8)
    assert len(ax.starts) * ax.size <= 1088 * 1.15


def test_weights_form_a_partition_of_unity_with_linear_ramps():
    grid = plan_tiles(272, 640, 128, 32, 8)
    total = grid.merge([torch.ones(1, 1, grid.ys.size, grid.xs.size) for _ in range(grid.count)])
    assert torch.allclose(total, torch.ones_like(total))
    w = grid.xs.weights()[1]
    ov = grid.xs.starts[0] + grid.xs.size - grid.xs.starts[1]
    quarter = ov // 4
    assert torch.all(w[:quarter] == 0)  # the border quarter, where the tile's own padding shows, is left out
    ramp = w[quarter : ov - quarter]
    assert torch.all(ramp[1:] > ramp[:-1]) and 0 < ramp.min() and ramp.max() < 1  # a ramp, never a step
    steps = ramp[1:] - ramp[:-1]
    assert torch.allclose(steps, steps[0].expand_as(steps))  # linear
    assert torch.all(w[ov:-ov] == 1)


def test_split_then_merge_is_the_identity():
    x = torch.randn(2, 3, 5, 136, 200)
    grid = plan_tiles(136, 200, 64, 16, 8)
    assert grid.count > 4
    assert torch.allclose(grid.merge(grid.split(x)), x, atol=1e-6)


def test_a_local_operator_gives_the_same_result_tiled_and_untiled():
    """Average pooling by the stride is local: split on the pixel grid, merged on the latent grid: exact."""
    x = torch.randn(1, 3, 2, 136, 200)
    grid = plan_tiles(136, 200, 64, 16, 8)

    def pool(t):
        return F.avg_pool3d(t, (1, 8, 8))

    tiled = grid.scaled(8).merge([pool(t) for t in grid.split(x)])
    assert torch.allclose(tiled, pool(x), atol=1e-6)


def test_small_frames_are_one_tile():
    grid = plan_tiles(64, 96, 256, 32, 8)
    assert grid.count == 1 and grid.tile_shape == (64, 96)
    assert plan_tiles(512, 512, 0, 32, 8).count == 1


@pytest.mark.parametrize("tile, overlap", [(250, 32), (256, 30), (64, 32), (0, 0), (256, -8)])
def test_bad_tile_options_are_rejected_with_a_hint(tile, overlap):
    with pytest.raises(VVCError, match="^tile"):
        check_tile_options(tile, overlap, 8)
