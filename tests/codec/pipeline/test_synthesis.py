"""`synthesis='bf16'`: g_s and the backbone decoder under bfloat16 autocast where the device has bfloat16
arithmetic; the bytes, the decoded symbols and y_hat stay those of fp32, the pixels differ slightly."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from tests.conftest import one_thread, small_clip
from vvc_lightning.cli.main import main
from vvc_lightning.codec.pipeline import synthesis
from vvc_lightning.codec.pipeline.options import CodecOptions
from vvc_lightning.codec.pipeline.video_codec import VideoCodec
from vvc_lightning.errors import CodecOptionError


@pytest.fixture(scope="module")
def clip(bikes_frames):
    return small_clip(bikes_frames, 9, 32, 48)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse)) if mse else float("inf")


def decode_watching_g_s(model, data: bytes, **options) -> tuple[np.ndarray, list[torch.Tensor], set]:
    """Decoded frames, the inputs g_s was given (y_hat) and the dtypes its convolutions returned."""
    inputs, dtypes = [], set()
    hooks = [model.codec.g_s.register_forward_pre_hook(lambda m, args: inputs.append(args[0].clone()))]
    hooks += [m.register_forward_hook(lambda m, args, out: dtypes.add(out.dtype))
              for m in model.codec.g_s.modules() if isinstance(m, torch.nn.Conv3d)]
    try:
        frames = VideoCodec(model, **options).decode(data).frames
    finally:
        for h in hooks:
            h.remove()
    return frames, inputs, dtypes


def test_bf16_synthesis_keeps_bytes_and_symbols_and_moves_pixels_slightly(tiny_model, clip, monkeypatch):
    with one_thread():
        data = VideoCodec(tiny_model, gop=9).encode_frames(iter(clip), 25.0, 9)
        assert VideoCodec(tiny_model, gop=9, synthesis="bf16").encode_frames(iter(clip), 25.0, 9) == data
        fp32, y32, dtypes32 = decode_watching_g_s(tiny_model, data)
        monkeypatch.setattr(synthesis, "bf16_supported", lambda device: True)  # this CPU may lack it: run it
        bf16, y16, dtypes16 = decode_watching_g_s(tiny_model, data, synthesis="bf16")
    # the symbols passed their stored check (decode raises otherwise) and y_hat is exactly fp32's
    assert len(y16) == len(y32)
    assert all(a.dtype == torch.float32 and torch.equal(a, b) for a, b in zip(y16, y32, strict=True))
    assert dtypes32 == {torch.float32} and dtypes16 == {torch.bfloat16}
    assert bf16.dtype == np.uint8 and bf16.shape == fp32.shape
    assert not np.array_equal(bf16, fp32) and psnr(bf16, fp32) > 30


def test_bf16_without_bfloat16_arithmetic_runs_fp32_and_says_so(tiny_model, clip, monkeypatch, caplog):
    with one_thread():
        data = VideoCodec(tiny_model, gop=9).encode_frames(iter(clip), 25.0, 9)
        monkeypatch.setattr(synthesis, "bf16_supported", lambda device: False)
        monkeypatch.setattr(synthesis, "_said", set())
        with caplog.at_level(logging.WARNING):
            codec = VideoCodec(tiny_model, synthesis="bf16")
            VideoCodec(tiny_model, synthesis="bf16")
        assert codec.synthesis is None
        assert [r.getMessage() for r in caplog.records] == [
            "synthesis bf16: this CPU has no bfloat16 instructions (AVX512-BF16 or AMX), so the synthesis "
            "runs in fp32 (the default)"]
        assert np.array_equal(codec.decode(data).frames, VideoCodec(tiny_model).decode(data).frames)


def test_synthesis_takes_fp32_or_bf16(capsys):
    assert CodecOptions().synthesis == "fp32" and CodecOptions(synthesis="bf16").synthesis == "bf16"
    with pytest.raises(CodecOptionError, match="must be one of fp32, bf16, got 'fp16'"):
        CodecOptions(synthesis="fp16")
    with pytest.raises(SystemExit):
        main(["decompress", "x.vvc", "-o", "x.y4m", "--synthesis", "fp16"])
    assert "invalid choice: 'fp16'" in capsys.readouterr().err
