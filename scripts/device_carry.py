"""What a GPU machine lent without network needs of the offline training data, and whether it fits what the
device tool carries (64 MiB of git-ignored paths, all carried paths together).

A device needs manifest.json, shards/, stills/ and test/; footage/ is the copy the shards were cut from.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from vvc_lightning.errors import VVCError

CARRY = ("manifest.json", "shards", "stills", "test")
LIMIT_MIB = 64.0
ROOT = Path(__file__).resolve().parents[1]


def size_mib(path: Path) -> float:
    """Bytes of a file, or of every file under a folder, in MiB."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 2**20


def carry_paths(out: Path) -> list[str]:
    """The paths to carry, relative to the repository root when `out` lies in it (else absolute)."""
    base = out.resolve()
    try:
        base = base.relative_to(ROOT)
    except ValueError:
        pass
    return [(base / name).as_posix() for name in CARRY]


def carry_report(out: Path) -> tuple[float, str]:
    """(MiB, one line): what a device needs of the built folder `out`, its size and the tool's carry list."""
    missing = [name for name in CARRY if not (out / name).exists()]
    if missing:
        raise VVCError(f"{out} holds no {', '.join(missing)}; build it first: "
                       f"python scripts/build_training_data.py -o {out}")
    total = sum(size_mib(out / name) for name in CARRY)
    where = "" if not Path(carry_paths(out)[0]).is_absolute() else \
        " (outside the repository: the device tool carries only paths inside it)"
    line = (
        f"carry to a GPU machine: {total:.1f} MiB of {LIMIT_MIB:.0f} MiB ({', '.join(CARRY)}; not footage/)"
        f"{where}: carry={json.dumps(carry_paths(out))}"
    )
    return total, line


def too_large(out: Path, total: float) -> str | None:
    """The one-line problem when what a device needs of `out` exceeds the carry limit, else None."""
    if total <= LIMIT_MIB:
        return None
    old = sorted(p.name for p in (out / "test").glob("*.y4m"))
    fix = f"rebuild it (test clips are lossless .mkv; {len(old)} .y4m there)" if old else \
        "lower --photo-side or --test-photos"
    return (
        f"{out}: what a device needs is {total:.1f} MiB, over the {LIMIT_MIB:.0f} MiB the device tool "
        f"carries; {fix}"
    )


def report(out: Path) -> int:
    """`--carry`: print what a device needs of the built folder `out` and its size; 2 when it does not fit."""
    try:
        total, line = carry_report(out)
    except VVCError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(line)
    problem = too_large(out, total)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    return 0


def can_build(out: Path, cache: Path) -> int:
    """`--can-build`: 0 when this machine can fetch the packages to build `out`, else 2 and one line saying to
    build it where the network is and carry it (a GPU machine is lent without network)."""
    import training_sources as ts

    try:
        ts.check_can_fetch(list(ts.DEB_PHOTOS), cache)
    except ts.SourceError as e:
        print(
            f"error: {out / 'manifest.json'} is missing and this machine cannot fetch the packages to build "
            f"it ({e}); build it where the network is (python scripts/build_training_data.py -o {out}) and "
            f"carry {out} without footage/ (python scripts/build_training_data.py --carry -o {out} lists "
            "the paths)",
            file=sys.stderr,
        )
        return 2
    return 0
