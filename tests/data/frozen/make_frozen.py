"""Write the frozen bitstreams of tests/test_frozen_bitstreams.py again, after the shipped model changed.

The test holds files the shipped model wrote and the frames they decode to, so that a code change that
alters coding or decoding fails it. When the shipped weights are replaced on purpose (a campaign accepted
new ones), run this once and commit the files it writes:

    python tests/data/frozen/make_frozen.py --replace
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--replace", action="store_true", help="replace the committed files (else: a dry run)")
    args = ap.parse_args(argv)
    import vvc_lightning

    expected = json.loads((HERE / "expected.json").read_text())
    clip = np.load(HERE / "bikes11.npz")["frames"]
    codec = vvc_lightning.load(expected["model"], batch=expected["batch"])
    changed = 0
    for name, info in sorted(expected["files"].items()):
        data = codec.compress(clip, quality=info["quality"], fps=expected["fps"])
        frames = codec.decompress(data)
        new = {"quality": info["quality"], "sha256": hashlib.sha256(data).hexdigest(),
               "decoded_sha256": hashlib.sha256(frames.tobytes()).hexdigest()}
        same = new == info
        changed += not same
        print(f"{name}: {len(data)} bytes, {'unchanged' if same else 'changed'}")
        if args.replace and not same:
            tmp = HERE / f".{name}.tmp"
            tmp.write_bytes(data)
            tmp.replace(HERE / name)
            expected["files"][name] = new
    if args.replace and changed:
        tmp = HERE / ".expected.json.tmp"
        tmp.write_text(json.dumps(expected, indent=1) + "\n")
        tmp.replace(HERE / "expected.json")
    elif changed:
        print("dry run: nothing written; give --replace to write the files above")
    return 0


if __name__ == "__main__":
    sys.exit(main())
