"""`compress` and `decompress`: a trained checkpoint as a real codec for your own videos."""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vvc_lightning.codec.pipeline.container import MATRICES, MAX_FPS, MAX_SIDE, MIN_FPS, RANGES, check_fps
from vvc_lightning.codec.pipeline.options import SYNTHESES, CodecOptions
from vvc_lightning.codec.pipeline.sizes import size_text
from vvc_lightning.errors import BitstreamError, CodecOptionError, ModelMismatchError, VVCError
from vvc_lightning.video.output_paths import check_output_path, input_problem, refuse_existing

MAX_FRAMES = 1 << 31
DEFAULTS = CodecOptions()
FLAGS = {"rng": "--range"}  # CodecOptions fields whose flag is not --FIELD-NAME
TARGET_BPP = 0.03  # the rates this codec is for: a default quality aims below this


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise VVCError(f"--size takes WxH, e.g. 1920x1080, got '{text}'") from exc
    if not (2 <= w <= MAX_SIDE and 2 <= h <= MAX_SIDE):
        raise VVCError(
            f"--size {text}: width and height must be 2 to {MAX_SIDE} pixels, e.g. --size 1920x1080"
        )
    return w, h


def flag(field: str) -> str:
    """The command-line flag of a CodecOptions field."""
    return FLAGS.get(field, "--" + field.replace("_", "-"))


def codec_options(**given: Any) -> CodecOptions:
    """CodecOptions from the flags given (None: not given, the default), errors in flag wording."""
    try:
        return CodecOptions(**{k: v for k, v in given.items() if v is not None})
    except CodecOptionError as exc:
        raise VVCError(f"{flag(exc.field)} {exc.problem}") from None


def flag_wording(exc: CodecOptionError) -> VVCError:
    """`exc` with its option and the options it mentions named by their command-line flags."""
    problem = exc.problem
    for name in (exc.field, *exc.mentions):
        problem = re.sub(rf"(?<![\w-]){re.escape(name)}(?![\w-])", flag(name), problem)
    return VVCError(f"{flag(exc.field)} {problem}")


@contextmanager
def cli_wording() -> Iterator[None]:
    """Codec errors raised inside, reworded for the command line (flags, --ckpt)."""
    try:
        yield
    except CodecOptionError as exc:
        raise flag_wording(exc) from None
    except ModelMismatchError as exc:
        raise BitstreamError(f"{exc.problem}; pass --ckpt with the checkpoint it was made with") from None


def _compress_options(args: argparse.Namespace) -> CodecOptions:
    return codec_options(gop=args.gop, overlap=args.overlap, theta=args.theta, batch=args.batch,
                         tile=args.tile, tile_overlap=args.tile_overlap, matrix=args.matrix, rng=args.rng,
                         quality=args.quality, max_memory=args.max_memory)


def check_options(args: argparse.Namespace) -> CodecOptions:
    """One-line errors for out-of-range codec options, --fps, --max-frames, --size (before anything is read);
    returns the codec options."""
    options = _compress_options(args)
    if args.fps is not None:
        with cli_wording():
            check_fps(args.fps)
    if args.max_frames is not None and not 1 <= args.max_frames <= MAX_FRAMES:
        raise VVCError(f"--max-frames must be 1 to {MAX_FRAMES}, got {args.max_frames}")
    if args.size is not None:
        args.size = _size(args.size)
    return options


