"""RGB <-> Y'CbCr with explicit matrix and range (tests of vvc_lightning.video.colour)."""

from __future__ import annotations

import numpy as np
import pytest

from vvc_lightning.errors import VVCError
from vvc_lightning.video.colour import luma, rgb_to_yuv, rgb_to_yuv420, yuv420_to_rgb, yuv_to_rgb

MATRICES = ["bt709", "bt601"]
RANGES = ["limited", "full"]


@pytest.mark.parametrize("matrix", MATRICES)
@pytest.mark.parametrize("rng", RANGES)
def test_rgb_yuv_round_trip_is_exact_before_rounding(matrix, rng):
    rgb = np.random.default_rng(0).integers(0, 256, (64, 3)).astype(np.float64)
    assert np.allclose(yuv_to_rgb(rgb_to_yuv(rgb, matrix, rng), matrix, rng), rgb, atol=1e-9)


@pytest.mark.parametrize(("rng", "black", "white"), [("limited", 16, 235), ("full", 0, 255)])
def test_black_and_white_map_to_the_range_ends(rng, black, white):
    for matrix in MATRICES:
        yuv = rgb_to_yuv(np.array([[0, 0, 0], [255, 255, 255]]), matrix, rng)
        assert np.allclose(yuv[:, 0], [black, white]) and np.allclose(yuv[:, 1:], 128)


def test_matrices_give_the_standard_luma_of_pure_green():
    green = np.array([0, 255, 0])
    assert rgb_to_yuv(green, "bt709", "full")[0] == pytest.approx(255 * 0.7152)
    assert rgb_to_yuv(green, "bt601", "full")[0] == pytest.approx(255 * 0.587)
    assert luma(green[None], "bt709")[0] == pytest.approx(255 * 0.7152)


@pytest.mark.parametrize("matrix", MATRICES)
def test_420_round_trip_of_flat_colours_is_within_one_level(matrix):
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[:4], rgb[4:] = (200, 60, 30), (20, 180, 240)
    y, u, v = rgb_to_yuv420(rgb, matrix, "limited")
    assert y.shape == (8, 8) and u.shape == v.shape == (4, 4)
    back = yuv420_to_rgb(y, u, v, matrix, "limited")
    assert np.abs(back.astype(int) - rgb).max() <= 1


def test_wrong_names_and_odd_sizes_fail_clearly():
    with pytest.raises(VVCError, match="unknown colour matrix 'bt2020'"):
        rgb_to_yuv(np.zeros(3), "bt2020")
    with pytest.raises(VVCError, match="unknown colour range"):
        rgb_to_yuv(np.zeros(3), "bt709", "tv")
    with pytest.raises(VVCError, match="even width and height"):
        rgb_to_yuv420(np.zeros((3, 4, 3), np.uint8))
