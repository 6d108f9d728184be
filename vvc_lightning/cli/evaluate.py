"""`python -m vvc_lightning evaluate`: RD curves of checkpoints and classic codecs, BD-rates, HTML report."""

from __future__ import annotations

import argparse
import os
from typing import Any

EPILOG = """examples:
  python -m vvc_lightning evaluate --data clips/ --ckpt a.ckpt b.ckpt --baselines x265,vvenc,svtav1 \\
      -o results/
  python -m vvc_lightning evaluate --data clips/ --model vvc-lean-vr --qualities 0,4,7 --ckpt mine.ckpt \\
      --ckpt-name mine vvc-lean-vr --baselines x265-medium-ld,x265-veryslow-ra,vvenc-ld,vvenc-ra
  python -m vvc_lightning evaluate --data test.yaml --baselines x265,vvenc --metrics all --max-frames 33 \\
      -o results/
  python -m vvc_lightning evaluate --data clips/ --baselines x265 --points x265=22,27,32,37 \\
      --preset x265=medium
  python -m vvc_lightning evaluate --data uvg,hevc --root ~/testsets --protocol 96f-ip32 \\
      --model vvc-lean-vr --qualities 0,2,4,7 --baselines x265 --anchor-file VTM-17.0=vtm_anchor.json
  python -m vvc_lightning evaluate --data clips/ --baselines x265,vvenc --jobs 2 --log-rate -o results/
  python -m vvc_lightning evaluate --data uvg --root ~/testsets --model vvc-lean-vr --baselines x265 \\
      --points x265=22,27,32,37 --shard 3/8 -o shards/3   # one of 8 array-job tasks, then:
  python -m vvc_lightning evaluate --merge shards/* -o results/
One curve per --ckpt / --model, named after the model or the file (or --ckpt-name). Classic settings:
ENCODER[-PRESET]-ld|ra (ld: low delay, no B-frames / vvenc's low-delay GOP; ra: the encoder's reordering),
e.g. x265-medium-ld, x265-veryslow-ld, x265-medium-ra, vvenc-ld, vvenc-ra; a bare x265 / vvenc is
x265-veryslow-ra / vvenc-ra. Without --points their QPs are searched so that at least 4 points lie inside
every neural curve's rate range on every sequence (without a neural curve: x265 QP 19..35, vvenc QP 22..38,
SVT-AV1 CRF 15..47, x264 QP 20..36). BD-rates are against x265 (its first setting) unless --anchor says
otherwise. A rerun with the same -o reuses every finished row (by model weights, codec options and sequence
content, whatever the names) and keeps the rows of curves it does not evaluate again."""


