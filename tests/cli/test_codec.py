"""`compress` / `decompress` through the command line, with a real checkpoint written by `fit`."""

from __future__ import annotations

import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import small_clip
from vvc_lightning.cli.main import main
from vvc_lightning.codec.pipeline import container as bitstream
from vvc_lightning.video.video_io import read_video, write_video


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vvc_lightning", *map(str, args)], capture_output=True, text=True
    )


def read_pngs(folder: Path) -> np.ndarray:
    import cv2

    return np.stack([cv2.imread(str(p))[..., ::-1] for p in sorted(folder.glob("*.png"))])


@pytest.fixture(scope="module")
def work(tmp_path_factory, bikes_frames, tiny_ckpt) -> dict:
    """A small real input video (.y4m, 12 frames 40x56) and its compressed file, made through the CLI."""
    root = tmp_path_factory.mktemp("cli_codec")
    src = root / "clip.y4m"
    write_video(src, small_clip(bikes_frames, 12, 40, 56), 25)
    out = root / "clip.vvc"
    proc = run_cli("compress", src, "-o", out, "--ckpt", tiny_ckpt, "--batch", "2")
    assert proc.returncode == 0, proc.stderr
    return {"root": root, "src": src, "vvc": out, "stdout": proc.stdout, "ckpt": tiny_ckpt}


def test_compress_prints_frames_size_bytes_bpp_and_speed(work):
    size = work["vvc"].stat().st_size
    m = re.search(r"(\d+) frames, (\d+)x(\d+), (\d+) bytes, ([\d.]+) bpp, ([\d.]+) frames/s", work["stdout"])
    assert m, work["stdout"]
    frames, w, h, nbytes, bpp = int(m[1]), int(m[2]), int(m[3]), int(m[4]), float(m[5])
    assert (frames, w, h, nbytes) == (12, 56, 40, size)
    assert bpp == pytest.approx(size * 8 / (12 * 56 * 40), abs=1e-5)
    assert bitstream.unpack(work["vvc"].read_bytes())[0].checkpoint == str(Path(work["ckpt"]).resolve())


def test_decompress_in_two_processes_gives_identical_frames(work):
    """Decode in two fresh processes (checkpoint found from the header) and in this one: same RGB frames."""
    outs = []
    for name in ("a", "b"):
        folder = work["root"] / f"png_{name}"
        proc = run_cli("decompress", work["vvc"], "-o", folder)
        assert proc.returncode == 0, proc.stderr
        assert "12 frames, 56x40" in proc.stdout and "bpp" in proc.stdout and "frames/s" in proc.stdout
        outs.append(read_pngs(folder))
    assert outs[0].shape == (12, 40, 56, 3)
    assert np.array_equal(outs[0], outs[1])
    from vvc_lightning.api import load_video_codec

    here = load_video_codec(work["ckpt"]).decode(work["vvc"].read_bytes()).frames
    assert np.array_equal(here, outs[0])


@pytest.mark.parametrize("suffix", [".mp4", ".y4m"])
def test_decompress_writes_video_files(work, suffix):
    out = work["root"] / f"rec{suffix}"
    assert main(["decompress", str(work["vvc"]), "-o", str(out), "--ckpt", str(work["ckpt"])]) == 0
    assert read_video(out).frames.shape == (12, 40, 56, 3)


def test_frames_option_decodes_a_range(work, capsys):
    out = work["root"] / "part"
    assert main(["decompress", str(work["vvc"]), "-o", str(out), "--frames", "8:11"]) == 0
    assert "3 of 12 frames" in capsys.readouterr().out
    from vvc_lightning.api import load_video_codec

    full = load_video_codec(work["ckpt"]).decode(work["vvc"].read_bytes()).frames
    assert np.array_equal(read_pngs(out), full[8:11])


def test_raw_yuv_input_takes_its_size_from_the_name_or_options(work, bikes_frames, tmp_path, capsys):
    frames = small_clip(bikes_frames, 5, 24, 32)
    named = tmp_path / "seq_32x24_30.yuv"
    write_video(named, frames, 30)
    assert main(["compress", str(named), "-o", str(tmp_path / "a.vvc"), "--ckpt", str(work["ckpt"])]) == 0
    header = bitstream.unpack((tmp_path / "a.vvc").read_bytes())[0]
    assert (header.width, header.height, header.frames, header.fps) == (32, 24, 5, 30.0)
    plain = tmp_path / "seq.yuv"
    plain.write_bytes(named.read_bytes())
    args = ["compress", str(plain), "-o", str(tmp_path / "b.vvc"), "--ckpt", str(work["ckpt"])]
    assert main([*args, "--size", "32x24", "--fps", "50"]) == 0
    header = bitstream.unpack((tmp_path / "b.vvc").read_bytes())[0]
    assert (header.width, header.height, header.fps) == (32, 24, 50.0)
    assert main([*args[:3], str(tmp_path / "c.vvc"), *args[4:]]) == 2  # a new output: b.vvc exists now
    assert "cannot tell the size" in capsys.readouterr().err


def test_missing_checkpoint_named_in_header_asks_for_ckpt(work, tmp_path, capsys):
    ckpt = tmp_path / "moved.ckpt"
    ckpt.write_bytes(Path(work["ckpt"]).read_bytes())
    vvc = tmp_path / "x.vvc"
    assert main(["compress", str(work["src"]), "-o", str(vvc), "--ckpt", str(ckpt), "--max-frames", "1"]) == 0
    ckpt.unlink()
    capsys.readouterr()
    assert main(["decompress", str(vvc), "-o", str(tmp_path / "x.mp4")]) == 2
    assert "pass --ckpt" in capsys.readouterr().err
    assert main(["decompress", str(vvc), "-o", str(tmp_path / "x.mp4"), "--ckpt", str(work["ckpt"])]) == 0


