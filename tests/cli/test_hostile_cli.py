"""Hostile use of the command line: data loss, code execution, unbounded options, tracebacks, signals and
output checks before decoding. Each case ends with exit 2 and one line, nothing touched."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import small_clip
from tests.fuzz_vvc import consistent_header
from vvc_lightning.cli.main import main
from vvc_lightning.codec.pipeline import container as bitstream
from vvc_lightning.video.video_io import write_video


@pytest.fixture(scope="module")
def work(tmp_path_factory, bikes_frames, tiny_ckpt) -> dict:
    root = tmp_path_factory.mktemp("hostile_cli")
    src = root / "clip.y4m"
    write_video(src, small_clip(bikes_frames, 5, 24, 40), 25)
    vvc = root / "clip.vvc"
    assert main(["compress", str(src), "-o", str(vvc), "--ckpt", str(tiny_ckpt), "--gop", "5"]) == 0
    return {"root": root, "src": src, "vvc": vvc, "ckpt": tiny_ckpt}


def fails_in_one_line(capsys, argv: list[str], *words: str) -> str:
    """Run the CLI in-process; expect exit 2 and one stderr line containing `words`."""
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for w in words:
        assert w in err, err
    return err


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------ 1: data loss
def test_decompress_into_an_existing_folder_is_refused_and_leaves_it_untouched(
    work, capsys, tmp_path, monkeypatch
):
    folder = tmp_path / "d.mp4"
    folder.mkdir()
    (folder / "precious.txt").write_text("keep me")
    fails_in_one_line(capsys, ["decompress", work["vvc"], "-o", folder], "existing folder")
    monkeypatch.chdir(tmp_path)
    before = tree(tmp_path)
    fails_in_one_line(capsys, ["decompress", work["vvc"], "-o", "."], "existing folder")
    assert tree(tmp_path) == before and (folder / "precious.txt").read_text() == "keep me"


def test_compress_onto_its_input_or_an_existing_folder_is_refused(work, capsys, tmp_path):
    copy = tmp_path / "in.y4m"
    copy.write_bytes(work["src"].read_bytes())
    fails_in_one_line(capsys, ["compress", copy, "-o", copy, "--ckpt", work["ckpt"]], "is the input file")
    assert copy.read_bytes() == work["src"].read_bytes()
    fails_in_one_line(capsys, ["compress", copy, "-o", tmp_path, "--ckpt", work["ckpt"]], "existing folder")


def test_an_existing_output_file_is_kept_unless_overwrite(work, capsys, tmp_path):
    out = tmp_path / "out.y4m"
    out.write_bytes(b"mine")
    fails_in_one_line(capsys, ["decompress", work["vvc"], "-o", out, "--ckpt", work["ckpt"]], "--overwrite")
    assert out.read_bytes() == b"mine"
    assert (
        main(["decompress", str(work["vvc"]), "-o", str(out), "--ckpt", str(work["ckpt"]), "--overwrite"])
        == 0
    )
    assert out.read_bytes().startswith(b"YUV4MPEG2")


# ----------------------------------------------------------------------------- 4: code execution
class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_crafted_checkpoint_does_not_run_code(work, capsys, tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.ckpt"
    with open(evil, "wb") as f:
        pickle.dump({"hyper_parameters": _Evil(str(marker))}, f)
    fails_in_one_line(
        capsys, ["compress", work["src"], "-o", tmp_path / "x.vvc", "--ckpt", evil], "could run code"
    )
    assert not marker.exists()
    # The same checkpoint named in a .vvc header, decoded without --ckpt.
    data = work["vvc"].read_bytes()
    header, start = bitstream.unpack_header(data)
    crafted = (
        bitstream.pack_header(bitstream.Header(**{**vars(header), "checkpoint": str(evil)})) + data[start:]
    )
    (tmp_path / "c.vvc").write_bytes(crafted)
    fails_in_one_line(capsys, ["decompress", tmp_path / "c.vvc", "-o", tmp_path / "c.y4m"], "could run code")
    assert not marker.exists() and not (tmp_path / "c.y4m").exists()


# ---------------------------------------------------------------------------- 5, 6: bad options
@pytest.mark.parametrize(
    ("option", "value", "word"),
    [
        ("--gop", "70001", "--gop"),
        ("--gop", "0", "--gop"),
        ("--gop", "-3", "--gop"),
        ("--fps", "nan", "--fps"),
        ("--fps", "inf", "--fps"),
        ("--fps", "-1", "--fps"),
        ("--fps", "0", "--fps"),
        ("--max-frames", "-1", "--max-frames"),
        ("--max-frames", str(10**20), "--max-frames"),
        ("--size", "0x0", "--size"),
        ("--size", "64x0", "--size"),
        ("--size", "-64x64", "--size"),
    ],
)
def test_out_of_range_options_fail_in_one_line(work, capsys, tmp_path, option, value, word):
    out = tmp_path / "o.vvc"
    fails_in_one_line(
        capsys, ["compress", work["src"], "-o", out, "--ckpt", work["ckpt"], f"{option}={value}"], word
    )
    assert not out.exists()


def test_a_header_claiming_65536x65536_fails_in_one_line(work, capsys, tmp_path):
    data = work["vvc"].read_bytes()
    bad = tmp_path / "big.vvc"
    bad.write_bytes(consistent_header(data, 65528, 65528, 5, 5))
    fails_in_one_line(
        capsys, ["decompress", bad, "-o", tmp_path / "o.y4m", "--ckpt", work["ckpt"]], "claims frames"
    )


def test_zero_frame_and_audio_only_inputs_fail_in_one_line(work, capsys, tmp_path):
    import av

    audio = tmp_path / "audio.mp4"
    with av.open(str(audio), "w") as c:
        s = c.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 16000
        for pkt in [*s.encode(frame), *s.encode()]:
            c.mux(pkt)
    fails_in_one_line(
        capsys, ["compress", audio, "-o", tmp_path / "a.vvc", "--ckpt", work["ckpt"]], "no video stream"
    )
    empty = tmp_path / "empty.mp4"
    with av.open(str(empty), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
    fails_in_one_line(capsys, ["compress", empty, "-o", tmp_path / "e.vvc", "--ckpt", work["ckpt"]], "frame")
    assert not list(tmp_path.glob("*.vvc")) and not list(tmp_path.glob(".*"))


# ------------------------------------------------------------------------------------ 8: signals
_KILL_MID_WRITE = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np
    from vvc_lightning.video.video_io import write_video

    def frames():
        for i in range(4):
            if i == 2:
                os.kill(os.getpid(), getattr(signal, sys.argv[2]))
            yield np.full((16, 16, 3), 40 * i, np.uint8)

    class Lazy:
        shape = (4, 16, 16, 3)
        def __iter__(self):
            return frames()

    write_video(sys.argv[1], Lazy(), 25.0)
    """
)


