"""Mutation fuzzing of the decoder: bit flips, truncations, insertions, damaged payloads with valid
CRCs, crafted headers with valid CRCs and huge sizes; every decode bounded in memory and time
(tests/fuzz_vvc.py). A finding is any outcome other than a one-line error or a correct decode."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_fuzzer(count: int, seed: int, timeout: int) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "tests.fuzz_vvc", str(count), str(seed)],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = re.search(r"(\d+) mutations, (\d+) findings", proc.stdout)
    assert m, proc.stdout
    assert (int(m[1]), int(m[2])) == (count, 0), proc.stdout


def test_a_hundred_mutations_find_nothing():
    run_fuzzer(100, seed=1, timeout=300)


@pytest.mark.slow
def test_thousands_of_mutations_find_nothing():
    run_fuzzer(3000, seed=2, timeout=3600)
