"""Mutation fuzzer of the .vvc decoder: each mutated file is decoded in a forked child with bounded memory
and time.

Run as a script for a report: `python -m tests.fuzz_vvc [N] [SEED]`. `tests/test_fuzz.py` runs it in the
default suite (a few hundred mutations) and, marked slow, with more.
"""

from __future__ import annotations

import os
import random
import resource
import signal
import struct
import sys
import time
import zlib
from dataclasses import dataclass

import numpy as np

MEMORY_LIMIT = 2 << 30  # address space one decode may add to what the process already maps
TIME_LIMIT = 20  # seconds of one decode

# Offsets of the header body fields (see vvc_lightning.codec.pipeline.container): name -> (offset, struct
# format).
_BODY_FIELDS = {
    "width": (10, "<I"), "height": (14, "<I"), "frames": (18, "<I"), "fps": (22, "<d"), "gop": (30, "<H"),
    "overlap": (32, "<H"), "theta": (34, "<d"), "tile": (42, "<I"), "tile_overlap": (46, "<I"),
    "num_gops": (52, "<I"), "c": (56, "<H"), "t": (58, "<H"), "h": (60, "<I"), "w": (64, "<I"),
}
_HUGE = [0, 1, 2, 3, 5, 9, 17, 255, 4096, 16384, 65533, 65535, 70001, 1 << 20, 0xFFFFFFFF]


@dataclass
class Outcome:
    kind: str  # mutation class
    result: str  # "identical", "different", "error", "exception", "crash", "timeout", "memory"
    detail: str
    seconds: float
    peak_kb: int


def make_model_and_stream(seed: int = 0):
    """A tiny random model (the test config) and a small real clip's .vvc (2 GoPs)."""
    import torch

    from tests.conftest import TINY_OVERRIDES, bikes_path, small_clip
    from vvc_lightning.codec.pipeline.video_codec import VideoCodec
    from vvc_lightning.configuration.config import load_config
    from vvc_lightning.training.model import VideoCompressionModel
    from vvc_lightning.video.video_io import Video, read_video

    torch.manual_seed(seed)
    model = VideoCompressionModel(load_config(["quickstart_scratch.yaml"], TINY_OVERRIDES)).eval()
    model.codec.update_tables(force=True)
    frames = small_clip(read_video(bikes_path(), max_frames=9).frames, 9, 24, 40)
    codec = VideoCodec(model, gop=5, overlap=1, batch=2)
    data = codec.encode(Video(frames, 25.0))
    return model, data, codec.decode(data).frames


def _header_end(data: bytes) -> int:
    return 10 + struct.unpack_from("<I", data, 6)[0]


def _recrc_header(buf: bytearray) -> bytearray:
    end = _header_end(bytes(buf))
    struct.pack_into("<I", buf, end, zlib.crc32(bytes(buf[:end])))
    return buf


def _records(data: bytes) -> list[tuple[int, int]]:
    """(offset of the record, payload length) of each record."""
    pos, out = _header_end(data) + 4, []
    while pos + 8 <= len(data):
        (n,) = struct.unpack_from("<I", data, pos)
        out.append((pos, n))
        pos += 8 + n
    return out


def _with_payload(data: bytes, index: int, payload: bytes) -> bytes:
    pos, n = _records(data)[index]
    return data[:pos] + struct.pack("<II", len(payload), zlib.crc32(payload)) + payload + data[pos + 8 + n :]


