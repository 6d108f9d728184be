"""The evaluation harness end to end on tiny real clips: outputs, cache, neural rows, clear errors."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from tests.conftest import small_clip
from vvc_lightning.cli.main import main
from vvc_lightning.errors import FrameCountError, VVCError
from vvc_lightning.evaluation.baselines import Encoder
from vvc_lightning.evaluation.harness import EvalOptions, evaluate
from vvc_lightning.video.video_io import write_video

FAST = {"x265": "ultrafast", "x264": "ultrafast"}
POINTS = {"x265": [30, 38], "x264": [30, 38]}
X265, X264 = "x265-ultrafast-ra", "x264-ultrafast-ra"  # the settings `x265` / `x264` with preset ultrafast


@pytest.fixture(scope="module")
def clips(tmp_path_factory, bikes_frames):
    """A folder with two tiny real sequences: a .y4m and a raw .yuv named with its size."""
    root = tmp_path_factory.mktemp("clips")
    write_video(root / "bikesA.y4m", small_clip(bikes_frames, 5, 64, 96), 25.0)
    write_video(root / "bikesB_96x64_25.yuv", small_clip(bikes_frames, 5, 64, 96, y0=150, x0=400), 25.0)
    return root


def options(clips, out, **kw) -> EvalOptions:
    base = dict(data=str(clips), out=str(out), baselines=["x265", "x264"], points=POINTS, presets=FAST,
                metrics=["psnr", "psnr_y"], progress=False)
    base.update(kw)
    return EvalOptions(**base)


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def first_run(clips, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    return out, evaluate(options(clips, out))


def test_every_output_is_written_with_a_row_per_codec_point_and_sequence(first_run):
    out, paths = first_run
    rows = read_csv(paths["csv"])
    assert len(rows) == 2 * 2 * 2
    assert {(r["codec"], r["point"], r["sequence"]) for r in rows} == {
        (c, str(p), s) for c in (X265, X264) for p in (30, 38) for s in ("bikesA", "bikesB_96x64_25")}
    assert all(r["intra_pictures"] == "1" and "-f hevc" in r["command"] for r in rows if r["codec"] == X265)
    for r in rows:
        assert float(r["bpp"]) == pytest.approx(int(r["bytes"]) * 8 / (5 * 64 * 96))
        assert 20 < float(r["psnr"]) < float(r["psnr_y"]) < 60
    doc = json.loads(paths["json"].read_text())
    assert doc["meta"]["ffmpeg"].startswith("ffmpeg version")
    assert doc["meta"]["codecs"][X265]["identity"]["version"] not in ("", "unknown")
    assert doc["meta"]["colour"]["matrix"] == "bt709" and "8-bit" in doc["meta"]["colour"]["psnr_y"]
    assert len(doc["rows"][0]["per_frame"]["psnr"]) == 5
    yuv = ("psnr_y", "psnr_u", "psnr_v", "psnr_yuv")  # the clips are 4:2:0: plane metrics beside RGB PSNR
    assert {p.name for p in out.glob("rd_*.png")} == {f"rd_{k}.png" for k in ("psnr", *yuv)}
    bd = read_csv(paths["bdrate"])
    assert [(b["metric"], b["codec"], b["anchor"]) for b in bd] == [(k, X264, X265) for k in ("psnr", *yuv)]
    assert "HEVC (x265)" in paths["html"].read_text()


def test_a_rerun_reuses_every_finished_row_without_coding_again(first_run, clips, monkeypatch):
    out, paths = first_run
    before = read_csv(paths["csv"])

    def no_coding(*args, **kwargs):
        raise AssertionError("a cached row was coded again")

    monkeypatch.setattr(Encoder, "run", no_coding)
    again = evaluate(options(clips, out))
    assert read_csv(again["csv"]) == before


def test_a_rerun_with_another_metric_computes_only_that_metric(first_run, clips, monkeypatch):
    from vvc_lightning.metrics.fidelity import PSNR, PSNRY

    out, paths = first_run
    before = {(r["codec"], r["point"], r["sequence"]): r["psnr"] for r in read_csv(paths["csv"])}

    def no_recompute(*args, **kwargs):
        raise AssertionError("a cached metric was computed again")

    monkeypatch.setattr(PSNR, "frame_scores", no_recompute)
    monkeypatch.setattr(PSNRY, "frame_scores", no_recompute)
    rows = read_csv(evaluate(options(clips, out, metrics=["psnr", "psnr_y", "stlpips"]))["csv"])
    assert all(0 < float(r["stlpips"]) < 1 for r in rows)
    assert {(r["codec"], r["point"], r["sequence"]): r["psnr"] for r in rows} == before


def test_max_frames_caps_every_sequence(clips, tmp_path):
    paths = evaluate(options(clips, tmp_path, baselines=["x264"], points={"x264": [30, 38]}, max_frames=3))
    assert {r["frames"] for r in read_csv(paths["csv"])} == {"3"}


def test_checkpoint_rows_are_coded_to_real_bitstreams(clips, tmp_path, tiny_ckpt):
    from vvc_lightning.codec.pipeline.video_codec import VideoCodec
    from vvc_lightning.evaluation.inputs import load_sequences
    from vvc_lightning.store.loader import load
    from vvc_lightning.video.video_io import Video

    paths = evaluate(options(clips, tmp_path, ckpts=[str(tiny_ckpt)], baselines=["x264"],
                             points={"x264": [30, 38]}, anchor="x264"))
    rows = [r for r in read_csv(paths["csv"]) if r["codec"] == tiny_ckpt.stem]  # named after its file
    assert len(rows) == 2 and {r["point"] for r in rows} == {tiny_ckpt.stem}
    video = Video(np.asarray(load_sequences(str(clips / "bikesA.y4m"))[0].frames), 25.0)  # RGB of its planes
    data = VideoCodec(load(tiny_ckpt), gop=9, overlap=1, theta=0.5, batch=4).encode(video)
    row = next(r for r in rows if r["sequence"] == "bikesA")
    assert int(row["bytes"]) == len(data)
    assert float(row["bpp"]) == pytest.approx(len(data) * 8 / (5 * 64 * 96))


def test_a_config_whose_test_split_names_the_sequences_is_accepted(clips, tmp_path):
    cfg = tmp_path / "data.yaml"
    cfg.write_text(f"data:\n  name: folder\n  test_dir: {clips / 'bikesA.y4m'}\n")
    paths = evaluate(options(cfg, tmp_path / "out", baselines=["x264"], points={"x264": [30, 38]}))
    assert {r["sequence"] for r in read_csv(paths["csv"])} == {"bikesA"}


def test_a_codec_that_drops_frames_is_a_clear_error(clips, tmp_path, monkeypatch):
    original = Encoder.decode_args

    def drop_last(self):  # the decoder writes 4 of the 5 frames
        args = original(self)
        return [*args[:-1], "-frames:v", "4", args[-1]]

    monkeypatch.setattr(Encoder, "decode_args", drop_last)
    with pytest.raises(FrameCountError, match="4 frames but the reference has 5"):
        evaluate(options(clips, tmp_path, baselines=["x264"], points={"x264": [30]}))


def test_an_incompatible_checkpoint_is_a_clear_error(clips, tmp_path):
    bad = tmp_path / "old.ckpt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(VVCError, match="old.ckpt"):
        evaluate(options(clips, tmp_path / "out", ckpts=[str(bad)], baselines=[], points={}))


def test_a_missing_encoder_fails_before_any_work(clips, tmp_path, monkeypatch):
    from vvc_lightning.evaluation import baselines

    monkeypatch.setattr(baselines, "ffmpeg_has", lambda kind, name: name != "libsvtav1")
    with pytest.raises(VVCError, match="libsvtav1"):
        evaluate(options(clips, tmp_path, baselines=["x264", "svtav1"]))
    assert not (tmp_path / "results.csv").exists()


def test_an_anchor_that_is_not_evaluated_is_refused(clips, tmp_path):
    with pytest.raises(VVCError, match="--anchor 'vvenc'"):
        evaluate(options(clips, tmp_path, anchor="vvenc"))


def test_the_cli_writes_results_and_reports_user_errors_in_one_line(clips, tmp_path, capsys):
    code = main(["evaluate", "--data", str(clips), "--baselines", "x264", "--points", "x264=30,38",
                 "--preset", "x264=ultrafast", "--metrics", "psnr", "--max-frames", "2", "-o", str(tmp_path),
                 "--no-progress"])
    assert code == 0 and (tmp_path / "report.html").is_file()
    assert "BD-rate" not in capsys.readouterr().out  # a single codec: no anchor comparison
    code = main(["evaluate", "--data", str(clips), "--baselines", "x264", "--metrics", "psnr,nope",
                 "-o", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: unknown metric 'nope'") and err.count("\n") == 1


def test_rate_points_for_a_codec_not_evaluated_are_refused(clips, tmp_path):
    with pytest.raises(VVCError, match="--points names codecs not in --baselines: vvenc"):
        evaluate(options(clips, tmp_path, points={**POINTS, "vvenc": [30]}))


def test_sequences_of_the_same_name_get_distinct_names(tmp_path, bikes_frames):
    from vvc_lightning.evaluation.inputs import load_sequences

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    frames = small_clip(bikes_frames, 2, 32, 32)
    write_video(tmp_path / "a" / "clip.y4m", frames, 25.0)
    write_video(tmp_path / "b" / "clip.y4m", frames, 25.0)
    seqs = load_sequences(str(tmp_path))
    assert [s.name for s in seqs] == ["clip", "clip_2"]
    assert seqs[0].digest == seqs[1].digest and np.array_equal(seqs[0].frames, seqs[1].frames)
