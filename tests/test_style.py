"""Style the tests enforce: ruff's line length (pyproject.toml) holds for the whole repository."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_no_line_is_longer_than_the_configured_length():
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--select", "E501", "--output-format", "concise", "."],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-1000:]
