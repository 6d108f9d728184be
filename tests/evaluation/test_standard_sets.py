"""`evaluate` on a dataset spec end to end: two tiny classes of raw .yuv found under --root, x265 at four
QPs, each codec written as an anchor file, anchor files read back as the anchor and as curves."""

from __future__ import annotations

import csv
import json

import pytest

from tests.conftest import small_clip
from vvc_lightning.cli.main import main
from vvc_lightning.evaluation.harness import EvalOptions, evaluate
from vvc_lightning.video.video_io import write_video

SPEC = """
name: Tiny
classes:
  HEVC_D:
    sequences:
      BasketballPass: {file: BasketballPass_96x64_50.yuv, frames: 5}
  UVG:
    sequences:
      Beauty: {file: Beauty_96x64_120fps_420_8bit_YUV.yuv, frames: 3}
      Jockey: {file: Jockey_96x64_120fps_420_8bit_YUV.yuv, frames: 5}
"""
POINTS = [24, 30, 36, 42]
X265 = "x265-ultrafast-ra"  # `--baselines x265 --preset x265=ultrafast`


@pytest.fixture(scope="module")
def run(tmp_path_factory, bikes_frames):
    base = tmp_path_factory.mktemp("standard")
    (base / "tiny.yaml").write_text(SPEC)
    root = base / "downloads"
    for rel, n, y0, x0 in (("HEVC_D/BasketballPass_96x64_50.yuv", 5, 100, 200),
                           ("UVG/Beauty_96x64_120fps_420_8bit_YUV.yuv", 3, 150, 400),
                           ("Jockey_96x64_120fps_420_8bit_YUV.yuv", 5, 50, 100)):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        write_video(root / rel, small_clip(bikes_frames, n, 64, 96, y0, x0), 25.0)
    opts = EvalOptions(data=str(base / "tiny.yaml"), root=str(root), out=str(base / "out"),
                       baselines=["x265"], points={"x265": POINTS}, presets={"x265": "ultrafast"},
                       metrics=["psnr_y"], progress=False)
    return base, root, evaluate(opts)


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_a_spec_is_coded_under_its_protocol_and_each_codec_written_as_an_anchor_file(run):
    _, _, paths = run
    rows = read_csv(paths["csv"])
    assert {(r["sequence"], r["frames"]) for r in rows} == {("BasketballPass", "5"), ("Beauty", "3"),
                                                            ("Jockey", "5")}
    doc = json.loads(paths["json"].read_text())
    assert doc["meta"]["intra_period"] == 32 and "96f-ip32" in doc["meta"]["test_set"]["protocol"]
    assert doc["meta"]["test_set"]["classes"] == {"HEVC_D": ["BasketballPass"], "UVG": ["Beauty", "Jockey"]}
    anchor = json.loads(paths[f"anchor_{X265}"].read_text())
    assert set(anchor) == {"HEVC_D", "UVG"}
    beauty = anchor["UVG"]["Beauty_96x64_120fps_420_8bit_YUV.yuv"]
    assert set(beauty) == {"024", "030", "036", "042"}
    row = next(r for r in rows if r["sequence"] == "Beauty" and r["point"] == "30")
    assert beauty["030"]["ave_all_frame_bpp"] == pytest.approx(float(row["bpp"]), rel=1e-12)
    assert beauty["030"]["ave_all_frame_psnr_y"] == pytest.approx(float(row["psnr_y"]), rel=1e-12)
    assert (beauty["030"]["qp"], beauty["030"]["i_frame_num"], beauty["030"]["p_frame_num"]) == (30, 1, 2)


def test_the_cli_takes_anchor_files_as_the_anchor_and_as_curves_in_the_class_tables(run, capsys):
    """An anchor file with every bpp x1.25 in HEVC_D and x0.8 in UVG: x265 saves 20 % there and costs 25 %
    here, Average +2.5 %; the unscaled file read as a second curve gives the same."""
    base, root, paths = run
    doc = json.loads(paths[f"anchor_{X265}"].read_text())
    for cls, factor in (("HEVC_D", 1.25), ("UVG", 0.8)):
        for points in doc[cls].values():
            for rec in points.values():
                rec["ave_all_frame_bpp"] *= factor
    (base / "scaled.json").write_text(json.dumps(doc))
    code = main(["evaluate", "--data", str(base / "tiny.yaml"), "--root", str(root), "-o", str(base / "out"),
                 "--baselines", "x265", "--points", "x265=24,30,36,42", "--preset", "x265=ultrafast",
                 "--metrics", "psnr_y", "--no-progress", "--anchor-file", f"{base / 'scaled.json'}",
                 "--anchor-file", f"published={paths[f'anchor_{X265}']}"])
    out = capsys.readouterr().out
    assert code == 0
    for codec in (X265, "published"):
        assert (f"psnr_y {codec:>8} vs scaled per class: HEVC_D -20.00 %, UVG +25.00 %, Average +2.50 %"
                in out)
    table = read_csv(base / "out" / "bdrate_classes.csv")
    assert float(table[0]["Average"]) == pytest.approx(2.5, abs=1e-9)
    assert f"| {X265} | -20.0 | 25.0 | 2.5 |" in (base / "out" / "bdrate_classes.md").read_text()
    svg = (base / "out" / "rd_classes" / "UVG_psnr_y.svg").read_text()
    assert all(name in svg for name in ("x265", "scaled", "published", "PSNR-Y (dB)", "rate (bpp)"))
    assert all((base / "out" / "rd_classes" / f"HEVC_D_psnr_y.{ext}").stat().st_size > 1000
               for ext in ("png", "pdf"))
    report = (base / "out" / "report.html").read_text()
    assert "BD-rate (%) per class" in report
    assert f"<td>{X265}</td><td>-20.00</td><td>25.00</td><td>2.50</td>" in report
    assert "<td>class UVG</td><td>Beauty, Jockey</td>" in report
    # the protocol reads as words, wide tables scroll in their own box (the page fits a 1400-px window)
    assert "{&quot;" not in report and '{"' not in report
    assert "<td>psnr_y</td><td>higher is better; " in report
    assert report.count("<div style='overflow-x:auto'><table>") == report.count("<table>")
    doc = json.loads((base / "out" / "results.json").read_text())
    assert {(e["codec"], e["class"]) for e in doc["meta"]["bd_rate_classes"]} == {
        (c, k) for c in (X265, "published") for k in ("HEVC_D", "UVG", "Average")}


def test_missing_files_and_unknown_protocols_are_one_line_errors_from_the_cli(run, capsys, tmp_path):
    base, root, _ = run
    assert main(["evaluate", "--data", "hevc", "--root", str(tmp_path), "--baselines", "x265",
                 "--classes", "HEVC_E", "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("error: 3 of 3 files of HEVC missing under --root") and len(err) == 4
    assert err[1].startswith("  HEVC_E/FourPeople: FourPeople_1280x720_60.yuv not found (looked in")
    assert main(["evaluate", "--data", str(base / "tiny.yaml"), "--root", str(root), "--baselines", "x265",
                 "--protocol", "ip10", "-o", str(tmp_path / "o")]) == 2
    assert "--protocol 'ip10' is not known" in capsys.readouterr().err