def register(sub: argparse._SubParsersAction) -> None:
    """Add compress / decompress."""
    c = sub.add_parser("compress", help="compress a video to a .vvc file with a trained checkpoint")
    c.add_argument(
        "input", help="any video PyAV reads, or raw 8-bit 4:2:0 .yuv (size/fps from --size/--fps or the name)"
    )
    c.add_argument("-o", "--output", required=True, help="the .vvc file to write")
    c.add_argument("--ckpt", default=None, help="checkpoint written by fit (or use --model)")
    c.add_argument("--model", default=None, help="a shipped model by name (`python -m vvc_lightning models`)")
    c.add_argument(
        "--quality",
        type=float,
        default=None,
        help="rate of a variable-rate model: any real number in "
        "[0, qualities-1], higher = more bits (default: the highest quality whose measured test-split "
        f"bpp is below {TARGET_BPP:g}, else the lowest-rate point of the curve, else 0; for vvc-lean-vr "
        "quality 0, 0.034 bpp on its test split; the quality used is printed)",
    )
    c.add_argument(
        "--lmbda",
        type=float,
        default=None,
        help="rate of a variable-rate model as the lambda it was trained for (instead of --quality)",
    )
    c.add_argument("--gop", type=int, default=None, help="frames per GoP, 1+4k (default: the model's, 9)")
    c.add_argument("--overlap", type=int, default=None,
                   help=f"frames shared by adjacent GoPs (default {DEFAULTS.overlap}; 0 = off)")
    c.add_argument("--theta", type=float, default=None,
                   help=f"blend weight of the earlier GoP's shared frame (default {DEFAULTS.theta:g})")
    _add_pass_options(c, "whole frames when they fit, else the largest tiles that fit")
    c.add_argument("--tile", type=int, default=None, help="force this tile size in pixels (default: from "
                   "--max-memory; 0 = never tile)")
    c.add_argument(
        "--tile-overlap",
        type=int,
        default=None,
        help="tile overlap in pixels (default 32; 64 for GroupNorm backbones such as cv_vae)",
    )
    c.add_argument("--size", default=None, help="WxH of a raw .yuv input")
    c.add_argument("--fps", type=float, default=None, help=f"frame rate of a raw .yuv input (or override), "
                   f"{MIN_FPS:g} to {MAX_FPS:g}")
    c.add_argument("--matrix", default=DEFAULTS.matrix, choices=MATRICES,
                   help="YUV matrix of .yuv input/output")
    c.add_argument("--range", dest="rng", default=DEFAULTS.rng, choices=RANGES, help="YUV range")
    c.add_argument("--max-frames", type=int, default=None, help="encode only the first N frames")
    c.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    _add_quiet(c)
    c.set_defaults(func=run_compress)

    d = sub.add_parser(
        "decompress", help="decompress a .vvc file to .mp4 / .mkv / .y4m / .yuv / a PNG folder"
    )
    d.add_argument("input", help="the .vvc file")
    d.add_argument(
        "-o", "--output", required=True, help="video file (.mp4, .mkv, .y4m, .yuv) or folder for PNGs"
    )
    d.add_argument(
        "--ckpt", default=None, help="checkpoint (default: the shipped model or checkpoint named in the file)"
    )
    d.add_argument("--frames", default=None, help="decode only frames a:b (only the GoPs they need)")
    _add_pass_options(d, "the decoder tiles by its own budget")
    add_synthesis_option(d)
    d.add_argument(
        "--overwrite", action="store_true", help="replace an existing output file (never a folder)"
    )
    _add_quiet(d)
    d.set_defaults(func=run_decompress)


