"""Anchor files as the field exchanges them, written from a codec's rows and read back as a curve.

Shape: {class: {sequence file: {"022": record, ...}}}, one record per rate point (QP as three digits;
other rate points by their index) with `frame_pixel_num`, `i_frame_num`, `p_frame_num`, `qp`, `ds_name`,
`seq_name`, `test_time`, `ave_all_frame_bpp` and `ave_all_frame_<metric>`: `psnr` is the (6Y+U+V)/8
combination, `psnr_y` / `_u` / `_v` and `msssim` / `msssim_y` / ... per plane; RGB PSNR and MS-SSIM are
`psnr_rgb` / `msssim_rgb`, other metrics keep their names. Written records add `frame_num`,
`rate_point`, `codec` and what the codec was given and measured on (`source_format`, `codec_input`,
`yuv_metrics_on`); a published file (a VTM table, say) is read as a curve without re-encoding.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from vvc_lightning.errors import VVCError

ALL = "ave_all_frame_"
TO_FILE = {"psnr_yuv": "psnr", "psnr_y": "psnr_y", "psnr_u": "psnr_u", "psnr_v": "psnr_v",
           "ms_ssim_yuv": "msssim", "ms_ssim_y": "msssim_y", "ms_ssim_u": "msssim_u", "ms_ssim_v": "msssim_v",
           "psnr": "psnr_rgb", "ms_ssim": "msssim_rgb"}
FROM_FILE = {v: k for k, v in TO_FILE.items()}
CONVERSION_KEYS = ("source_format", "codec_input", "yuv_metrics_on")  # what a codec got (evaluation.planes)
NAME_EXTS = (".yuv", ".y4m", ".png", ".mp4", ".mkv", ".avi", ".mov", ".webm")


def point_keys(points: list[str]) -> dict[str, str]:
    """Rate point -> its key: the QP as three digits where every point is a QP (0..999), else the index."""
    if all(re.fullmatch(r"\d{1,3}", p) for p in points):
        return {p: f"{int(p):03d}" for p in points}
    return {p: f"{i:03d}" for i, p in enumerate(points)}


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) else None


def anchor_doc(rows: list[dict], groups: dict[str, str], files: dict[str, str]) -> dict:
    """One codec's rows in the anchor-file shape (`groups`: sequence -> class, `files`: -> file name)."""
    keys = point_keys(list(dict.fromkeys(str(r["point"]) for r in rows)))
    doc: dict[str, dict] = {}
    for r in rows:
        seq, point, n = r["sequence"], str(r["point"]), int(r["frames"])
        intra = r.get("intra_pictures")
        i = int(intra) if isinstance(intra, int) and 0 <= intra <= n else 0
        times = [r.get("encode_seconds"), r.get("decode_seconds")]
        rec: dict[str, Any] = {
            "frame_pixel_num": int(r["width"]) * int(r["height"]), "i_frame_num": i, "p_frame_num": n - i,
            "frame_num": n,
            "qp": int(point) if re.fullmatch(r"\d{1,3}", point) else r.get("point_label", point),
            "rate_point": point, "codec": r["codec"], "ds_name": groups.get(seq, "all"), "seq_name": seq,
            "test_time": sum(t for t in times if _number(t) is not None) if any(_number(t) for t in times)
            else None,
            f"{ALL}bpp": float(r["bpp"]),
            **{k: r[k] for k in CONVERSION_KEYS if k in r},
        }
        for k, v in r.get("metrics", {}).items():
            rec[f"{ALL}{TO_FILE.get(k, k)}"] = _number(v)
        doc.setdefault(groups.get(seq, "all"), {}).setdefault(files.get(seq, seq), {})[keys[point]] = rec
    return doc


def write_anchor_file(path: str | Path, rows: list[dict], groups: dict[str, str],
                      files: dict[str, str]) -> Path:
    """Write one codec's rows as an anchor file (JSON, atomically)."""
    from vvc_lightning.video.video_io import write_bytes_atomic

    write_bytes_atomic(path, json.dumps(anchor_doc(rows, groups, files), indent=1).encode())
    return Path(path)


def parse_anchor_arg(text: str) -> tuple[str, str]:
    """'NAME=FILE' or 'FILE' (named by its stem) -> (name, file)."""
    name, sep, file = text.partition("=")
    if sep and name.strip() and not Path(text).is_file():
        return name.strip(), file.strip()
    return Path(text).stem, text


def read_anchor_file(path: str | Path, name: str | None = None) -> list[dict]:
    """The curve rows in an anchor file: codec `name` (default: the file's stem), class, sequence, rate
    point, frames, bpp, metrics; one line naming the file and entry where it is not of that shape."""
    path = Path(path)
    name = name or path.stem
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise VVCError(f"--anchor-file '{path}' cannot be read as JSON: {str(exc).splitlines()[0]}") from exc
    shape = "{class: {sequence: {\"022\": {\"ave_all_frame_bpp\": ..., ...}}}}"
    if not isinstance(doc, dict) or not doc:
        raise VVCError(f"--anchor-file '{path}' is not an anchor file of the shape {shape}")
    rows = []
    for group, seqs in doc.items():
        for seq, points in (seqs if isinstance(seqs, dict) else {None: None}).items():
            if not isinstance(points, dict):
                raise VVCError(f"--anchor-file '{path}': {group}/{seq} is not a mapping of rate points; the "
                               f"shape is {shape}")
            for key, rec in points.items():
                rows.append(_row(rec, name, str(group), str(seq), str(key), f"--anchor-file '{path}': "
                                 f"{group}/{seq}/{key}"))
    return rows


def _row(rec: Any, codec: str, group: str, seq: str, key: str, where: str) -> dict:
    bpp = _number(rec.get(f"{ALL}bpp")) if isinstance(rec, dict) else None
    if bpp is None or bpp <= 0:
        raise VVCError(f"{where} has no positive number ave_all_frame_bpp")
    frames = _number(rec.get("frame_num"))
    if frames is None:
        i, p = _number(rec.get("i_frame_num")), _number(rec.get("p_frame_num"))
        frames = (i or 0) + (p or 0) if i is not None or p is not None else 1
    metrics = {FROM_FILE.get(k[len(ALL):], k[len(ALL):]): float(v) for k, v in rec.items()
               if k.startswith(ALL) and k != f"{ALL}bpp" and _number(v) is not None}
    pixels = _number(rec.get("frame_pixel_num"))
    return {"codec": codec, "class": group, "sequence": seq, "file": seq,
            "point": str(rec.get("rate_point", key)),
            "frames": int(frames), "bpp": bpp, "metrics": metrics, "pixels": int(pixels) if pixels else None,
            "kind": "anchor-file"}


def _canon(name: str) -> str:
    low = name.lower()
    for ext in NAME_EXTS:
        low = low.removesuffix(ext)
    return re.sub(r"[^a-z0-9]", "", low)


def align(rows: list[dict], groups: dict[str, str], files: dict[str, str]) -> list[dict]:
    """Anchor-file rows renamed to the evaluated sequences they are (by name or file name, in the same
    class where the class names agree); the others keep their own names."""
    names = {s: {_canon(s), _canon(files.get(s, s)), _canon(s.removesuffix(f"-{g}"))}
             for s, g in groups.items()}
    out = []
    for r in rows:
        key = _canon(r["sequence"])
        hits = [s for s, ks in names.items() if key in ks]
        same = [s for s in hits if _canon(groups[s]) == _canon(r["class"])]
        pick = same if same else hits
        out.append({**r, "sequence": pick[0], "class": groups[pick[0]]} if len(pick) == 1 else r)
    return out
