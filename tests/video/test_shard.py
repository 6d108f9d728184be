"""`shard` command: folders, zip parts and CSV in; atomic, resumable shards and an honest summary out."""

from __future__ import annotations

import json
import os
import tarfile
import zipfile

import pytest

from vvc_lightning.cli.main import main
from vvc_lightning.datamodules.streaming import ShardClipStream
from vvc_lightning.datamodules.synthetic import write_index_video
from vvc_lightning.errors import VVCError
from vvc_lightning.video import shard as shard_mod
from vvc_lightning.video.shard import parse_size, write_shards
from vvc_lightning.video.video_sources import ClipSpec


@pytest.fixture(scope="module")
def src_dir(tmp_path_factory):
    """6 good index videos (26..31 frames), a short one, a corrupt one, a zip part and an OpenVid-style
    CSV."""
    d = tmp_path_factory.mktemp("src")
    for i in range(6):
        write_index_video(d / f"clip{i}.mp4", 26 + i, 32, 48)
    write_index_video(d / "short.mp4", 12, 32, 48)
    (d / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(3000))
    zdir = tmp_path_factory.mktemp("zipsrc")
    with zipfile.ZipFile(d / "OpenVid_part0.zip", "w") as z:
        for i in range(2):
            p = write_index_video(zdir / f"z{i}.mp4", 40, 32, 48)
            z.write(p, f"video/celebv_a.b_{i}.mp4")
    (d / "OpenVid-1M.csv").write_text(
        "video,caption,aesthetic score,motion score,frame,fps,seconds\n"
        'celebv_a.b_0.mp4,"a person, talking",5.25,0.5,40,25,1.6\nclip1.mp4,a clip,4,1,27,25,1.08\n'
        "not_here.mp4,missing,1,1,1,1,1\n"
    )
    return d


def members(path):
    with tarfile.open(path) as tar:
        return [m.name for m in tar.getmembers()]


def test_summary_counts_written_and_skipped_with_reasons(src_dir, tmp_path):
    s = write_shards(src_dir, tmp_path / "out", "40KB", min_frames=25, progress=False)
    reasons = s.skip_reasons()
    assert s.videos == 8 and reasons == {"undecodable": 1, "too short": 1}
    assert len(s.shards) == len(list((tmp_path / "out").glob("shard-*.tar"))) >= 2
    text = s.text()
    assert "videos written: 8" in text and "files skipped: 2" in text and "broken.mp4" in text
    assert f"shard-{{000000..{len(s.shards) - 1:06d}}}.tar" in text
    index = json.loads((tmp_path / "out" / "shards.json").read_text())
    assert index["videos"] == 8 and sum(sh["videos"] for sh in index["shards"]) == 8


def test_shards_respect_the_size_limit_and_hold_video_plus_json(src_dir, tmp_path):
    s = write_shards(src_dir, tmp_path / "out", "40KB", progress=False)
    for sh in s.shards:
        path = tmp_path / "out" / sh.name
        names = members(path)
        assert path.stat().st_size <= 40_000 or len(names) == 2
        keys = {n.split(".")[0] for n in names}
        assert {f"{k}.json" for k in keys} | {f"{k}.mp4" for k in keys} == set(names)


def test_metadata_has_decoded_frame_counts_and_csv_rows(src_dir, tmp_path):
    write_shards(src_dir, tmp_path / "out", "10MB", progress=False)
    with tarfile.open(tmp_path / "out" / "shard-000000.tar") as tar:
        metas = {
            m.name: json.loads(tar.extractfile(m).read())
            for m in tar.getmembers()
            if m.name.endswith(".json")
        }
    zipped = metas["celebv_a_b_0.json"]  # dots in the stem become '_' (webdataset splits keys at dots)
    assert (
        zipped["name"] == "celebv_a.b_0.mp4"
        and zipped["origin"] == "OpenVid_part0.zip:video/celebv_a.b_0.mp4"
    )
    assert zipped["frames"] == 40 and (zipped["width"], zipped["height"]) == (48, 32)
    assert zipped["csv"]["caption"] == "a person, talking" and zipped["csv"]["aesthetic score"] == 5.25
    assert metas["clip3.json"]["frames"] == 29 and "csv" not in metas["clip3.json"]


