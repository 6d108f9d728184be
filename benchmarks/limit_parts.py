"""The parts of a coding run and the limit their multiply-adds set on this machine (for bench_limit.py).

`PartClock` times named parts of a model (forward hooks on their modules) and, while it records, keeps
every multiply-add operator those parts dispatch (matrix products and convolutions: shapes, strides,
dtype, MACs from torch's FlopCounter formulas). `IntLayers` accounts the exact integer layers (intnet):
their multiply-adds (the positions whose outputs are used), the int8 digit products exactness takes per
multiply-add, and their own seconds. The limit of a part is the time this machine needs for its
operators alone, each replayed on random data of the same shape and layout (best of a few), or for the
integer layers the faster exact GEMM of their (M, K, N) shapes: `products` int8 digit GEMMs (torch._int_mm)
or one float64 GEMM (exact: every partial sum is an integer below 2**53); a part's fraction of the limit
is that time over the part's measured seconds. Every time is taken twice: wall seconds, and CPU seconds of
the process (`time.process_time`), which beside other busy processes counts only the time this one ran
(short replays otherwise catch quieter moments than a long run does).
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from vvc_lightning.codec.entropy import intgemm
from vvc_lightning.codec.entropy.intnet import IntMaskedConv2d, _IntConvMixin


@dataclass(frozen=True)
class Meta:
    """A tensor argument's shape, strides and dtype (what a replay rebuilds)."""

    shape: tuple[int, ...]
    stride: tuple[int, ...]
    dtype: torch.dtype


def _meta(v: Any) -> Any:
    """A hashable description of an operator argument: tensors as `Meta`, lists as tuples."""
    if isinstance(v, torch.Tensor):
        return Meta(tuple(v.shape), tuple(v.stride()), v.dtype)
    if isinstance(v, (list, tuple)):
        return tuple(_meta(e) for e in v)
    return v


def part_modules(model: nn.Module, side: str) -> dict[str, list[nn.Module]]:
    """{part name: its modules} of the shipped layout (a backbone with .encoder/.decoder, a LatentCodec)."""
    codec, ctx = model.codec, model.codec.context
    backbone = model.backbone
    parts = {
        "backbone_decoder": [getattr(backbone, "decoder", backbone)],
        "g_s": [codec.g_s],
    } if side == "decode" else {
        "backbone_encoder": [getattr(backbone, "encoder", backbone)],
        "g_a": [codec.g_a],
        "h_a": [codec.h_a],
    }
    parts.update(h_s=[codec.h_s], channel_context=list(ctx.channel_context),
                 spatial_context=list(ctx.spatial_context), aggregation=list(ctx.aggregation))
    return parts


class _Recorder(TorchDispatchMode):
    """Keeps every multiply-add operator dispatched while it is entered: {part: {(func, metas): calls}}."""

    def __init__(self) -> None:
        super().__init__()
        self.part = ""
        self.ops: dict[str, Counter] = defaultdict(Counter)
        self.macs: dict[str, float] = defaultdict(float)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        packet = func.overloadpacket
        if packet in flop_registry:
            key = (func, _meta(args), tuple(sorted((k, _meta(v)) for k, v in kwargs.items())))
            self.ops[self.part][key] += 1
            self.macs[self.part] += flop_registry[packet](*args, **kwargs, out_val=out) / 2
        return out


