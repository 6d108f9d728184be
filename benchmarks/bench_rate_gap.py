"""Where the real rate goes past the estimate: a byte-exact breakdown of a .vvc file.

Codes one clip with a model through the real codec (`VideoCodec`), records the latent each GoP hands to
the entropy coder, and splits the file's bits into
    container   header + per-GoP record framing (length, CRC32) + per-GoP symbol check (CRC32)
    rANS        the coded strings, against the ideal cost of the same symbols under the same integer
                CDF tables (escapes and their bypass digits included) = the coder's own overhead
    tables      ideal table cost minus the Gaussian cost at the table's scale (CDF precision, tails)
    scale grid  Gaussian cost at the table's scale minus that at the model's own scale (the 64-entry
                scale table rounds every scale up to the next entry)
    estimate    -log2 of the likelihoods (what `test/bpp_estimate` reports), y and z apart
and writes it as JSON. A sanity check: the Gaussian cost at the model's own scale equals the y estimate.

    python benchmarks/bench_rate_gap.py --model zoo:vvc-lean-vr --quality 0 \\
        --video vvc_lightning/assets/quickstart_test.mp4 --out benchmarks/results/bench_rate_gap.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vvc_lightning.codec.entropy.latent_codec import _scale_indexes, _symbols
from vvc_lightning.codec.entropy.symbol_check import DIGEST_SIZE
from vvc_lightning.codec.pipeline import container as bitstream
from vvc_lightning.codec.pipeline.video_codec import VideoCodec
from vvc_lightning.store.loader import load
from vvc_lightning.video.video_io import read_video

BYPASS_BITS = 4  # CompressAI's rANS codes escapes in 4-bit bypass digits
PRECISION = 16  # and its CDFs sum to 2**16


def table_bits(symbols: np.ndarray, indexes: np.ndarray, cdf: np.ndarray, lengths: np.ndarray,
               offsets: np.ndarray) -> tuple[float, int]:
    """(ideal bits of `symbols` under CDF rows `indexes`, symbols sent as escapes), CompressAI's rules."""
    value = symbols.astype(np.int64) - offsets[indexes]
    max_value = lengths[indexes].astype(np.int64) - 2
    low, high = value < 0, value >= max_value
    raw = np.where(low, -2 * value - 1, np.where(high, 2 * (value - max_value), 0))
    value = np.where(low | high, max_value, value)
    freq = cdf[indexes, value + 1].astype(np.int64) - cdf[indexes, value]
    bits = float(np.sum(PRECISION - np.log2(freq)))
    escaped = low | high
    for r in raw[escaped]:
        digits = 0
        while (int(r) >> (digits * BYPASS_BITS)) != 0:
            digits += 1
        bits += BYPASS_BITS * (
            digits // 15 + 1 + digits
        )  # the digit count (in 4-bit chunks of 15), then digits
    return bits, int(escaped.sum())


def gauss_bits(symbols: torch.Tensor, scales: torch.Tensor, lower: float = 1e-9) -> float:
    """-log2 P(symbol) under a zero-mean Gaussian of `scales` integrated over the symbol's unit bin."""
    normal = torch.distributions.Normal(0.0, 1.0)
    s = symbols.double().abs()
    p = normal.cdf((0.5 - s) / scales) - normal.cdf((-0.5 - s) / scales)
    return float(-torch.log2(p.clamp_min(lower)).sum())


