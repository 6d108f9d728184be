"""compress / decompress tell how far they are on a terminal, print one summary line otherwise, nothing with
--quiet, and say so when the output container re-encodes the decoded frames."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys

from tests.conftest import small_clip
from vvc_lightning.cli.main import main
from vvc_lightning.video.progress import FrameProgress
from vvc_lightning.video.video_io import write_video


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_shows_frames_rate_and_eta_on_a_terminal_and_clears_its_line():
    term = Terminal()
    assert list(FrameProgress("compress", 3, stream=term).wrap(iter("abc"))) == ["a", "b", "c"]
    text = term.getvalue()
    assert "\rcompress: 1/3 frames, " in text and " frames/s, ETA 0:0" in text
    assert text.endswith("\r") and not text.rstrip("\r").endswith("frames/s")  # the line is cleared
    quiet = Terminal()
    list(FrameProgress("compress", 3, enabled=False, stream=quiet).wrap(range(3)))
    assert quiet.getvalue() == ""
    piped = io.StringIO()
    list(FrameProgress("compress", 3, stream=piped).wrap(range(3)))
    assert piped.getvalue() == ""


def test_compress_on_a_terminal_shows_progress(tiny_ckpt, bikes_frames, tmp_path):
    src = tmp_path / "clip.y4m"
    write_video(src, small_clip(bikes_frames, 17, 32, 48), 25.0)
    master, slave = pty.openpty()
    proc = subprocess.run(
        [sys.executable, "-m", "vvc_lightning", "compress", str(src), "-o", str(tmp_path / "c.vvc"), "--ckpt",
         str(tiny_ckpt)], stderr=slave, stdout=subprocess.PIPE, text=True,
    )
    os.close(slave)
    err = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        err += chunk
    os.close(master)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert b"compress: " in err and b"/17 frames" in err and b"frames/s" in err
    assert proc.stdout.startswith("compressed ") and len(proc.stdout.splitlines()) == 1


def test_decompress_to_mp4_says_it_is_lossy_and_quiet_prints_nothing(tiny_ckpt, bikes_frames, tmp_path,
                                                                      capsys):
    src = tmp_path / "clip.y4m"
    write_video(src, small_clip(bikes_frames, 9, 32, 48), 25.0)
    vvc = tmp_path / "c.vvc"
    assert main(["compress", str(src), "-o", str(vvc), "--ckpt", str(tiny_ckpt), "--quiet"]) == 0
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
    assert main(["decompress", str(vvc), "-o", str(tmp_path / "d.mp4"), "--ckpt", str(tiny_ckpt)]) == 0
    out = capsys.readouterr()
    assert out.err.count("\n") == 1 and "H.264" in out.err and ".y4m, .yuv or a PNG folder" in out.err
    assert out.out.startswith("decompressed ") and "\r" not in out.err  # not a terminal: no progress line
    assert main(["decompress", str(vvc), "-o", str(tmp_path / "d.y4m"), "--ckpt", str(tiny_ckpt), "-q"]) == 0
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