def add_synthesis_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--synthesis (CodecOptions.synthesis)."""
    parser.add_argument(
        "--synthesis", default=None, choices=SYNTHESES,
        help=f"precision of g_s and the backbone decoder (default {DEFAULTS.synthesis}): bf16 runs them "
        "under bfloat16 autocast where the GPU or CPU (AVX512-BF16, AMX) has bfloat16 arithmetic, else fp32; "
        "faster there, and the pixels differ slightly from fp32 while the decoded symbols stay exact",
    )


def _add_pass_options(parser: argparse.ArgumentParser, tiles: str) -> None:
    """--batch and --max-memory (defaults: CodecOptions)."""
    parser.add_argument("--batch", type=int, default=None,
                        help=f"GoPs (or GoP tiles) per backbone pass (default {DEFAULTS.batch})")
    parser.add_argument(
        "--max-memory",
        default=None,
        help="memory budget of the backbone passes, e.g. 512M, 8G "
        f"or bytes (default {size_text(DEFAULTS.max_memory)}); {tiles}",
    )


def _add_quiet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="print nothing but errors (no progress line, no summary)")


def _say(args: argparse.Namespace, text: str) -> None:
    """Print `text` unless --quiet."""
    if not args.quiet:
        print(text)


def _progress(args: argparse.Namespace, label: str, total: int | None):  # noqa: ANN202
    """Frames done, frames/s and ETA on stderr while it is a terminal (not with --quiet)."""
    from vvc_lightning.video.progress import FrameProgress

    return FrameProgress(label, total, enabled=False if args.quiet else None).wrap


def _note_lossy(args: argparse.Namespace) -> None:
    """One line when the output container re-encodes the decoded frames with H.264, a second lossy codec."""
    from vvc_lightning.video.video_writer import CONTAINERS

    suffix = Path(args.output).suffix.lower()
    if suffix in CONTAINERS and not args.quiet:
        print(f"note: {suffix} re-encodes the decoded frames with H.264 (lossy); to measure this codec, "
              "decode to .y4m, .yuv or a PNG folder (lossless)", file=sys.stderr)


def _check_output(args: argparse.Namespace, kind: str) -> None:
    check_output_path(args.output, args.input, kind)
    refuse_existing(args.output, args.overwrite)


def run_compress(args: argparse.Namespace) -> int:
    """Compress INPUT to a .vvc file."""
    options = check_options(args)
    problem = input_problem(args.input)
    if problem is not None:
        raise VVCError(f"video '{args.input}' {problem}; pass a video file")
    _check_output(args, "bitstream")
    from vvc_lightning.codec.pipeline.files import compress_file
    from vvc_lightning.codec.pipeline.video_codec import VideoCodec
    from vvc_lightning.video.video_io import DEFAULT_FPS, parse_yuv_name

    read_kwargs: dict = {"max_frames": args.max_frames, "fps": args.fps}
    if Path(args.input).suffix.lower() == ".yuv":
        if args.size:
            (w, h), name_fps = args.size, None
        else:
            w, h, name_fps = parse_yuv_name(args.input)
        fps = args.fps or name_fps or DEFAULT_FPS
        read_kwargs.update(width=w, height=h, matrix=args.matrix, rng=args.rng, fps=fps)
    model, entry = _model_to_compress(args)
    from vvc_lightning.video.progress import frames_in

    read_kwargs["progress"] = _progress(args, "compress", frames_in(args.input, **read_kwargs))
    with cli_wording():
        codec = VideoCodec(model, options.replace(quality=_quality_of(model, entry, args)))
        st = compress_file(codec, args.input, args.output, overwrite=args.overwrite, **read_kwargs)
    _say(
        args,
        f"compressed {args.input} -> {args.output}: {st['frames']} frames, {st['width']}x{st['height']}, "
        f"{st['bytes']} bytes, {st['bpp']:.5f} bpp, {st['fps']:.3f} frames/s"
        + (f", quality {codec.quality:g}" if codec.quality is not None else "")
    )
    return 0


def _model_to_compress(args: argparse.Namespace):  # noqa: ANN202
    """(model, its zoo entry or None) named by --model (shipped) or --ckpt (exactly one of them)."""
    if (args.ckpt is None) == (args.model is None):
        raise VVCError(
            "give --model NAME (a shipped model, see `python -m vvc_lightning models`) or --ckpt CKPT"
        )
    if args.model is not None:
        from vvc_lightning.store.zoo import PREFIX

        spec = args.model if args.model.startswith(PREFIX) else PREFIX + args.model
    else:
        spec = args.ckpt
    from vvc_lightning.codec.pipeline.threads import ThreadGovernor
    from vvc_lightning.store.loader import build, resolve

    with ThreadGovernor():  # as `loader.load`: the threads the load beside it leaves
        source = resolve(spec)
        return build(source), source.entry


def default_quality(model, entry) -> tuple[float, str]:  # noqa: ANN001
    """(quality, why) of a variable-rate model without --quality: the highest measured point below TARGET_BPP,
    else the measured point of lowest rate, else 0 (the lowest rate); the curve is that of the zoo `entry`."""
    curve = (entry.record.get("curve") if entry is not None else None) or []
    points = []
    for p in curve if isinstance(curve, list) else []:
        try:
            q, bpp = float(p["quality"]), float(p["bpp"])
        except (TypeError, KeyError, ValueError):
            continue
        if math.isfinite(q) and math.isfinite(bpp) and 0 <= q <= model.codec.qualities - 1:
            points.append((bpp, q))
    if not points:
        return 0.0, "the lowest rate"
    below = [p for p in points if p[0] < TARGET_BPP]
    bpp, q = max(below, key=lambda p: p[1]) if below else min(points)
    return q, f"{bpp:.3f} bpp on {entry.name}'s test split"


def _quality_of(model, entry, args: argparse.Namespace) -> float | None:  # noqa: ANN001
    """--quality, or the quality of --lmbda, or the default quality (printed) of a variable-rate model."""
    if args.quality is not None and args.lmbda is not None:
        raise VVCError("give --quality or --lmbda, not both")
    if args.lmbda is None and args.quality is None and model.codec.qualities:
        quality, why = default_quality(model, entry)
        print(f"no --quality given: coding at quality {quality:g} of 0-{model.codec.qualities - 1} ({why}; "
              f"this codec aims at < {TARGET_BPP:g} bpp); pass --quality for more bits", flush=True)
        return quality
    if args.lmbda is None:
        return args.quality
    quality = model.quality_for_lambda(args.lmbda)
    if quality is None:
        raise VVCError(
            f"--lmbda {args.lmbda} asked of a fixed-rate model (trained at lambda "
            f"{model.cfg.model.loss.lmbda}); drop it"
        )
    return quality


def _checkpoint_for(header, label: str) -> str:  # noqa: ANN001
    """What decodes a file without --ckpt: the shipped model of the header's identity, else its checkpoint."""
    from vvc_lightning.store.zoo import PREFIX, find_for_header

    entry = find_for_header(header.identity, header.checkpoint)
    if entry is not None:
        return f"{PREFIX}{entry.name}"
    if header.checkpoint.startswith(PREFIX):
        raise VVCError(
            f"{label} was made with shipped model '{header.checkpoint[len(PREFIX) :]}' "
            f"(identity {header.identity[:12]}), which is not installed here; install it or pass --ckpt"
        )
    if not header.checkpoint or not Path(header.checkpoint).is_file():
        why = (
            f"'{header.checkpoint}' (named in the file) does not exist"
            if header.checkpoint
            else "the file names none"
        )
        raise VVCError(f"no checkpoint to decode {label} with: {why}; pass --ckpt CKPT")
    return header.checkpoint


