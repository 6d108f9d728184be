"""The Python API: vvc_lightning.load(spec) -> compress / decompress, the same bytes as the CLI."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import vvc_lightning
from tests.conftest import small_clip
from vvc_lightning.errors import VVCError
from vvc_lightning.video.video_io import read_video, write_video

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(scope="module")
def codec() -> vvc_lightning.Codec:
    return vvc_lightning.load("vvc-lean-vr", batch=2)


@pytest.fixture(scope="module")
def clip(bikes_frames) -> np.ndarray:
    return small_clip(bikes_frames, 9, 64, 96)


def test_import_stays_light():
    code = "import sys, vvc_lightning; sys.exit('torch' in sys.modules or 'vvc_lightning.api' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_an_array_round_trips_and_decodes_alike_streamed(codec, clip):
    data = codec.compress(clip, quality=3.5)
    frames = codec.decompress(data)
    assert frames.dtype == np.uint8 and frames.shape == clip.shape
    assert np.abs(frames.astype(int) - clip).mean() < 40  # a reconstruction of the clip, not noise
    assert np.array_equal(np.stack(list(codec.decompress_iter(data))), frames)
    assert np.array_equal(codec.decompress(data, frames=(2, 5)), frames[2:5])


def test_the_same_bytes_as_the_cli(codec, clip, tmp_path):
    src = write_video(tmp_path / "clip.y4m", clip, 25.0)
    out = tmp_path / "cli.vvc"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "vvc_lightning",
            "compress",
            str(src),
            "-o",
            str(out),
            "--model",
            "vvc-lean-vr",
            "--quality",
            "3.5",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert run.returncode == 0, run.stderr
    assert codec.compress(src, quality=3.5) == out.read_bytes()


def test_files_stream_both_ways(codec, clip, tmp_path):
    src = write_video(tmp_path / "clip.y4m", clip, 30.0)
    stats = codec.compress_file(src, tmp_path / "clip.vvc", quality=1)
    assert stats["frames"] == 9 and (tmp_path / "clip.vvc").stat().st_size == stats["bytes"]
    codec.decompress_file(tmp_path / "clip.vvc", tmp_path / "back.y4m")
    back = read_video(tmp_path / "back.y4m")
    assert back.frames.shape == clip.shape and back.fps == pytest.approx(30.0)
    assert np.array_equal(
        codec.decompress(tmp_path / "clip.vvc"), codec.decompress((tmp_path / "clip.vvc").read_bytes())
    )


@pytest.mark.parametrize(
    ("video", "quality", "says"),
    [
        (np.zeros((9, 64, 96, 3), np.float32), 3.5, "uint8"),
        (np.zeros((64, 96, 3), np.uint8), 3.5, "(T, H, W, 3)"),
        (np.zeros((9, 64, 96, 4), np.uint8), 3.5, "(T, H, W, 3)"),
        (np.zeros((9, 64, 96, 3), np.uint8), 8, "outside this model's range [0, 7]"),
        (np.zeros((9, 64, 96, 3), np.uint8), -1, "outside this model's range [0, 7]"),
        (12, 3.5, "numpy array or a video file path"),
    ],
)
def test_wrong_input_is_one_line(codec, video, quality, says):
    with pytest.raises(VVCError) as info:
        codec.compress(video, quality=quality)
    assert "\n" not in str(info.value) and says in str(info.value)


def test_unknown_options_and_specs_are_one_line():
    with pytest.raises(VVCError, match=r"unknown codec option\(s\) gops"):
        vvc_lightning.load("vvc-lean-vr", gops=9)
    with pytest.raises(VVCError, match="cannot load 'nope'"):
        vvc_lightning.load("nope")


def test_the_readme_example_runs(clip, tmp_path, monkeypatch):
    text = README.read_text()
    section = text[text.index("## Python API") :]
    block = re.search(r"```python\n(.*?)```", section, re.S)
    assert block is not None
    write_video(tmp_path / "input.mp4", clip, 25.0)
    monkeypatch.chdir(tmp_path)
    exec(compile(block.group(1), "README.md", "exec"), {})
    assert (tmp_path / "input.vvc").is_file() and (tmp_path / "decoded.mp4").is_file()


def _one_line(err: pytest.ExceptionInfo, *words: str) -> None:
    text = str(err.value)
    assert "\n" not in text and all(w in text for w in words), text


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        (None, ("spec must be a shipped model's name", "got NoneType")),
        (5, ("spec must be a shipped model's name", "got int 5")),
        (b"vvc-lean-vr", ("spec must be a model name or path as text, got bytes",)),
        ("", ("spec is an empty string",)),
        ("/dev/zero", ("cannot load '/dev/zero' (it is a character device",)),
    ],
)
def test_load_of_what_names_no_model_is_one_vvc_error(spec, words):
    with pytest.raises(VVCError) as err:
        vvc_lightning.load(spec)
    _one_line(err, *words)


def test_load_of_a_fifo_or_a_run_folder_names_it(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(VVCError) as err:
        vvc_lightning.load(tmp_path / "pipe")
    _one_line(err, "(it is a FIFO (named pipe), not a model file)")
    (tmp_path / "last.ckpt").write_bytes(b"")
    with pytest.raises(VVCError) as err:
        vvc_lightning.load(tmp_path)
    _one_line(err, f"'{tmp_path}' is a folder", f"'{tmp_path / 'last.ckpt'}'")


def test_options_that_are_not_codec_options_are_one_line(codec):
    with pytest.raises(VVCError) as err:
        vvc_lightning.Codec(codec.model, options="x")
    _one_line(err, "options must be a CodecOptions or None", "got str 'x'")


@pytest.fixture(scope="module")
def coded(codec, clip) -> bytes:
    return codec.compress(clip, quality=0)


@pytest.mark.parametrize(
    ("frames", "words"),
    [
        ((1.5, 3), "frames must be a pair of whole numbers (a, b), e.g. (0, 9), got (1.5, 3)"),
        (("a", "b"), "frames must be a pair of whole numbers"),
        ((5,), "frames must be a pair of whole numbers"),
        (7, "frames must be a pair of whole numbers"),
        ((5, 3), "frames (5, 3) is outside the video's frames; use 0 <= a < b <= 9"),
        ((0, 99), "frames (0, 99) is outside"),
        ((-1, 4), "frames (-1, 4) is outside"),
    ],
)
def test_a_bad_frame_range_is_one_vvc_error(codec, coded, tmp_path, frames, words):
    for call in (codec.decompress, codec.decompress_iter):
        with pytest.raises(VVCError) as err:
            call(coded, frames=frames)
        _one_line(err, words)
    (tmp_path / "c.vvc").write_bytes(coded)
    with pytest.raises(VVCError) as err:
        codec.decompress_file(tmp_path / "c.vvc", tmp_path / "o.y4m", frames=frames)
    _one_line(err, words)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.vvc"]


@pytest.mark.parametrize("fps", [1e-300, 0, -25, float("nan"), float("inf"), 1e6, True, "25"])
def test_a_frame_rate_the_cli_refuses_is_refused(codec, clip, tmp_path, fps):
    with pytest.raises(VVCError) as err:
        codec.compress(clip, fps=fps)
    _one_line(err, "fps must be 0.01 to 1000 frames per second")
    src = write_video(tmp_path / "clip.y4m", clip[:1], 25.0)
    with pytest.raises(VVCError) as err:
        codec.compress_file(src, tmp_path / "o.vvc", fps=fps)
    _one_line(err, "fps must be 0.01 to 1000 frames per second")


@pytest.mark.parametrize("max_frames", [0, -1, 1.5, "3"])
def test_a_bad_max_frames_is_refused(codec, clip, tmp_path, max_frames):
    src = write_video(tmp_path / "clip.y4m", clip[:1], 25.0)
    with pytest.raises(VVCError) as err:
        codec.compress_file(src, tmp_path / "o.vvc", max_frames=max_frames)
    _one_line(err, "max_frames must be a whole number >= 1")


def test_files_are_not_replaced_unless_overwrite(codec, clip, coded, tmp_path):
    src = write_video(tmp_path / "clip.y4m", clip, 25.0)
    vvc, out = tmp_path / "c.vvc", tmp_path / "o.y4m"
    vvc.write_bytes(b"mine")
    out.write_bytes(b"mine too")
    with pytest.raises(VVCError) as err:
        codec.compress_file(src, vvc)
    _one_line(err, f"output '{vvc}' already exists", "pass overwrite=True")
    (tmp_path / "coded.vvc").write_bytes(coded)
    with pytest.raises(VVCError) as err:
        codec.decompress_file(tmp_path / "coded.vvc", out)
    _one_line(err, f"output '{out}' already exists", "pass overwrite=True")
    assert (vvc.read_bytes(), out.read_bytes()) == (b"mine", b"mine too")
    codec.decompress_file(tmp_path / "coded.vvc", out, overwrite=True)
    assert out.read_bytes().startswith(b"YUV4MPEG2")
