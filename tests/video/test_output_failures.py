"""Outputs that cannot be written: a full disk (a file-size limit or a 64 kB tmpfs), a read-only file system,
a device, FIFO or dangling link at the output path, and a signal during the final flush. Each ends in one
line naming the path and the cause, never in a false success, and leaves nothing behind."""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import small_clip
from vvc_lightning.cli.main import main
from vvc_lightning.errors import VVCError
from vvc_lightning.training.checkpoint import AtomicCheckpointIO
from vvc_lightning.video.atomic import WriteError, atomic_path, make_dirs
from vvc_lightning.video.output_paths import check_output_path
from vvc_lightning.video.video_io import write_bytes_atomic, write_video

REPO = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def file_size_limit(n: int) -> Iterator[None]:
    """Within the block, this process's writes beyond `n` bytes of a file fail with EFBIG (as a full disk
    would)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (n, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old)


@contextlib.contextmanager
def tmpfs(where: Path, options: str) -> Iterator[Path]:
    """A small tmpfs mounted at `where` (skips the test where mounting is not permitted)."""
    where.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip("mounting a tmpfs is not permitted here")
    try:
        yield where
    finally:  # lazily if a file in it is still open (a writer that leaked its file: the test fails anyway)
        if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], check=True)


def noise(n: int = 8, h: int = 64, w: int = 96) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


# ------------------------------------------------------------------------------------ full disk
@pytest.mark.parametrize("name", ["x.mp4", "x.mkv", "x.mov", "x.y4m", "x.yuv", "pngs"])
def test_a_full_disk_is_one_line_naming_the_path_and_leaves_nothing(tmp_path, name):
    """Every writer (.mp4/.mkv/.mov, whose close error is not dropped, .y4m/.yuv, PNGs) raises WriteError."""
    dst = tmp_path / name
    with file_size_limit(2000), pytest.raises(WriteError) as info:
        write_video(dst, noise(), 25)
    msg = str(info.value)
    assert msg.startswith(f"cannot write '{dst}': File too large;") and "nothing was written" in msg
    assert "\n" not in msg
    assert list(tmp_path.iterdir()) == []


def test_bytes_copies_and_checkpoints_on_a_full_disk_are_one_line_and_leave_nothing(
    tmp_path, tmp_path_factory
):
    src = tmp_path_factory.mktemp("src") / "big.png"
    src.write_bytes(bytes(5000))
    with file_size_limit(2000):
        with pytest.raises(WriteError, match=r"cannot write '.*out\.vvc': File too large"):
            write_bytes_atomic(tmp_path / "out.vvc", bytes(5000))
        # as report.py copies
        with pytest.raises(WriteError, match=r"cannot write '.*copy\.png': File too large"):
            with atomic_path(tmp_path / "copy.png") as tmp:
                shutil.copyfile(src, tmp)
        with pytest.raises(WriteError, match=r"cannot write '.*last\.ckpt': File too large"):
            AtomicCheckpointIO().save_checkpoint({"w": torch.zeros(5000)}, tmp_path / "run" / "last.ckpt")
    assert [p.name for p in tmp_path.rglob("*")] == ["run"]


def test_a_real_full_and_a_read_only_file_system(tmp_path):
    with tmpfs(tmp_path / "full", "size=64k") as full:
        with pytest.raises(WriteError, match=r"cannot write '.*x\.mp4': No space left on device; free space"):
            write_video(full / "x.mp4", noise(33, 120, 160), 25)
        assert list(full.iterdir()) == []
    with tmpfs(tmp_path / "ro", "size=64k,ro") as ro:
        with pytest.raises(WriteError, match=r"cannot write '.*x\.y4m': Read-only file system; choose a "
                                             r"folder"):
            write_video(ro / "x.y4m", noise(2), 25)
        with pytest.raises(WriteError, match=r"cannot create folder '.*results': Read-only file system"):
            make_dirs(ro / "results")


def as_nobody(fn) -> str:
    """What `fn()` raises (its message) when run by a user without root's rights: a forked child drops to
    'nobody' when we are root (root writes into any folder), else runs it as is."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        msg = "no error"
        try:
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            fn()
        except BaseException as exc:  # reported to the parent
            msg = f"{type(exc).__name__}: {exc}"
        os.write(write, msg.encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        msg = f.read().decode()
    os.waitpid(pid, 0)
    return msg


def test_a_folder_without_write_permission():
    # not under pytest's 0700 folders: 'nobody' must reach it
    top = Path(tempfile.mkdtemp(prefix="vvc-perm-"))
    try:
        folder = top / "locked"
        folder.mkdir()
        top.chmod(0o755)
        folder.chmod(0o555)
        for fn, name in ((lambda: write_bytes_atomic(folder / "x.vvc", b"data"), "x.vvc"),
                         (lambda: write_video(folder / "x.mp4", noise(2), 25), "x.mp4")):
            assert as_nobody(fn) == (
                f"WriteError: cannot write '{folder / name}': Permission denied; choose a folder "
                "you may write to (nothing was written)"
            )
        assert as_nobody(lambda: make_dirs(folder / "sub")).startswith(
            f"WriteError: cannot create folder '{folder / 'sub'}': Permission denied")
        assert list(folder.iterdir()) == []
    finally:
        shutil.rmtree(top)


@pytest.fixture(scope="module")
def clip(tmp_path_factory, bikes_frames, tiny_ckpt) -> dict:
    root = tmp_path_factory.mktemp("out_fail")
    src = root / "clip.y4m"
    write_video(src, small_clip(bikes_frames, 12, 40, 56), 25)
    vvc = root / "clip.vvc"
    assert main(["compress", str(src), "-o", str(vvc), "--ckpt", str(tiny_ckpt), "--batch", "2"]) == 0
    # numba compiles (and caches to disk) the rANS decoder on first use: done here, before a test limits
    # writes
    assert main(["decompress", str(vvc), "-o", str(root / "warm.y4m"), "--ckpt", str(tiny_ckpt)]) == 0
    return {"src": src, "vvc": vvc, "ckpt": tiny_ckpt}


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_cli_decompress_onto_a_full_disk_exits_2_with_one_line(clip, tmp_path, capsys, suffix):
    """A failed write is an error, not "decompressed ... 12 frames" with exit 0 and no file."""
    dst = tmp_path / f"x{suffix}"
    capsys.readouterr()
    with file_size_limit(1000):
        code = main(["decompress", str(clip["vvc"]), "-o", str(dst), "--ckpt", str(clip["ckpt"])])
    out, err = capsys.readouterr()
    assert code == 2 and "decompressed" not in out
    lines = err.strip().splitlines()
    assert lines[-1] == (
        f"error: cannot write '{dst}': File too large; choose a folder whose file system (or "
        "file-size limit) takes a file this large (nothing was written)"
    )
    assert lines[:-1] == [] or (len(lines) == 2 and lines[0].startswith(f"note: {suffix} re-encodes"))
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- signal in the flush
SIGNAL_SCRIPT = r"""
import json, os, signal, sys, threading
import numpy as np
from vvc_lightning.video.video_io import write_video

def frames(sig):
    base = np.random.default_rng(0).integers(0, 256, (int(sys.argv[3]), int(sys.argv[2]), 3), dtype=np.uint8)
    for i in range(33):
        yield np.roll(base, 8 * i, axis=1)
    # every frame is handed over; x264 still holds most of them: the signal lands in the final flush
    threading.Timer(0.05, os.kill, (os.getpid(), sig)).start()

result = {}
for name, sig in (("int", signal.SIGINT), ("term", signal.SIGTERM)):
    try:
        write_video(sys.argv[1] + f"/{name}.mp4", frames(sig), 25)
        result[name] = "written"
    except BaseException as exc:
        result[name] = type(exc).__name__
print(json.dumps(result))
"""


@pytest.mark.parametrize("size", [(640, 360), pytest.param((1280, 720), marks=pytest.mark.slow)])
def test_a_signal_during_the_final_flush_of_an_mp4_is_not_a_success(tmp_path, size):
    """SIGINT / SIGTERM in the flush of an .mp4 ends the run as interrupted, never as a normal return."""
    proc = subprocess.run([sys.executable, "-c", SIGNAL_SCRIPT, str(tmp_path), *map(str, size)],
                          capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"int": "KeyboardInterrupt", "term": "Terminated"}
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ devices, FIFOs and dangling links
def char_device(path: Path) -> Path:
    """A character device like /dev/null (1, 3) at `path` (skips where mknod is not permitted)."""
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except (PermissionError, OSError):
        pytest.skip("mknod is not permitted here")
    return path


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_device_or_fifo_is_never_replaced_nor_written_into(tmp_path, kind):
    made = []
    for name in ("null.vvc", "null.y4m", "nodev"):
        path = tmp_path / name
        if kind == "fifo":
            os.mkfifo(path)
        else:
            char_device(path)
        made.append(path)
    link = tmp_path / "link.vvc"
    link.symlink_to(made[0])
    what = "a FIFO (named pipe)" if kind == "fifo" else "a character device"
    for path in (*made, link):
        with pytest.raises(
            VVCError, match=f"output '.*{path.name}' is {re.escape(what)}, not a regular file"
        ):
            write_bytes_atomic(path, b"data")
        with pytest.raises(VVCError, match="not a regular file"):
            check_output_path(path, kind="bitstream")
    with pytest.raises(VVCError, match="not a regular file"):
        write_video(made[1], noise(2), 25)
    with pytest.raises(VVCError, match="not a regular file"), atomic_path(made[2]):
        pass
    test = stat.S_ISFIFO if kind == "fifo" else stat.S_ISCHR
    assert all(test(p.stat().st_mode) for p in made)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.vvc", "nodev", "null.vvc", "null.y4m"]


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_cli_compress_onto_a_device_is_refused_with_or_without_overwrite(clip, tmp_path, capsys, overwrite):
    """A character device (here a private copy of /dev/null) is never replaced by a regular file."""
    dev = char_device(tmp_path / "null")
    fifo = tmp_path / "null.vvc"
    os.mkfifo(fifo)
    for dst, what in ((dev, "a character device"), (fifo, "a FIFO (named pipe)")):
        capsys.readouterr()
        assert (
            main(["compress", str(clip["src"]), "-o", str(dst), "--ckpt", str(clip["ckpt"]), *overwrite]) == 2
        )
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"error: output '{dst}' is {what}, not a regular file;") and "\n" not in err
    assert stat.S_ISCHR(dev.stat().st_mode) and os.major(dev.stat().st_rdev) == 1
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    capsys.readouterr()
    assert (
        main(["decompress", str(clip["vvc"]), "-o", str(dev), "--ckpt", str(clip["ckpt"]), *overwrite]) == 2
    )
    assert "is a character device, not a regular file" in capsys.readouterr().err
    assert stat.S_ISCHR(dev.stat().st_mode)


def test_cli_a_dangling_link_at_the_output_needs_overwrite(clip, tmp_path, capsys):
    """A dangling link is replaced only with --overwrite, and then the link (never its target)."""
    link = tmp_path / "out.vvc"
    link.symlink_to(tmp_path / "gone.vvc")
    args = ["compress", str(clip["src"]), "-o", str(link), "--ckpt", str(clip["ckpt"]), "--batch", "2"]
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"error: output '{link}' is a symbolic link to '{tmp_path / 'gone.vvc'}', which does not exist; "
        "remove it, choose another name or pass --overwrite (to replace the link)"
    )
    assert link.is_symlink()
    assert main([*args, "--overwrite"]) == 0
    assert not link.is_symlink() and link.stat().st_size > 0 and not (tmp_path / "gone.vvc").exists()
