"""Averaging as the field does on synthetic rate points of two standard-like classes: class curves
weighted by frame count, BD-rate per class and Average (by hand and by the `bjontegaard` package),
anchor files that round-trip, and the tables for a paper."""

from __future__ import annotations

import json
import math

import bjontegaard
import pytest

from vvc_lightning.errors import VVCError
from vvc_lightning.evaluation.anchor_file import align, read_anchor_file, write_anchor_file
from vvc_lightning.evaluation.classes import class_bd_rates, class_curve, read_anchor_curves
from vvc_lightning.evaluation.tables import table_csv, table_latex, table_markdown, write_tables

# Two classes laid out like HEVC D and UVG, with unequal frame counts so that the weighting shows.
GROUPS = {"BasketballPass": "HEVC_D", "BlowingBubbles": "HEVC_D", "Beauty": "UVG", "ShakeNDry": "UVG"}
FILES = {"BasketballPass": "BasketballPass_416x240_50.yuv", "BlowingBubbles": "BlowingBubbles_416x240_50.yuv",
         "Beauty": "Beauty_1920x1080_120fps_420_8bit_YUV.yuv",
         "ShakeNDry": "ShakeNDry_1920x1080_120fps_420_8bit_YUV.yuv"}
FRAMES = {"BasketballPass": 96, "BlowingBubbles": 32, "Beauty": 96, "ShakeNDry": 48}
SIZE = {"HEVC_D": (416, 240), "UVG": (1920, 1080)}
QPS = ("22", "27", "32", "37")
# anchor bpp and PSNR-Y per sequence at QP 22..37
ANCHOR = {"BasketballPass": ([0.30, 0.15, 0.075, 0.04], [40.0, 37.0, 34.0, 31.0]),
          "BlowingBubbles": ([0.50, 0.24, 0.11, 0.05], [38.0, 35.2, 32.1, 29.5]),
          "Beauty": ([0.10, 0.04, 0.018, 0.009], [39.0, 37.6, 36.2, 34.9]),
          "ShakeNDry": ([0.12, 0.05, 0.022, 0.011], [40.0, 38.1, 36.5, 35.0])}
# a test codec's own points (other rates, other qualities)
TEST = {"BasketballPass": ([0.26, 0.13, 0.07, 0.036], [39.8, 37.1, 34.3, 31.2]),
        "BlowingBubbles": ([0.46, 0.22, 0.10, 0.048], [37.9, 35.3, 32.0, 29.7]),
        "Beauty": ([0.11, 0.045, 0.02, 0.0095], [39.2, 37.9, 36.4, 35.0]),
        "ShakeNDry": ([0.115, 0.05, 0.021, 0.0105], [40.1, 38.3, 36.6, 35.1])}


def rows_of(codec: str, points: dict, scale: dict[str, float] | None = None) -> list[dict]:
    out = []
    for seq, (bpps, psnrs) in points.items():
        w, h = SIZE[GROUPS[seq]]
        for qp, b, q in zip(QPS, bpps, psnrs, strict=True):
            f = (scale or {}).get(GROUPS[seq], 1.0)
            out.append({"codec": codec, "sequence": seq, "point": qp, "point_label": f"qp{qp}",
                        "kind": "baseline", "frames": FRAMES[seq], "width": w, "height": h, "bpp": b * f,
                        "bytes": 1, "intra_pictures": 3, "encode_seconds": 1.5, "decode_seconds": 0.5,
                        "metrics": {"psnr_y": q, "lpips": 0.5 - q / 100}})
    return out


def hand_class_curve(points: dict, group: str) -> tuple[list[float], list[float]]:
    """Frame-weighted means, written out as arithmetic."""
    seqs = [s for s in GROUPS if GROUPS[s] == group]
    n = sum(FRAMES[s] for s in seqs)
    bpp = [sum(FRAMES[s] * points[s][0][i] for s in seqs) / n for i in range(4)]
    q = [sum(FRAMES[s] * points[s][1][i] for s in seqs) / n for i in range(4)]
    return bpp, q


def entry(table: list[dict], cls: str, codec: str = "ours", metric: str = "psnr_y") -> dict:
    return next(e for e in table if e["class"] == cls and e["codec"] == codec and e["metric"] == metric)


HIB = {"psnr_y": True, "lpips": False}


def test_class_curves_are_frame_weighted_means_over_sequences():
    curve = class_curve(rows_of("x265", ANCHOR), ["BasketballPass", "BlowingBubbles"], "psnr_y")
    bpp, q = hand_class_curve(ANCHOR, "HEVC_D")
    assert [p["point"] for p in curve] == list(QPS)
    assert [p["bpp"] for p in curve] == pytest.approx(bpp, abs=1e-15)
    assert [p["value"] for p in curve] == pytest.approx(q, abs=1e-12)
    assert curve[0]["bpp"] == pytest.approx((96 * 0.30 + 32 * 0.50) / 128)  # 0.35, not the plain mean 0.40
    assert all(p["frames"] == 128 for p in curve)