class Recorder:
    """Wraps a codec's `encode_y` to measure each call's symbols, tables and likelihoods on the way."""

    def __init__(self, codec: Any) -> None:
        self.codec, self.inner = codec, codec.encode_y
        self.totals: dict[str, float] = dict.fromkeys(
            ("y_estimate", "z_estimate", "y_gauss_model_scale", "y_gauss_table_scale", "y_table", "z_table",
             "y_symbols", "z_symbols", "y_escapes", "z_escapes"), 0.0)

    def __call__(self, y: torch.Tensor, gops: int, gains: Any) -> Any:
        codec, totals = self.codec, self.totals
        _, y_lik, z_lik = codec.entropy(y, gains)
        totals["y_estimate"] += float(-torch.log2(y_lik.double()).sum())
        totals["z_estimate"] += float(-torch.log2(z_lik.double()).sum())
        eb, gc = codec.entropy_bottleneck, codec.gaussian_conditional
        z_sym = _symbols(codec._hyper_analysis(y, gains) - eb._get_medians())
        idx = torch.arange(z_sym.shape[1]).view(1, -1, 1, 1).expand_as(z_sym)
        bits, esc = table_bits(z_sym.reshape(-1).numpy(), idx.reshape(-1).numpy(), *self._tables(eb))
        totals["z_table"] += bits
        totals["z_escapes"] += esc
        totals["z_symbols"] += z_sym.numel()
        gc_tables, bound = self._tables(gc), float(gc.lower_bound_scale.bound)
        table = gc.scale_table.double()

        def sink(step: int, residual: torch.Tensor, scales: torch.Tensor, means: torch.Tensor,
                 positions: torch.Tensor) -> torch.Tensor:
            symbols = _symbols(residual)
            sel, sc = symbols, scales.double()  # (n, c, P): the step's positions only
            ind = _scale_indexes(gc, scales)
            b, e = table_bits(sel.reshape(-1).numpy(), ind.reshape(-1).long().numpy(), *gc_tables)
            totals["y_table"] += b
            totals["y_escapes"] += e
            totals["y_symbols"] += sel.numel()
            totals["y_gauss_table_scale"] += gauss_bits(sel, table[ind.long()])
            totals["y_gauss_model_scale"] += gauss_bits(sel, sc.clamp_min(bound))
            return symbols

        z_hat = z_sym.double() + eb._get_medians().double()
        codec.context.run(y, codec._hyper(z_hat, *y.shape[-2:], gains), gc, "code", sink)
        return self.inner(y, gops, gains)

    @staticmethod
    def _tables(model: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (model._quantized_cdf.cpu().numpy().astype(np.int64), model._cdf_length.cpu().numpy(),
                model._offset.cpu().numpy().astype(np.int64))


def measure(model_spec: str, video_path: str, quality: float | None, frames: int | None,
            refit_quantiles: bool = False) -> dict[str, Any]:
    """The breakdown (bits and shares) of one clip coded by one model at one quality (`refit_quantiles`: solve
    the entropy bottleneck's quantiles exactly and rebuild the tables first, as training now does on save)."""
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    model = load(model_spec)
    eb = model.codec.entropy_bottleneck
    aux_before = float(eb.loss().detach())
    if refit_quantiles:
        eb._update_quantiles()
        model.codec.update_tables(force=True)
    video = read_video(video_path, max_frames=frames) if frames else read_video(video_path)
    codec = VideoCodec(model, gop=model.gop, quality=quality)
    recorder = Recorder(model.codec)
    model.codec.encode_y = recorder
    try:
        data = codec.encode(video)
    finally:
        del model.codec.encode_y
    header, records = bitstream.unpack(data)
    header_bytes = records[0].offset - 8 if records else len(data)
    payload = sum(r.length for r in records)
    rans_bytes = payload - DIGEST_SIZE * len(records)
    t = recorder.totals
    pixels = video.num_frames * video.frames.shape[1] * video.frames.shape[2]
    parts = {
        "header": 8.0 * header_bytes,
        "record_framing": 8.0 * 8 * len(records),
        "symbol_checks": 8.0 * DIGEST_SIZE * len(records),
        "rans_overhead": 8.0 * rans_bytes - t["y_table"] - t["z_table"],
        "table_precision_and_tails_y": t["y_table"] - t["y_gauss_table_scale"],
        "scale_grid_y": t["y_gauss_table_scale"] - t["y_gauss_model_scale"],
        "table_vs_estimate_z": t["z_table"] - t["z_estimate"],
        "y_model_scale_minus_estimate": t["y_gauss_model_scale"] - t["y_estimate"],
    }
    estimate = t["y_estimate"] + t["z_estimate"]
    real = 8.0 * len(data)
    return {
        "model": model_spec,
        "video": Path(video_path).name,
        "quality": quality,
        "refit_quantiles": refit_quantiles,
        "aux_loss": aux_before,
        "aux_loss_coded": float(eb.loss().detach()),
        "size": f"{video.frames.shape[2]}x{video.frames.shape[1]}",
        "frames": video.num_frames,
        "gops": len(records),
        "pixels": pixels,
        "file_bytes": len(data),
        "bpp_real": real / pixels,
        "bpp_estimate": estimate / pixels,
        "real_over_estimate": real / estimate if estimate else math.nan,
        "estimate_bits": {"y": t["y_estimate"], "z": t["z_estimate"]},
        "gap_bits": real - estimate,
        "gap_parts_bits": parts,
        "gap_parts_share_of_gap": {k: v / (real - estimate) for k, v in parts.items()}
        if real != estimate
        else {},
        "symbols": {k: t[k] for k in ("y_symbols", "z_symbols", "y_escapes", "z_escapes")},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="zoo:vvc-lean-vr")
    ap.add_argument("--video", action="append", help="clip(s) to code (default: the bundled test clip)")
    ap.add_argument("--quality", type=float, action="append", help="qualities (default 0)")
    ap.add_argument("--frames", type=int, default=None, help="first N frames only")
    ap.add_argument(
        "--refit-quantiles", action="store_true", help="also measure with exactly solved quantiles"
    )
    ap.add_argument("--out", default="benchmarks/results/bench_rate_gap.json")
    args = ap.parse_args()
    videos = args.video or [str(Path(__file__).parents[1] / "vvc_lightning/assets/quickstart_test.mp4")]
    refits = (False, True) if args.refit_quantiles else (False,)
    runs = [measure(args.model, v, q, args.frames, r) for v in videos for q in (args.quality or [0.0])
            for r in refits]
    for r in runs:
        print(
            f"{r['video']} {r['size']} q{r['quality']} refit={r['refit_quantiles']} aux {r['aux_loss']:.2f}->"
            f"{r['aux_loss_coded']:.2f}: real {r['bpp_real']:.4f} bpp, estimate "
            f"{r['bpp_estimate']:.4f} ({r['real_over_estimate']:.3f}x); gap parts (bits): "
            + ", ".join(f"{k} {v:.0f}" for k, v in r["gap_parts_bits"].items())
        )
    out = {"machine": platform.processor() or platform.machine(), "torch": torch.__version__,
           "threads": torch.get_num_threads(), "load_average": os.getloadavg(), "runs": runs}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
