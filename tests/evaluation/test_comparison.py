"""A comparison that always compares: one named curve per model, classic QPs searched to meet them, rows
cached by what coded them (not by names), earlier rows kept, stale outputs removed, named classic settings."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import pytest

from tests.conftest import small_clip
from tests.evaluation.test_harness import read_csv
from vvc_lightning.cli.main import main
from vvc_lightning.errors import VVCError
from vvc_lightning.evaluation import ledger
from vvc_lightning.evaluation.baselines import get_encoder
from vvc_lightning.evaluation.comparison import bd_table
from vvc_lightning.evaluation.harness import EvalOptions, evaluate
from vvc_lightning.evaluation.qp_search import Target, search_points
from vvc_lightning.evaluation.settings import parse_setting, parse_settings, resolve_anchor
from vvc_lightning.video.video_io import Video, write_video

X265 = "x265-ultrafast-ra"  # `--baselines x265 --preset x265=ultrafast`


@pytest.fixture(scope="module")
def clip(bikes_frames, tmp_path_factory):
    """One real 64x64 clip of 9 frames as .y4m."""
    root = tmp_path_factory.mktemp("cmp_clip")
    write_video(root / "bikes.y4m", small_clip(bikes_frames, 9, 64, 64), 25.0)
    return root / "bikes.y4m"


# ------------------------------------------------------------------------------------------ settings
def test_named_settings_and_bare_encoders_map_to_the_fields_settings():
    assert (parse_setting("x265").name, parse_setting("x265").alias) == ("x265-veryslow-ra", "x265")
    assert parse_setting("vvenc").name == "vvenc-ra" and parse_setting("vvenc-ld").structure == "ld"
    assert parse_setting("x265", {"x265": "medium"}).name == "x265-medium-ra"
    assert parse_setting("x265-medium-ld").preset == "medium"
    assert parse_setting("vvenc-faster-ra").preset == "faster"
    with pytest.raises(VVCError, match="must end in -ld .* or -ra"):
        parse_setting("x265-medium")
    with pytest.raises(VVCError, match="x265 has no preset 'mediun'"):
        parse_setting("x265-mediun-ld")
    with pytest.raises(VVCError, match="the setting 'x265-medium-ld' names its preset"):
        parse_settings(["x265-medium-ld"], {"x265-medium-ld": "fast"})


def test_the_default_anchor_is_x265_in_help_and_in_the_tables(capsys):
    assert resolve_anchor(None, parse_settings(["vvenc", "x265-medium-ld", "x265"])) == "x265-medium-ld"
    assert resolve_anchor(None, parse_settings(["vvenc-ld", "vvenc"])) == "vvenc-ld"
    assert resolve_anchor("x265", parse_settings(["vvenc", "x265"])) == "x265-veryslow-ra"
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    assert "default: x265" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("name, extra", [("x265", "bframes=0"), ("x264", "bframes=0"),
                                         ("vvenc", "DecodingRefreshType=none:GOPSize=8:PicReordering=0")])
def test_low_delay_settings_code_every_frame_without_reordering(name, extra, bikes_frames, tmp_path):
    from vvc_lightning.video.ffmpeg import run_ffmpeg

    enc = get_encoder(name)
    video = Video(small_clip(bikes_frames, 9, 64, 96), 25.0)
    preset = "faster" if name == "vvenc" else "ultrafast"
    ld = enc.run(video, 32, tmp_path / "ld", preset=preset, structure="ld")
    ra = enc.run(video, 32, tmp_path / "ra", preset=preset, structure="ra")
    assert extra in ld.command and extra not in ra.command and ld.frames.shape == video.frames.shape
    if name != "vvenc":  # vvenc's low delay codes B slices that refer to earlier pictures only
        log, _ = run_ffmpeg(["-i", f"stream.{enc.extension}", "-vf", "showinfo", "-f", "null", "-"],
                            tmp_path / "ld", "picture types")
        assert "type:P" in log and "type:B" not in log


# ------------------------------------------------------------------------------------------ QP search
def test_the_qp_search_puts_four_points_inside_each_rate_range_on_a_tiny_clip(bikes_frames, tmp_path):
    enc = get_encoder("x265")
    video = Video(small_clip(bikes_frames, 9, 64, 64), 25.0)
    coded: dict[int, float] = {}

    def bpp(seq: str, qp: int) -> float:
        if qp not in coded:
            coded[qp] = enc.run(video, qp, tmp_path / str(qp), preset="ultrafast").bpp
        return coded[qp]

    targets = [Target("clip", "a", 0.06, 0.15), Target("clip", "b", 0.3, 0.5),
               Target("clip", "low", 1e-6, 2e-6)]
    search = search_points("x265", enc.point_range, targets, bpp)
    for t in targets[:2]:
        inside = [q for q in search.points if t.lo <= bpp("clip", q) <= t.hi]
        assert len(inside) >= 4, (t, search.points, coded)
    assert search.targets[2].note.startswith("x265 on clip against low")
    assert "even QP 51 codes" in search.notes[0]
    assert len(coded) <= 30  # probes are few: a model guess, then bisection
    assert search.summary().startswith("x265: QPs " + ",".join(map(str, search.points)))


# ------------------------------------------------------------------------------------------ BD reasons
def test_a_bd_rate_that_is_not_defined_says_the_whole_reason_naming_the_curves():
    rows = [{"codec": c, "sequence": "s", "bpp": b, "metrics": {"psnr": v}}
            for c, pts in (("x265-medium-ld", [(0.1, 40.0), (0.2, 43.0)]),
                           ("mine", [(0.1, 25.0), (0.2, 28.0)]), ("one", [(0.1, 41.0)]),
                           ("bumpy", [(0.1, 41.0), (0.2, 40.0), (0.3, 44.0)]),
                           ("small", [(0.1, float("nan")), (0.2, float("nan"))]))
            for b, v in pts]
    summary = [{"codec": r["codec"], "bpp": r["bpp"], "psnr": r["metrics"]["psnr"]} for r in rows]
    harness = SimpleNamespace(keys=["psnr"], info={"psnr": {"higher_is_better": True}})
    specs = [SimpleNamespace(name=n) for n in ("mine", "one", "bumpy", "small", "x265-medium-ld")]
    notes = {b["codec"]: b["note"] for b in bd_table(harness, specs, rows, summary, "x265-medium-ld")}
    assert notes["mine"].startswith("s: the two curves do not overlap in psnr (x265-medium-ld 40-43 at "
                                    "0.1-0.2 bpp; mine 25-28 at 0.1-0.2 bpp); pooled: the two curves do not "
                                    "overlap")
    assert notes["one"].startswith("s: one: needs at least 2 rate points, got 1")
    assert ("bumpy: not monotonic (quality must rise strictly with rate) (0.1 bpp 41, 0.2 bpp 40, 0.3 bpp "
            "44)") in notes["bumpy"]
    assert notes["small"].startswith("s: small: no psnr value (NaN on every point; the notes say why)")


# ------------------------------------------------------------------------------------------ own files
def test_a_rerun_removes_only_the_files_an_earlier_run_listed_as_its_own(tmp_path):
    out = tmp_path / "out"
    (out / "crops").mkdir(parents=True)
    for name in ("crops/old.png", "crops/kept.png", "crops/user.png", "notes.txt"):
        (out / name).write_text(name)
    ledger.tidy(out, [out / "crops/old.png", out / "crops/kept.png"])
    assert ledger.tidy(out, [out / "crops/kept.png"]) == ["crops/old.png"]
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == [".evaluate-files.json", "kept.png",
                                                                     "notes.txt", "user.png"]


# ------------------------------------------------------------------------------------------ end to end
@pytest.fixture(scope="module")
def two_curves(clip, tiny_ckpt, tmp_path_factory):
    """The tiny checkpoint twice (under its own file name and as a renamed copy) against x265 with searched
    QPs: two named curves whose rows are the same rows."""
    base = tmp_path_factory.mktemp("two_curves")
    copy = base / "tiny-copy.ckpt"
    shutil.copyfile(tiny_ckpt, copy)
    opts = EvalOptions(data=str(clip), out=str(base / "out"), ckpts=[str(tiny_ckpt), str(copy)],
                       baselines=["x265"], presets={"x265": "ultrafast"}, metrics=["psnr"], progress=False)
    return base, copy, opts, evaluate(opts)


def test_each_model_is_its_own_named_curve_and_classic_qps_are_searched_to_meet_them(two_curves, tiny_ckpt):
    _, _, _, paths = two_curves
    rows = read_csv(paths["csv"])
    curves = {r["codec"] for r in rows}
    assert curves == {tiny_ckpt.stem, "tiny-copy", X265}
    mine = {r["codec"]: r for r in rows if r["codec"] != X265}
    assert mine[tiny_ckpt.stem]["bytes"] == mine["tiny-copy"]["bytes"]  # the same row, named twice
    doc = json.loads(paths["json"].read_text())
    assert doc["meta"]["anchor"] == X265
    search = doc["meta"]["qp_search"][X265]
    assert sorted(int(r["point"]) for r in rows if r["codec"] == X265 and r["sequence"] == "bikes") == \
        search["points"]
    assert any(n.startswith(f"{X265}: QPs ") for n in doc["meta"]["notes"])
    bd = {b["codec"]: b for b in read_csv(paths["bdrate"])}
    assert set(bd) == {tiny_ckpt.stem, "tiny-copy"}  # a BD-rate line per model, none pooled
    assert bd["tiny-copy"]["note"].startswith("bikes: tiny-copy: needs at least 2 rate points, got 1")
    page = paths["html"].read_text()
    assert f"<h3>{X265}: HEVC (x265) ultrafast, random access</h3>" in page
    assert "searched to put 4 points" in page


def test_a_rerun_under_other_names_recomputes_nothing_keeps_other_rows_and_removes_stale_files(two_curves,
                                                                                           monkeypatch):
    from vvc_lightning.codec.pipeline.video_codec import VideoCodec

    base, copy, opts, first = two_curves
    before = {r["key"]: r for r in json.loads(first["json"].read_text())["rows"]}
    old_crops = {p.name for p in (base / "out" / "crops").iterdir()}
    (base / "out" / "crops" / "mine.txt").write_text("a user's file")

    def no_coding(*args, **kwargs):
        raise AssertionError("a row of the same model was coded again")

    monkeypatch.setattr(VideoCodec, "encode_frames", no_coding)
    again = evaluate(EvalOptions(**{**opts.__dict__, "ckpts": [str(copy)], "ckpt_name": ["renamed"],
                                    "baselines": ["x264-ultrafast-ld"], "presets": {},
                                    "points": {"x264-ultrafast-ld": [30, 40]}}))
    rows = read_csv(again["csv"])
    assert {r["codec"] for r in rows} == {"renamed", X265, "x264-ultrafast-ld"}
    ld = [r for r in rows if r["codec"] == "x264-ultrafast-ld"]
    assert len(ld) == 2 and all("-preset ultrafast" in r["command"] and ":bframes=0" in r["command"]
                                for r in ld)
    assert "<h3>x264-ultrafast-ld: AVC (x264) ultrafast, low delay</h3>" in again["html"].read_text()
    renamed = [r for r in json.loads(again["json"].read_text())["rows"] if r["codec"] == "renamed"]
    assert len(renamed) == 1 and renamed[0]["key"] in before
    kept = [r for r in rows if r["codec"] == X265]
    assert len(kept) == sum(1 for r in before.values() if r["codec"] == X265)
    crops = {p.name for p in (base / "out" / "crops").iterdir()}
    assert not any("tiny-copy" in c for c in crops) and any("tiny-copy" in c for c in old_crops)
    assert "mine.txt" in crops and "bikes_renamed_renamed.png" in crops


@pytest.mark.slow
def test_two_named_zoo_curves_each_get_a_bd_rate_for_every_metric(clip, tmp_path, capsys):
    """vvc-lean-vr and the same model renamed: two curves, QPs searched (4 inside the models' rate range,
    more where the quality ranges would not meet), a BD-rate per curve and metric. 2-3 min on 2 cores."""
    code = main(["evaluate", "--data", str(clip), "--model", "vvc-lean-vr", "--ckpt", "zoo:vvc-lean-vr",
                 "--ckpt-name", "lean-copy", "vvc-lean-vr", "--qualities", "0,7", "--baselines", "x265",
                 "--preset", "x265=ultrafast", "--metrics", "psnr,stlpips", "-o", str(tmp_path),
                 "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    bd = read_csv(tmp_path / "bdrate.csv")
    assert {(b["metric"], b["codec"]) for b in bd} == {(m, c) for m in ("psnr", "stlpips")
                                                       for c in ("vvc-lean-vr", "lean-copy")}
    assert all(b["bd_rate_pct"] and b["anchor"] == X265 for b in bd), bd
    assert f"BD-rate         psnr lean-copy vs {X265}: +" in out
    summary = read_csv(tmp_path / "summary.csv")
    lo, hi = (float(s["bpp"]) for s in summary if s["codec"] == "vvc-lean-vr")
    assert sum(lo <= float(s["bpp"]) <= hi for s in summary if s["codec"] == X265) >= 4
