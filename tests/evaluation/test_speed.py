"""Speed beside quality: every row's encode/decode seconds and fps, and ours against x265 / vvenc."""

from __future__ import annotations

import csv
import math

import pytest

from tests.evaluation.test_harness import X265, clips, options  # noqa: F401  (the module fixture)
from vvc_lightning.evaluation import speed
from vvc_lightning.evaluation.harness import evaluate


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def row(codec, seq, point, frames, enc, dec):
    return {
        "codec": codec,
        "label": codec,
        "kind": "neural" if codec == "ours" else "baseline",
        "sequence": seq,
        "point": point,
        "frames": frames,
        "encode_seconds": enc,
        "decode_seconds": dec,
    }


def test_ratios_pool_the_rate_points_per_sequence_and_above_one_means_faster():
    rows = [
        row("ours", "a", "m", 10, 2.0, 1.0),
        row("x265", "a", 22, 10, 0.5, 0.1),
        row("x265", "a", 32, 10, 0.5, 0.1),
        row("vvenc", "a", 22, 10, 4.0, 0.2),
        row("x264", "a", 22, 10, 0.1, 0.1),
        row("ours", "b", "m", 5, 1.0, None),
    ]
    table = {(r["codec"], r["sequence"]): r for r in speed.speed_table(rows)}
    ours = table[("ours", "a")]
    assert ours["encode_fps"] == pytest.approx(5.0) and ours["decode_fps"] == pytest.approx(10.0)
    assert ours["encode_vs_x265"] == pytest.approx(5.0 / 20.0)  # x265: 20 frames in 1.0 s
    assert ours["decode_vs_x265"] == pytest.approx(10.0 / 100.0)
    assert (
        ours["encode_vs_vvenc"] == pytest.approx(5.0 / 2.5) and ours["encode_vs_vvenc"] > 1
    )  # faster than vvenc
    assert table[("x265", "a")]["encode_vs_x265"] == pytest.approx(1.0)
    b = table[("ours", "b")]
    # no time, no x265 row on b: no ratio
    assert math.isnan(b["decode_fps"]) and math.isnan(b["encode_vs_x265"])
    assert "x264" not in speed.present_references(rows)


@pytest.fixture(scope="module")
def speed_run(clips, tmp_path_factory, tiny_ckpt):  # noqa: F811
    out = tmp_path_factory.mktemp("speed")
    paths = evaluate(
        options(
            clips, out, ckpts=[str(tiny_ckpt)], ckpt_name="ours", baselines=["x265"],
            points={"x265": [30, 38]}, anchor="x265"
        )
    )
    return out, paths


def test_every_row_has_seconds_and_fps_and_speed_csv_ratios_follow_from_the_rows(speed_run):
    _, paths = speed_run
    rows = read_csv(paths["csv"])
    assert {r["codec"] for r in rows} == {"ours", X265}
    for r in rows:
        enc, dec, n = float(r["encode_seconds"]), float(r["decode_seconds"]), int(r["frames"])
        assert enc > 0 and dec > 0
        assert float(r["encode_fps"]) == pytest.approx(n / enc) and float(r["decode_fps"]) == pytest.approx(
            n / dec
        )
    table = read_csv(paths["speed"])
    assert {(t["codec"], t["sequence"]) for t in table} == {(r["codec"], r["sequence"]) for r in rows}
    for t in table:
        mine = [r for r in rows if r["codec"] == t["codec"] and r["sequence"] == t["sequence"]]
        ref = [r for r in rows if r["codec"] == X265 and r["sequence"] == t["sequence"]]
        for side in ("encode", "decode"):
            def fps(rs, side=side):
                return sum(int(r["frames"]) for r in rs) / sum(float(r[f"{side}_seconds"]) for r in rs)

            assert float(t[f"{side}_fps"]) == pytest.approx(fps(mine), rel=1e-6)
            assert float(t[f"{side}_vs_x265"]) == pytest.approx(fps(mine) / fps(ref), rel=1e-6)
    summary = read_csv(paths["summary"])
    ours = next(s for s in summary if s["codec"] == "ours")
    assert float(ours["encode_vs_x265"]) > 0 and "decode_vs_x265" in ours


def test_the_report_shows_the_speed_table_beside_the_rd_plots(speed_run):
    _, paths = speed_run
    page = paths["html"].read_text()
    plots, table = page.index("rd_psnr.png"), page.index("<h3>Speed</h3>")
    assert page.index("RD curves and speed") < plots < table < page.index("Decoded crops")
    assert "encode_vs_x265" in page and "above 1 = faster than x265" in page


def test_neural_rows_name_the_device_they_ran_on(speed_run):
    import json

    _, paths = speed_run
    doc = json.loads(paths["json"].read_text())
    ours = [r for r in doc["rows"] if r["codec"] == "ours"]
    assert ours and all(r["device"] == "cpu" and "device cpu" in r["command"] for r in ours)


def test_streamed_neural_rows_score_as_the_whole_decoded_video(speed_run, clips, tiny_ckpt):  # noqa: F811
    import json

    import numpy as np

    from vvc_lightning.codec.pipeline.video_codec import VideoCodec
    from vvc_lightning.evaluation.inputs import load_sequences
    from vvc_lightning.metrics import VideoMetrics
    from vvc_lightning.metrics.yuv import plane_scores
    from vvc_lightning.store.loader import load
    from vvc_lightning.video.chroma import rgb_to_planes
    from vvc_lightning.video.video_io import Video

    _, paths = speed_run
    doc = json.loads(paths["json"].read_text())
    r = next(r for r in doc["rows"] if r["codec"] == "ours" and r["sequence"] == "bikesA")
    seq = load_sequences(str(clips / "bikesA.y4m"))[0]  # 4:2:0: RGB made from its planes
    video = Video(np.asarray(seq.frames), seq.fps)
    codec = VideoCodec(load(tiny_ckpt), gop=9, overlap=1, theta=0.5, batch=4)
    rec = codec.decode(codec.encode(video)).frames
    whole = VideoMetrics(["psnr"]).sequence(video.frames, rec)
    whole.update(plane_scores(seq.planes.read(0, 5), rgb_to_planes(rec, 8), 8, ["psnr_y"]))
    for k in ("psnr", "psnr_y"):
        np.testing.assert_allclose(r["per_frame"][k], whole[k], rtol=1e-9)
