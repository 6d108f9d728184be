"""`compress` and `decompress`: a trained checkpoint as a real codec for your own videos."""

from __future__ import annotations

import argparse
from pathlib import Path

from vvc_lightning.errors import VVCError


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--size takes WxH, e.g. 1920x1080, got '{text}'") from exc
    return w, h


def register(sub: argparse._SubParsersAction) -> None:
    """Add compress / decompress."""
    c = sub.add_parser("compress", help="compress a video to a .vvc file with a trained checkpoint")
    c.add_argument("input", help="any video PyAV reads, or raw 8-bit 4:2:0 .yuv (size/fps from --size/--fps or the name)")
    c.add_argument("-o", "--output", required=True, help="the .vvc file to write")
    c.add_argument("--ckpt", required=True, help="checkpoint written by fit")
    c.add_argument("--gop", type=int, default=None, help="frames per GoP, 1+4k (default: the model's, 9)")
    c.add_argument("--overlap", type=int, default=1, help="frames shared by adjacent GoPs (default 1; 0 = off)")
    c.add_argument("--theta", type=float, default=0.5, help="blend weight of the earlier GoP's shared frame")
    c.add_argument("--batch", type=int, default=4, help="GoPs (or GoP tiles) per backbone pass (default 4)")
    c.add_argument("--tile", type=int, default=None, help="tile size in pixels (default 256; 0 = no tiling)")
    c.add_argument("--tile-overlap", type=int, default=32, help="tile overlap in pixels (default 32)")
    c.add_argument("--size", type=_size, default=None, help="WxH of a raw .yuv input")
    c.add_argument("--fps", type=float, default=None, help="frame rate of a raw .yuv input (or override)")
    c.add_argument("--matrix", default="bt709", choices=["bt709", "bt601"], help="YUV matrix of .yuv input/output")
    c.add_argument("--range", dest="rng", default="limited", choices=["limited", "full"], help="YUV range")
    c.add_argument("--max-frames", type=int, default=None, help="encode only the first N frames")
    c.set_defaults(func=run_compress)

    d = sub.add_parser("decompress", help="decompress a .vvc file to .mp4 / .mkv / .y4m / .yuv / a PNG folder")
    d.add_argument("input", help="the .vvc file")
    d.add_argument("-o", "--output", required=True, help="video file (.mp4, .mkv, .y4m, .yuv) or folder for PNGs")
    d.add_argument("--ckpt", default=None, help="checkpoint (default: the one named in the file, if it exists)")
    d.add_argument("--frames", default=None, help="decode only frames a:b (only the GoPs they need)")
    d.add_argument("--batch", type=int, default=4, help="GoPs (or GoP tiles) per backbone pass (default 4)")
    d.set_defaults(func=run_decompress)


def _check_output(path: str) -> None:
    parent = Path(path).parent
    if not (parent if str(parent) else Path(".")).is_dir():
        raise VVCError(f"output folder '{parent}' does not exist; create it first")


def run_compress(args: argparse.Namespace) -> int:
    """Compress INPUT to a .vvc file."""
    _check_output(args.output)
    if not Path(args.input).exists():
        raise VVCError(f"video '{args.input}' does not exist")
    from vvc_lightning.video.video_io import parse_yuv_name
    from vvc_lightning.zoo import load_codec

    read_kwargs: dict = {"max_frames": args.max_frames, "fps": args.fps}
    if Path(args.input).suffix.lower() == ".yuv":
        if args.size:
            (w, h), name_fps = args.size, None
        else:
            w, h, name_fps = parse_yuv_name(args.input)
        read_kwargs.update(width=w, height=h, matrix=args.matrix, rng=args.rng, fps=args.fps or name_fps or 25.0)
    codec = load_codec(
        args.ckpt, gop=args.gop or None, overlap=args.overlap, theta=args.theta, batch=args.batch,
        tile=args.tile, tile_overlap=args.tile_overlap, matrix=args.matrix, rng=args.rng,
    )
    st = codec.encode_file(args.input, args.output, **read_kwargs)
    print(
        f"compressed {args.input} -> {args.output}: {st['frames']} frames, {st['width']}x{st['height']}, "
        f"{st['bytes']} bytes, {st['bpp']:.5f} bpp, {st['fps']:.3f} frames/s"
    )
    return 0


def run_decompress(args: argparse.Namespace) -> int:
    """Decompress a .vvc file."""
    _check_output(args.output)
    from vvc_lightning.codec import container as bitstream
    from vvc_lightning.codec.gop import parse_frame_range
    from vvc_lightning.codec.video_codec import read_bitstream_file
    from vvc_lightning.zoo import load_codec

    data = read_bitstream_file(args.input)
    header, _ = bitstream.unpack_header(data, f"'{args.input}'")
    ckpt = args.ckpt
    if ckpt is None:
        if not header.checkpoint or not Path(header.checkpoint).is_file():
            why = f"'{header.checkpoint}' (named in the file) does not exist" if header.checkpoint else "the file names none"
            raise VVCError(f"no checkpoint to decode '{args.input}' with: {why}; pass --ckpt CKPT")
        ckpt = header.checkpoint
    frames = parse_frame_range(args.frames, header.frames) if args.frames else None
    codec = load_codec(ckpt, batch=args.batch)
    st = codec.decode_file(args.input, args.output, frames=frames)
    part = f"{st['decoded_frames']} of {st['frames']}" if frames else f"{st['frames']}"
    print(
        f"decompressed {args.input} -> {st['path']}: {part} frames, {st['width']}x{st['height']}, "
        f"{st['bytes']} bytes, {st['bpp']:.5f} bpp, {st['fps']:.3f} frames/s"
    )
    return 0
