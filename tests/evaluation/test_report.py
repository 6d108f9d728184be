"""Report outputs from synthetic results: CSV/JSON tables, one RD plot per metric, the HTML page."""

from __future__ import annotations

import csv
import json
from types import SimpleNamespace

import numpy as np
import pytest

from vvc_lightning.evaluation import report


def fake_results(tmp_path):
    crops = tmp_path / "crops_src"
    crops.mkdir()
    import cv2

    cv2.imwrite(str(crops / "ref-abc.png"), np.zeros((8, 8, 3), np.uint8))
    rows, summary = [], []
    for codec, label, kind, base in (
        ("ours", "ours (neural)", "neural", 0.6),
        ("x265", "HEVC (x265)", "baseline", 1.0),
    ):
        for i, point in enumerate(("a", "b", "c")):
            bpp = base * 0.02 * 2**i
            key = f"{codec}{point}"
            cv2.imwrite(str(crops / f"{key}.png"), np.full((8, 8, 3), 40 * i, np.uint8))
            metrics = {"psnr": 30 + 3 * i + (1 if kind == "neural" else 0), "stlpips": 0.3 - 0.05 * i}
            rows.append(
                {
                    "key": key,
                    "codec": codec,
                    "label": label,
                    "kind": kind,
                    "point": point,
                    "point_label": point,
                    "sequence": "seq",
                    "frames": 9,
                    "width": 8,
                    "height": 8,
                    "fps": 25.0,
                    "bytes": 10,
                    "bpp": bpp,
                    "metrics": metrics,
                    "per_frame": {"psnr": [30.0] * 9},
                    "command": f"ffmpeg -c:v lib{codec} -qp {point}",
                    "intra_pictures": 1,
                }
            )
            summary.append(
                {
                    "codec": codec,
                    "label": label,
                    "kind": kind,
                    "point": point,
                    "point_label": point,
                    "sequences": 1,
                    "bytes": 10,
                    "bpp": bpp,
                    **metrics,
                }
            )
    bd = [
        {
            "metric": "psnr",
            "codec": "ours",
            "anchor": "x265",
            "bd_rate_pct": -12.5,
            "sequences_used": 1,
            "sequences": 1,
            "bd_rate_pooled_pct": float("nan"),
            "note": "pooled: the two curves do not overlap",
        }
    ]
    meta = {
        "created": "now",
        "vvc_lightning": "0.1.0",
        "torch": "2",
        "ffmpeg": "ffmpeg version x",
        "rate": "bytes x 8 / pixels",
        "intra_period": "one intra picture per sequence",
        "colour": {"matrix": "bt709", "range": "limited"},
        "metrics": {"psnr": {"higher_is_better": True}, "stlpips": {"higher_is_better": False}},
        "codecs": {
            "ours": {"label": "ours (neural)", "points": ["a", "b", "c"], "identity": {}},
            "x265": {"label": "HEVC (x265)", "points": ["a", "b", "c"], "identity": {"preset": "slow"}},
        },
    }
    seqs = [SimpleNamespace(name="seq", digest="abc")]
    return rows, summary, bd, meta, seqs, crops


def test_write_all_produces_tables_plots_and_a_report(tmp_path):
    rows, summary, bd, meta, seqs, crops = fake_results(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    paths = report.write_all(out, rows, summary, bd, meta, ["psnr", "stlpips"], seqs, crops)
    with open(paths["csv"]) as f:
        table = list(csv.DictReader(f))
    assert len(table) == 6 and {"psnr", "stlpips", "bpp", "command", "intra_pictures"} <= set(table[0])
    doc = json.loads(paths["json"].read_text())
    assert doc["bd_rate"][0]["bd_rate_pooled_pct"] is None  # NaN is written as null, valid JSON
    assert len(doc["rows"]) == 6 and doc["metrics"] == ["psnr", "stlpips"]
    for key in ("rd_psnr", "rd_stlpips"):
        assert paths[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = paths["html"].read_text()
    assert "BD-rate (%) against x265" in page and "-12.50" in page
    assert "ffmpeg -c:v libx265 -qp a" in page and "one intra picture per sequence" in page
    assert "crops/seq_reference.png" in page and (out / "crops" / "seq_reference.png").is_file()


def test_crops_compare_each_codec_at_the_bpp_closest_to_the_neural_codec(tmp_path):
    rows, *_ = fake_results(tmp_path)
    picked = {r["codec"]: r["point"] for r in report.pick_crops(rows, "seq")}
    # neural median bpp 0.024; x265 has 0.02, 0.04, 0.08 -> 0.02 is closest in log
    assert picked == {"ours": "b", "x265": "a"}


def test_the_rd_plot_axes_have_units_and_the_direction_and_curves_are_named(tmp_path, monkeypatch):
    rows, summary, bd, meta, seqs, crops = fake_results(tmp_path)
    seen = {}
    import matplotlib.axes

    for axis in ("xlabel", "ylabel"):
        monkeypatch.setattr(matplotlib.axes.Axes, f"set_{axis}",
                            lambda self, text, axis=axis, **k: seen.setdefault(axis, text))
    report.plot_rd(tmp_path / "p.png", summary, "stlpips", {"higher_is_better": False}, "t")
    assert (seen["xlabel"], seen["ylabel"]) == ("rate (bpp)", "ST-LPIPS, lower is better")
    seen.clear()
    monkeypatch.setattr(matplotlib.axes.Axes, "legend", lambda self, **k: seen.setdefault(
        "legend", [line.get_label() for line in self.lines]))
    report.plot_rd(tmp_path / "p.png", summary, "psnr", {"higher_is_better": True}, "t")
    assert seen["ylabel"] == "RGB PSNR (dB), higher is better" and seen["legend"] == ["ours", "x265"]


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_numbers_become_null_in_json(value):
    assert report._json_safe({"a": [value, 1.0]}) == {"a": [None, 1.0]}
