"""Exact integer convolutions on int8 matrix products: the fast CPU path of the integer networks.

`intnet` defines each integer layer's output from acc = sum(w * x) over integers x (|x| <= 2**22, the
activation clamp) and integer weights w, and computes it in float64, where every partial sum is exact
(|acc| <= L1 * 2**22 < 2**53, L1 = the largest sum of |w| of one output, checked per layer). This module
computes the very same integer acc with int8 GEMMs (`torch._int_mm`, int32 sums), several times faster
than a float64 convolution on a CPU. Why it is exact, for every input the clamp allows:

1. Digits. An integer v is written in balanced base 128, v = sum_i d_i * 128**i with
   d_i = ((v_i + 64) mod 128) - 64 in [-64, 63] and v_{i+1} = (v_i - d_i) / 128 (exact: shifts and masks
   of int32). n digits hold exactly the integers in [-64 * (128**n - 1) / 127, 63 * (128**n - 1) / 127]
   (`digits_needed`). Weights take as many digits as their largest magnitude needs (2 for weights below
   8128 = 0.5 on the 2**-14 grid). Activations take DENSE = 2 digits at every position (exact for
   |x| <= 8127, i.e. below 2.0); the rest r = (x - low) / 128**2 (|r| <= 257) is non-zero only where a
   value is wider. Where such values are rare, their part sum(w * 128**2 * r) is scattered in float64
   (each product is an integer below 2**53 and so is every partial sum, see 4); else r joins the dense
   digits (up to 4 in all).
2. Products. For each digit pair (i, j), P_ij = X_i @ W_j is a sum of K products of integers in
   [-64, 64], so |P_ij| <= K * 2**12; with K < 2**17 (checked) every partial sum stays below 2**29 and
   the int32 accumulation is exact in any order, on any thread count. 7-bit digits (not 8) also keep
   the pair sums of CPUs without VNNI (vpmaddubsw: u8 x s8 pairs added in int16 with saturation, the
   s8 operand shifted by 128 into u8) below 2**15: (64 + 128) * 64 * 2 = 24576 < 32767.
3. Recombination, in float64: acc = sum_s 128**s * Q_s, Q_s = sum_{i+j=s} P_ij, by Horner from the top:
   r_s = 128 * r_{s+1} + Q_s, adding Q_s's terms one at a time. Every intermediate is an integer of
   magnitude <= |acc_part| / 128**s + 5 * K * 2**12 * 2 < 2**53 (acc_part: the dense part's exact sum,
   <= L1 * 8256), so every operation's exact result is representable and computed exactly; r_0 = acc.
4. Scatter of wide values: acc_dense plus the terms w * 128**2 * r in any order. Any partial sum is at
   most L1 * (8256 + 2**22 + 8256) in magnitude; `DigitWeights` requires L1 * (2**22 + 2**15) < 2**53
   (else the layer keeps float64), so each addition is exact.

5. Three products instead of four (Karatsuba). With two digits on both sides (the usual case) the
   middle term X0 W1 + X1 W0 is (X0 + X1)(W0 + W1) - X0 W0 - X1 W1, so acc = 128 S - 127 P00 + 16256 P11
   with S = (X0 + X1)(W0 + W1). The digit sums lie in [-128, 126] (int8), |S| <= K * 2**14 < 2**31 for
   K < 2**17, and every float64 term and partial sum of the combination is an integer below 2**53. A CPU
   whose int8 kernel pairs products in saturating int16 (no VNNI) would fail on such operands: this form is
   used only where the probe also passes on 8-bit extremes (`karatsuba_exact`), else four products.

Hence the result equals the float64 convolution's to the bit, and the digit counts and the sparse/dense
choice (both taken from the data) cannot change it. As defence in depth a one-time probe compares
`_int_mm` with float64 on extreme digits and disables this path if it ever differs. Only CPU tensors
take this path (`available`); on other devices the float64 convolution stays.

Where three int8 products are slower than one float64 product (`intgemm_probe`: a CPU without an int8
dot-product unit), the same layers run as float64 GEMMs instead: the same padded-width columns (live taps
only), one float64 product each (every partial sum an integer below 2**53, exact in any order), the same
fused rescaling. Both give the integers of the reference, so the choice never changes a symbol.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import threading
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import Tensor

from vvc_lightning.codec.entropy import intgemm_kernels as kernels
from vvc_lightning.codec.entropy.grid import ACT_BITS, ACT_LIMIT, EXACT_LIMIT
from vvc_lightning.codec.entropy.intgemm_kernels import BASE, DIGIT_BITS, HALF
from vvc_lightning.codec.entropy.intgemm_probe import MAX_K, exact_probe, int8_faster, onednn

DENSE = 2  # activation digits computed at every position; a wider value's rest is scattered
SPARSE_LIMIT = 0.01  # scatter the rests while at most this share of the values is wide, else go dense
_SCRATCH_BYTES = 1 << 25  # GEMM rows at a time: their im2col and int32 products stay below ~32 MiB each
_NO_BIAS = np.zeros(1)
ACT_LIMIT_INT = ACT_LIMIT * 2**ACT_BITS  # 2**22: intnet's activation clamp as an integer
# 2**15 > 2 * 8256: room for the dense parts around a scattered rest (8256 = the largest |value| of two
# digits)
_DENSE_MARGIN = 2.0**15
_scratch = threading.local()
_MIN_ROWS = 64  # rows of work below which a kernel is not split among threads
# float64 products of whole kernels by kernel rows (`_conv_values_by_rows`): a kw-wide im2col, kh products
ROW_GEMMS = True
_ROW_COLS_BYTES = 1 << 23  # its columns per chunk of output rows (about 8 MiB: in cache beside the product)


def digits_needed(max_abs: int) -> int:
    """Fewest balanced base-128 digits that represent every integer in [-max_abs, max_abs]."""
    n = 1
    while (HALF - 1) * (BASE**n - 1) // (BASE - 1) < max_abs:
        n += 1
    return n


def split_digits(v: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """Integer tensor v (int32) -> (its n lowest digits, int8 (n, *v.shape); the rest r), v = low + 128**n *
    r."""
    out = torch.empty((n, *v.shape), dtype=torch.int8, device=v.device)
    for i in range(n):
        shifted = v + HALF
        out[i] = (shifted & (BASE - 1)) - HALF
        v = shifted >> DIGIT_BITS  # (v - d) / 128, exact
    return out, v


def to_digits(v: Tensor, n: int) -> Tensor:
    """Integer tensor (int32) -> int8 digits (n, *v.shape), v = sum_i d_i * 128**i, d_i in [-64, 63]."""
    out, rest = split_digits(v, n)
    if bool((rest != 0).any()):
        raise ValueError(f"value out of the range of {n} base-128 digits")
    return out


def int8_gemm_exact() -> bool:
    """Whether this build's CPU `_int_mm` gives exact int32 sums on extreme 7-bit digits (probed once per
    backend)."""
    return exact_probe(onednn())


def karatsuba_exact() -> bool:
    """Whether `_int_mm` is also exact on digit sums (8-bit operands in [-128, 126]): three-GEMM products."""
    return _karatsuba and int8_gemm_exact() and exact_probe(onednn(), 2 * HALF)


_enabled = True
_karatsuba = True
_forced: str | None = None  # "int8" / "float64": the GEMM backend `gemm_backend` imposes (tests)


def available(x: Tensor) -> bool:
    """Whether `x`'s layers may take the GEMM path (int8 digits or float64 products): a CPU tensor."""
    return _enabled and x.device.type == "cpu" and (_forced != "int8" or int8_gemm_exact())