# ------------------------------------------------------------------------------------------ errors
def _damaged(data: bytes, kind: str) -> bytes:
    header_end = bitstream.unpack_header(data)[1]
    if kind == "truncated":
        return data[:-7]
    if kind == "flipped":
        bad = bytearray(data)
        bad[header_end + 20] ^= 0x10
        return bytes(bad)
    if kind == "magic":
        return b"RIFF" + data[4:]
    if kind == "version":
        bad = bytearray(data)
        struct.pack_into("<H", bad, 4, bitstream.VERSION + 1)
        return bytes(bad)
    raise ValueError(kind)


def _assert_one_error_and_nothing_written(
    code: int, err: str, message: str, folder: Path, before: set
) -> None:
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and re.search(message, lines[0]), err
    assert set(folder.iterdir()) == before  # no partial output, no temporary file left behind


@pytest.mark.parametrize(
    "kind, message",
    [
        ("truncated", "truncated"),
        ("flipped", "CRC32"),
        ("magic", "not a vvc-lightning bitstream"),
        ("version", "newer than this vvc-lightning reads"),
    ],
)
def test_damaged_bitstreams_fail_with_one_clear_line(work, tmp_path, capsys, kind, message):
    bad = tmp_path / "bad.vvc"
    bad.write_bytes(_damaged(work["vvc"].read_bytes(), kind))
    before = set(tmp_path.iterdir())
    code = main(["decompress", str(bad), "-o", str(tmp_path / "out.mp4"), "--ckpt", str(work["ckpt"])])
    _assert_one_error_and_nothing_written(code, capsys.readouterr().err, message, tmp_path, before)


def test_checkpoint_that_does_not_match_is_refused(work, tmp_path, capsys):
    ckpt = torch.load(work["ckpt"], map_location="cpu", weights_only=True)
    key = next(k for k in ckpt["state_dict"] if k.startswith("backbone.") and k.endswith("weight"))
    ckpt["state_dict"][key] = ckpt["state_dict"][key] + 0.01
    other = tmp_path / "other.ckpt"
    torch.save(ckpt, other)
    before = set(tmp_path.iterdir())
    code = main(["decompress", str(work["vvc"]), "-o", str(tmp_path / "out.mp4"), "--ckpt", str(other)])
    _assert_one_error_and_nothing_written(
        code, capsys.readouterr().err, "made with model .* pass --ckpt", tmp_path, before
    )


def test_unreadable_video_fails_with_one_clear_line(work, tmp_path, capsys):
    fake = tmp_path / "broken.mp4"
    fake.write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video" * 10)
    before = set(tmp_path.iterdir())
    code = main(["compress", str(fake), "-o", str(tmp_path / "x.vvc"), "--ckpt", str(work["ckpt"])])
    _assert_one_error_and_nothing_written(code, capsys.readouterr().err, "broken.mp4", tmp_path, before)


@pytest.mark.parametrize("command", ["compress", "decompress"])
def test_missing_output_folder_fails_before_any_work(work, tmp_path, capsys, command):
    src = work["src"] if command == "compress" else work["vvc"]
    before = set(tmp_path.iterdir())
    code = main([command, str(src), "-o", str(tmp_path / "nope" / "out.bin"), "--ckpt", str(work["ckpt"])])
    _assert_one_error_and_nothing_written(
        code, capsys.readouterr().err, "output folder .* does not exist", tmp_path, before
    )


def test_the_cli_and_a_video_codec_with_the_same_options_give_the_same_bytes(work, tmp_path):
    from vvc_lightning.codec.pipeline.options import CodecOptions
    from vvc_lightning.codec.pipeline.video_codec import VideoCodec
    from vvc_lightning.store.zoo import load_any_model

    model = load_any_model(work["ckpt"])
    quality = 1.0 if model.codec.qualities else None
    out = tmp_path / "cli.vvc"
    argv = [
        "compress",
        work["src"],
        "-o",
        out,
        "--ckpt",
        work["ckpt"],
        "--gop",
        "5",
        "--theta",
        "0.3",
        "--batch",
        "1",
        "--max-memory",
        "1G",
        "--tile",
        "0",
    ] + (["--quality", "1"] if quality is not None else [])
    assert main([str(a) for a in argv]) == 0
    opts = CodecOptions(gop=5, theta=0.3, batch=1, max_memory="1G", tile=0, quality=quality)
    assert VideoCodec(model, opts).encode(read_video(work["src"])) == out.read_bytes()


def test_decompress_reads_the_file_once_and_parses_its_header_once(work, tmp_path, monkeypatch):
    from vvc_lightning.codec.pipeline import files

    calls = {"read": 0, "unpack_header": 0}
    read, unpack_header = files.read_bitstream_file, bitstream.unpack_header

    def counted(name, fn):
        def call(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)
        return call

    monkeypatch.setattr(files, "read_bitstream_file", counted("read", read))
    monkeypatch.setattr(bitstream, "unpack_header", counted("unpack_header", unpack_header))
    out = tmp_path / "once.y4m"
    assert (
        main(["decompress", str(work["vvc"]), "-o", str(out), "--ckpt", str(work["ckpt"]), "--frames", "2:7"])
        == 0
    )
    assert calls == {"read": 1, "unpack_header": 1} and read_video(out).num_frames == 5
