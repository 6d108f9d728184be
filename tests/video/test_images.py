"""Still images through Pillow read as OpenCV's IMREAD_COLOR did; the core's image paths need no OpenCV."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from vvc_lightning.errors import VVCError
from vvc_lightning.video.images import decode_image, encode_png

EXTRA = 'pip install "vvc-lightning[metrics]"'


def _rgb(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _variants(tmp_path) -> dict[str, object]:
    """Files of several kinds: PNG RGB / RGBA / grey / 16-bit grey / 16-bit RGB / palette, JPEG rotated by
    EXIF, greyscale JPEG."""
    cv2 = pytest.importorskip("cv2")
    rgb, out = _rgb(), {}

    def put(name: str, write) -> None:
        out[name] = tmp_path / name
        write(out[name])

    put("rgb.png", lambda p: Image.fromarray(rgb).save(p))
    put("rgba.png", lambda p: Image.fromarray(np.dstack([rgb, rgb[..., :1]])).save(p))
    put("grey.png", lambda p: Image.fromarray(rgb[..., 0]).save(p))
    deep = np.random.default_rng(1).integers(0, 65536, (40, 56), dtype=np.uint16)
    put("grey16.png", lambda p: cv2.imwrite(str(p), deep))
    put("rgb16.png", lambda p: cv2.imwrite(str(p), np.dstack([deep, deep[::-1], deep[:, ::-1]])))
    put("palette.png", lambda p: Image.fromarray(rgb).quantize(16).save(p))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    put("rotated.jpg", lambda p: Image.fromarray(rgb).save(p, quality=95, exif=exif))
    put("grey.jpg", lambda p: Image.fromarray(rgb[..., 1]).save(p, quality=95))
    return out


def test_images_read_as_opencv_imread_color_reads_them(tmp_path):
    cv2 = pytest.importorskip("cv2")
    for name, path in _variants(tmp_path).items():
        ours = decode_image(path)
        theirs = cv2.imread(str(path), cv2.IMREAD_COLOR)[..., ::-1]
        assert ours.dtype == np.uint8 and ours.shape == theirs.shape, name
        if name.endswith(".png"):
            assert np.array_equal(ours, theirs), name
        else:  # two JPEG decoders: the same picture, not always the same rounding
            assert np.abs(ours.astype(int) - theirs).mean() < 1.0, name
    assert decode_image((tmp_path / "rotated.jpg").read_bytes()).shape == (64, 48, 3)  # EXIF applied


def test_png_frames_are_lossless_and_opencv_reads_them():
    cv2 = pytest.importorskip("cv2")
    frame = _rgb(37, 53, seed=3)
    data = encode_png(frame)
    assert np.array_equal(decode_image(data), frame)
    assert np.array_equal(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[..., ::-1], frame)


def test_a_broken_image_is_one_line_naming_the_file(tmp_path):
    path = tmp_path / "cut.png"
    path.write_bytes(encode_png(_rgb())[:60])
    with pytest.raises(VVCError, match=r"'.*cut\.png' is not a readable image") as info:
        decode_image(path)
    assert "\n" not in str(info.value)


def test_the_core_image_paths_run_without_opencv(tmp_path, monkeypatch):
    """PNG folders, training photos and report crops need no cv2; the metric that does names the extra."""
    from vvc_lightning.datamodules.motion import load_image
    from vvc_lightning.evaluation.harness import save_crop
    from vvc_lightning.metrics.temporal import TOF
    from vvc_lightning.video.photo_filter import measure
    from vvc_lightning.video.video_io import iter_png_folder
    from vvc_lightning.video.video_writer import VideoWriter

    monkeypatch.setitem(sys.modules, "cv2", None)  # `import cv2` now fails, as where OpenCV is absent
    frames = [_rgb(seed=s) for s in range(3)]
    with VideoWriter(tmp_path / "frames", fps=25) as writer:
        for f in frames:
            writer.write(f)
    read = list(iter_png_folder(tmp_path / "frames"))
    assert len(read) == 3 and all(np.array_equal(a, b) for a, b in zip(read, frames, strict=True))
    photo = load_image(tmp_path / "frames" / "00001.png")
    assert torch.equal(photo, torch.from_numpy(frames[1]).permute(2, 0, 1).float() / 255.0)
    save_crop(tmp_path / "crop.png", np.stack(frames))
    assert np.array_equal(decode_image(tmp_path / "crop.png"), frames[1])
    for needs_cv2 in (TOF, lambda: measure(frames[0])):
        with pytest.raises(VVCError, match=r"needs OpenCV") as info:
            needs_cv2()
        assert EXTRA in str(info.value) and "\n" not in str(info.value)


def test_a_png_is_not_read_with_the_alpha_channel_composited():
    rgba = np.dstack([_rgb(), np.zeros((48, 64, 1), np.uint8)])  # fully transparent: colours kept
    buf = io.BytesIO()
    Image.fromarray(rgba).save(buf, "PNG")
    assert np.array_equal(decode_image(buf.getvalue()), rgba[..., :3])
