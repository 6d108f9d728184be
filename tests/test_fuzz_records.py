"""Crafted model folders: every named crafted record, then random damage to records and
weight files, beside a genuine entry (tests/fuzz_records.py). A finding is any outcome other than a one-line
refusal naming the entry or a model whose coded latent decodes exactly; the genuine entry always stays
usable."""

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
        [sys.executable, "-m", "tests.fuzz_records", str(count), str(seed)],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = re.search(r"(\d+) cases, (\d+) findings", proc.stdout)
    assert m, proc.stdout
    assert (int(m[1]), int(m[2])) == (count, 0), proc.stdout


def test_named_crafted_records_and_some_random_damage_find_nothing():
    run_fuzzer(20, seed=1, timeout=600)


@pytest.mark.slow
def test_hundreds_of_crafted_entries_find_nothing():
    run_fuzzer(400, seed=2, timeout=3600)
