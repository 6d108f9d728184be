"""The rate-gap breakdown: the coder's bytes against the ideal cost of its symbols, the estimate against the
Gaussian cost it claims, on the shipped model and the bundled test clip."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).parents[2]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_table_bits_count_escapes_as_bypass_digits():
    gap = _load("bench_rate_gap")
    cdf = np.array([[0, 32768, 65535, 65536]])  # two symbols (0, 1) and the escape
    lengths, offsets = np.array([4]), np.array([0])
    one, esc0 = gap.table_bits(np.array([0]), np.array([0]), cdf, lengths, offsets)
    assert one == pytest.approx(1.0) and esc0 == 0
    far, esc1 = gap.table_bits(np.array([20]), np.array([0]), cdf, lengths, offsets)
    # escape symbol (16 bits) + digit count (4 bits) + two 4-bit digits of 2 * (20 - 2) = 36
    assert esc1 == 1 and far == pytest.approx(16 + 4 + 8)


def test_real_bytes_are_the_ideal_table_cost_plus_framing():
    gap = _load("bench_rate_gap")
    r = gap.measure("zoo:vvc-lean-vr", str(ROOT / "vvc_lightning/assets/quickstart_test.mp4"), 0.0, 9)
    parts = r["gap_parts_bits"]
    assert r["gops"] == 1
    assert 0 <= parts["rans_overhead"] <= 64  # the coder's flush, nothing more
    assert abs(parts["y_model_scale_minus_estimate"]) < 1.0  # the estimate is the Gaussian cost it claims
    assert parts["header"] > 0 and parts["record_framing"] == 64 and parts["symbol_checks"] == 32
    explained = sum(parts.values())
    assert explained == pytest.approx(r["gap_bits"], abs=1e-3)