def run_decompress(args: argparse.Namespace) -> int:
    """Decompress a .vvc file."""
    options = codec_options(batch=args.batch, max_memory=args.max_memory, synthesis=args.synthesis)
    _check_output(args, "video")
    _note_lossy(args)
    from vvc_lightning.codec.pipeline.files import decompress_file, open_bitstream_file
    from vvc_lightning.codec.pipeline.gop import parse_frame_range
    from vvc_lightning.codec.pipeline.video_codec import VideoCodec
    from vvc_lightning.store.loader import load

    stream = open_bitstream_file(args.input)  # read once, parsed once
    header = stream.header
    ckpt = args.ckpt if args.ckpt is not None else _checkpoint_for(header, f"'{args.input}'")
    with cli_wording():
        frames = parse_frame_range(args.frames, header.frames) if args.frames else None
        codec = VideoCodec(load(ckpt), options)
        a, b = frames if frames is not None else (0, header.frames)
        st = decompress_file(codec, args.input, args.output, frames, stream=stream,
                             progress=_progress(args, "decompress", b - a), overwrite=args.overwrite)
    part = f"{st['decoded_frames']} of {st['frames']}" if frames else f"{st['frames']}"
    _say(
        args,
        f"decompressed {args.input} -> {st['path']}: {part} frames, {st['width']}x{st['height']}, "
        f"{st['bytes']} bytes, {st['bpp']:.5f} bpp, {st['fps']:.3f} frames/s"
    )
    return 0