def use_int8() -> bool:
    """Whether the layers' products are int8 digit GEMMs (exact here and faster), else float64 GEMMs."""
    if _forced is not None:
        return _forced == "int8"
    return int8_faster(onednn()) and int8_gemm_exact()


@contextlib.contextmanager
def gemm_backend(name: str) -> Iterator[None]:
    """Run the GEMM path on `name` ('int8' or 'float64') whatever is faster here (tests, comparisons)."""
    global _forced
    if name not in ("int8", "float64"):
        raise ValueError(f"GEMM backend must be 'int8' or 'float64', got {name!r}")
    before, _forced = _forced, name
    try:
        yield
    finally:
        _forced = before


@contextlib.contextmanager
def disabled(karatsuba_only: bool = False) -> Iterator[None]:
    """Run the integer layers on their float64 reference path (tests, comparisons); `karatsuba_only`: keep
    the int8 path but with four GEMMs per two-digit product instead of three."""
    global _enabled, _karatsuba
    before = _enabled, _karatsuba
    if karatsuba_only:
        _karatsuba = False
    else:
        _enabled = False
    try:
        yield
    finally:
        _enabled, _karatsuba = before


class DigitWeights:
    """A layer's integer weight matrix (K, N) as int8 digits side by side (K, n_digits * N), plus float64
    rows.

    `kernel` is (kh, kw); `taps` the kernel positions the rows hold (convolutions; None: transposed);
    `per_tap` the float64 (Cin, N) block of each tap, for the scatter of wide values."""

    def __init__(
        self,
        w_mat: Tensor,
        kernel: tuple[int, int],
        taps: list[tuple[int, int]] | None,
        per_tap: list[Tensor],
        l1: float,
    ) -> None:
        k, n = w_mat.shape
        self.kernel, self.taps, self.per_tap, self.k, self.n = kernel, taps, per_tap, k, n
        self.values = w_mat.double().contiguous()  # (K, N) for the float64 GEMM path
        w = w_mat.to(torch.int64)
        self.digits = digits_needed(int(w.abs().max()) if w.numel() else 0)
        digits = to_digits(w, self.digits)
        self.matrix = digits.permute(1, 0, 2).reshape(k, self.digits * n).contiguous()
        self.usable = k < MAX_K and l1 * (ACT_LIMIT_INT + _DENSE_MARGIN) < EXACT_LIMIT  # bounds of steps 2-4
        # two-digit weights: W0, W1 and W0 + W1 (in [-128, 126]) for three-product GEMMs (step 5)
        self.karatsuba = (digits[0], digits[1], digits[0] + digits[1]) if self.digits == DENSE else None


