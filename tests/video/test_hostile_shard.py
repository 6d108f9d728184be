"""`shard` reruns verify finished shards, shards never exceed the limit, an empty run fails."""

from __future__ import annotations

import contextlib
import json
import os

import numpy as np
import pytest

from vvc_lightning.cli.main import main
from vvc_lightning.datamodules.synthetic import write_index_video
from vvc_lightning.errors import VVCError
from vvc_lightning.video.shard import write_shards
from vvc_lightning.video.video_io import write_video


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile_src")
    for i in range(5):
        write_index_video(d / f"clip{i}.mp4", 26 + i, 32, 48)
    return d


def shard_files(out):
    return sorted(out.glob("shard-*.tar"))


@pytest.mark.parametrize("index", [True, False])
@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_a_damaged_shard_is_detected_and_redone_on_rerun(src, tmp_path, index, damage):
    out = tmp_path / "out"
    first = write_shards(src, out, "40KB", min_frames=25, progress=False)
    good = {p.name: p.read_bytes() for p in shard_files(out)}
    victim = shard_files(out)[0]
    data = victim.read_bytes()
    if damage == "truncate":
        victim.write_bytes(data[: len(data) // 2])
    else:
        k = len(data) // 2  # inside a video
        victim.write_bytes(data[:k] + bytes([data[k] ^ 1]) + data[k + 1 :])
    if not index:
        (out / "shards.json").unlink()
    again = write_shards(src, out, "40KB", min_frames=25, progress=False)
    assert {p.name: p.read_bytes() for p in shard_files(out)} == good
    assert again.written_now == 1 and again.videos == first.videos and again.bytes == first.bytes
    doc = json.loads((out / "shards.json").read_text())
    assert doc["bytes"] == sum(p.stat().st_size for p in shard_files(out))


def test_shards_never_exceed_the_limit(src, tmp_path):
    for limit in (20_000, 40_000, 70_000):
        out = tmp_path / f"o{limit}"
        write_shards(src, out, limit, min_frames=25, progress=False)
        assert all(p.stat().st_size <= limit for p in shard_files(out))


def test_a_video_larger_than_the_limit_is_a_clear_error(src, tmp_path):
    biggest = max(os.path.getsize(p) for p in src.glob("*.mp4"))
    with pytest.raises(VVCError, match="raise --max-shard-size"):
        write_shards(src, tmp_path / "o", biggest, min_frames=25, progress=False)
    assert not shard_files(tmp_path / "o") if (tmp_path / "o").exists() else True


def test_a_run_that_writes_no_video_exits_non_zero(src, tmp_path, capsys):
    assert main(["shard", str(src), "-o", str(tmp_path / "o"), "--min-frames", "1000", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no video was written" in err and "too short" in err


def _tree(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_the_source_folder_as_output_is_named_and_nothing_is_written(src, tmp_path, capsys):
    import shutil

    v2 = tmp_path / "v2"
    shutil.copytree(src, v2)
    before = _tree(tmp_path)
    for out, words in ((v2, "is the source folder"), (tmp_path, "holds the source folder")):
        assert main(["shard", str(v2), "-o", str(out), "--no-progress"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and words in err and "v2-shards" in err, err
    assert _tree(tmp_path) == before
    assert main(["shard", str(v2), "-o", str(v2 / "shards"), "--no-progress"]) == 0  # inside the source: fine
    assert len(shard_files(v2 / "shards")) == 1


@pytest.mark.parametrize("disk", ["file-size limit", "64 kB tmpfs"])
@pytest.mark.parametrize("made", [True, False])
def test_a_full_disk_leaves_no_plan_behind(src, tmp_path, capsys, disk, made):
    from tests.video.test_output_failures import file_size_limit, tmpfs

    with contextlib.ExitStack() as stack:
        if disk == "64 kB tmpfs":
            root = stack.enter_context(tmpfs(tmp_path / "disk", "size=64k"))
            noise = np.random.default_rng(0).integers(0, 256, (30, 48, 64, 3), dtype=np.uint8)
            (tmp_path / "more").mkdir()
            write_video(tmp_path / "more" / "a.mp4", noise, 25.0)  # about 80 kB: more than the disk holds
        else:
            root = tmp_path
            stack.enter_context(file_size_limit(8192))
        out = root / "shards"
        if not made:
            out.mkdir()
        code = main(["shard", str(src if disk != "64 kB tmpfs" else tmp_path / "more"), "-o", str(out),
                     "--no-progress"])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and "nothing was written" in err, err
        assert (not out.exists()) if made else list(out.iterdir()) == []


def test_a_failed_rerun_keeps_the_plan_it_found(src, tmp_path):
    from tests.video.test_output_failures import file_size_limit

    out = tmp_path / "o"
    assert main(["shard", str(src), "-o", str(out), "--no-progress"]) == 0
    plan = (out / "shards.plan.json").read_bytes()
    for shard in shard_files(out):
        shard.unlink()
    with file_size_limit(8192):
        assert main(["shard", str(src), "-o", str(out), "--no-progress"]) == 2
    assert (out / "shards.plan.json").read_bytes() == plan


def test_more_workers_than_cores_is_refused_before_anything_starts(src, tmp_path, capsys):
    cores = len(os.sched_getaffinity(0))
    out = tmp_path / "o"
    assert main(["shard", str(src), "-o", str(out), "--workers", str(cores + 1), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"--workers must be 1 to {cores}" in err, err
    assert not out.exists()