class PartClock:
    """Seconds per part (forward hooks); while `recording`, the multiply-add operators of the float parts.

    The recorder is entered only inside a float part, so the other parts run at full speed meanwhile."""

    def __init__(self, parts: dict[str, list[nn.Module]], float_parts: set[str]) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.cpu_seconds: dict[str, float] = defaultdict(float)
        self.recorder, self.recording = _Recorder(), False
        self.float_parts, self.stack, self.handles = float_parts, [], []
        for name, modules in parts.items():
            for m in modules:
                self.handles.append(m.register_forward_pre_hook(self._enter(name)))
                self.handles.append(m.register_forward_hook(self._leave(name)))

    @property
    def ops(self) -> dict[str, Counter]:
        return self.recorder.ops

    @property
    def macs(self) -> dict[str, float]:
        return self.recorder.macs

    def _enter(self, name: str):  # noqa: ANN202
        def hook(module: nn.Module, args: Any) -> None:
            if self.recording and name in self.float_parts and not self.stack:
                self.recorder.part = name
                self.recorder.__enter__()
            self.stack.append((name, time.perf_counter(), time.process_time()))
        return hook

    def _leave(self, name: str):  # noqa: ANN202
        def hook(module: nn.Module, args: Any, out: Any) -> None:
            part, t0, c0 = self.stack.pop()
            self.seconds[part] += time.perf_counter() - t0
            self.cpu_seconds[part] += time.process_time() - c0
            if self.recording and part in self.float_parts and not self.stack:
                self.recorder.__exit__(None, None, None)
        return hook

    def reset(self, recording: bool) -> None:
        self.seconds.clear()
        self.cpu_seconds.clear()
        self.recording = recording

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def _random(meta: Any) -> Any:
    """A random tensor for a `Meta` (same shape, strides, dtype), lists for tuples, other values as given."""
    if isinstance(meta, tuple) and not isinstance(meta, Meta):
        return [_random(m) for m in meta]
    if not isinstance(meta, Meta):
        return meta
    size = sum((s - 1) * st for s, st in zip(meta.shape, meta.stride, strict=True)) + 1
    flat = torch.randn(size) if meta.dtype.is_floating_point else torch.randint(-64, 64, (size,))
    return torch.as_strided(flat.to(meta.dtype), meta.shape, meta.stride)


FLOAT_REPEATS = 9  # timed replays of a float operator or GEMM shape (the best is kept)


