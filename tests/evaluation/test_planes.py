"""4:2:0 sources as they are: the classic codecs code the source's own planes, every codec is measured on
4:2:0 planes (PSNR-Y/U/V, (6Y+U+V)/8), the neural codec's RGB output made 4:2:0 again; checked against
numpy by hand on a tiny smooth synthetic sequence."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import numpy as np
import pytest

from vvc_lightning.evaluation.baselines import X265
from vvc_lightning.evaluation.harness import EvalOptions, evaluate
from vvc_lightning.evaluation.planes import plane_metrics, probe, run_classic
from vvc_lightning.evaluation.sequence import Sequence
from vvc_lightning.metrics.functional import PSNR_CAP
from vvc_lightning.video.chroma import downsample_chroma, planes_to_rgb, rgb_to_planes, upsample_chroma
from vvc_lightning.video.ffmpeg import ffmpeg_exe
from vvc_lightning.video.plane_source import PlaneSource
from vvc_lightning.video.video_io import write_video

N, H, W = 9, 64, 64
YUV_KEYS = ("psnr_y", "psnr_u", "psnr_v", "psnr_yuv")


def smooth_planes(bit_depth: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random smooth moving content as 4:2:0 planes (N frames)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    t = np.arange(N, dtype=np.float64)[:, None, None]
    a, b, c = rng.uniform(4, 9, 3)
    y = 128 + 70 * np.sin(xx / a + t / 3) * np.cos(yy / b - t / 5)
    u = 128 + 40 * np.sin(xx[::2, ::2] / c - t / 4)
    v = 128 + 40 * np.cos(yy[::2, ::2] / a + t / 6)
    s = 2 ** (bit_depth - 8)
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    return tuple(np.round(p * s).astype(dtype) for p in (y, u, v))  # type: ignore[return-value]


def write_yuv(path, planes) -> None:
    with open(path, "wb") as f:
        for i in range(N):
            for p in planes:
                f.write(p[i].astype("<u2" if p.dtype != np.uint8 else np.uint8).tobytes())


def read_yuv(path, bit_depth: int = 8):
    raw = np.fromfile(path, np.uint8 if bit_depth == 8 else "<u2").reshape(N, -1)
    return raw[:, : H * W].reshape(N, H, W), raw[:, H * W : H * W * 5 // 4].reshape(N, H // 2, W // 2), \
        raw[:, H * W * 5 // 4 :].reshape(N, H // 2, W // 2)


def hand_psnr(ref, rec, peak: float = 255.0) -> dict[str, np.ndarray]:
    """Per-frame PSNR of each plane and (6Y+U+V)/8, in numpy."""
    out = {}
    for key, a, b in zip(YUV_KEYS[:3], ref, rec, strict=True):
        mse = ((a.astype(np.float64) - b) ** 2).reshape(N, -1).mean(1)
        out[key] = np.minimum(10 * np.log10(peak**2 / np.maximum(mse, 1e-10)), PSNR_CAP)
    out["psnr_yuv"] = (6 * out["psnr_y"] + out["psnr_u"] + out["psnr_v"]) / 8
    return out


def hand_to_420(rgb: np.ndarray):
    """RGB -> BT.709 limited 8-bit 4:2:0 with [1,2,1]/4 x [1,1]/2 chroma (left siting), written out."""
    x = rgb.astype(np.float64) / 255
    y = 0.2126 * x[..., 0] + 0.7152 * x[..., 1] + 0.0722 * x[..., 2]
    cb = 128 + 224 * (x[..., 2] - y) / 1.8556
    cr = 128 + 224 * (x[..., 0] - y) / 1.5748
    out = [np.clip(np.round(16 + 219 * y), 0, 255)]
    for c in (cb, cr):
        r = (c[:, 0::2] + c[:, 1::2]) / 2  # rows 2i and 2i+1
        left = np.concatenate([r[..., :1], r[..., 1:-1:2]], -1)  # column 2j-1 (column 0 at the edge)
        out.append(np.clip(np.round(0.25 * left + 0.5 * r[..., 0::2] + 0.25 * r[..., 1::2]), 0, 255))
    return tuple(p.astype(np.uint8) for p in out)


class Lossless(X265):
    """x265 in its lossless mode: what it decodes is exactly what it was fed."""

    def codec_args(self, point, intra_period, preset, structure="ra"):
        return ["-preset", "ultrafast", "-x265-params", "lossless=1:info=0"]


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    root = tmp_path_factory.mktemp("yuv")
    planes = smooth_planes()
    write_yuv(root / "Smooth_64x64_25.yuv", planes)
    return root, planes


@pytest.mark.parametrize("kind", ["raw8", "raw10", "y4m"])
def test_the_classic_codec_is_fed_the_source_planes_exactly(kind, tmp_path):
    planes = smooth_planes(10 if kind == "raw10" else 8, seed=1)
    if kind == "y4m":  # a .y4m written from RGB: its planes are what count
        write_video(tmp_path / "clip.y4m", planes_to_rgb(planes, 8), 25.0)
        src = probe(tmp_path / "clip.y4m")
        planes = src.read(0, N)
    else:
        name = "Smooth_64x64_25.yuv" if kind == "raw8" else "Smooth_64x64_25_10bit.yuv"
        write_yuv(tmp_path / name, planes)
        src = probe(tmp_path / name)
    assert src is not None and src.bit_depth == (10 if kind == "raw10" else 8) and src.frames == N
    coded = run_classic(Lossless(), src, 0, tmp_path / "work", None, "ultrafast", "bt709", "limited", "ra")
    assert f"-pix_fmt {src.pix_fmt} " in coded.info["command"] and "-i pipe:0" in coded.info["command"]
    decoded = coded.planes.read(0, N)
    for a, b in zip(planes, decoded, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)  # bit-exact planes
    from vvc_lightning.metrics.yuv import plane_scores

    scores = plane_scores(planes, decoded, src.bit_depth, list(YUV_KEYS))
    assert all(np.all(scores[k] == PSNR_CAP) for k in YUV_KEYS)


def test_x265_rows_are_the_plane_psnrs_of_its_decoded_planes(source, tmp_path):
    root, planes = source
    opts = EvalOptions(data=str(root), out=str(tmp_path / "out"), baselines=["x265"],
                       points={"x265": [26, 38]}, presets={"x265": "ultrafast"}, metrics=["psnr_y"],
                       progress=False)
    paths = evaluate(opts)
    doc = json.loads(paths["json"].read_text())
    rows = sorted(doc["rows"], key=lambda r: int(r["point"]))
    assert [r["point"] for r in rows] == ["26", "38"]
    for r in rows:
        # the recorded command, fed the file's bytes, makes the same stream; decoded by hand
        args = shlex.split(r["command"])[1:]
        work = tmp_path / f"qp{r['point']}"
        work.mkdir()
        subprocess.run([ffmpeg_exe(), *args], cwd=work, input=(root / "Smooth_64x64_25.yuv").read_bytes(),
                       check=True, capture_output=True)
        assert (work / "stream.hevc").stat().st_size == r["bytes"]
        subprocess.run([ffmpeg_exe(), "-y", "-i", "stream.hevc", "-f", "rawvideo", "-pix_fmt", "yuv420p",
                        "decoded.yuv"], cwd=work, check=True, capture_output=True)
        want = hand_psnr(planes, read_yuv(work / "decoded.yuv"))
        for k in YUV_KEYS:
            np.testing.assert_allclose(r["per_frame"][k], want[k], rtol=0, atol=1e-9)
            assert r["metrics"][k] == pytest.approx(float(np.mean(want[k])), abs=1e-9)
        assert 25 < r["metrics"]["psnr_yuv"] < PSNR_CAP
        assert r["source_format"] == "yuv420p 8-bit, raw file" and r["codec_input"] == "source planes"
    assert rows[0]["metrics"]["psnr_yuv"] > rows[1]["metrics"]["psnr_yuv"]
    colour = doc["meta"]["colour"]
    assert "pipe:0" in colour["classic codecs (4:2:0 sources)"] and "bilinear" in colour["chroma siting"] + \
        colour["neural codec (4:2:0 sources)"]
    anchor = json.loads(next(p for k, p in paths.items() if k.startswith("anchor_")).read_text())
    rec = next(iter(next(iter(anchor.values())).values()))["026"]
    assert rec["ave_all_frame_psnr"] == pytest.approx(rows[0]["metrics"]["psnr_yuv"])  # 6:1:1 in the file
    assert rec["codec_input"] == "source planes"


def test_the_neural_codec_is_measured_on_its_rgb_output_made_420(source, tmp_path, tiny_ckpt):
    from vvc_lightning.codec.pipeline.video_codec import VideoCodec
    from vvc_lightning.store.loader import load

    root, planes = source
    opts = EvalOptions(data=str(root), out=str(tmp_path / "out"), ckpts=[str(tiny_ckpt)], baselines=[],
                       metrics=["psnr_y"], progress=False)
    row = json.loads(evaluate(opts)["json"].read_text())["rows"][0]
    codec = VideoCodec(load(tiny_ckpt), gop=9, overlap=1, theta=0.5, batch=4)
    data = codec.encode_frames(iter(planes_to_rgb(planes, 8)), 25.0, N)  # the RGB it is given
    assert len(data) == row["bytes"]
    out = np.stack(list(codec.decode_frames(data)))
    want = hand_psnr(planes, hand_to_420(out))
    for k in YUV_KEYS:
        np.testing.assert_allclose(row["per_frame"][k], want[k], rtol=0, atol=1e-9)
    assert "made 4:2:0" in row["yuv_metrics_on"]


def test_the_chroma_filters_are_the_stated_ones():
    c = np.array([[0.0, 80.0], [40.0, 120.0]])
    up = upsample_chroma(c)
    # rows: 3/4 own + 1/4 nearest other (edges repeated); columns: even = sample, odd = mean of neighbours
    rows = np.array([[0, 80], [10, 90], [30, 110], [40, 120]], np.float64)
    np.testing.assert_allclose(up, np.stack([rows[:, 0], (rows[:, 0] + rows[:, 1]) / 2, rows[:, 1],
                                             rows[:, 1]], 1))
    x = np.arange(16, dtype=np.float64).reshape(2, 8)
    want = [0.25 * x.mean(0)[max(2 * j - 1, 0)] + 0.5 * x.mean(0)[2 * j] + 0.25 * x.mean(0)[2 * j + 1]
            for j in range(4)]
    np.testing.assert_allclose(downsample_chroma(x)[0], want)
    rgb = planes_to_rgb(smooth_planes(), 8)
    for a, b in zip(rgb_to_planes(rgb, 8), hand_to_420(rgb), strict=True):
        assert np.array_equal(a, b)
    flat = tuple(np.full(s, v, np.uint16) for s, v in (((1, 4, 4), 192), ((1, 2, 2), 512), ((1, 2, 2), 512)))
    assert np.all(planes_to_rgb(flat, 10) == round((48 - 16) * 255 / 219))  # 10-bit code 192 = 8-bit 48


def _planar(name: str, w: int, h: int) -> Sequence:
    """A 4:2:0 sequence of w x h frames (only its size matters here)."""
    src = PlaneSource(Path(f"{name}_{w}x{h}_25.yuv"), w, h, 8, 1, 25.0)
    return Sequence(name, np.zeros((1, 2, 2, 3), np.uint8), 25.0, name, "d", planes=src)


def test_plane_ms_ssim_too_small_on_every_sequence_is_left_out_in_one_note():
    names = ["psnr", "psnr_y", "ms_ssim"]
    keys, info, notes = plane_metrics(names, [_planar("bikes", 640, 272)], {})
    assert keys == ["psnr_y", "psnr_u", "psnr_v", "psnr_yuv", "ms_ssim_y"] and set(info) == set(keys)
    assert notes == ["ms_ssim_u, ms_ssim_v, ms_ssim_yuv left out: the chroma planes of 640x272 frames are "
                     "too small for five scales with the 11x11 window (each side must exceed 160 px)"]
    keys, _, notes = plane_metrics(names, [_planar("a", 640, 272), _planar("b", 1920, 1080)], {})
    assert "ms_ssim_u" in keys and "ms_ssim_yuv" in keys  # one sequence has them: NaN only on the other
    assert any(n.startswith("ms_ssim_u: the chroma planes of 640x272") for n in notes)
    keys, _, notes = plane_metrics(names, [_planar("tiny", 64, 64)], {})
    assert not any(k.startswith("ms_ssim") for k in keys) and "luma and chroma planes of 64x64" in notes[-1]