def register(subparsers: Any) -> None:
    """Add the `evaluate` sub-command."""
    from vvc_lightning.cli.codec import add_synthesis_option

    p = subparsers.add_parser(
        "evaluate",
        help="rate / quality of checkpoints and classic codecs: CSV, JSON, RD plots, BD-rate, HTML",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", default=None, help="folder / file / glob of videos and .yuv (a class per first "
                   "folder below it), a config .yaml whose test split gives the sequences, or dataset specs: "
                   "shipped uvg, mcl-jcv, hevc or a spec .yaml, several joined by commas (needs --root)")
    p.add_argument("--root", default=None, metavar="DIR", help="folder holding a dataset spec's files (found "
                   "in DIR, DIR/CLASS or any folder below)")
    p.add_argument("--protocol", default=None, help="frames coded and the classic codecs' intra period: "
                   "96f-ip32 (96 frames, intra period 32; the default for a dataset spec), 96f-ip96, or "
                   "all-ip-1 (all frames, one intra picture)")
    p.add_argument("--classes", default=None, help="comma-separated classes of the dataset spec to evaluate, "
                   "e.g. HEVC_B,HEVC_C (default: all)")
    p.add_argument("--anchor-file", action="append", default=[], metavar="[NAME=]FILE",
                   help="a curve read from an anchor file ({class: {sequence: {\"022\": {ave_all_frame_bpp, "
                   "...}}}}, e.g. a published VTM table); the first is the per-class tables' anchor unless "
                   "--anchor names another; repeatable")
    p.add_argument("--ckpt", nargs="+", default=[], metavar="CKPT", help="checkpoints (or shipped models as "
                   "zoo:NAME): one neural rate point each, or one per --qualities entry")
    p.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NAME",
        help="a shipped model (same as --ckpt zoo:NAME); repeatable",
    )
    p.add_argument(
        "--qualities",
        default=None,
        help="variable-rate models: comma-separated qualities, one rate point each, e.g. 0,2,4,6,7",
    )
    p.add_argument("--ckpt-name", nargs="+", default=None, metavar="NAME", help="curve names, one per --ckpt "
                   "then per --model, in order (default: the model's name or the checkpoint's file name); "
                   "models given one name join one curve, a rate point each")
    p.add_argument("--baselines", default="", help="comma-separated classic codecs or named settings: x265, "
                   "vvenc, svtav1, x264, or ENCODER[-PRESET]-ld|ra such as x265-medium-ld, vvenc-ra")
    p.add_argument(
        "--anchor",
        default=None,
        help="BD-rate anchor: a curve's name or an encoder's (default: x265, its first setting; "
        "without x265 the first of --baselines)",
    )
    p.add_argument("-o", "--out", default="results", help="output folder (default: results/)")
    p.add_argument(
        "--metrics",
        default="default",
        help="comma-separated metrics, or 'all' (psnr,psnr_y,ms_ssim,"
        "lpips,fid,kid,brisque,tof,tlp,vmaf); default: psnr,psnr_y,ms_ssim,lpips",
    )
    p.add_argument("--max-frames", type=int, default=None, help="at most this many frames per sequence")
    p.add_argument(
        "--points", action="append", metavar="CODEC=LIST", help="rate points of a setting or encoder, e.g. "
        "x265=22,27,32,37 (default: searched to meet the neural curves)"
    )
    p.add_argument("--preset", action="append", metavar="CODEC=NAME", help="preset of a bare encoder in "
                   "--baselines, e.g. vvenc=slow (a named setting carries its own)")
    p.add_argument(
        "--intra-period",
        type=int,
        default=None,
        help="frames between intra pictures of the classic codecs (default: one intra picture per sequence)",
    )
    p.add_argument("--matrix", default="bt709", choices=("bt709", "bt601"), help="RGB <-> Y'CbCr matrix")
    p.add_argument("--range", dest="rng", default="limited", choices=("limited", "full"), help="Y'CbCr range")
    p.add_argument("--device", default="cpu", help="device of the neural codec and the metric "
                   "networks (cpu, cuda)")
    p.add_argument("--lpips-weights", default=os.environ.get("VVC_LPIPS_ALEX"),
                   help="torchvision AlexNet weights for LPIPS (else $VVC_LPIPS_ALEX or the torch hub cache; "
                        "without them 'lpips' falls back to ST-LPIPS, reported as 'stlpips')")
    p.add_argument(
        "--frame-stride", type=int, default=1, help="use every k-th frame for fid/kid/brisque (k >= 1)"
    )
    g = p.add_argument_group("neural codec (defaults: those of compress)")
    g.add_argument("--gop", type=int, default=None, help="frames per GoP, 1+4k (default: the model's)")
    g.add_argument("--overlap", type=int, default=None, help="frames shared by adjacent GoPs")
    g.add_argument("--theta", type=float, default=None, help="blend weight of the earlier GoP's shared frame")
    g.add_argument("--batch", type=int, default=None, help="GoPs (or GoP tiles) per backbone pass")
    g.add_argument("--tile", type=int, default=None, help="spatial tile size in pixels (default: from "
                   "--max-memory)")
    g.add_argument(
        "--max-memory", default=None, help="memory budget of the backbone passes, e.g. 512M, 8G or bytes"
    )
    add_synthesis_option(g)
    w = p.add_argument_group("spread work (cores, machines) and plots")
    w.add_argument("--jobs", type=int, default=1, help="processes coding and measuring the classic-codec "
                   "rows (neural rows stay in the main process); the same results as 1 (default 1)")
    w.add_argument("--shard", default=None, metavar="I/N", help="only the I-th of N slices of the rows (a "
                   "cluster array job): writes the rows' cache and shard.json into -o; classic points fixed "
                   "with --points where neural curves are evaluated")
    w.add_argument("--merge", nargs="+", default=None, metavar="SHARD_DIR", help="join the -o folders of all "
                   "N shards into the new folder -o: the report of one run (settings from the shards)")
    w.add_argument("--log-rate", action="store_true", help="RD plots with a logarithmic rate axis")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def check_options(args: argparse.Namespace) -> None:
    """One-line errors for out-of-range numbers and codec options, a bad --device and an -o that is a file."""
    from pathlib import Path

    from vvc_lightning.errors import VVCError
    from vvc_lightning.evaluation.parallel import check_jobs

    if args.merge is not None:
        extra = [f for f, v in (("--data", args.data), ("--shard", args.shard), ("--ckpt", args.ckpt),
                                ("--model", args.model), ("--baselines", args.baselines)) if v]
        if extra:
            raise VVCError(f"--merge takes the data and settings from the shards: leave {', '.join(extra)} "
                           "out")
        return
    if args.data is None:
        raise VVCError("evaluate needs --data (the sequences to evaluate), or --merge SHARD_DIR... -o OUT")
    check_jobs(args.jobs)
    for flag, value in (("--frame-stride", args.frame_stride), ("--max-frames", args.max_frames),
                        ("--intra-period", args.intra_period)):
        if value is not None and value < 1:
            raise VVCError(f"{flag} must be a whole number >= 1, got {value}")
    codec_options_from_args(args)
    check_device(args.device)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise VVCError(
            f"-o '{out}' is an existing file; evaluate writes a folder of results: give a folder path"
        )


def codec_options_from_args(args: argparse.Namespace) -> Any:
    """The neural codec's CodecOptions from the flags given (the rest: CodecOptions' defaults)."""
    from vvc_lightning.cli.codec import codec_options

    return codec_options(gop=args.gop, overlap=args.overlap, theta=args.theta, batch=args.batch,
                         tile=args.tile, max_memory=args.max_memory, matrix=args.matrix, rng=args.rng,
                         synthesis=args.synthesis)