@pytest.mark.parametrize(("sig", "code"), [("SIGTERM", 128 + signal.SIGTERM), ("SIGINT", None)])
@pytest.mark.parametrize("name", ["out.y4m", "pngs"])
def test_a_signal_mid_write_leaves_no_temporary_file(tmp_path, sig, code, name):
    proc = subprocess.run(
        [sys.executable, "-c", _KILL_MID_WRITE, str(tmp_path / name), sig],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0 and (code is None or proc.returncode == code), proc.stderr
    assert list(tmp_path.iterdir()) == [], list(tmp_path.iterdir())


# ------------------------------------------------------------------------ 10: checks before decoding
def test_an_unsupported_extension_is_refused_before_decoding(work, capsys, tmp_path, monkeypatch):
    import vvc_lightning.codec.pipeline.video_codec as codec_mod

    def no_decode(*a, **k):
        raise AssertionError("decoded before checking the output path")

    monkeypatch.setattr(codec_mod.VideoCodec, "decode", no_decode)
    fails_in_one_line(
        capsys, ["decompress", work["vvc"], "-o", tmp_path / "o.avi", "--ckpt", work["ckpt"]], ".mp4"
    )


def test_png_folders_get_the_usual_permissions(work, tmp_path):
    out = tmp_path / "pngs"
    assert main(["decompress", str(work["vvc"]), "-o", str(out), "--ckpt", str(work["ckpt"])]) == 0
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask
    assert len(list(out.glob("*.png"))) == 5


# ------------------------------------------------------------------------- Ctrl-C during start-up
_CTRL_C_AT = textwrap.dedent(
    """
    import os, runpy, signal, sys

    AT = sys.argv[1]

    class CtrlCAt:  # a real SIGINT to this process when module AT is first imported
        def find_spec(self, name, path, target=None):
            if name == AT:
                sys.meta_path.remove(self)
                os.kill(os.getpid(), signal.SIGINT)

    sys.meta_path.insert(0, CtrlCAt())
    sys.argv = ["vvc_lightning", *sys.argv[2:]]
    runpy.run_module("vvc_lightning", run_name="__main__", alter_sys=True)
    """
)


@pytest.mark.parametrize("module", ["vvc_lightning.cli.main", "numpy", "vvc_lightning.cli.codec", "torch"])
def test_ctrl_c_during_start_up_prints_interrupted(work, tmp_path, module):
    out = tmp_path / "o.y4m"
    argv = ["decompress", str(work["vvc"]), "-o", str(out), "--ckpt", str(work["ckpt"])]
    proc = subprocess.run([sys.executable, "-c", _CTRL_C_AT, module, *argv], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert (proc.returncode, proc.stderr.strip()) == (130, "interrupted"), proc.stderr[-2000:]
    assert list(tmp_path.iterdir()) == []


def test_main_gives_the_sigint_handler_back(work, tmp_path):
    before = signal.getsignal(signal.SIGINT)
    out = tmp_path / "o.y4m"
    assert main(["decompress", str(work["vvc"]), "-o", str(out), "--ckpt", str(work["ckpt"])]) == 0
    assert signal.getsignal(signal.SIGINT) is before


# ------------------------------------------------------------- inputs that are not regular files
def _unreadable(tmp_path: Path, data: bytes) -> Path:
    """A .vvc whose open() fails with EACCES: chmod 000, or as root (who may read anything) a link to a
    write-only sysfs file, which no one may open for reading."""
    path = tmp_path / "locked.vvc"
    if os.geteuid() != 0:
        path.write_bytes(data)
        path.chmod(0)
        return path
    for target in ("/sys/bus/pci/rescan", "/sys/bus/pci/drivers_probe", "/sys/kernel/uevent_seqnum"):
        try:
            open(target, "rb").close()
        except PermissionError:
            path.symlink_to(target)
            return path
        except OSError:
            continue
    pytest.skip("no file here that root may not read")


def test_an_unreadable_bitstream_is_one_line(work, capsys, tmp_path):
    locked = _unreadable(tmp_path, work["vvc"].read_bytes())
    fails_in_one_line(capsys, ["decompress", locked, "-o", tmp_path / "o.y4m", "--ckpt", work["ckpt"]],
                      f"bitstream '{locked}' cannot be read (Permission denied)")


@pytest.mark.parametrize("command", ["decompress", "compress"])
@pytest.mark.parametrize("kind", ["folder", "fifo", "device", "empty"])
def test_an_input_that_is_no_file_is_named(work, capsys, tmp_path, command, kind):
    path, words = {
        "folder": (tmp_path, "is a folder"),
        "fifo": (tmp_path / "pipe.vvc", "is a FIFO (named pipe)"),
        "device": ("/dev/zero", "is a character device"),
        "empty": ("", "is an empty string"),
    }[kind]
    if kind == "fifo":
        os.mkfifo(path)
    out = tmp_path / ("o.y4m" if command == "decompress" else "o.vvc")
    what = "bitstream" if command == "decompress" else "video"
    fails_in_one_line(capsys, [command, path, "-o", out, "--ckpt", work["ckpt"]], f"{what} '{path}' {words}")


@pytest.mark.parametrize("command", ["validate", "compress"])
def test_a_run_folder_as_ckpt_names_its_checkpoint(work, capsys, tmp_path, command):
    run = work["ckpt"].parent
    argv = (["validate", "--ckpt", run] if command == "validate"
            else ["compress", work["src"], "-o", tmp_path / "o.vvc", "--ckpt", run])
    fails_in_one_line(capsys, argv, f"'{run}' is a folder", f"'{run / 'last.ckpt'}'")
    fails_in_one_line(capsys, [*argv[:-1], "/dev/zero"], "'/dev/zero' (it is a character device")
