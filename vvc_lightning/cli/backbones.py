"""`backbones`: list registered backbones (plugins included) with size and cost at default settings."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the backbones sub-command."""
    p = sub.add_parser("backbones", help="registered backbones, plugins included")
    p.add_argument("--size", default="256x256", help="frame size for multiply-adds (WxH), default 256x256")
    p.add_argument("--frames", type=int, default=9, help="GoP frames for multiply-adds, default 9")
    p.add_argument("--no-macs", action="store_true", help="skip counting multiply-adds (faster)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print name, source, parameters and multiply-adds per frame of each backbone."""
    import torch

    from vvc_lightning.complexity import count_parameters, human, macs_per_frame
    from vvc_lightning.errors import VVCError
    from vvc_lightning.registry import BACKBONES

    try:
        w, h = (int(v) for v in args.size.lower().split("x"))
    except ValueError as exc:
        raise VVCError(f"--size must look like 256x256, got '{args.size}'") from exc
    torch.set_grad_enabled(False)
    print(f"{'name':14s} {'source':32s} {'params':>10s} {'MACs/frame':>12s}   ({w}x{h}, T={args.frames})")
    for name in BACKBONES.names():
        entry = BACKBONES.entry(name, warn=False)  # listing an alias is not using it
        model = entry.obj()
        params = human(count_parameters(model))
        macs = "-" if args.no_macs else human(macs_per_frame(model, T=args.frames, H=h, W=w)["total"])
        print(f"{name:14s} {entry.source:32s} {params:>10s} {macs:>12s}")
    return 0