def conv_weights(w_int: Tensor) -> DigitWeights:
    """Digits of a convolution's integer weights (Cout, Cin, kh, kw); taps zero in every filter are left
    out."""
    _, _, kh, kw = w_int.shape
    live = w_int.abs().sum((0, 1)) != 0  # e.g. the checkerboard mask's taps
    taps = [(i, j) for i in range(kh) for j in range(kw) if bool(live[i, j])] or [(0, 0)]
    per_tap = [w_int[:, :, i, j].t().double().contiguous() for i, j in taps]  # (Cin, Cout) each
    l1 = float(w_int.abs().sum((1, 2, 3)).max()) if w_int.numel() else 0.0
    return DigitWeights(torch.cat(per_tap, 0), (kh, kw), taps, per_tap, l1)  # rows ordered (tap, cin)


def transposed_weights(w_int: Tensor) -> DigitWeights:
    """Digits of a transposed convolution's integer weights (Cin, Cout, kh, kw) as (Cin, kh * kw * Cout)."""
    mat = w_int.permute(0, 2, 3, 1).reshape(w_int.shape[0], -1).double()  # columns ordered (i, j, cout)
    l1 = float(w_int.abs().sum((0, 2, 3)).max()) if w_int.numel() else 0.0
    return DigitWeights(mat, tuple(w_int.shape[2:]), None, [mat], l1)