def best_seconds(fn: Any, repeats: int = 3) -> tuple[float, float]:
    """Best wall and best CPU seconds of `fn()` over `repeats` calls after one warm-up call."""
    fn()
    wall = cpu = float("inf")
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall, cpu = min(wall, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
    return wall, cpu


@torch.no_grad()
def replay_seconds(ops: Counter, repeats: int = FLOAT_REPEATS) -> tuple[float, float, list[dict]]:
    """Wall and CPU seconds this machine needs for `ops` alone (each replayed on random data, best of
    `repeats`), and a row per operator."""
    total, total_cpu, rows = 0.0, 0.0, []
    for (func, args, kwargs), calls in ops.items():
        a = [_random(m) for m in args]
        k = {name: _random(v) for name, v in kwargs}
        seconds, cpu = best_seconds(lambda: func(*a, **k), repeats)  # noqa: B023
        macs = flop_registry[func.overloadpacket](*a, **k, out_val=func(*a, **k)) / 2
        total, total_cpu = total + calls * seconds, total_cpu + calls * cpu
        rows.append({"op": str(func), "shapes": [list(m.shape) for m in args if isinstance(m, Meta)],
                     "calls": calls, "seconds": seconds, "cpu_seconds": cpu,
                     "gmac_per_s": macs / seconds / 1e9})
    return total, total_cpu, rows


@dataclass
class IntCall:
    """One integer layer call: its GEMM shape (M needed rows, K, N) and digit products per multiply-add."""

    part: str
    m: int
    k: int
    n: int
    products: int | None  # None: the float64 path (no int8 digits)
    seconds: float
    cpu_seconds: float


class IntLayers:
    """Hooks on every exact integer layer of the parts: their shapes, products and seconds."""

    def __init__(self, parts: dict[str, list[nn.Module]]) -> None:
        self.calls: list[IntCall] = []
        self.handles, self._t0 = [], {}
        for name, modules in parts.items():
            for mod in modules:
                for layer in mod.modules():
                    if isinstance(layer, _IntConvMixin):
                        self.handles.append(layer.register_forward_pre_hook(self._start))
                        self.handles.append(layer.register_forward_hook(self._stop(name)))

    def _start(self, layer: nn.Module, args: Any) -> None:
        self._t0[id(layer)] = (time.perf_counter(), time.process_time())

    def _stop(self, part: str):  # noqa: ANN202
        def hook(layer: nn.Module, args: Any, out: torch.Tensor) -> None:
            t0, c0 = self._t0.pop(id(layer))
            seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
            x = args[0]
            n, cin, h, w = x.shape
            cout, kh, kw = (layer.out_channels, *layer.kernel_size)
            w_int, _ = layer._int_params()
            digits = layer._digit_weights(w_int) if intgemm.available(x) else None
            if layer.transposed:  # one GEMM row per input position: (Cin) x (kh * kw * Cout)
                m, k, ncols = n * h * w, cin, cout * kh * kw
            else:
                taps = len(digits.taps) if digits is not None else kh * kw
                m = n * out.shape[2] * out.shape[3] if out.dim() == 4 else out.shape[0] * out.shape[1]
                if isinstance(layer, IntMaskedConv2d) and out.dim() == 4:  # used at the non-anchors only
                    m = n * (out.shape[2] * out.shape[3] // 2)
                k, ncols = cin * taps, cout
            products = None
            if digits is not None:
                karatsuba = digits.karatsuba is not None and intgemm.karatsuba_exact()
                products = 3 if karatsuba else intgemm.DENSE * digits.digits
            self.calls.append(IntCall(part, m, k, ncols, products, seconds, cpu))
        return hook

    def reset(self) -> None:
        self.calls.clear()

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


SAMPLE_ROWS = 2048  # GEMM rows timed per shape; the time of M rows is scaled from them (linear in M)


def gemm_seconds(m: int, k: int, n: int, dtype: torch.dtype, repeats: int = 3) -> tuple[float, float]:
    """Wall and CPU seconds of an (m, k) x (k, n) product here: torch._int_mm on int8 digits, or torch.mm in
    float64 (the two exact integer backends), timed on min(m, SAMPLE_ROWS) rows and scaled to m."""
    rows = min(max(m, 17), SAMPLE_ROWS)  # _int_mm takes 17 rows at least
    if dtype == torch.int8:
        a = torch.randint(-64, 64, (rows, k), dtype=torch.int8)
        b = torch.randint(-64, 64, (k, n), dtype=torch.int8)
        out = torch.empty((rows, n), dtype=torch.int32)
        best = best_seconds(lambda: torch._int_mm(a, b, out=out), repeats)
    else:
        a, b = torch.randn(rows, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
        out = torch.empty((rows, n), dtype=dtype)
        best = best_seconds(lambda: torch.mm(a, b, out=out), repeats)
    return best[0] * m / rows, best[1] * m / rows


def int_limits(calls: list[IntCall], repeats: int = 3) -> dict[str, dict[str, float]]:
    """Per part: multiply-adds, the layers' seconds, and the seconds of the faster exact backend per shape:
    `products` int8 digit GEMMs (torch._int_mm) or one float64 GEMM (every partial sum an integer < 2**53)."""
    shapes: dict[tuple[int, int, int], tuple] = {}
    out: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for c in calls:
        row = out[c.part]
        macs = c.m * c.k * c.n
        row["macs"] += macs
        row["layer_seconds"] += c.seconds
        row["layer_cpu_seconds"] += c.cpu_seconds
        key = (c.m, c.k, c.n)
        if key not in shapes:
            # float64 replays are short: best of more (the rate here swings up to 2x between calls), int8 ones
            # are slow where _int_mm is a plain loop (and steady there)
            shapes[key] = (gemm_seconds(*key, torch.int8, repeats),
                           gemm_seconds(*key, torch.float64, FLOAT_REPEATS))
        (int8, int8_cpu), (f64, f64_cpu) = shapes[key]
        products = c.products or 3
        row["int8_products"] += products * macs
        row["int_mm_seconds"] += products * int8
        row["float64_mm_seconds"] += f64
        row["limit_seconds"] += min(products * int8, f64)
        row["limit_cpu_seconds"] += min(products * int8_cpu, f64_cpu)
        row["products_per_mac"] = products
        row["float64_calls"] += c.products is None
    return {k: dict(v) for k, v in out.items()}
