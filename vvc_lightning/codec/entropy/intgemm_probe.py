"""Which exact GEMM the integer layers use on this machine: int8 digit products, or float64 products.

Both give the same integers (`intgemm`'s docstring proves the int8 path exact; in float64 every product
and partial sum is an integer below 2**53). The int8 path takes three `torch._int_mm` products per
multiply-add (Karatsuba on two-digit operands); it pays where the CPU has an int8 dot-product unit and
oneDNN uses it (VNNI: about 100 G int8 products/s on one core), and costs tenfold where `_int_mm` falls
back to a plain loop (0.2 G/s on an AVX2 CPU without VNNI, where float64 does 1-7 G/s). The choice is
timed once per process and oneDNN setting, on one thread (two threads beside other busy processes time
their waits, not the arithmetic): it changes the speed, never a symbol or a byte.
"""

from __future__ import annotations

import functools
import time

import torch

from vvc_lightning.codec.entropy.intgemm_kernels import BASE, HALF

MAX_K = 1 << 17  # products per output sum: K * 2**12 < 2**29, far inside int32
PRODUCTS = 3  # int8 GEMMs per multiply-add of two-digit operands (Karatsuba, `intgemm` step 5)
_SPEED_SHAPE = (256, 256, 64)  # (M, K, N) of the timed products: 20 ms where _int_mm is slow, else 0.1


def onednn() -> bool:
    """Whether convolutions and matrix products may use oneDNN now (the probes are kept per setting)."""
    return torch.backends.mkldnn.is_available() and torch._C._get_mkldnn_enabled()


@functools.cache
def exact_probe(onednn: bool, half: int = HALF) -> bool:
    """`_int_mm` against float64 on operands in [-half, half - 1] (their extremes, all of one sign
    included)."""
    if not hasattr(torch, "_int_mm"):
        return False
    g = torch.Generator().manual_seed(0)
    top = half - 1 if half < BASE else BASE - 2  # digit sums reach 126 at most
    try:
        for m, k, n in ((1, 3, 1), (37, 200, 24), (300, 3200, 256), (64, MAX_K - 1, 8)):
            a = torch.randint(-half, top + 1, (m, k), generator=g, dtype=torch.int8)
            b = torch.randint(-half, top + 1, (k, n), generator=g, dtype=torch.int8)
            a[0], b[:, 0] = -half, -half  # the largest products, all of one sign
            a[-1, ::2], b[::2, -1] = top, -half
            if not torch.equal(torch._int_mm(a, b).double(), a.double() @ b.double()):
                return False
    except RuntimeError:
        return False
    return True


def _best(fn, repeats: int = 2) -> float:  # noqa: ANN001
    """Best seconds of `fn()` over `repeats` calls after a warm-up call."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


@functools.cache
def int8_faster(onednn: bool) -> bool:
    """Whether PRODUCTS int8 GEMMs (`torch._int_mm`) take less time on one core here than one float64 GEMM
    of a shape like the integer layers' (timed once per oneDNN setting)."""
    if not hasattr(torch, "_int_mm"):
        return False
    m, k, n = _SPEED_SHAPE
    g = torch.Generator().manual_seed(0)
    a = torch.randint(-HALF, HALF, (m, k), generator=g, dtype=torch.int8)
    b = torch.randint(-HALF, HALF, (k, n), generator=g, dtype=torch.int8)
    a64, b64 = a.double(), b.double()
    out, out64 = torch.empty((m, n), dtype=torch.int32), torch.empty((m, n), dtype=torch.float64)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        int8 = _best(lambda: torch._int_mm(a, b, out=out))
        return PRODUCTS * int8 < _best(lambda: torch.mm(a64, b64, out=out64))
    except RuntimeError:
        return False
    finally:
        torch.set_num_threads(threads)
