"""Work spread over cores and machines on two tiny real clips: `--jobs 2` and shards joined by `--merge`
give the outputs of one process; what cannot be merged or sharded is one line; `--log-rate` plots."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.evaluation.test_harness import clips, options  # noqa: F401  (the module fixture)
from vvc_lightning.cli.main import main
from vvc_lightning.errors import VVCError
from vvc_lightning.evaluation.harness import evaluate
from vvc_lightning.evaluation.merge import merge

TIMING = ("_seconds", "_fps", "_vs_", "test_time")  # measured anew by every run
TABLES = ("results.csv", "summary.csv", "bdrate.csv", "bdrate_classes.csv", "bdrate_sequences.csv",
          "bdrate_classes.md", "bdrate_classes.tex")


def untimed(obj):
    """`obj` without the times (and fps, speed ratios) a run measures."""
    if isinstance(obj, dict):
        return {k: untimed(v) for k, v in obj.items() if not any(t in k for t in TIMING)}
    if isinstance(obj, list):
        return [untimed(v) for v in obj]
    return obj


def outputs(folder: Path) -> dict:
    """Everything a run computed: its tables, anchor files and results.json, times left out."""
    out = {}
    for name in TABLES:
        path = folder / name
        out[name] = untimed(list(csv.DictReader(path.open()))) if name.endswith(".csv") else path.read_text()
    for path in sorted((folder / "anchors").glob("*.json")):
        out[f"anchors/{path.name}"] = untimed(json.loads(path.read_text()))
    doc = json.loads((folder / "results.json").read_text())
    out["json"] = untimed({k: doc[k] for k in ("metrics", "rows", "summary", "bd_rate")})
    meta = {k: v for k, v in doc["meta"].items() if k not in ("created", "options")}
    out["meta"] = untimed(meta)
    return out


@pytest.fixture(scope="module")
def one_process(clips, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("one")
    evaluate(options(clips, out))
    return out


def test_two_jobs_code_the_classic_rows_in_workers_with_the_outputs_of_one_process(
        one_process, clips, tmp_path, monkeypatch):  # noqa: F811
    from vvc_lightning.evaluation import planes

    def not_here(*args, **kwargs):
        raise AssertionError("a classic row was coded in the main process")

    monkeypatch.setattr(planes, "run_classic", not_here)  # the workers import their own, unpatched
    evaluate(options(clips, tmp_path, jobs=2, log_rate=True))
    assert outputs(tmp_path) == outputs(one_process)
    assert len(list((tmp_path / "cache" / "rows").glob("*.json"))) == 8
    plots = ["rd_psnr.png", *(f"rd_classes/{p.name}" for p in (tmp_path / "rd_classes").glob("*_psnr.png"))]
    assert len(plots) == 2
    for plot in plots:  # the same curves on a log rate axis
        assert (tmp_path / plot).read_bytes() != (one_process / plot).read_bytes()


def test_three_shards_merged_give_the_outputs_of_one_process_and_bad_merges_are_refused(
        one_process, clips, tmp_path):  # noqa: F811
    shards = [tmp_path / f"s{i}" for i in (1, 2, 3)]
    for i, folder in enumerate(shards, 1):
        paths = evaluate(options(clips, folder, shard=(i, 3)))
        assert set(paths) == {"shard"} and not (folder / "results.csv").exists()
    units = [(r["codec"], r["point"], r["sequence"]) for s in shards
             for r in json.loads((s / "shard.json").read_text())["rows"]]
    assert [len(json.loads((s / "shard.json").read_text())["rows"]) for s in shards] == [3, 3, 2]
    assert len(set(units)) == len(units) == 8  # a partition of the 2 codecs x 2 points x 2 sequences

    def refused(folders, out, *words):
        with pytest.raises(VVCError) as exc:
            merge([str(f) for f in folders], str(out), progress=False)
        assert all(w in str(exc.value) for w in words), str(exc.value)
        assert "\n" not in str(exc.value)

    refused([shards[0], shards[2]], tmp_path / "m", "shard 2/3 missing", "given: 1/3, 3/3")
    refused([shards[0], shards[1], shards[1], shards[2]], tmp_path / "m", "both shard 2/3")
    refused([*shards, tmp_path / "one"], tmp_path / "m", "not a folder")
    (tmp_path / "empty").mkdir()
    refused([shards[0], tmp_path / "empty"], tmp_path / "m", "holds no shard.json")
    other = tmp_path / "other"  # slice 2/3 of another evaluation: three frames a sequence
    evaluate(options(clips, other, shard=(2, 3), max_frames=3))
    refused([shards[0], other, shards[2]], tmp_path / "m", "different evaluations", "options.max_frames",
            "null", "3")
    assert not (tmp_path / "m").exists()
    with pytest.raises(VVCError, match="holds another shard"):  # one folder, two slices
        evaluate(options(clips, shards[0], shard=(2, 3)))

    paths = merge([str(s) for s in shards], str(tmp_path / "m"), progress=False)
    assert paths["html"].is_file() and outputs(tmp_path / "m") == outputs(one_process)
    report = (tmp_path / "m" / "report.html").read_text()
    before = sorted(p.name for p in (tmp_path / "m").rglob("*"))
    refused(shards, tmp_path / "m", "existing folder")  # never into (or over) an existing folder
    assert sorted(p.name for p in (tmp_path / "m").rglob("*")) == before
    assert (tmp_path / "m" / "report.html").read_text() == report


def test_a_merge_never_codes_a_row_its_shards_lack(clips, tmp_path):  # noqa: F811
    folder = tmp_path / "s1"
    evaluate(options(clips, folder, baselines=["x264"], points={"x264": [30]}, shard=(1, 1)))
    row = json.loads((folder / "shard.json").read_text())["rows"][0]
    (folder / "cache" / "rows" / f"{row['key']}.json").unlink()
    with pytest.raises(VVCError, match=f"lacks the row {row['codec']} 30 of {row['sequence']}"):
        merge([str(folder)], str(tmp_path / "m"), progress=False)
    assert not (tmp_path / "m").exists()


def test_a_shard_with_searched_classic_points_is_refused_before_any_work(clips, tmp_path):  # noqa: F811
    with pytest.raises(VVCError, match=r"--shard needs the classic rate points fixed .*--points for "
                                       r"x265-ultrafast-ra, e\.g\. --points x265-ultrafast-ra="):
        evaluate(options(clips, tmp_path, ckpts=["zoo:vvc-lean-vr"], points={"x264": [30, 38]}, shard=(1, 2)))
    assert not (tmp_path / "cache" / "rows").exists()


@pytest.mark.parametrize("flags, words", [
    (["--shard", "3/2"], "--shard 3/2: give I/N with N >= 1 and I from 1 to N"),
    (["--shard", "0/0"], "--shard 0/0: give I/N"),
    (["--shard", "2"], "--shard takes I/N"),
    (["--jobs", "0"], "--jobs must be a whole number from 1 to"),
    (["--jobs", "4096"], "--jobs must be a whole number from 1 to"),
    (["--merge", "a", "b"], "--merge takes the data and settings from the shards: leave --data, --baselines"),
])
def test_bad_spread_values_are_one_line_each(clips, tmp_path, capsys, flags, words):  # noqa: F811
    code = main(["evaluate", "--data", str(clips), "--baselines", "x264", "-o", str(tmp_path / "out"),
                 "--no-progress", *flags])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"error: {words}") and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_the_cli_without_data_or_shards_says_what_it_needs(capsys):
    assert main(["evaluate", "--baselines", "x264"]) == 2
    assert capsys.readouterr().err == ("error: evaluate needs --data (the sequences to evaluate), or --merge "
                                       "SHARD_DIR... -o OUT\n")


def test_log_rate_puts_the_rd_plots_on_a_logarithmic_rate_axis():
    from vvc_lightning.cli.evaluate import options_from_args
    from vvc_lightning.cli.main import build_parser
    from vvc_lightning.evaluation.class_plots import rd_figure

    def labels(curves):
        fig = rd_figure(curves, "psnr", True, "t", log_rate=True)
        ax = fig.axes[0]
        fig.canvas.draw()
        assert ax.get_xscale() == "log" and "log scale" in ax.get_xlabel()
        lo, hi = ax.get_xlim()
        return [t.get_text() for t in ax.get_xticklabels() if lo <= t.get_position()[0] <= hi]

    # plain numbers, not powers of ten: 1-2-5 per decade, or evenly spaced over a narrow range
    assert labels({"a": [(0.02, 30.0), (0.5, 40.0)], "b": [(0.03, 31.0), (0.4, 39.0)]}) == [
        "0.02", "0.05", "0.1", "0.2", "0.5"]
    assert labels({"a": [(0.079, 40.2), (0.127, 44.3)], "b": [(0.085, 38.7), (0.159, 42.6)]}) == [
        "0.08", "0.1", "0.12", "0.14", "0.16"]
    assert rd_figure({"a": [(0.02, 30.0)]}, "psnr", True, "t").axes[0].get_xscale() == "linear"  # default
    args = build_parser().parse_args(["evaluate", "--data", "x", "--log-rate", "--jobs", "2", "--shard",
                                      "2/3"])
    opts = options_from_args(args)
    assert (opts.log_rate, opts.jobs, opts.shard) == (True, 2, (2, 3))
    assert options_from_args(build_parser().parse_args(["evaluate", "--data", "x"])).log_rate is False
