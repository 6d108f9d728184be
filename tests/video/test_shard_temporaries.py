"""`shard` deletes only the temporaries a shard run created (listed in the folder's journal
with their run's pid and host), never a user's file that merely looks like one."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap

import pytest

from vvc_lightning.datamodules.synthetic import write_index_video
from vvc_lightning.video import shard as shard_mod
from vvc_lightning.video.shard import write_shards
from vvc_lightning.video.shard_state import JOURNAL_FILE


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    d = tmp_path_factory.mktemp("tmpsrc")
    for i in range(4):
        write_index_video(d / f"v{i}.mp4", 10 + i, 48, 64)
    return d


def run(src, out):
    return write_shards(src, out, "20KB", min_frames=8, progress=False)


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def journal(out, *entries) -> None:
    (out / JOURNAL_FILE).write_text(json.dumps({"temporaries": list(entries)}))


def test_a_users_file_named_like_a_temporary_is_kept(src, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    mine = [out / ".shard-000000.mine.tmp.tar", out / ".shard-000001.abcd1234.tmp.tar"]
    for p in mine:
        p.write_bytes(b"my data")
    run(src, out)
    run(src, out)
    assert all(p.read_bytes() == b"my data" for p in mine)


def test_the_journal_names_the_temporary_while_a_shard_is_written(src, tmp_path, monkeypatch):
    out, seen = tmp_path / "out", []
    real_add = shard_mod._tar_add

    def watching_add(tar, name, data):
        doc = json.loads((out / JOURNAL_FILE).read_text())
        seen.append([(e["name"], e["pid"], (out / e["name"]).is_file()) for e in doc["temporaries"]])
        real_add(tar, name, data)

    monkeypatch.setattr(shard_mod, "_tar_add", watching_add)
    run(src, out)
    assert seen and all(len(s) == 1 and s[0][1] == os.getpid() and s[0][2] for s in seen)
    assert not (out / JOURNAL_FILE).exists() and not list(out.glob(".shard-*"))


def test_a_killed_runs_temporary_is_deleted_and_another_live_runs_is_not(src, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    left, busy, user = (out / n for n in (".shard-000001.k1ll3d00.tmp.tar", ".shard-000002.l1ve0000.tmp.tar",
                                          ".shard-000003.us3r0000.tmp.tar"))
    for p in (left, busy, user):
        p.write_bytes(b"partial")
    host = socket.gethostname()
    journal(out, {"name": left.name, "pid": dead_pid(), "host": host},
            {"name": busy.name, "pid": os.getppid(), "host": host})
    s = run(src, out)
    assert "deleted 1 temporary file(s) left by a killed run" in s.text()
    assert not left.exists() and busy.read_bytes() == user.read_bytes() == b"partial"
    assert [e["name"] for e in json.loads((out / JOURNAL_FILE).read_text())["temporaries"]] == [busy.name]


@pytest.mark.parametrize("name", ["../victim.tar", "notes.txt", ".shard-000000.x/../../victim.tmp.tar"])
def test_a_crafted_journal_deletes_nothing(src, tmp_path, name):
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.tar"
    for p in (victim, out / "notes.txt"):
        p.write_bytes(b"keep")
    journal(out, {"name": name, "pid": dead_pid(), "host": socket.gethostname()})
    s = run(src, out)
    assert f"{out / JOURNAL_FILE} was damaged (an entry: not a shard temporary name)" in s.text()
    assert victim.read_bytes() == (out / "notes.txt").read_bytes() == b"keep"


@pytest.mark.slow
def test_a_sigkill_mid_shard_leaves_a_temporary_the_rerun_deletes(src, tmp_path):
    out = tmp_path / "out"
    script = textwrap.dedent(f"""
        import os, signal
        from vvc_lightning.video import shard as m
        real, n = m._tar_add, [0]
        def add(tar, name, data):
            n[0] += 1
            if n[0] == 3:
                os.kill(os.getpid(), signal.SIGKILL)
            real(tar, name, data)
        m._tar_add = add
        m.write_shards({str(src)!r}, {str(out)!r}, "20KB", min_frames=8, progress=False)
    """)
    proc = subprocess.run([sys.executable, "-c", script], check=False)
    assert proc.returncode == -signal.SIGKILL
    left = list(out.glob(".shard-*.tmp.tar"))
    assert len(left) == 1
    mine = out / ".shard-000009.mine0000.tmp.tar"
    mine.write_bytes(b"mine")
    s = run(src, out)
    assert "deleted 1 temporary file(s) left by a killed run" in s.text()
    assert list(out.glob(".shard-*.tmp.tar")) == [mine] and not (out / JOURNAL_FILE).exists()