def test_a_constant_rate_factor_per_class_gives_those_bd_rates_and_their_mean_as_average():
    rows = rows_of("x265", ANCHOR) + rows_of("ours", ANCHOR, {"HEVC_D": 0.8, "UVG": 1.1})
    per_class, per_seq = class_bd_rates(rows, "x265", GROUPS, ["psnr_y"], HIB)
    assert entry(per_class, "HEVC_D")["bd_rate_pct"] == pytest.approx(-20.0, abs=1e-9)
    assert entry(per_class, "UVG")["bd_rate_pct"] == pytest.approx(10.0, abs=1e-9)
    assert entry(per_class, "Average")["bd_rate_pct"] == pytest.approx(-5.0, abs=1e-9)
    assert {e["sequence"]: round(e["bd_rate_pct"], 9) for e in per_seq} == {
        "BasketballPass": -20.0, "BlowingBubbles": -20.0, "Beauty": 10.0, "ShakeNDry": 10.0}


def test_class_and_average_bd_rates_equal_the_bjontegaard_package_on_the_hand_made_class_curves():
    rows = rows_of("x265", ANCHOR) + rows_of("ours", TEST)
    per_class, per_seq = class_bd_rates(rows, "x265", GROUPS, ["psnr_y"], HIB)
    want = {}
    for group in ("HEVC_D", "UVG"):
        want[group] = bjontegaard.bd_rate(*hand_class_curve(ANCHOR, group), *hand_class_curve(TEST, group),
                                          method="pchip")
        assert entry(per_class, group)["bd_rate_pct"] == pytest.approx(want[group], abs=1e-9)
        assert entry(per_class, group)["sequences"] == 2 and entry(per_class, group)["note"] == ""
    assert abs(want["HEVC_D"] - want["UVG"]) > 1  # two different classes: the Average is a real mean
    assert entry(per_class, "Average")["bd_rate_pct"] == pytest.approx((want["HEVC_D"] + want["UVG"]) / 2,
                                                                       abs=1e-9)
    for e in per_seq:
        expected = bjontegaard.bd_rate(*ANCHOR[e["sequence"]], *TEST[e["sequence"]], method="pchip")
        assert e["bd_rate_pct"] == pytest.approx(expected, abs=1e-9)


def test_a_lower_is_better_metric_keeps_the_sign_convention():
    rows = rows_of("x265", ANCHOR) + rows_of("ours", ANCHOR, {"HEVC_D": 0.9, "UVG": 0.9})
    per_class, _ = class_bd_rates(rows, "x265", GROUPS, ["lpips"], HIB)
    assert entry(per_class, "Average", metric="lpips")["bd_rate_pct"] == pytest.approx(-10.0, abs=1e-9)


def test_missing_sequences_points_and_short_curves_are_said_not_hidden():
    test = [r for r in rows_of("ours", TEST) if r["sequence"] != "ShakeNDry"]
    test = [r for r in test if not (r["sequence"] == "BlowingBubbles" and r["point"] in ("22", "27"))]
    per_class, per_seq = class_bd_rates(rows_of("x265", ANCHOR) + test, "x265", GROUPS, ["psnr_y"], HIB)
    uvg = entry(per_class, "UVG")
    assert uvg["sequences"] == 1 and "ShakeNDry not in both" in uvg["note"]
    assert uvg["bd_rate_pct"] == pytest.approx(
        bjontegaard.bd_rate(*ANCHOR["Beauty"], *TEST["Beauty"], method="pchip"), abs=1e-9)
    hevc_d = entry(per_class, "HEVC_D")  # only QP 32 and 37 are common to both sequences: 2 < 3 points
    assert math.isnan(hevc_d["bd_rate_pct"]) and "at least 3 rate points, got 2" in hevc_d["note"]
    avg = entry(per_class, "Average")
    assert avg["bd_rate_pct"] == pytest.approx(uvg["bd_rate_pct"]) and avg["note"] == "mean of 1 of 2 classes"
    shake = next(e for e in per_seq if e["sequence"] == "ShakeNDry")
    assert math.isnan(shake["bd_rate_pct"]) and shake["note"] == "not in both curves"


def test_an_anchor_file_round_trips_to_the_same_curve(tmp_path):
    rows = rows_of("x265", ANCHOR)
    path = write_anchor_file(tmp_path / "x265.json", rows, GROUPS, FILES)
    doc = json.loads(path.read_text())
    rec = doc["HEVC_D"]["BasketballPass_416x240_50.yuv"]["022"]
    assert rec["ave_all_frame_bpp"] == 0.30 and rec["ave_all_frame_psnr_y"] == 40.0
    assert (rec["frame_pixel_num"], rec["i_frame_num"], rec["p_frame_num"]) == (416 * 240, 3, 93)
    assert rec["qp"] == 22
    assert (rec["ds_name"], rec["seq_name"], rec["test_time"]) == ("HEVC_D", "BasketballPass", 2.0)
    back = align(read_anchor_file(path), GROUPS, FILES)
    key = ("codec", "sequence", "point", "frames", "bpp", "metrics")
    assert [{k: r[k] for k in key} for r in back] == [{k: r[k] for k in key} for r in rows]
    per_class, _ = class_bd_rates(rows_of("ours", TEST) + back, "x265", GROUPS, ["psnr_y"], HIB)
    direct, _ = class_bd_rates(rows_of("ours", TEST) + rows, "x265", GROUPS, ["psnr_y"], HIB)
    assert [e["bd_rate_pct"] for e in per_class] == [e["bd_rate_pct"] for e in direct]


