"""bench_limit's accounting: the multiply-adds and GEMM shapes it counts, and limits it derives from them."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch

from vvc_lightning.codec.entropy.intnet import IntMaskedConv2d, int_conv, int_deconv

ROOT = Path(__file__).parents[2]


def _parts():
    spec = importlib.util.spec_from_file_location("limit_parts", ROOT / "benchmarks" / "limit_parts.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("limit_parts", module)  # its dataclasses look their module up there
    spec.loader.exec_module(sys.modules["limit_parts"])
    return sys.modules["limit_parts"]


def test_float_parts_are_timed_and_their_operators_counted_and_replayed():
    lp = _parts()
    conv = torch.nn.Sequential(torch.nn.Conv2d(4, 6, 3, padding=1), torch.nn.ReLU())
    other = torch.nn.Linear(5, 7)
    clock = lp.PartClock({"conv": [conv], "other": [other]}, {"conv"})
    with torch.no_grad():
        clock.reset(recording=True)
        conv(torch.randn(2, 4, 8, 8))
        other(torch.randn(3, 5))  # timed, not a float part: its operators are not kept
        clock.reset(recording=False)
        conv(torch.randn(2, 4, 8, 8))
    clock.remove()
    assert clock.macs["conv"] == 2 * 6 * 4 * 9 * 8 * 8 and "other" not in clock.ops
    assert clock.seconds["conv"] > 0 and clock.cpu_seconds["conv"] >= 0
    wall, cpu, rows = lp.replay_seconds(clock.ops["conv"], repeats=1)
    assert wall > 0 and cpu >= 0 and len(rows) == 1 and rows[0]["calls"] == 1


def test_integer_layers_count_used_positions_live_taps_and_the_faster_exact_gemm():
    lp = _parts()
    layers = torch.nn.ModuleList([int_conv(8, 16, 5), IntMaskedConv2d(8, 16, kernel_size=5, padding=2),
                                  int_deconv(8, 4, 5, 2)]).eval()
    ints = lp.IntLayers({"a": [layers[0]], "b": [layers[1]], "c": [layers[2]]})
    x = torch.randn(2, 8, 6, 10, dtype=torch.float64)
    with torch.no_grad():
        for layer in layers:
            layer(x)
    ints.remove()
    (a, b, c) = ints.calls
    assert (a.m, a.k, a.n) == (2 * 60, 8 * 25, 16)
    assert (b.m, b.k, b.n) == (2 * 30, 8 * 12, 16)  # the non-anchor half; the checkerboard's 12 live taps
    assert (c.m, c.k, c.n) == (2 * 60, 8, 4 * 25)  # a transposed layer: a row per input position
    limits = lp.int_limits(ints.calls, repeats=1)
    for part in "abc":
        row = limits[part]
        assert 0 < row["limit_seconds"] <= min(row["int_mm_seconds"], row["float64_mm_seconds"]) + 1e-12
