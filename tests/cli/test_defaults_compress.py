"""`compress` / `evaluate` defaults: a default quality in the codec's target range, printed; --fps with a
floor; evaluate's options checked up front in one line each."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from tests.conftest import small_clip
from vvc_lightning.cli.codec import TARGET_BPP, default_quality
from vvc_lightning.cli.main import main
from vvc_lightning.codec.pipeline import container as bitstream
from vvc_lightning.video.video_io import write_video


@pytest.fixture(scope="module")
def clip(tmp_path_factory, bikes_frames):
    path = tmp_path_factory.mktemp("defaults") / "clip.y4m"
    write_video(path, small_clip(bikes_frames, 5, 32, 48), 25.0)
    return path


def one_line_error(capsys, argv: list) -> str:
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_compress_with_the_shipped_model_defaults_to_its_lowest_rate_and_says_so(clip, tmp_path, capsys):
    out = tmp_path / "c.vvc"
    assert main(["compress", str(clip), "-o", str(out), "--model", "vvc-lean-vr"]) == 0
    printed = capsys.readouterr().out
    assert bitstream.unpack_header(out.read_bytes())[0].quality == 0.0  # was 7, the highest (15x the rate)
    assert ("no --quality given: coding at quality 0 of 0-7 (0.034 bpp on vvc-lean-vr's test split; "
            "this codec aims at < 0.03 bpp); pass --quality for more bits") in printed
    assert ", quality 0" in printed.splitlines()[-1]


def test_compress_help_names_the_default_quality_and_its_rate(capsys):
    with pytest.raises(SystemExit):
        main(["compress", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "for vvc-lean-vr quality 0, 0.034 bpp on its test split" in text


def test_the_default_is_the_highest_measured_quality_below_the_target():
    from vvc_lightning.store.loader import build, resolve

    source = resolve("zoo:vvc-lean-vr")
    model, entry = build(source), source.entry
    assert default_quality(model, entry) == (0.0, "0.034 bpp on vvc-lean-vr's test split")
    curve = [{"quality": q, "bpp": b} for q, b in ((0, 0.01), (2, 0.02), (3, TARGET_BPP * 0.99), (5, 0.05))]
    measured = dataclasses.replace(entry, record={**entry.record, "curve": curve})
    assert default_quality(model, measured)[0] == 3.0
    junk = dataclasses.replace(entry, record={**entry.record, "curve": "junk"})
    assert default_quality(model, junk) == (0.0, "the lowest rate")
    assert default_quality(model, None) == (0.0, "the lowest rate")


@pytest.mark.parametrize("fps", ["1e-300", "0.001", "1001"])
def test_fps_below_the_floor_or_above_the_cap_is_refused(clip, tmp_path, capsys, fps):
    err = one_line_error(
        capsys, ["compress", clip, "-o", tmp_path / "o.vvc", "--model", "vvc-lean-vr", "--fps", fps]
    )
    assert "--fps must be 0.01 to 1000 frames per second" in err and not (tmp_path / "o.vvc").exists()


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--frame-stride", "0"], "--frame-stride must be a whole number >= 1, got 0"),
        (["--qualities", "0,,4"], "--qualities has an empty entry in '0,,4'"),
        (["--qualities", "0,nan"], "--qualities takes numbers >= 0"),
        (["--device", "cpu;rm"], "--device must be cpu, cuda or cuda:N, got 'cpu;rm'"),
        (["--device", "cuda:999"], "--device cuda:999"),
        (["--max-memory", "8X"], "--max-memory takes a size like 512M, 8G or a number of bytes, got '8X'"),
        (["--batch", "0"], "--batch must be 1 or more, got 0"),
        (["--theta", "2"], "--theta must be a number in [0, 1]"),
    ],
)
def test_evaluate_options_fail_in_one_line(clip, tmp_path, capsys, extra, words):
    err = one_line_error(
        capsys, ["evaluate", "--data", clip, "--model", "vvc-lean-vr", "-o", tmp_path / "r", *extra]
    )
    assert words in err and not (tmp_path / "r").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_evaluate_on_cuda_without_a_gpu_fails_in_one_line(clip, tmp_path, capsys):
    err = one_line_error(capsys, ["evaluate", "--data", clip, "--model", "vvc-lean-vr", "--device", "cuda",
                                  "-o", tmp_path / "r"])
    assert "--device cuda: this machine has no usable CUDA GPU; use --device cpu" in err


def test_evaluate_into_an_existing_file_is_refused_and_keeps_it(clip, tmp_path, capsys):
    mine = tmp_path / "results"
    mine.write_text("mine")
    err = one_line_error(capsys, ["evaluate", "--data", clip, "--model", "vvc-lean-vr", "-o", mine])
    assert f"-o '{mine}' is an existing file" in err and mine.read_text() == "mine"


def test_evaluate_takes_the_codec_options_of_compress_max_memory_included():
    from vvc_lightning.cli.evaluate import options_from_args
    from vvc_lightning.cli.main import build_parser
    from vvc_lightning.codec.pipeline.options import CodecOptions

    args = build_parser().parse_args(["evaluate", "--data", "clips", "--max-memory", "512M", "--batch", "2",
                                      "--matrix", "bt601"])
    assert options_from_args(args).codec == CodecOptions(max_memory=512 << 20, batch=2, matrix="bt601")