def test_shards_stream_into_the_datamodule(src_dir, tmp_path):
    s = write_shards(src_dir, tmp_path / "out", "40KB", progress=False)
    urls = [str(tmp_path / "out" / sh.name) for sh in s.shards]
    ds = ShardClipStream(urls, ClipSpec(9, 3, 32), train=False, resampled=False, with_keys=True)
    assert len([k for _, k in ds]) == 8 and ds.skips.total == 0


def test_a_crash_mid_shard_leaves_no_shard_and_a_rerun_finishes_the_rest(src_dir, tmp_path, monkeypatch):
    out = tmp_path / "out"
    reference = write_shards(src_dir, tmp_path / "ref", "40KB", progress=False)
    first = len(members(tmp_path / "ref" / "shard-000000.tar"))  # files in shard 0 (2 per video)
    real_add, calls = shard_mod._tar_add, {"n": 0}

    def crashing_add(tar, name, data):
        calls["n"] += 1
        if calls["n"] == first + 1:  # inside the second shard
            raise RuntimeError("killed")
        real_add(tar, name, data)

    monkeypatch.setattr(shard_mod, "_tar_add", crashing_add)
    with pytest.raises(RuntimeError, match="killed"):
        write_shards(src_dir, out, "40KB", progress=False)
    done = sorted(p.name for p in out.glob("shard-*.tar"))
    assert done == ["shard-000000.tar"] and not list(out.glob(".shard-*"))
    assert not (out / ".shards.temporaries.json").exists()  # the crashed run forgot its deleted temporary
    mine = out / ".shard-000001.x1y2.tmp.tar"  # named like a temporary, but no run created it: kept
    mine.write_bytes(b"partial")
    monkeypatch.setattr(shard_mod, "_tar_add", real_add)
    resumed = write_shards(src_dir, out, "40KB", progress=False)
    assert resumed.resumed == 1 and resumed.written_now == len(reference.shards) - 1
    assert [p.name for p in out.glob(".shard*")] == [mine.name] and mine.read_bytes() == b"partial"
    for sh in reference.shards:
        assert members(out / sh.name) == members(tmp_path / "ref" / sh.name)
    assert resumed.videos == reference.videos


def test_rerun_with_other_options_refuses_to_mix_plans(src_dir, tmp_path):
    write_shards(src_dir, tmp_path / "out", "40KB", progress=False)
    with pytest.raises(VVCError, match="different plan"):
        write_shards(src_dir, tmp_path / "out", "80KB", progress=False)


def test_cli_prints_summary_and_fails_in_one_line_on_a_missing_source(src_dir, tmp_path, capsys):
    assert (
        main(["shard", str(src_dir), "-o", str(tmp_path / "o"), "--max-shard-size", "1MB", "--no-progress"])
        == 0
    )
    out = capsys.readouterr().out
    assert "videos written: 8" in out and "shards: 1 (1 written now, 0 already done)" in out
    assert main(["shard", str(tmp_path / "missing"), "-o", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0]


def test_csv_as_source_and_workers_give_the_same_shards(src_dir, tmp_path):
    a = write_shards(src_dir / "OpenVid-1M.csv", tmp_path / "a", "1MB", workers=2, progress=False)
    b = write_shards(src_dir, tmp_path / "b", "1MB", workers=1, progress=False)
    assert members(tmp_path / "a" / "shard-000000.tar") == members(tmp_path / "b" / "shard-000000.tar")
    assert a.videos == b.videos == 8


@pytest.mark.parametrize(("text", "value"), [("1GB", 10**9), ("500MB", 5 * 10**8), ("2GiB", 2 * 2**30),
                                             ("1.5g", 15 * 10**8), (4096, 4096)])
def test_parse_size_reads_units(text, value):
    assert parse_size(text) == value


def test_parse_size_rejects_nonsense():
    with pytest.raises(VVCError, match="1GB, 500MB"):
        parse_size("lots")
