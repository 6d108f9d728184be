"""`shard`: videos (a folder, OpenVid zip parts, or a CSV plus a folder) -> webdataset tar shards."""

from __future__ import annotations

import argparse
import os


def register(sub: argparse._SubParsersAction) -> None:
    """Add the shard sub-command."""
    p = sub.add_parser(
        "shard",
        help="write videos into webdataset tar shards (video + JSON metadata)",
        description="Write videos into webdataset tar shards. SRC is a folder of videos and/or OpenVid zip "
        "parts (searched recursively), one zip, or a CSV whose folder holds the videos. Every file is probed "
        "with FFmpeg, whatever its name (mp4, mkv, mpg, ts, ...); each one left out is listed with its "
        "reason (unsupported, undecodable, too short). Each shard appears only when complete; re-running the "
        "same command resumes a killed run, checking the finished shards first.",
    )
    p.add_argument("src", metavar="SRC", help="folder of videos / zip parts, a .zip, or a metadata .csv")
    p.add_argument("-o", "--outdir", required=True, help="output folder for shard-NNNNNN.tar")
    p.add_argument("--max-shard-size", default="1GB", help="largest shard, e.g. 1GB, 500MB, 2GiB (default "
                                                           "1GB)")
    p.add_argument(
        "--min-frames", type=int, default=25,
        help="skip videos with fewer decoded frames (default 25 = 9 frames at stride 3)",
    )
    p.add_argument(
        "--csv", default=None, help="metadata CSV (OpenVid-1M.csv); matched to videos by file name"
    )
    p.add_argument(
        "--workers", type=int, default=1, help="processes decoding videos to check them (default 1)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the shards and print the summary."""
    from vvc_lightning.errors import VVCError
    from vvc_lightning.video.shard import write_shards

    if args.min_frames < 1:
        raise VVCError(f"--min-frames must be >= 1, got {args.min_frames}")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if not 1 <= args.workers <= cores:  # each worker is a process that decodes: more only compete for cores
        raise VVCError(f"--workers must be 1 to {cores} (the CPU cores this process may use), got "
                       f"{args.workers}")
    summary = write_shards(
        args.src, args.outdir, args.max_shard_size, args.min_frames, args.csv, args.workers,
        progress=not args.no_progress,
    )
    print(summary.text())
    return 0
