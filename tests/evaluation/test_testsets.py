"""Dataset specs of the standard test sets: the shipped ones as the reference note lists them, files found
under --root, one line per missing file or wrong size, protocols, raw names without a spec."""

from __future__ import annotations

import numpy as np
import pytest

from vvc_lightning.errors import VVCError
from vvc_lightning.evaluation.testset_data import plain_class, prepare, read_frames
from vvc_lightning.evaluation.testsets import (
    get_protocol,
    is_spec,
    load_spec,
    locate,
    raw_sequence,
    shipped_specs,
)
from vvc_lightning.video.video_io import read_video

SPEC = """
name: Tiny
bit_depth: 8
classes:
  HEVC_D:
    width: 16
    height: 8
    fps: 50
    sequences:
      BasketballPass: {file: BasketballPass_16x8_50.yuv, frames: 3}
      BQSquare: {file: BQSquare_16x8_60.yuv, fps: 60, frames: 2}
  UVG:
    sequences:
      Beauty: {file: Beauty_8x4_120fps_420_8bit_YUV.yuv, frames: 4}
"""


def yuv(path, w, h, frames, depth=8, seed=0):
    """A raw 4:2:0 file of `frames` random frames."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n = w * h * 3 // 2 * frames
    data = rng.integers(16, 235, n, dtype=np.uint8) if depth == 8 else rng.integers(64, 940, n).astype("<u2")
    path.write_bytes(data.tobytes())
    return path


@pytest.fixture
def tiny(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(SPEC)
    root = tmp_path / "downloads"
    yuv(root / "HEVC_D" / "BasketballPass_16x8_50.yuv", 16, 8, 3)
    yuv(root / "BQSquare_16x8_60.yuv", 16, 8, 2)
    yuv(root / "deep" / "er" / "Beauty_8x4_120fps_420_8bit_YUV.yuv", 8, 4, 4)
    return spec, root


def test_the_shipped_specs_hold_the_standard_sequences_sizes_and_frame_counts():
    assert shipped_specs() == ["hevc", "mcl-jcv", "uvg"]
    uvg = load_spec("uvg")
    assert {s.name: s.frames for s in uvg.sequences} == {
        "Beauty": 600, "Bosphorus": 600, "HoneyBee": 600, "Jockey": 600, "ReadySteadyGo": 600,
        "ShakeNDry": 300, "YachtRide": 600}
    assert {(s.width, s.height, s.fps, s.bit_depth) for s in uvg.sequences} == {(1920, 1080, 120.0, 8)}
    assert uvg.sequences[0].file == "Beauty_1920x1080_120fps_420_8bit_YUV.yuv"
    mcl = load_spec("MCL-JCV.yaml")
    assert [s.name for s in mcl.sequences] == [f"videoSRC{i:02d}" for i in range(1, 31)]
    by_fps = {f: sorted(int(s.name[-2:]) for s in mcl.sequences if s.fps == f) for f in (24, 25, 30)}
    assert by_fps == {30: [1, 2, 3, 4, 10, 11, 12, 13, 14, 15, 16, 19, 26, 27, 28, 30],
                      25: [5, 6, 7, 8, 9, 18, 20], 24: [17, 21, 22, 23, 24, 25, 29]}
    assert all(s.frames == {30: 150, 25: 125, 24: 120}[int(s.fps)] for s in mcl.sequences)
    assert mcl.sequences[0].file == "videoSRC01_1920x1080_30.yuv"
    hevc = load_spec("hevc")
    got = {c: [(s.name, s.width, s.height, s.frames, s.fps) for s in hevc.sequences if s.group == c]
           for c in hevc.classes}
    assert got == {
        "HEVC_B": [("BQTerrace", 1920, 1080, 600, 60), ("BasketballDrive", 1920, 1080, 500, 50),
                   ("Cactus", 1920, 1080, 500, 50), ("Kimono1", 1920, 1080, 240, 24),
                   ("ParkScene", 1920, 1080, 240, 24)],
        "HEVC_C": [("BQMall", 832, 480, 600, 60), ("BasketballDrill", 832, 480, 500, 50),
                   ("PartyScene", 832, 480, 500, 50), ("RaceHorses", 832, 480, 300, 30)],
        "HEVC_D": [("BasketballPass", 416, 240, 500, 50), ("BlowingBubbles", 416, 240, 500, 50),
                   ("BQSquare", 416, 240, 600, 60), ("RaceHorses", 416, 240, 300, 30)],
        "HEVC_E": [("FourPeople", 1280, 720, 600, 60), ("Johnny", 1280, 720, 600, 60),
                   ("KristenAndSara", 1280, 720, 600, 60)]}
    assert [s.file for s in hevc.sequences][:2] == ["BQTerrace_1920x1080_60.yuv",
                                                    "BasketballDrive_1920x1080_50.yuv"]
    both = load_spec("uvg,hevc")
    assert both.classes == ["UVG", "HEVC_B", "HEVC_C", "HEVC_D", "HEVC_E"]


def test_files_are_found_under_root_in_class_folders_at_the_top_or_deeper(tiny):
    spec, root = tiny
    found = locate(load_spec(str(spec)), root)
    assert {s.name: s.path.relative_to(root).as_posix() for s in found.sequences} == {
        "BasketballPass": "HEVC_D/BasketballPass_16x8_50.yuv", "BQSquare": "BQSquare_16x8_60.yuv",
        "Beauty": "deep/er/Beauty_8x4_120fps_420_8bit_YUV.yuv"}
    beauty = found.sequences[2]  # width, height and fps from the file name where the spec leaves them out
    assert (beauty.width, beauty.height, beauty.fps, beauty.group) == (8, 4, 120.0, "UVG")


def test_each_missing_file_is_one_line_naming_it_and_where_it_looked(tiny):
    spec, root = tiny
    (root / "BQSquare_16x8_60.yuv").unlink()
    with pytest.raises(VVCError) as err:
        locate(load_spec(str(spec)), root)
    lines = str(err.value).splitlines()
    assert lines[0].startswith(f"1 of 3 files of Tiny missing under --root {root}")
    assert lines[1] == (f"  HEVC_D/BQSquare: BQSquare_16x8_60.yuv not found (looked in {root}/HEVC_D, "
                        f"{root}/Tiny/HEVC_D, {root}/Tiny, {root} and every folder below)")
    with pytest.raises(VVCError) as err:
        prepare("uvg", root=str(root))
    assert str(err.value).count("\n") == 7
    assert "ShakeNDry_1920x1080_120fps_420_8bit_YUV.yuv not found" in str(err.value)


def test_each_file_whose_length_is_not_the_declared_size_is_one_line(tiny):
    spec, root = tiny
    yuv(root / "HEVC_D" / "BasketballPass_16x8_50.yuv", 16, 8, 4)  # 4 frames, the spec says 3
    yuv(root / "BQSquare_16x8_60.yuv", 16, 8, 2, depth=10)  # 10-bit samples, the spec says 8-bit
    with pytest.raises(VVCError) as err:
        prepare(str(spec), root=str(root))
    lines = str(err.value).splitlines()
    assert len(lines) == 3 and lines[0].startswith("2 file(s) of Tiny do not match the spec")
    assert lines[1].endswith("is 768 bytes, the spec's 16x8 8-bit 4:2:0 x 3 frames is 576 bytes (4 frames of "
                             "that size)")
    assert "BQSquare" in lines[2] and "(4 frames of that size)" in lines[2]


def test_protocols_set_the_coded_frames_and_the_classic_codecs_intra_period(tiny):
    spec, root = tiny
    data = prepare(str(spec), root=str(root))
    assert (data.protocol.name, data.intra_period) == ("96f-ip32", 32)
    data = prepare(str(spec), root=str(root), protocol="all-ip1", classes=["hevc_d"])
    assert (data.protocol.name, data.intra_period) == ("all-ip-1", None)
    seqs = data.load()
    assert [(s.name, s.frames.shape, s.fps) for s in seqs] == [("BasketballPass", (3, 8, 16, 3), 50.0),
                                                               ("BQSquare", (2, 8, 16, 3), 60.0)]
    assert data.groups == {"BasketballPass": "HEVC_D", "BQSquare": "HEVC_D"}
    assert [s.frames.shape[0] for s in prepare(str(spec), root=str(root), max_frames=2).load()] == [2, 2, 2]
    assert get_protocol("96f-ip96").describe() == "96 frames, intra period 96"
    with pytest.raises(VVCError, match="'ip10' is not known; use one of 96f-ip32, 96f-ip96, all-ip-1"):
        get_protocol("ip10")
    with pytest.raises(VVCError, match="--intra-period 10 contradicts --protocol 96f-ip32"):
        prepare(str(spec), root=str(root), protocol="96f-ip32", intra_period=10)
    with pytest.raises(VVCError, match="is a dataset spec: give --root DIR"):
        prepare("hevc")
    with pytest.raises(VVCError, match="--classes: HEVC_X not in .*; its classes are HEVC_D, UVG"):
        prepare(str(spec), root=str(root), classes=["HEVC_X"])


def test_spec_frames_read_as_the_plain_reader_does_and_deeper_samples_round_to_8_bits(tiny, tmp_path):
    spec, root = tiny
    seq = locate(load_spec(str(spec)), root).sequences[0]
    assert np.array_equal(np.stack(list(read_frames(seq, 3))), read_video(seq.path).frames)
    eight = yuv(tmp_path / "a_16x8_25.yuv", 16, 8, 2)
    deep = tmp_path / "a_16x8_25_10bit.yuv"
    deep.write_bytes((np.frombuffer(eight.read_bytes(), np.uint8).astype("<u2") << 2).tobytes())
    d = raw_sequence(deep)
    assert (d.width, d.height, d.fps, d.bit_depth, d.frames) == (16, 8, 25.0, 10, 2)
    assert np.array_equal(np.stack(list(read_frames(d, 2))), read_video(eight).frames)


def test_raw_files_are_understood_from_their_names_without_a_spec(tmp_path, monkeypatch):
    s = raw_sequence(yuv(tmp_path / "HEVC_C" / "RaceHorses_832x480_30.yuv", 832, 480, 2))
    assert (s.name, s.group, s.width, s.height, s.fps, s.frames, s.bit_depth) == (
        "RaceHorses", "HEVC_C", 832, 480, 30.0, 2, 8)
    u = raw_sequence(yuv(tmp_path / "Jockey_16x8_120fps_420_8bit_YUV.yuv", 16, 8, 3))
    assert (u.name, u.width, u.height, u.fps, u.frames) == ("Jockey", 16, 8, 120.0, 3)
    (tmp_path / "odd_16x8_30.yuv").write_bytes(b"\0" * 100)
    with pytest.raises(VVCError, match="is 100 bytes, not a whole number of 16x8 8-bit 4:2:0 frames"):
        raw_sequence(tmp_path / "odd_16x8_30.yuv")
    assert plain_class(tmp_path, tmp_path / "HEVC_C" / "RaceHorses_832x480_30.yuv") == "HEVC_C"
    assert plain_class(tmp_path, tmp_path / "x_16x8_30.yuv") == tmp_path.name
    assert not is_spec(str(tmp_path)) and is_spec("uvg") and is_spec("uvg,hevc")
    (tmp_path / "uvg").mkdir()
    monkeypatch.chdir(tmp_path)
    assert not is_spec("uvg")  # a folder of one's own clips named like a shipped spec is plain data


def test_a_spec_with_a_bad_key_or_value_is_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("classes:\n  A:\n    sequences:\n      s: {file: s_16x8_30.yuv, frame: 3}\n")
    with pytest.raises(VVCError, match=r"A/s: unknown key\(s\) frame; allowed: file, width"):
        load_spec(str(bad))
    bad.write_text("classes:\n  A:\n    width: 15\n    sequences:\n      s: {file: s.yuv}\n")
    with pytest.raises(VVCError, match="width of a 4:2:0 sequence must be even"):
        load_spec(str(bad))
    bad.write_text("classes:\n  A:\n    sequences:\n      s: {file: s.yuv}\n")
    with pytest.raises(VVCError, match="width, height, fps not given and not in the file name 's.yuv'"):
        load_spec(str(bad))
    config = tmp_path / "config.yaml"
    config.write_text("data:\n  name: folder\n")
    assert not is_spec(str(config))
