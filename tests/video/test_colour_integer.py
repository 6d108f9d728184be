"""`rgb_to_yuv420` in integers gives the codes of the float64 conversion it replaced, on every colour's luma,
every flat 2x2 block's chroma, random and real frames, and the exact halfway values (which take the float64
route on their rows)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import small_clip
from vvc_lightning.video import colour
from vvc_lightning.video.colour import _integer_plan, rgb_to_yuv, rgb_to_yuv420

CASES = [(m, r) for m in ("bt709", "bt601") for r in ("limited", "full")]


def float64_yuv420(rgb: np.ndarray, matrix: str, rng: str):
    """The conversion as it was: float64 Y'CbCr, the 2x2 chroma mean, round half to even, clip."""
    yuv = rgb_to_yuv(rgb, matrix, rng)
    h, w = rgb.shape[:2]
    chroma = yuv[..., 1:].reshape(h // 2, 2, w // 2, 2, 2).mean(axis=(1, 3))
    q = lambda a: np.clip(np.round(a), 0, 255).astype(np.uint8)  # noqa: E731
    return q(yuv[..., 0]), q(chroma[..., 0]), q(chroma[..., 1])


def same(rgb: np.ndarray, matrix: str, rng: str) -> bool:
    return all(np.array_equal(a, b) for a, b in zip(rgb_to_yuv420(rgb, matrix, rng),
                                                     float64_yuv420(rgb, matrix, rng), strict=True))


def colours(step: int = 1) -> np.ndarray:
    """Every `step`-th 24-bit colour, as uint8 (N, 3)."""
    c = np.arange(0, 1 << 24, step, dtype=np.uint32)
    return np.stack([c >> 16, (c >> 8) & 255, c & 255], -1).astype(np.uint8)


def as_frames(rgb: np.ndarray, width: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Colours (N, 3) as one frame of pixels and one of flat 2x2 blocks (padded with black)."""
    n = -(-len(rgb) // width) * width
    pixels = np.zeros((n, 3), np.uint8)
    pixels[: len(rgb)] = rgb
    frame = pixels.reshape(-1, width, 3)
    frame = frame if frame.shape[0] % 2 == 0 else np.concatenate([frame, np.zeros_like(frame[:1])])
    return frame, np.repeat(np.repeat(frame, 2, 0), 2, 1)


def halfway(rgb: np.ndarray, matrix: str, rng: str) -> np.ndarray:
    """Which colours (N, 3) have their Y, or the U or V of a flat 2x2 block of them, exactly halfway between
    two codes."""
    c = rgb.astype(np.int64)
    tie = np.zeros(len(c), bool)
    for plane, (r, g, b, k, d, _) in enumerate(_integer_plan(matrix, rng)):
        tie |= ((r * c[:, 0] + g * c[:, 1] + b * c[:, 2]) * (4 if plane else 1) + k) % d == 0
    return tie


# some of the few colours of the limited range whose Y is exactly halfway (full range has thousands)
HALFWAY = {"bt709": [(10, 51, 54), (61, 21, 201), (95, 136, 139), (157, 7, 57), (194, 99, 214)],
           "bt601": [(0, 204, 68), (38, 166, 164), (76, 30, 19), (127, 143, 49), (216, 218, 175)]}


@pytest.mark.parametrize(("matrix", "rng"), CASES)
def test_codes_equal_the_float64_conversion_on_random_and_halfway_colours(matrix, rng):
    sample = colours()[np.random.default_rng(0).integers(0, 1 << 24, 1 << 16)]
    sample = np.concatenate([np.array(HALFWAY[matrix], np.uint8), sample])
    assert halfway(sample, matrix, rng).sum() >= 5  # the float64 route on their rows is exercised
    for frame in as_frames(sample):
        assert same(frame, matrix, rng)
    mixed = np.random.default_rng(1).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    mixed[10:12, 20:22] = HALFWAY[matrix][0]
    mixed[31, 7] = HALFWAY[matrix][-1]
    assert same(mixed, matrix, rng)


@pytest.mark.parametrize(("matrix", "rng"), CASES)
def test_codes_equal_the_float64_conversion_on_real_frames(bikes_frames, matrix, rng):
    for frame in bikes_frames[:3]:
        h, w = frame.shape[0] // 2 * 2, frame.shape[1] // 2 * 2
        assert same(frame[:h, :w], matrix, rng)


def test_uint8_frames_convert_without_the_float64_route(bikes_frames, monkeypatch):
    frame = small_clip(bikes_frames, 1, 64, 96)[0]
    expected = float64_yuv420(frame, "bt709", "limited")

    def refused(*args, **kwargs):
        raise AssertionError("float64 route taken")

    monkeypatch.setattr(colour, "rgb_to_yuv", refused)
    assert all(np.array_equal(a, b) for a, b in zip(rgb_to_yuv420(frame), expected, strict=True))


def test_other_dtypes_take_the_float64_route():
    rgb = np.random.default_rng(2).uniform(0, 255, (8, 8, 3))
    assert same(rgb, "bt709", "limited")


@pytest.mark.slow
@pytest.mark.parametrize(("matrix", "rng"), CASES)
def test_codes_equal_the_float64_conversion_on_every_colour(matrix, rng):
    pixels, blocks = as_frames(colours(), 4096)
    for frame in (pixels, blocks):
        for rows in range(0, frame.shape[0], 512):
            assert same(frame[rows : rows + 512], matrix, rng)
