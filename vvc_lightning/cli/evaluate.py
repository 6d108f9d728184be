"""`python -m vvc_lightning evaluate`: RD curves of checkpoints and classic codecs, BD-rates, an HTML report."""

from __future__ import annotations

import argparse
import os
from typing import Any

EPILOG = """examples:
  python -m vvc_lightning evaluate --data clips/ --ckpt a.ckpt b.ckpt --baselines x265,vvenc,svtav1 -o results/
  python -m vvc_lightning evaluate --data test.yaml --baselines x265,vvenc --metrics all --max-frames 33 -o results/
  python -m vvc_lightning evaluate --data clips/ --baselines x265 --points x265=22,27,32,37 --preset x265=medium
Default rate points (x265 QP 19..35, vvenc QP 22..38, SVT-AV1 CRF 15..47, x264 QP 20..36) span about
0.01 to 0.1 bpp on typical 8-bit content. A rerun with the same -o reuses every finished row."""


def register(subparsers: Any) -> None:
    """Add the `evaluate` sub-command."""
    p = subparsers.add_parser(
        "evaluate", help="rate / quality of checkpoints and classic codecs: CSV, JSON, RD plots, BD-rate, HTML",
        description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", required=True, help="folder / file / glob of videos and .yuv, or a config .yaml "
                   "whose test split gives the sequences")
    p.add_argument("--ckpt", nargs="+", default=[], metavar="CKPT", help="checkpoints (or shipped models as "
                   "zoo:NAME): one neural rate point each, or one per --qualities entry")
    p.add_argument("--model", action="append", default=[], metavar="NAME", help="a shipped model (same as --ckpt "
                   "zoo:NAME); repeatable")
    p.add_argument("--qualities", default=None, help="variable-rate models: comma-separated qualities, one rate point "
                   "each, e.g. 0,2,4,6,7")
    p.add_argument("--ckpt-name", default="ours", help="name of the neural codec's curve (default: ours)")
    p.add_argument("--baselines", default="", help="comma-separated classic codecs: x265,vvenc,svtav1,x264")
    p.add_argument("--anchor", default=None, help="BD-rate anchor codec (default: vvenc if given, else the first "
                   "baseline)")
    p.add_argument("-o", "--out", default="results", help="output folder (default: results/)")
    p.add_argument("--metrics", default="default", help="comma-separated metrics, or 'all' (psnr,psnr_y,ms_ssim,"
                   "lpips,fid,kid,brisque,tof,tlp,vmaf); default: psnr,psnr_y,ms_ssim,lpips")
    p.add_argument("--max-frames", type=int, default=None, help="at most this many frames per sequence")
    p.add_argument("--points", action="append", metavar="CODEC=LIST", help="rate points, e.g. x265=22,27,32,37")
    p.add_argument("--preset", action="append", metavar="CODEC=NAME", help="encoder preset, e.g. vvenc=slow")
    p.add_argument("--intra-period", type=int, default=None, help="frames between intra pictures of the classic "
                   "codecs (default: one intra picture per sequence)")
    p.add_argument("--matrix", default="bt709", choices=("bt709", "bt601"), help="RGB <-> Y'CbCr matrix")
    p.add_argument("--range", dest="rng", default="limited", choices=("limited", "full"), help="Y'CbCr range")
    p.add_argument("--device", default="cpu", help="device of the neural codec and the metric "
                   "networks (cpu, cuda)")
    p.add_argument("--lpips-weights", default=os.environ.get("VVC_LPIPS_ALEX"),
                   help="torchvision AlexNet weights for LPIPS (else $VVC_LPIPS_ALEX or the torch hub cache; "
                        "without them 'lpips' falls back to ST-LPIPS, reported as 'stlpips')")
    p.add_argument("--frame-stride", type=int, default=1, help="use every k-th frame for fid/kid/brisque")
    g = p.add_argument_group("neural codec")
    g.add_argument("--gop", type=int, default=9)
    g.add_argument("--overlap", type=int, default=1)
    g.add_argument("--theta", type=float, default=0.5)
    g.add_argument("--batch", type=int, default=4)
    g.add_argument("--tile", type=int, default=None, help="spatial tile size in pixels (default: the codec's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def options_from_args(args: argparse.Namespace) -> Any:
    """EvalOptions from parsed arguments."""
    from vvc_lightning.evaluation.harness import EvalOptions
    from vvc_lightning.evaluation.inputs import parse_mapping, parse_points

    points = {k: parse_points(v, k) for k, v in parse_mapping(args.points, "--points").items()}
    return EvalOptions(
        data=args.data, out=args.out, ckpts=list(args.ckpt) + [f"zoo:{m}" for m in args.model], ckpt_name=args.ckpt_name,
        baselines=[b.strip() for b in args.baselines.split(",") if b.strip()], anchor=args.anchor,
        metrics=args.metrics, max_frames=args.max_frames, points=points,
        presets=parse_mapping(args.preset, "--preset"), intra_period=args.intra_period, matrix=args.matrix,
        rng=args.rng, device=args.device, lpips_weights=args.lpips_weights, frame_stride=args.frame_stride,
        gop=args.gop, overlap=args.overlap, theta=args.theta, batch=args.batch, tile=args.tile,
        progress=not args.no_progress, qualities=parse_qualities(args.qualities),
    )


def parse_qualities(text: str | None) -> list[float] | None:
    """'0,2,4.5' -> [0.0, 2.0, 4.5] (None when not given)."""
    from vvc_lightning.errors import VVCError

    if text is None:
        return None
    try:
        qs = [float(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise VVCError(f"--qualities takes numbers like 0,2,4,6,7, got '{text}'") from exc
    if not qs:
        raise VVCError("--qualities is empty; give numbers like 0,2,4,6,7")
    return qs


def run(args: argparse.Namespace) -> int:
    """Evaluate and print where the outputs are, with the BD-rate table."""
    import math

    from vvc_lightning.evaluation.harness import evaluate

    paths = evaluate(options_from_args(args))
    print(f"results: {paths['csv']}  {paths['json']}")
    print(f"report:  {paths['html']}")
    import csv

    with open(paths["bdrate"]) as f:
        for r in csv.DictReader(f):
            v = float(r["bd_rate_pct"]) if r["bd_rate_pct"] else math.nan
            print(f"BD-rate {r['metric']:>12} {r['codec']:>8} vs {r['anchor']}: "
                  + (f"{v:+.2f} %" if math.isfinite(v) else f"n/a ({r['note'][:80]})"))
    return 0
