"""The photo rule: real photographs pass; gradients, logos, text, greyscale, noise, cut-outs and small images
are dropped with the rule they fail; hashes and ORB views tell one scene from another."""

from __future__ import annotations

from pathlib import Path

import cv2
import matplotlib
import numpy as np
import pytest

from tests.conftest import bikes_path
from vvc_lightning.video.photo_filter import dhash, hamming, measure, orb_features, photo_verdict, shared_view
from vvc_lightning.video.video_io import read_video


def grace_hopper() -> np.ndarray:
    """matplotlib's sample photograph (512x600 RGB)."""
    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    return np.ascontiguousarray(cv2.imread(str(path), cv2.IMREAD_COLOR)[..., ::-1])


def gradient(h: int = 480, w: int = 640) -> np.ndarray:
    """A smooth two-colour gradient, as a desktop background render."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // w, np.full_like(x, 90), y * 255 // h], -1).astype(np.uint8)


def logo(h: int = 480, w: int = 640) -> np.ndarray:
    """Flat coloured shapes on a flat background."""
    img = np.full((h, w, 3), (240, 240, 250), np.uint8)
    cv2.circle(img, (200, 240), 120, (220, 40, 40), -1)
    cv2.rectangle(img, (360, 120), (600, 380), (30, 90, 200), -1)
    return img


def text(h: int = 480, w: int = 640) -> np.ndarray:
    """Lines of coloured text on a coloured page."""
    img = np.full((h, w, 3), (250, 240, 200), np.uint8)
    for i in range(12):
        cv2.putText(
            img,
            "The quick brown fox jumps",
            (10, 35 + 38 * i),
            cv2.FONT_HERSHEY_SIMPLEX,
            1.0,
            (20, 40, 160),
            2,
        )
    return img


def test_a_real_photograph_is_kept():
    traits = measure(grace_hopper())
    assert photo_verdict(traits) is None, traits


def test_skimage_astronaut_is_kept():
    data = pytest.importorskip("skimage.data")
    assert photo_verdict(measure(np.ascontiguousarray(data.astronaut()))) is None


@pytest.mark.parametrize("make, reason",
                         [(gradient, "gradient"), (logo, "few flat colours"), (text, "few flat colours")])
def test_renders_logos_and_text_are_dropped(make, reason):
    verdict = photo_verdict(measure(make()))
    assert verdict is not None and reason in verdict


def test_greyscale_noise_small_and_cut_out_images_are_dropped():
    photo = grace_hopper()
    grey = np.repeat(cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)[..., None], 3, -1)
    assert "greyscale" in photo_verdict(measure(grey))
    noise = np.random.default_rng(0).integers(0, 256, (300, 384, 3), dtype=np.uint8)
    assert "noise" in photo_verdict(measure(noise))
    assert "smaller" in photo_verdict(measure(photo[:200, :300]))
    assert "cut-out" in photo_verdict(measure(photo, transparent=0.3))
    assert (
        photo_verdict(measure(photo[:200, :300], short_side=600)) is None
    )  # decoded reduced: the file's side counts


def test_measure_rejects_what_is_no_rgb_image():
    with pytest.raises(ValueError, match="uint8"):
        measure(np.zeros((64, 64, 3), np.float32))


def test_hash_finds_the_same_picture_at_another_size_only():
    photo = grace_hopper()
    half = cv2.resize(photo, (photo.shape[1] // 2, photo.shape[0] // 2), interpolation=cv2.INTER_AREA)
    assert hamming(dhash(photo), dhash(half)) <= 12
    assert hamming(dhash(photo), dhash(logo())) > 40


def test_orb_views_match_another_view_of_one_scene_not_another_scene():
    photo = grace_hopper()
    view = cv2.resize(photo[40:, 30:], None, fx=0.8, fy=0.8, interpolation=cv2.INTER_AREA)  # moved and zoomed
    assert shared_view(orb_features(photo), orb_features(view)) >= 30
    other = read_video(bikes_path(), max_frames=1).frames[0]  # another scene
    assert shared_view(orb_features(photo), orb_features(other)) < 30
    assert shared_view(orb_features(photo), orb_features(gradient())) == 0