def _chunk_rows(nd: int, weights: DigitWeights, taps_c: int, values: bool = False) -> int:
    """Rows per GEMM chunk: the (nd, rows, taps * c) int8 columns and (nd, rows, digits * N) int32 products
    fit (`values`: float64 columns and products)."""
    per_row = 8 * max(taps_c, weights.n) if values else nd * max(taps_c, 4 * weights.digits * weights.n)
    return max(16, _SCRATCH_BYTES // per_row)


def _buffer(name: str, shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
    """A reused scratch tensor of this thread (fresh large allocations cost page faults on every call)."""
    numel = 1
    for s in shape:
        numel *= s
    buf = getattr(_scratch, name, None)
    if buf is None or buf.dtype != dtype or buf.numel() < numel:
        # a normal tensor: usable in place inside and outside inference mode
        with torch.inference_mode(False):
            buf = torch.empty(numel, dtype=dtype)
        setattr(_scratch, name, buf)
    return buf[:numel].view(shape)


_pools: dict[tuple[int, int], concurrent.futures.ThreadPoolExecutor] = {}


def split_rows(kernel: Callable[..., object], rows: int, *args: object) -> list[object]:
    """kernel(*args, first, last) over row ranges that split [0, rows) among torch's thread count.

    The kernels hold no GIL and write disjoint rows, so the ranges run in parallel and every element gets
    the same operations as in one call (the results do not depend on the split). A pool is kept per
    process and thread count (a forked child makes its own: the parent's threads do not survive a fork)."""
    threads = min(torch.get_num_threads(), max(rows // _MIN_ROWS, 1))
    if threads <= 1:
        return [kernel(*args, 0, rows)]
    key = (os.getpid(), threads)
    pool = _pools.get(key)
    if pool is None:
        pool = _pools[key] = concurrent.futures.ThreadPoolExecutor(threads - 1, thread_name_prefix="intgemm")
    bounds = [rows * t // threads for t in range(threads + 1)]
    jobs = [pool.submit(kernel, *args, bounds[t], bounds[t + 1]) for t in range(1, threads)]
    first = kernel(*args, bounds[0], bounds[1])  # the calling thread takes the first range
    return [first, *(job.result() for job in jobs)]


def exact_matmul(
    rows: Tensor, weights: DigitWeights, out: Tensor, epilogue: tuple | None = None, sums: bool = False
) -> None:
    """out (M, N) float64 = the exact integer product of digit rows (nx, M, K) int8 and the weights (or of
    float64 integer rows (1, M, K): one float64 product).

    sums: rows are (X0, X1, X0 + X1) of two-digit activations and the weights have two digits too: the product
    takes three GEMMs instead of four (`kernels.karatsuba`).
    epilogue (bias, lo, hi): out gets intnet's rescaled output of that sum instead (`kernels.horner`)."""
    bias, lo, hi = epilogue if epilogue is not None else (_NO_BIAS, 0.0, 0.0)
    m = rows.shape[1]
    if rows.dtype == torch.float64:  # float64 values (one plane): one exact product
        torch.mm(rows[0], weights.values, out=out)
        if epilogue is not None:
            split_rows(kernels.rescale_rows, m, out.numpy(), bias, lo, hi)
        return
    if sums:
        p = _buffer("products", (3, m, weights.n), torch.int32)
        for d in range(3):
            torch._int_mm(rows[d], weights.karatsuba[d], out=p[d])
        split_rows(kernels.karatsuba, m, p.numpy(), out.numpy(), bias, lo, hi, epilogue is not None)
        return
    nx = rows.shape[0]
    p = _buffer("products", (nx, m, weights.digits * weights.n), torch.int32)
    for d in range(nx):
        torch._int_mm(rows[d], weights.matrix, out=p[d])
    split_rows(
        kernels.horner, m, p.numpy(), nx, weights.digits, out.numpy(), bias, lo, hi, epilogue is not None
    )


def _activation_digits(
    x: Tensor, weights: DigitWeights, ph: int = 0, pw: int = 0, extra: int = 0
) -> tuple[Tensor, tuple[Tensor, Tensor] | None, bool] | None:
    """Activations (n, c, h, w) -> their int8 digits, zero-padded channels-last (nd, n, h + 2ph + extra, w +
    2pw, c).

    Quantised as intnet does (floor(x * 2**12 + 0.5), clamped to +-2**22). Returns (digits, wide, sums):
    wide is None when the digits hold every value, else (indexes (m, 4) (image, y, x, channel) of the values
    beyond the DENSE digits, 128**DENSE * their rest as float64); sums: the DENSE digits are followed by their
    sum, for the three-GEMM product with `weights` (where that product applies and the digits did not go
    dense past DENSE). None if x holds a NaN (float64 then)."""
    n, c, h, w = x.shape
    sums = weights.karatsuba is not None and karatsuba_exact()
    buf_t = _buffer("digits", (DENSE + int(sums), n, h + 2 * ph + extra, w + 2 * pw, c), torch.int8)
    _zero_border(buf_t, ph, pw, h, w)
    buf = buf_t.numpy()
    rest = np.zeros((n, h, w, c), np.int32)  # calloc: pages materialise only where a rest is written
    xd = x.detach().double()
    if _channels_last(xd):
        parts = split_rows(
            kernels.quantize_pixels, n * h, _pixel_rows(xd), w, buf, ph, pw, rest, ACT_LIMIT_INT
        )
    else:
        parts = split_rows(kernels.quantize_digits, n * h, xd.numpy(), buf, ph, pw, rest, ACT_LIMIT_INT)
    top, wide_count, nan = max(p[0] for p in parts), sum(p[1] for p in parts), any(p[2] for p in parts)
    if nan:
        return None
    if wide_count == 0:
        return buf_t, None, sums
    rest_t = torch.from_numpy(rest)
    if wide_count > SPARSE_LIMIT * rest.size:  # many wide values: their digits join the dense ones
        more = torch.zeros((digits_needed(top), n, h + 2 * ph + extra, w + 2 * pw, c), dtype=torch.int8)
        more[:, :, ph : ph + h, pw : pw + w] = to_digits(rest_t, more.shape[0])
        return torch.cat([buf_t[:DENSE], more]), None, False
    where = rest_t.nonzero()
    wide = (where, rest_t[tuple(where.t())].double().mul_(BASE**DENSE))
    return buf_t, wide, sums


def _activation_values(x: Tensor, ph: int = 0, pw: int = 0, extra: int = 0) -> Tensor | None:
    """Activations (n, c, h, w) -> their integers (quantised as intnet does) in float64, zero-padded
    channels-last (1, n, h + 2ph + extra, w + 2pw, c), for the float64 products; None if x holds a NaN."""
    n, c, h, w = x.shape
    buf = _buffer("values", (1, n, h + 2 * ph + extra, w + 2 * pw, c), torch.float64)
    _zero_border(buf, ph, pw, h, w)
    xd, out = x.detach().double(), buf[0].numpy()
    if _channels_last(xd):
        nan = split_rows(kernels.quantize_values, n * h, _pixel_rows(xd), w, out, ph, pw, ACT_LIMIT_INT)
    else:
        nan = split_rows(kernels.quantize_planes, n * h, xd.numpy(), out, ph, pw, ACT_LIMIT_INT)
    return None if any(nan) else buf


def _zero_border(buf: Tensor, ph: int, pw: int, h: int, w: int) -> None:
    """Zero what the quantisers leave unwritten in a reused buffer (..., H, W, c): all but the (h, w) image at
    (ph, pw)."""
    buf[..., :ph, :, :].zero_()
    buf[..., ph + h :, :, :].zero_()
    buf[..., :pw, :].zero_()
    buf[..., pw + w :, :].zero_()


def _activation_split(
    x: Tensor, weights: DigitWeights, ph: int = 0, pw: int = 0, extra: int = 0
) -> tuple[Tensor, tuple[Tensor, Tensor] | None, bool] | None:
    """`_activation_digits` where the int8 products are used here, else the float64 values (`use_int8`)."""
    if use_int8():
        return _activation_digits(x, weights, ph, pw, extra)
    values = _activation_values(x, ph, pw, extra)
    return None if values is None else (values, None, False)


def _pixel_rows(x: Tensor) -> np.ndarray:
    """Channels-last x (n, c, h, w) as a C-contiguous (n, h, W, c) array whose first w pixels of a row are
    x's.

    A convolution's output cropped from its padded-width grid (W > w) is read in place; else x is copied
    where it is not contiguous channels-last."""
    n, c, h, w = x.shape
    xl = x.permute(0, 2, 3, 1)
    if xl.is_contiguous():
        return xl.numpy()
    s0, s1, s2, s3 = xl.stride()
    row = s1 // c if c and s1 % c == 0 else 0
    fits = xl.storage_offset() + n * h * row * c <= xl.untyped_storage().nbytes() // xl.element_size()
    if s3 == 1 and s2 == c and row >= w and s0 == h * s1 and fits:
        return torch.as_strided(xl, (n, h, row, c), (s0, s1, c, 1)).numpy()
    return xl.contiguous().numpy()


def _channels_last(x: Tensor) -> bool:
    """Whether x (n, c, h, w) is best visited with the channel innermost (its smallest stride)."""
    return x.stride(1) <= min(x.stride(2), x.stride(3)) or x.shape[2] * x.shape[3] == 1


def _runs(offsets: list[int]) -> list[tuple[int, int, int]]:
    """Taps in runs of consecutive offsets (a kernel row): (first tap, first offset, length) each."""
    runs: list[tuple[int, int, int]] = []
    for t, off in enumerate(offsets):
        if runs and runs[-1][1] + runs[-1][2] == off:
            runs[-1] = (runs[-1][0], runs[-1][1], runs[-1][2] + 1)
        else:
            runs.append((t, off, 1))
    return runs


def _im2col(flat: Tensor, offsets: list[int], rows: int, g0: int, g1: int) -> Tensor:
    """Columns (nd, g1 - g0, taps * c) of global output rows [g0, g1): row r of image i reads flat[:, i, r +
    offset].

    Consecutive taps of a kernel row are adjacent pixels, so row r's columns of such a run are one
    contiguous stretch of flat (length * c values from r + offset): one copy per run, not per tap."""
    nd, _, _, c = flat.shape
    cols = _buffer(f"cols{flat.element_size()}", (nd, g1 - g0, len(offsets) * c), flat.dtype)
    s0, s1 = flat.stride(0), flat.stride(1)
    for i in range(g0 // rows, (g1 - 1) // rows + 1):
        r0, r1 = max(g0 - i * rows, 0), min(g1 - i * rows, rows)
        dst = cols[:, i * rows + r0 - g0 : i * rows + r1 - g0]
        for t, off, length in _runs(offsets):
            start = flat.storage_offset() + i * s1 + (r0 + off) * c
            src = flat.as_strided((nd, r1 - r0, length * c), (s0, c, 1), start)  # rows overlap: read only
            dst[:, :, t * c : (t + length) * c] = src
    return cols


def _whole_rows(weights: DigitWeights) -> bool:
    """Whether every tap of the kernel is live (no mask), with more than one tap per kernel row."""
    kh, kw = weights.kernel
    return kw > 1 and weights.taps == [(i, j) for i in range(kh) for j in range(kw)]


def _conv_values_by_rows(
    flat: Tensor, weights: DigitWeights, acc: Tensor, rows: int, wp: int, epilogue: tuple | None
) -> None:
    """The float64 products of a whole-kernel convolution without a kh * kw im2col: one kw-wide row of
    columns per padded pixel (z[r] = flat[r .. r + kw - 1], kw * c values), and for kernel row i the
    output rows r read z[r + i * wp], a plain row slice of z: kh products of K = kw * c added into acc.

    flat (n, L, c) float64 integers on the padded grid, acc (n * rows, o); every product and partial sum is
    an integer below 2**53 (the layer's bound), so the sums are exact in any order: the same integers as
    one product over all kh * kw taps. epilogue (bias, lo, hi): acc gets intnet's rescaled output."""
    n, _, c = flat.shape
    kh, kw = weights.kernel
    kc, halo = kw * c, (kh - 1) * wp
    w_rows = [weights.values[i * kc : (i + 1) * kc] for i in range(kh)]  # rows ordered (tap, cin)
    chunk = max(256, _ROW_COLS_BYTES // (8 * kc) - halo)
    for b in range(n):
        for r0 in range(0, rows, chunk):
            r1 = min(rows, r0 + chunk)
            span = r1 - r0 + halo
            z = _buffer("row_cols", (span, kc), torch.float64)
            for j in range(kw):
                z[:, j * c : (j + 1) * c] = flat[b, r0 + j : r0 + j + span]
            out = acc[b * rows + r0 : b * rows + r1]
            torch.mm(z[: r1 - r0], w_rows[0], out=out)
            for i in range(1, kh):
                out.addmm_(z[i * wp : i * wp + r1 - r0], w_rows[i])
            if epilogue is not None:
                split_rows(kernels.rescale_rows, r1 - r0, out.numpy(), *epilogue)


def conv2d(
    x: Tensor, weights: DigitWeights, padding: tuple[int, int], epilogue: tuple | None = None
) -> Tensor | None:
    """Exact F.conv2d(x_int, w_int, padding=padding) (stride 1, no bias) of the quantised x (None: NaN in x).

    epilogue (bias, lo, hi): return intnet's rescaled layer output instead (`layer_forward`)."""
    n, c, h, w = x.shape
    o, (kh, kw) = weights.n, weights.kernel
    ph, pw = padding
    hp, wp = h + 2 * ph, w + 2 * pw
    ho, wo = hp - kh + 1, wp - kw + 1
    rows = ho * wp  # outputs on the padded-width grid: output row r reads flat[r + tap offset]
    offsets = [i * wp + j for i, j in weights.taps]
    split = _activation_split(x, weights, ph, pw, int(kw > 1))  # + a row: the last taps overrun the image
    if split is None:
        return None
    buf, wide, sums = split
    nd, values = buf.shape[0], buf.dtype == torch.float64
    flat = buf.view(nd, n, -1, c)
    acc = torch.empty((n * rows, o), dtype=torch.float64)
    pointwise = offsets == [0] and flat.shape[2] == rows  # a 1x1 convolution: the digits are the columns
    if values and ROW_GEMMS and not pointwise and _whole_rows(weights):
        _conv_values_by_rows(flat[0], weights, acc, rows, wp, epilogue)
        return acc.view(n, ho, wp, o)[:, :, :wo].permute(0, 3, 1, 2)
    chunk = _chunk_rows(nd, weights, len(offsets) * c, values)
    for g0 in range(0, n * rows, chunk):  # global rows (image * rows + r) in chunks
        g1 = min(n * rows, g0 + chunk)
        cols = flat.view(nd, n * rows, c)[:, g0:g1] if pointwise else _im2col(flat, offsets, rows, g0, g1)
        exact_matmul(cols, weights, acc[g0:g1], epilogue if wide is None else None, sums)
    # a wide value v at (img, y, x, ch) adds v * w[:, ch, i, j] to output row src - offset
    if wide is not None:
        (img, y, x, ch), values = wide[0].t(), wide[1]
        src = (y + ph) * wp + x + pw
        for t, off in enumerate(offsets):
            r = src - off
            ok = (r >= 0) & (r < rows)
            acc.index_add_(0, img[ok] * rows + r[ok], weights.per_tap[t][ch[ok]].mul_(values[ok, None]))
        if epilogue is not None:
            kernels.finish(acc.view(n * rows, 1, 1, o).permute(0, 3, 1, 2).numpy(), *epilogue, True)
    return acc.view(n, ho, wp, o)[:, :, :wo].permute(0, 3, 1, 2)


def checkerboard_conv2d(
    x: Tensor, weights: DigitWeights, padding: tuple[int, int], epilogue: tuple
) -> Tensor | None:
    """intnet's output of a 'same' convolution (stride 1, kernel 2 * padding + 1) at the checkerboard's
    non-anchor positions only ((i + j) odd), as (n, h * w / 2, N) in row-major order, on the float64 products
    (exact, as `conv2d`'s); None where it does not apply (odd h or w, NaN in x).

    The positions of one row parity form a lattice of stride 2 in both directions, so each tap's columns
    are one strided copy per parity and image: half the rows of the whole map's GEMM, and no gather after."""
    n, c, h, w = x.shape
    (kh, kw), (ph, pw) = weights.kernel, padding
    if h % 2 or w % 2 or (kh, kw) != (2 * ph + 1, 2 * pw + 1):
        return None
    buf = _activation_values(x, ph, pw)
    if buf is None:
        return None
    flat = buf[0]  # (n, h + 2ph, w + 2pw, c)
    half, k = w // 2, len(weights.taps) * c
    s = flat.stride()
    out = torch.empty((n, h * half, weights.n), dtype=torch.float64)
    step = max(1, _SCRATCH_BYTES // (8 * h * half * max(k, weights.n)))  # images per GEMM
    for b0 in range(0, n, step):
        b1 = min(n, b0 + step)
        cols = _buffer("checker_cols", (b1 - b0, h, half, k), torch.float64)
        for q in (0, 1):  # rows y = q + 2a hold their non-anchors at x = 1 - q + 2b
            rows = cols[:, q::2]
            for t, (i, j) in enumerate(weights.taps):
                start = flat.storage_offset() + b0 * s[0] + (q + i) * s[1] + (1 - q + j) * s[2]
                src = flat.as_strided((b1 - b0, h // 2, half, c), (s[0], 2 * s[1], 2 * s[2], s[3]), start)
                rows[..., t * c : (t + 1) * c] = src
        dst = out[b0:b1].view(-1, weights.n)
        torch.mm(cols.view(-1, k), weights.values, out=dst)
        split_rows(kernels.rescale_rows, dst.shape[0], dst.numpy(), *epilogue)
    return out


def conv_transpose2d(
    x: Tensor, weights: DigitWeights, stride: tuple[int, int], padding: tuple[int, int],
    output_padding: tuple[int, int],
) -> Tensor | None:
    """Exact F.conv_transpose2d (no bias, dilation 1, one group) of the quantised x (None: NaN in x).

    Each input position's contributions (kh * kw * Cout integers) are one exact GEMM row, added into the
    output in float64: integers whose partial sums stay below 2**53, so exact in any order."""
    n, c, h, w = x.shape
    (kh, kw), o = weights.kernel, weights.n // (weights.kernel[0] * weights.kernel[1])
    ho = (h - 1) * stride[0] - 2 * padding[0] + kh + output_padding[0]
    wo = (w - 1) * stride[1] - 2 * padding[1] + kw + output_padding[1]
    split = _activation_split(x, weights)
    if split is None:
        return None
    digits, wide, sums = split
    nd, values = digits.shape[0], digits.dtype == torch.float64
    digits = digits.view(nd, n * h * w, c)
    out = torch.zeros((n, ho, wo, o), dtype=torch.float64)
    # + the float64 contributions, 8 bytes per column
    chunk = _chunk_rows(nd, weights, c if values else 2 * weights.n, values)
    if wide is not None:
        where, values = wide
        wide_rows = (where[:, 0] * h + where[:, 1]) * w + where[:, 2]
    for g0 in range(0, n * h * w, chunk):
        g1 = min(n * h * w, g0 + chunk)
        acc = _buffer("contributions", (g1 - g0, weights.n), torch.float64)
        exact_matmul(digits[:, g0:g1], weights, acc, sums=sums)
        if wide is not None:  # a wide value v at (img, y, x, ch) adds v * w[ch] to its input position's row
            ok = (wide_rows >= g0) & (wide_rows < g1)
            acc.index_add_(0, wide_rows[ok] - g0, weights.per_tap[0][where[ok, 3]].mul_(values[ok, None]))
        kernels.scatter_transposed(
            acc.numpy(), g0, h, w, tuple(stride), tuple(padding), (kh, kw), out.numpy()
        )
    return out.permute(0, 3, 1, 2)


def layer_forward(
    x: Tensor, weights: DigitWeights, bias: Tensor | None, lo: float, hi: float, conv: dict
) -> Tensor | None:
    """An integer layer's eval output: clamp(floor((acc + b) / 2**14 + 0.5) / 2**12, lo, hi), exactly as
    intnet.

    `conv` holds padding (and stride, output_padding for a transposed layer; or non_anchors: the output at
    the checkerboard's non-anchor positions only, float64 products). None if x holds a NaN."""
    b = bias.numpy() if bias is not None else np.zeros(weights.n)
    if conv.get("non_anchors"):
        return checkerboard_conv2d(x, weights, conv["padding"], (b, lo, hi))
    if "stride" not in conv:
        return conv2d(x, weights, conv["padding"], (b, lo, hi))
    acc = conv_transpose2d(x, weights, conv["stride"], conv["padding"], conv["output_padding"])
    if acc is not None:
        kernels.finish(acc.numpy(), b, lo, hi, _channels_last(acc))
    return acc
