"""Two runs writing one output without --overwrite: the last step never replaces a file that appeared
meanwhile, so exactly one run wins and the other says so in one line; the file is the winner's, whole."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from vvc_lightning.video.atomic import OutputTaken, atomic_path
from vvc_lightning.video.video_writer import VideoWriter

# A writer that finishes its temporary, says so (ready file), and moves it into place once told (go file).
WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from vvc_lightning.errors import VVCError
    from vvc_lightning.video.atomic import atomic_path

    dst, ready, go, fill = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4].encode()
    try:
        with atomic_path(dst, replace=False) as tmp:
            tmp.write_bytes(fill * 300_000)
            ready.touch()
            while not go.exists():
                time.sleep(0.005)
    except VVCError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    """
)


def test_two_processes_racing_to_one_output_one_wins_the_other_says_so(tmp_path):
    out, flags = tmp_path / "out", tmp_path / "flags"
    out.mkdir()
    flags.mkdir()
    dst = out / "same.vvc"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(dst), str(flags / f"ready{i}"), str(flags / "go"), fill],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for i, fill in enumerate(("a", "b"))
    ]
    give_up = time.monotonic() + 120
    while not all((flags / f"ready{i}").exists() for i in range(2)):  # both temporaries written
        alive = all(p.poll() is None for p in procs)
        assert time.monotonic() < give_up and alive, [p.communicate() for p in procs]
        time.sleep(0.01)
    (flags / "go").touch()  # both move their copy into place at once
    results = [(p.wait(60), p.communicate()[1]) for p in procs]
    assert sorted(rc for rc, _ in results) == [0, 2], results
    winner = "ab"[[rc for rc, _ in results].index(0)]
    loser_err = next(err for rc, err in results if rc == 2).strip()
    assert len(loser_err.splitlines()) == 1 and "Traceback" not in loser_err, loser_err
    assert f"'{dst}' appeared while this run was writing it" in loser_err
    assert dst.read_bytes() == winner.encode() * 300_000  # the winner's file, whole
    assert sorted(os.listdir(out)) == ["same.vvc"]  # no temporary left behind


def test_a_file_that_appears_while_writing_is_kept_without_replace(tmp_path):
    dst = tmp_path / "out.bin"
    with pytest.raises(OutputTaken, match="appeared while this run was writing it"), atomic_path(
        dst, replace=False
    ) as tmp:
        tmp.write_bytes(b"ours")
        dst.write_bytes(b"theirs")
    assert dst.read_bytes() == b"theirs" and os.listdir(tmp_path) == ["out.bin"]
    dst.unlink()
    dst.symlink_to(tmp_path / "nowhere")  # a dangling link is never replaced either
    with pytest.raises(OutputTaken), atomic_path(dst, replace=False) as tmp:
        tmp.write_bytes(b"ours")
    assert dst.is_symlink() and sorted(os.listdir(tmp_path)) == ["out.bin"]
    with atomic_path(tmp_path / "new.bin", replace=False) as tmp:  # nothing in the way: written as usual
        tmp.write_bytes(b"ours")
    assert (tmp_path / "new.bin").read_bytes() == b"ours"
    with atomic_path(tmp_path / "new.bin") as tmp:  # replace (--overwrite): replaced
        tmp.write_bytes(b"again")
    assert (tmp_path / "new.bin").read_bytes() == b"again"


def test_a_decoded_video_never_replaces_one_that_appeared_meanwhile(tmp_path):
    dst = tmp_path / "out.y4m"
    frame = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(OutputTaken), VideoWriter(dst, 25, replace=False) as writer:
        writer.write(frame)
        dst.write_bytes(b"theirs")
    assert dst.read_bytes() == b"theirs" and os.listdir(tmp_path) == ["out.y4m"]


@pytest.mark.slow
def test_two_compress_commands_to_one_output(tmp_path, bikes_frames):
    """The reported case: `compress a -o same.vvc & compress b -o same.vvc` (whichever way the race goes)."""
    from tests.conftest import small_clip
    from vvc_lightning.codec.pipeline import container
    from vvc_lightning.video.video_io import write_video

    for i in range(2):
        write_video(tmp_path / f"{i}.y4m", small_clip(bikes_frames, 5, 32, 32, y0=40 * i), 25)
    dst = tmp_path / "same.vvc"
    procs = [
        subprocess.Popen([sys.executable, "-m", "vvc_lightning", "compress", str(tmp_path / f"{i}.y4m"), "-o",
                          str(dst), "--model", "vvc-lean-vr", "--quality", "0"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(2)
    ]
    results = [(p.wait(600), p.communicate()[1]) for p in procs]
    assert sorted(rc for rc, _ in results) == [0, 2], results
    err = [line for line in next(e for rc, e in results if rc == 2).splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "same.vvc" in err[0], results
    container.unpack_header(Path(dst).read_bytes())