def test_a_published_anchor_file_is_a_curve_matched_by_file_name(tmp_path):
    """The field's shape without our extra keys: i/p frame counts, 6:1:1 PSNR, per-plane keys, file stems."""
    doc = {cls: {} for cls in ("HEVC_D", "UVG", "HEVC_E")}
    for seq, (bpps, psnrs) in ANCHOR.items():
        key = FILES[seq].removesuffix(".yuv")
        doc[GROUPS[seq]][key] = {f"{int(qp):03d}": {
            "frame_pixel_num": 1, "i_frame_num": 1, "p_frame_num": FRAMES[seq] - 1, "qp": int(qp),
            "ds_name": GROUPS[seq], "seq_name": key, "test_time": 9.0, "ave_all_frame_bpp": b,
            "ave_all_frame_psnr": q + 1, "ave_all_frame_psnr_y": q, "ave_all_frame_msssim": 0.99,
            "ave_i_frame_bpp": 3 * b, "ave_p_frame_bpp": b}
            for qp, b, q in zip(QPS, bpps, psnrs, strict=True)}
    doc["HEVC_E"]["Johnny_1280x720_60"] = {"022": {"ave_all_frame_bpp": 0.01, "i_frame_num": 1,
                                                   "p_frame_num": 95}}
    path = tmp_path / "vtm.json"
    path.write_text(json.dumps(doc))
    vtm = read_anchor_curves([f"VTM-17.0={path}"])
    assert {r["codec"] for r in vtm} == {"VTM-17.0"}
    first = next(r for r in vtm if r["sequence"] == "BasketballPass_416x240_50" and r["point"] == "022")
    assert first["frames"] == 96
    assert first["metrics"] == {"psnr_yuv": 41.0, "psnr_y": 40.0, "ms_ssim_yuv": 0.99}
    per_class, _ = class_bd_rates(rows_of("ours", TEST) + align(vtm, GROUPS, FILES), "VTM-17.0", GROUPS,
                                  ["psnr_y"], HIB)
    direct, _ = class_bd_rates(rows_of("ours", TEST) + rows_of("x265", ANCHOR), "x265", GROUPS, ["psnr_y"],
                               HIB)
    want = [e["bd_rate_pct"] for e in direct]
    assert [e["bd_rate_pct"] for e in per_class] == pytest.approx(want, abs=1e-12)


def test_a_file_not_of_the_anchor_shape_is_one_line_naming_the_entry(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"UVG": {"Beauty.yuv": {"022": {"ave_all_frame_psnr": 30}}}}))
    with pytest.raises(VVCError, match=r"bad.json': UVG/Beauty.yuv/022 has no positive number ave_all_"):
        read_anchor_file(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(VVCError, match="not an anchor file of the shape"):
        read_anchor_file(bad)
    bad.write_text("{oops")
    with pytest.raises(VVCError, match="cannot be read as JSON"):
        read_anchor_file(bad)


def test_tables_hold_the_class_and_average_bd_rates_in_csv_markdown_and_latex(tmp_path):
    rows = rows_of("x265", ANCHOR) + rows_of("ours", ANCHOR, {"HEVC_D": 0.8, "UVG": 1.1})
    rows += [{**r, "codec": "x264"} for r in rows_of("x", ANCHOR) if r["sequence"] != "Beauty"]
    per_class, per_seq = class_bd_rates(rows, "x265", GROUPS, ["psnr_y"], HIB)
    csv_text = table_csv(per_class).splitlines()
    assert csv_text[0] == "metric,codec,anchor,HEVC_D,UVG,Average,notes"
    assert csv_text[1].startswith("psnr_y,ours,x265,-20.0000,10.0000,-5.0000,")
    md = table_markdown(per_class)
    assert "| codec | HEVC_D | UVG | Average |" in md and "| ours | -20.0 | 10.0 | -5.0 |" in md
    assert "| x264 | 0.0 | 0.0 | 0.0 |" in md and "over 1 of 2 sequences (Beauty not in both)" in md
    tex = table_latex(per_class)
    assert "Codec & HEVC\\_D & UVG & Average \\\\" in tex and "ours & $-$20.0 & 10.0 & $-$5.0 \\\\" in tex
    assert tex.count("\\begin{tabular}") == tex.count("\\end{tabular}") == 1 and "PSNR-Y against x265" in tex
    paths = write_tables(tmp_path, per_class, per_seq)
    assert {p.name for p in paths.values()} == {"bdrate_classes.csv", "bdrate_classes.md",
                                               "bdrate_classes.tex", "bdrate_sequences.csv",
                                               "bdrate_sequences.md"}
    assert "| UVG | Beauty | 10.0 | n/a |" in paths["sequences_md"].read_text()
