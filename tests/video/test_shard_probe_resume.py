"""`shard` takes what probes as a video and lists every file it skips, checks
a finished shard member by member without shards.json, survives damaged state files, refuses bad CSVs and an
output path that is a file in one line."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile

import pytest

from vvc_lightning.cli.main import main
from vvc_lightning.datamodules.streaming import ShardClipStream
from vvc_lightning.datamodules.synthetic import write_index_video
from vvc_lightning.video.shard import write_shards
from vvc_lightning.video.video_sources import ClipSpec


def ffmpeg(*args: str) -> None:
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """An MPEG-1 .mpg, an mp4 named .bin, two good mp4s; a cut AVI, a text file, a PNG, a short mp4 and a
    video in a hidden folder."""
    d = tmp_path_factory.mktemp("mixed")
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=25", "-frames:v", "12", "-c:v", "mpeg1video",
           str(d / "city.mpg"))
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=25", "-frames:v", "12", "-c:v", "mpeg4",
           str(d / "whole.avi"))
    (d / "broken.avi").write_bytes((d / "whole.avi").read_bytes()[:3000])
    (d / "whole.avi").unlink()
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48", "-frames:v", "1", str(d / "still.png"))
    write_index_video(d / "a.mp4", 12, 48, 64)
    write_index_video(d / "b.mp4", 14, 48, 64)
    shutil.copy(write_index_video(d / "tmp.mp4", 10, 48, 64), d / "camera.bin")
    (d / "tmp.mp4").unlink()
    write_index_video(d / "short.mp4", 4, 48, 64)
    (d / "notes.txt").write_text("shot on the roof\n")
    (d / ".git").mkdir()
    shutil.copy(d / "a.mp4", d / ".git" / "objects")  # in a hidden folder: left out, counted
    return d


SKIPPED = {"broken.avi": "undecodable", "notes.txt": "unsupported", "still.png": "unsupported",
           "short.mp4": "too short"}


def test_videos_are_found_by_probing_and_every_skip_is_listed(mixed, tmp_path):
    s = write_shards(mixed, tmp_path / "out", "1MB", min_frames=8, progress=False)
    assert s.videos == 4  # a.mp4, b.mp4, camera.bin, city.mpg
    assert {k["origin"]: k["reason"] for k in s.skipped()} == SKIPPED
    text = s.text()
    for name, reason in SKIPPED.items():
        assert f"  skipped {name}: {reason} (" in text
    assert "files skipped: 4 (2 unsupported, 1 undecodable, 1 too short)" in text
    assert "left out 1 hidden file(s) (a name or folder starting with '.')" in text
    with tarfile.open(tmp_path / "out" / "shard-000000.tar") as tar:
        names = [m.name for m in tar.getmembers()]
        meta = json.loads(tar.extractfile("city.json").read())
    assert "city.video" in names and "camera.video" in names  # members the shard reader knows
    assert meta["frames"] == 12 and meta["name"] == "city.mpg"
    index = json.loads((tmp_path / "out" / "shards.json").read_text())
    assert {k["origin"] for k in index["not_videos"]} == {"notes.txt", "still.png"}
    ds = ShardClipStream([str(tmp_path / "out" / "shard-000000.tar")], ClipSpec(4, 2, 32), train=False,
                         resampled=False, with_keys=True)
    assert sorted(k for _, k in ds) == ["a", "b", "camera", "city"]


def test_a_run_that_finds_only_non_videos_names_them(mixed, tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(mixed / "notes.txt", src)
    shutil.copy(mixed / "short.mp4", src)
    assert main(["shard", str(src), "-o", str(tmp_path / "o"), "--min-frames", "8", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "1 unsupported: notes.txt" in err[0] and "1 too short: short.mp4" in err[0]


def _cut_last_member(path) -> None:
    """Cut a shard just before its last video's JSON and pad it with zeros as a complete tar would be."""
    with tarfile.open(path) as tar:
        cut = tar.getmembers()[-2].offset
    data = path.read_bytes()[:cut]
    size = -(-(cut + 1024) // tarfile.RECORDSIZE) * tarfile.RECORDSIZE
    path.write_bytes(data + bytes(size - cut))


@pytest.fixture(scope="module")
def mp4s(mixed, tmp_path_factory):
    """Three good mp4s and a short one (names with common video suffixes)."""
    d = tmp_path_factory.mktemp("mp4s")
    for name in ("a.mp4", "b.mp4", "short.mp4"):
        shutil.copy(mixed / name, d)
    write_index_video(d / "c.mp4", 16, 48, 64)
    return d


def test_without_the_index_a_whole_shard_counts_as_done_with_its_skips(mp4s, tmp_path):
    out = tmp_path / "out"
    write_shards(mp4s, out, "1MB", min_frames=8, progress=False)
    (out / "shards.json").unlink()
    again = write_shards(mp4s, out, "1MB", min_frames=8, progress=False)
    assert (again.resumed, again.written_now, again.videos) == (1, 0, 3)
    assert [(k["origin"], k["reason"]) for k in again.skipped()] == [("short.mp4", "too short")]


def test_without_the_index_a_shard_cut_at_a_member_is_written_again(mp4s, tmp_path):
    out = tmp_path / "out"
    write_shards(mp4s, out, "1MB", min_frames=8, progress=False)
    shard = out / "shard-000000.tar"
    good = shard.read_bytes()
    _cut_last_member(shard)
    (out / "shards.json").unlink()
    fixed = write_shards(mp4s, out, "1MB", min_frames=8, progress=False)
    assert (fixed.resumed, fixed.written_now, fixed.videos) == (0, 1, 3)
    assert "shard-000000.tar was damaged or incomplete: written again" in fixed.text()
    assert shard.read_bytes() == good


def _damage(doc: dict, how: str) -> bytes:
    if how == "not json":
        return b'{"shards": ['
    if how == "not utf-8":
        return b"\xff\xfe{\x00"
    if how == "deep":
        return b"[" * 200_000
    if how == "list":
        return b"[1, 2]"
    if how == "wrong type":
        return json.dumps({**doc, "videos": "many"}).encode()
    return json.dumps({**doc, "surprise": 1}).encode()  # unknown key


@pytest.fixture(scope="module")
def done(mixed, tmp_path_factory):
    out = tmp_path_factory.mktemp("done") / "out"
    write_shards(mixed, out, "1MB", min_frames=8, progress=False)
    return out


@pytest.mark.parametrize("name", ["shards.json", "shards.plan.json"])
@pytest.mark.parametrize("how", ["not json", "not utf-8", "deep", "list", "wrong type", "unknown key"])
def test_a_damaged_state_file_is_ignored_and_said(mixed, done, tmp_path, capsys, name, how):
    out = tmp_path / "out"
    shutil.copytree(done, out)
    path = out / name
    path.write_bytes(_damage(json.loads(path.read_text()), how))
    args = [
        "shard",
        str(mixed),
        "-o",
        str(out),
        "--min-frames",
        "8",
        "--max-shard-size",
        "1MB",
        "--no-progress",
    ]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert f"{path} was damaged (" in text and ": ignored it" in text
    assert "shards: 1 (0 written now, 1 already done)" in text and "videos written: 4" in text
    assert json.loads(path.read_text())  # written anew, sound
    assert main(args) == 0 and "was damaged" not in capsys.readouterr().out


def test_a_metadata_csv_that_is_not_utf8_is_one_line(mixed, tmp_path, capsys):
    bad = tmp_path / "meta.csv"
    bad.write_bytes(b"video,caption\na.mp4,caf\xe9 au lait\n")
    assert main(["shard", str(mixed), "-o", str(tmp_path / "o"), "--csv", str(bad), "--min-frames", "8",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1 and f"metadata CSV '{bad}' is not UTF-8 text" in err[0] and "save it as UTF-8" in err[0]
    )
    assert not (tmp_path / "o").exists()


def test_a_metadata_csv_with_a_huge_field_is_one_line(mixed, tmp_path, capsys):
    bad = tmp_path / "meta.csv"
    bad.write_text("video,caption\na.mp4,ok\nb.mp4," + "x" * 140_000 + "\n")
    assert main(["shard", str(mixed), "-o", str(tmp_path / "o"), "--csv", str(bad), "--min-frames", "8",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1 and "cannot be read at line 3" in err[0] and "field larger than field limit" in err[0]
    )


def test_a_csv_with_a_byte_order_mark_matches(mixed, tmp_path):
    meta = tmp_path / "meta.csv"
    meta.write_bytes("\ufeffvideo,caption\ncity.mpg,rooftops\n".encode())
    write_shards(mixed, tmp_path / "out", "1MB", min_frames=8, csv_path=meta, progress=False)
    with tarfile.open(tmp_path / "out" / "shard-000000.tar") as tar:
        assert json.loads(tar.extractfile("city.json").read())["csv"] == {
            "video": "city.mpg",
            "caption": "rooftops",
        }


def test_an_output_path_that_is_a_file_is_one_line_and_untouched(mixed, tmp_path, capsys):
    target = tmp_path / "shards"
    target.write_bytes(b"my notes")
    assert main(["shard", str(mixed), "-o", str(target), "--min-frames", "8", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"-o '{target}' is an existing file, not a folder" in err[0]
    assert target.read_bytes() == b"my notes"


def test_an_output_folder_that_cannot_be_made_is_one_line(mixed, tmp_path, capsys):
    (tmp_path / "file").write_bytes(b"x")
    assert main(["shard", str(mixed), "-o", str(tmp_path / "file" / "out"), "--min-frames", "8",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"cannot create the output folder '{tmp_path / 'file' / 'out'}'" in err[0]


def test_zip_members_are_probed_too(mixed, tmp_path):
    import zipfile

    src = tmp_path / "src"
    src.mkdir()
    with zipfile.ZipFile(src / "part0.zip", "w") as z:
        z.write(mixed / "city.mpg", "v/city.mpg")
        z.write(mixed / "camera.bin", "v/cam")  # an mp4 without a suffix
        z.write(mixed / "notes.txt", "v/readme")
    s = write_shards(src, tmp_path / "out", "1MB", min_frames=8, progress=False)
    assert s.videos == 2
    assert [(k["origin"], k["reason"]) for k in s.skipped()] == [("part0.zip:v/readme", "unsupported")]
