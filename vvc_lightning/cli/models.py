"""`models` and `export`: the shipped model zoo, and turning a trained checkpoint into a zoo entry."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    """Add models / export."""
    m = sub.add_parser("models", help="list the shipped models (use one with compress --model NAME)")
    m.add_argument("name", nargs="?", help="show this model's whole record (config, training, curve)")
    m.add_argument(
        "--attach-curve",
        metavar="SUMMARY_CSV",
        help="store the curve of an `evaluate` summary.csv in the record of NAME",
    )
    m.add_argument(
        "--codec", default=None, help="the curve's name in that summary.csv (default: the model's name)"
    )
    m.set_defaults(func=run_models)

    e = sub.add_parser(
        "export", help="write a trained checkpoint as a zoo entry (weights + CDF tables + record)"
    )
    e.add_argument("--ckpt", required=True, help="checkpoint written by fit")
    e.add_argument("--name", required=True, help="the model's name (letters, digits, . _ -)")
    e.add_argument("-o", "--out", default=None, help="models folder (default: the package's assets/models)")
    e.add_argument("--fp32", action="store_true", help="store float weights in float32 (default: float16)")
    e.add_argument("--force", action="store_true", help="replace an existing entry of that name")
    e.add_argument("--notes", default="", help="free text stored in the record (e.g. how it was trained)")
    e.set_defaults(func=run_export)


def run_models(args: argparse.Namespace) -> int:
    """List the zoo, show one record, or attach a measured curve."""
    from vvc_lightning.store.zoo import attach_curve, get_entry, list_models, model_dirs

    if args.attach_curve:
        if not args.name:
            from vvc_lightning.errors import VVCError

            raise VVCError("--attach-curve needs the model's NAME: models NAME --attach-curve summary.csv")
        path = attach_curve(args.name, args.attach_curve, args.codec)
        print(f"curve of '{args.name}' stored in {path}")
        return 0
    if args.name:
        entry = get_entry(args.name)
        print(json.dumps({**entry.record, "weights_path": str(entry.weights)}, indent=1))
        return 0
    entries = list_models()
    if not entries:
        print("no shipped models installed (searched: " + ", ".join(str(d) for d in model_dirs()) + ")")
        return 0
    rows = [e.summary() for e in entries]
    cols = list(rows[0])
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols).rstrip())
    for r in rows:
        print("  ".join(r[c].ljust(widths[c]) for c in cols).rstrip())
    return 0


def run_export(args: argparse.Namespace) -> int:
    """Export a checkpoint to the zoo."""
    from vvc_lightning.store.export import export_model

    path = export_model(
        args.ckpt, args.name, args.out, fp16=not args.fp32, overwrite=args.force, notes=args.notes
    )
    weights = path.with_suffix(".safetensors")
    print(f"exported '{args.name}': {weights} ({weights.stat().st_size / 1e6:.2f} MB) and {path}")
    return 0
