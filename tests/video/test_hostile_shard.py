"""`shard` reruns verify finished shards, shards never exceed the limit, an empty run fails."""

from __future__ import annotations

import json
import os

import pytest

from vvc_lightning.cli.main import main
from vvc_lightning.datamodules.synthetic import write_index_video
from vvc_lightning.errors import VVCError
from vvc_lightning.video.shard import write_shards


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
