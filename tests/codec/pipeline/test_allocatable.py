"""The memory budget respects what the process may allocate (an address-space limit below the default 8G
budget), and an allocation that fails while coding is one line naming --max-memory, never a traceback."""

from __future__ import annotations

import resource
import subprocess
import sys
import textwrap

import numpy as np

from vvc_lightning.codec.pipeline.allocatable import allocatable, usable_budget
from vvc_lightning.video.video_io import write_video

LIMIT = 6 << 30  # address space a child may map: below the default budget, above what start-up maps (~4G)


def _limited(limit: int):  # noqa: ANN202
    return lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def test_the_budget_is_capped_by_what_the_process_may_allocate():
    room = allocatable()
    assert room is None or room[0] > 0
    assert usable_budget(1 << 20) == (1 << 20, "")  # a budget that fits is kept as it is
    huge, why = usable_budget(1 << 60)
    if room is not None:
        assert huge < room[0] and room[1] in why


def test_a_long_gop_under_an_address_space_limit_is_one_line(tmp_path):
    """The reported case: --gop 257 on 640x360 plans 5.5G a GoP, which the old default 8G budget let start
    under a 6G limit until an allocation traceback."""
    src = tmp_path / "wide.y4m"
    y, x = np.mgrid[0:360, 0:640]
    frames = np.stack([(x + y + 9 * t) % 256 for t in range(2)])[..., None].repeat(3, -1).astype(np.uint8)
    write_video(src, frames, 25)
    r = subprocess.run(
        [sys.executable, "-m", "vvc_lightning", "compress", str(src), "-o", str(tmp_path / "o.vvc"),
         "--model", "vvc-lean-vr", "--quality", "0", "--gop", "257"],
        capture_output=True, text=True, preexec_fn=_limited(LIMIT), timeout=600,
    )
    err = [line for line in r.stderr.splitlines() if "jit" not in line and "warnings.warn" not in line]
    assert r.returncode == 2 and len(err) == 1 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert err[0].startswith("error: --max-memory ") and "address-space limit" in err[0], err
    assert not (tmp_path / "o.vvc").exists()


# Plans while the process may allocate what it needs, then lowers its address-space limit before coding:
# the allocation that fails is real, and comes out as one CodecOptionError naming max_memory.
OOM_CHILD = textwrap.dedent(
    r"""
    import re, resource, sys
    import numpy as np
    from vvc_lightning.codec.pipeline.video_codec import VideoCodec
    from vvc_lightning.errors import CodecOptionError
    from vvc_lightning.store.loader import load

    codec = VideoCodec(load("vvc-lean-vr"), quality=0)
    frames = np.zeros((9, 512, 768, 3), np.uint8)
    codec.encode_frames(iter(frames[:, :64, :64]), 25.0)  # warm up on a small frame
    codec._plan("encode", 512, 768)  # the plan of the real frames, made before the limit
    mapped = int(re.search(r"VmSize:\s+(\d+)", open("/proc/self/status").read()).group(1)) << 10
    resource.setrlimit(resource.RLIMIT_AS, (mapped + (64 << 20), resource.RLIM_INFINITY))
    try:
        codec.encode_frames(iter(frames), 25.0)
    except CodecOptionError as exc:
        print(exc.field, "|", exc)
        sys.exit(3)
    """
)


def test_an_allocation_that_fails_while_coding_names_the_budget():
    r = subprocess.run([sys.executable, "-c", OOM_CHILD], capture_output=True, text=True, timeout=600)
    assert r.returncode == 3, r.stderr[-3000:]
    field, _, text = r.stdout.strip().partition(" | ")
    assert field == "max_memory" and "ran out of memory while encoding" in text and "\n" not in text, r.stdout