def check_device(device: str) -> None:
    """--device: cpu, cuda or cuda:N (a GPU this machine has), or mps where available; one line otherwise."""
    import re

    import torch

    from vvc_lightning.errors import VVCError

    m = re.fullmatch(r"(cpu|cuda|mps)(?::(\d{1,3}))?", device.strip())
    if m is None:
        raise VVCError(f"--device must be cpu, cuda or cuda:N, got '{device}'")
    kind, index = m[1], int(m[2]) if m[2] is not None else 0
    if kind == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise VVCError(f"--device {device}: this machine has no usable CUDA GPU; use --device cpu")
        if index >= count:
            raise VVCError(f"--device {device}: this machine has {count} GPU(s), cuda:0 to cuda:{count - 1}")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise VVCError(f"--device {device}: this machine has no Apple GPU; use --device cpu")


def options_from_args(args: argparse.Namespace) -> Any:
    """EvalOptions from parsed arguments."""
    from vvc_lightning.evaluation.harness import EvalOptions
    from vvc_lightning.evaluation.inputs import parse_mapping, parse_points
    from vvc_lightning.evaluation.shards import parse_shard

    points = {k: parse_points(v, k) for k, v in parse_mapping(args.points, "--points").items()}
    return EvalOptions(
        data=args.data,
        out=args.out,
        ckpts=list(args.ckpt) + [f"zoo:{m}" for m in args.model],
        ckpt_name=args.ckpt_name,
        baselines=[b.strip() for b in args.baselines.split(",") if b.strip()],
        anchor=args.anchor,
        metrics=args.metrics,
        max_frames=args.max_frames,
        points=points,
        presets=parse_mapping(args.preset, "--preset"),
        intra_period=args.intra_period,
        matrix=args.matrix,
        rng=args.rng,
        device=args.device,
        lpips_weights=args.lpips_weights,
        frame_stride=args.frame_stride,
        codec=codec_options_from_args(args),
        progress=not args.no_progress,
        qualities=parse_qualities(args.qualities),
        root=args.root,
        protocol=args.protocol,
        classes=[c.strip() for c in args.classes.split(",") if c.strip()] if args.classes else None,
        anchor_files=list(args.anchor_file),
        jobs=args.jobs,
        shard=parse_shard(args.shard) if args.shard is not None else None,
        log_rate=args.log_rate,
    )


def parse_qualities(text: str | None) -> list[float] | None:
    """'0,2,4.5' -> [0.0, 2.0, 4.5] (None when not given)."""
    import math

    from vvc_lightning.errors import VVCError

    if text is None:
        return None
    parts = text.split(",")
    if any(not p.strip() for p in parts):
        raise VVCError(f"--qualities has an empty entry in '{text}'; give numbers like 0,2,4,6,7")
    try:
        qs = [float(x) for x in parts]
    except ValueError as exc:
        raise VVCError(f"--qualities takes numbers like 0,2,4,6,7, got '{text}'") from exc
    if not all(math.isfinite(q) and q >= 0 for q in qs):
        raise VVCError(f"--qualities takes numbers >= 0 like 0,2,4,6,7, got '{text}'")
    return qs


def run(args: argparse.Namespace) -> int:
    """Evaluate and print where the outputs are, with the BD-rate table."""
    import math

    from vvc_lightning.cli.codec import cli_wording
    from vvc_lightning.evaluation.harness import evaluate
    from vvc_lightning.evaluation.merge import merge

    check_options(args)
    with cli_wording():
        if args.merge is not None:
            paths = merge(args.merge, args.out, progress=not args.no_progress)
        else:
            paths = evaluate(options_from_args(args))
    if "shard" in paths:
        print(f"shard:   {paths['shard']} (join the folders of all shards: evaluate --merge DIR... -o OUT)")
        return 0
    print(f"results: {paths['csv']}  {paths['json']}")
    print(f"report:  {paths['html']}")
    import csv

    with open(paths["bdrate"]) as f:
        for r in csv.DictReader(f):
            v = float(r["bd_rate_pct"]) if r["bd_rate_pct"] else math.nan
            print(f"BD-rate {r['metric']:>12} {r['codec']:>8} vs {r['anchor']}: "
                  + (f"{v:+.2f} %" if math.isfinite(v) else f"n/a ({r['note']})"))
    if "classes_md" in paths:
        print_class_table(paths["classes_csv"])
        print(f"tables:  {paths['classes_md']}  {paths['classes_tex']}  {paths['classes_csv']}")
    return 0


def print_class_table(path: Any) -> None:
    """The per-class BD-rates (and Average), a line per metric and codec."""
    import csv

    with open(path) as f:
        reader = csv.DictReader(f)
        classes = [c for c in reader.fieldnames or [] if c not in ("metric", "codec", "anchor", "notes")]
        for r in reader:
            cells = ", ".join(f"{c} {float(r[c]):+.2f} %" if r[c] else f"{c} n/a" for c in classes)
            print(f"BD-rate {r['metric']:>12} {r['codec']:>8} vs {r['anchor']} per class: {cells}")