def consistent_header(
    data: bytes, width: int, height: int, gop: int, frames: int, tile: int | None = None
) -> bytes:
    """`data` with a header that claims another size, GoP and frame count, consistent with the tiny backbone
    (strides 4 in time, 8 in space), the record count padded with copies of the first record, valid CRCs."""
    b = bytearray(data[: _header_end(data) + 4])
    step = gop - 1 if gop > 1 else 1
    ngops = max(1, -(-(frames - 1) // step)) if frames > 1 else 1
    hp, wp = -(-height // 8) * 8, -(-width // 8) * 8
    if tile is None:
        tile = 0 if max(hp, wp) <= 256 else 256
    for name, v in (
        ("width", width),
        ("height", height),
        ("frames", frames),
        ("gop", gop),
        ("num_gops", ngops),
        ("t", 1 + (gop - 1) // 4),
        ("h", hp // 8),
        ("w", wp // 8),
        ("tile", tile),
        ("tile_overlap", 32 if tile else 0),
    ):
        off, fmt = _BODY_FIELDS[name]
        struct.pack_into(fmt, b, off, v)
    pos, n = _records(data)[0]
    return bytes(_recrc_header(b)) + data[pos : pos + 8 + n] * ngops


def mutations(data: bytes, count: int, seed: int) -> list[tuple[str, bytes]]:
    """`count` mutated copies of `data`, spread over the classes below."""
    rng = random.Random(seed)
    recs = _records(data)
    out: list[tuple[str, bytes]] = []
    makers = []

    def flip() -> tuple[str, bytes]:
        b = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        return "bitflip", bytes(b)

    def truncate() -> tuple[str, bytes]:
        return "truncate", data[: rng.randrange(len(data))]

    def insert() -> tuple[str, bytes]:
        p = rng.randrange(len(data) + 1)
        return "insert", data[:p] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 16))) + data[p:]

    def header_field() -> tuple[str, bytes]:
        b = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            name = rng.choice(list(_BODY_FIELDS))
            off, fmt = _BODY_FIELDS[name]
            if fmt == "<d":
                v = rng.choice([0.0, -1.0, float("nan"), float("inf"), 1e300, 2.0, 0.25])
            else:
                v = rng.choice(_HUGE) & (0xFFFF if fmt == "<H" else 0xFFFFFFFF)
            struct.pack_into(fmt, b, off, v)
        return "header-crc-ok", bytes(_recrc_header(b))

    def payload() -> tuple[str, bytes]:
        i = rng.randrange(len(recs))
        pos, n = recs[i]
        p = bytearray(data[pos + 8 : pos + 8 + n])
        how = rng.choice(["flip", "zero", "random", "truncate", "empty", "extend", "swap"])
        if how == "flip" and p:
            p[rng.randrange(len(p))] ^= 1 << rng.randrange(8)
        elif how == "zero":
            p = bytearray(len(p))
        elif how == "random":
            p = bytearray(rng.randrange(256) for _ in range(len(p)))
        elif how == "truncate":
            p = p[: rng.randrange(max(1, len(p)))]
        elif how == "empty":
            p = bytearray()
        elif how == "extend":
            p += bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
        elif how == "swap" and len(recs) > 1:
            j = (i + 1) % len(recs)
            p = bytearray(data[recs[j][0] + 8 : recs[j][0] + 8 + recs[j][1]])
        return f"payload-crc-ok-{how}", _with_payload(data, i, bytes(p))

    def huge() -> tuple[str, bytes]:
        side = rng.choice([(64, 64), (512, 256), (2048, 2048), (4096, 4096), (16384, 16384), (65528, 8)])
        gop = rng.choice([5, 9, 17, 65533])
        frames = rng.choice([gop, 2 * gop - 1, 1000])
        if frames * side[0] * side[1] > 1 << 34:
            frames = gop
        return "header-consistent-huge", consistent_header(data, side[0], side[1], gop, frames)

    makers = [flip, truncate, insert, header_field, header_field, payload, payload, payload, huge]
    while len(out) < count:
        out.append(rng.choice(makers)())
    return out


def _decode_in_child(model, data: bytes, original: np.ndarray) -> tuple[str, str]:
    from vvc_lightning.codec.pipeline.video_codec import VideoCodec
    from vvc_lightning.errors import VVCError

    try:
        video = VideoCodec(model, batch=2).decode(data, label="fuzz.vvc")
    except VVCError as exc:
        text = str(exc)
        return ("error" if "\n" not in text else "exception"), text[:200]
    except MemoryError:
        return "memory", "MemoryError"
    except Exception as exc:
        return "exception", f"{type(exc).__name__}: {str(exc)[:200]}"
    same = video.frames.shape == original.shape and np.array_equal(video.frames, original)
    return ("identical" if same else "different"), f"{video.frames.shape}"


def _mapped_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def run_in_child(kind: str, check, time_limit: int = TIME_LIMIT, memory_limit: int = MEMORY_LIMIT) -> Outcome:
    """`check()` -> (result, detail) in a forked child limited to `memory_limit` more bytes and `time_limit`
    seconds; a child that dies or runs out of time is a 'crash' or 'timeout'."""
    r, w = os.pipe()
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # child
        os.close(r)
        try:
            limit = _mapped_bytes() + memory_limit
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            signal.alarm(time_limit)
            result, detail = check()
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            os.write(w, f"{result}\t{peak}\t{detail}".encode()[:4000])
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        msg = f.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    seconds = time.perf_counter() - t0
    if not msg:
        sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0
        result = "timeout" if sig == signal.SIGALRM else "crash"
        return Outcome(kind, result, f"signal {sig}" if sig else f"exit {os.WEXITSTATUS(status)}", seconds, 0)
    result, peak, detail = msg.split("\t", 2)
    return Outcome(kind, result, detail, seconds, int(peak))


def run_one(model, kind: str, data: bytes, original: np.ndarray) -> Outcome:
    """Decode one mutation in a forked child limited to MEMORY_LIMIT bytes and TIME_LIMIT seconds."""
    return run_in_child(kind, lambda: _decode_in_child(model, data, original))


def findings(outcomes: list[Outcome]) -> list[Outcome]:
    """Outcomes that are bugs: all but a clear error or a correct decode (changed metadata may decode)."""
    bad = []
    for o in outcomes:
        if o.result in ("error", "identical"):
            continue
        if o.result == "different" and o.kind == "header-crc-ok":
            continue  # e.g. another theta or fps with a valid CRC: a legitimate (different) decode
        bad.append(o)
    return bad


def fuzz(count: int, seed: int = 0) -> list[Outcome]:
    """Fuzz `count` mutations; returns every outcome."""
    import torch

    import tests.conftest  # noqa: F401  (it sets the thread count on import)

    torch.set_num_threads(1)  # no OpenMP pool: forking stays safe
    model, data, original = make_model_and_stream()
    return [run_one(model, kind, m, original) for kind, m in mutations(data, count, seed)]


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    t0 = time.perf_counter()
    outcomes = fuzz(count, seed)
    by: dict[tuple[str, str], list[Outcome]] = {}
    for o in outcomes:
        by.setdefault((o.kind, o.result), []).append(o)
    for (kind, result), group in sorted(by.items()):
        print(
            f"{kind:28s} {result:10s} n={len(group):4d} max_s={max(o.seconds for o in group):6.2f} "
            f"max_peak_MB={max(o.peak_kb for o in group) / 1024:7.1f}  e.g. {group[0].detail[:110]}"
        )
    bad = findings(outcomes)
    print(f"{len(outcomes)} mutations, {len(bad)} findings, {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
