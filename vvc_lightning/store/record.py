"""Checks of an untrusted zoo entry: its record (NAME.json) when a folder is listed, its tensors before a
model is built from them; each raises `RecordProblem`, a short phrase naming the problem. Also what `export`
and `models --attach-curve` need to write records: a checked curve, portable paths, a file's checksum.

A record is read with a size bound, as UTF-8, without NaN/Infinity and with a bounded nesting depth; its
fields have the types and ranges `export` writes. Before a model is built, its architecture is built on the
meta device (nothing allocated) and compared with the weight file: the same keys and shapes, the parameter
count of the record; every float tensor finite; CDF tables that code (`latent_codec.check_tables`).
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vvc_lightning.errors import first_line

if TYPE_CHECKING:
    import torch

FORMAT = 1  # the record format `export` writes

MAX_RECORD_BYTES = 16 << 20
MAX_DEPTH = 64  # nesting of a record's JSON (export writes about 6)
MAX_CHANNELS = 4096
MAX_PARAMS = 2_000_000_000
MAX_QUALITIES = 256
MAX_STEPS = 10**12
MAX_CURVE_POINTS = 10_000  # points of a measured curve (`evaluate` writes one per quality and sequence set)
HEX64 = re.compile(r"[0-9a-f]{64}")
FIX = "fix or remove that file"


class RecordProblem(ValueError):
    """What is wrong with a record or its tensors (a short phrase, no path)."""


def _no_constant(name: str) -> float:
    raise RecordProblem(f"it holds {name}, which is not a number a record stores")


def _depth(obj: Any, limit: int) -> int:
    """Nesting depth of parsed JSON, iteratively (stops counting past `limit`)."""
    deepest, stack = 0, [(obj, 1)]
    while stack:
        node, d = stack.pop()
        deepest = max(deepest, d)
        if deepest > limit:
            return deepest
        if isinstance(node, dict):
            stack.extend((v, d + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, d + 1) for v in node)
    return deepest


def read_record(path: Path) -> dict[str, Any]:
    """The parsed record at `path` (only a regular file is opened, at most MAX_RECORD_BYTES read);
    RecordProblem if it cannot be one."""
    from vvc_lightning.video.safe_read import NotRegularFile, TooLarge, read_regular

    try:
        raw = read_regular(path, MAX_RECORD_BYTES)
    except NotRegularFile as exc:
        raise RecordProblem(f"it is {exc}, not a record file") from exc
    except TooLarge as exc:
        raise RecordProblem(f"the record is {exc.size} bytes (at most {MAX_RECORD_BYTES})") from exc
    except OSError as exc:
        raise RecordProblem(f"it cannot be read ({exc.strerror or exc})") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecordProblem(f"it is not UTF-8 text (byte {exc.start})") from exc
    try:
        rec = json.loads(text, parse_constant=_no_constant)
    except RecursionError as exc:
        raise RecordProblem(f"its JSON nests deeper than {MAX_DEPTH} levels") from exc
    except RecordProblem:
        raise
    except json.JSONDecodeError as exc:
        raise RecordProblem(f"it is not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise RecordProblem(f"it is not valid JSON ({first_line(exc)[:80]})") from exc
    if _depth(rec, MAX_DEPTH) > MAX_DEPTH:
        raise RecordProblem(f"its JSON nests deeper than {MAX_DEPTH} levels")
    check_record(rec)
    return rec


def _int(rec: dict, key: str, lo: int, hi: int, where: str = "") -> int:
    v = rec.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise RecordProblem(f"'{where}{key}' is {_show(v)}, not a whole number in [{lo}, {hi}]")
    return v


def _show(v: Any) -> str:
    text = json.dumps(v) if not isinstance(v, float) or math.isfinite(v) else repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_record(rec: Any) -> None:
    """Raise RecordProblem unless `rec` has the fields, types and ranges of a record `export` writes."""
    if not isinstance(rec, dict):
        raise RecordProblem(f"it holds a JSON {type(rec).__name__}, not an object")
    if rec.get("format") != FORMAT:
        raise RecordProblem(f"its format is {_show(rec.get('format'))}; this version reads format {FORMAT}")
    if not isinstance(rec.get("identity"), str) or not HEX64.fullmatch(rec["identity"]):
        raise RecordProblem(f"'identity' is {_show(rec.get('identity'))}, not 64 hex digits")
    if rec.get("sha256") not in (None, "") and (
        not isinstance(rec["sha256"], str) or not HEX64.fullmatch(rec["sha256"])
    ):
        raise RecordProblem(f"'sha256' is {_show(rec.get('sha256'))}, not 64 hex digits")
    for key in ("backbone", "name", "weights", "curve_source", "storage"):
        if key in rec and not isinstance(rec[key], str):
            raise RecordProblem(f"'{key}' is {_show(rec[key])}, not a string")
    channels = _int(rec, "latent_channels", 1, MAX_CHANNELS)
    _int(rec, "params", 1, MAX_PARAMS)
    qualities = _int(rec, "qualities", 0, MAX_QUALITIES) if rec.get("qualities") is not None else 0
    if rec.get("gop") is not None:
        from vvc_lightning.configuration.ranges import MAX_MODEL_INT

        _int(rec, "gop", 1, MAX_MODEL_INT)
    lr = rec.get("lmbda_range")
    if lr is not None and not (
        isinstance(lr, list) and len(lr) == 2 and all(_finite(v) and v > 0 for v in lr)
    ):
        raise RecordProblem(f"'lmbda_range' is {_show(lr)}, not two positive numbers")
    _check_training(rec.get("training", {}))
    _check_curve(rec.get("curve", []))
    _check_config(rec.get("config"), rec, channels, qualities)


def _check_training(tr: Any) -> None:
    if not isinstance(tr, dict):
        raise RecordProblem(f"'training' is a JSON {type(tr).__name__}, not an object")
    for key in ("global_step", "epoch"):
        if key in tr:
            _int(tr, key, 0, MAX_STEPS, "training.")
    if "stage" in tr and not isinstance(tr["stage"], str):
        raise RecordProblem(f"'training.stage' is {_show(tr['stage'])}, not a string")
    if tr.get("data") is not None and not isinstance(tr["data"], dict):
        raise RecordProblem(f"'training.data' is {_show(tr['data'])}, not an object")


def _check_curve(curve: Any) -> None:
    if curve is None:
        return
    if not isinstance(curve, list):
        raise RecordProblem(f"'curve' is {_show(curve)}, not a list of points")
    for i, point in enumerate(curve):
        if not isinstance(point, dict):
            raise RecordProblem(f"'curve' point {i} is {_show(point)}, not an object")
        for k, v in point.items():
            if k == "point":
                if not isinstance(v, str):
                    raise RecordProblem(f"'curve' point {i} 'point' is {_show(v)}, not a string")
            elif not _finite(v) or (k in ("bpp", "quality") and v < 0):
                raise RecordProblem(f"'curve' point {i} '{k}' is {_show(v)}, not a finite number")


def _check_config(cfg: Any, rec: dict, channels: int, qualities: int) -> None:
    if not isinstance(cfg, dict):
        raise RecordProblem(f"'config' is {_show(cfg)}, not the model's config (an object)")
    model = cfg.get("model")
    if not isinstance(model, dict) or not isinstance(model.get("backbone"), dict):
        raise RecordProblem("'config' has no 'model.backbone' section")
    from vvc_lightning.configuration.ranges import model_size_problem

    problem = model_size_problem(model, "config.model")
    if problem is not None:
        raise RecordProblem(problem)
    bb = model["backbone"]
    if rec.get("backbone") is not None and bb.get("name") != rec["backbone"]:
        raise RecordProblem(
            f"'backbone' {_show(rec['backbone'])} differs from its config's {_show(bb.get('name'))}"
        )
    if bb.get("latent_channels") not in (None, channels):
        raise RecordProblem(
            f"'latent_channels' {channels} differs from its config's {_show(bb['latent_channels'])}"
        )
    codec = model.get("codec") or {}
    if not isinstance(codec, dict) or (codec.get("qualities") or 0) != qualities:
        raise RecordProblem(f"'qualities' {qualities} differs from its config's {_show(codec)}")


# ------------------------------------------------------------------------------------------ tensors
def check_tensors(state: dict[str, torch.Tensor], rec: dict[str, Any]) -> dict[str, Any]:
    """The validated config of `rec` after checking the weights against it (built on the meta device only):
    RecordProblem naming the first difference."""
    import torch

    from vvc_lightning.codec.entropy.latent_codec import check_tables
    from vvc_lightning.configuration.config import from_container
    from vvc_lightning.errors import VVCError
    from vvc_lightning.model import CompressionModel, for_stored_weights

    bad = first_non_finite(state)
    if bad is not None:
        raise RecordProblem(f"its weight '{bad}' holds NaN or infinite values")
    try:
        cfg = for_stored_weights(from_container(rec["config"]))
        with torch.device("meta"):
            skeleton = CompressionModel(cfg)
    except VVCError as exc:
        raise RecordProblem(f"its config is refused ({exc})") from exc
    except Exception as exc:  # a config no backbone can build: say so in one line
        raise RecordProblem(
            f"its config builds no model ({type(exc).__name__}: {first_line(exc)})"
        ) from exc
    params = sum(p.numel() for p in skeleton.parameters())
    if params != rec["params"]:
        raise RecordProblem(f"its config builds {params} parameters but the record says {rec['params']}")
    expected = skeleton.state_dict()
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    if missing or extra:
        what = f"lacks '{missing[0]}'" if missing else f"holds '{extra[0]}', which the model has not"
        raise RecordProblem(f"the weights file {what} ({len(missing)} missing, {len(extra)} unknown tensors)")
    tables = ("_quantized_cdf", "_offset", "_cdf_length", "scale_table")
    for key, meta in expected.items():
        if not key.endswith(tables) and tuple(state[key].shape) != tuple(meta.shape):
            raise RecordProblem(f"its weight '{key}' has shape {tuple(state[key].shape)}, the config asks "
                                f"{tuple(meta.shape)}")
    try:
        check_tables(state, "codec.", skeleton.codec.channels)
    except VVCError as exc:
        raise RecordProblem(str(exc)) from exc
    return cfg


def first_non_finite(state: dict[str, torch.Tensor]) -> str | None:
    """The key of the first floating-point tensor holding NaN or an infinity, else None: numpy's `isfinite`
    over each tensor (one vectorised, single-threaded pass, unlike torch's, which stalls on a busy CPU)."""
    import numpy as np
    import torch

    for key, tensor in state.items():
        if tensor.is_floating_point():
            values = tensor.detach().cpu()
            values = values.float() if values.dtype == torch.bfloat16 else values  # numpy has no bfloat16
            if not np.isfinite(values.numpy()).all():
                return key
    return None


def check_int_layers(model: Any) -> None:
    """RecordProblem if an integer-network layer's weights are too large to convolve exactly."""
    from vvc_lightning.codec.entropy.intnet import _IntConvMixin

    for name, layer in model.named_modules():
        if isinstance(layer, _IntConvMixin):
            try:
                layer._int_params()
            except ValueError as exc:
                raise RecordProblem(f"its integer-network layer '{name}' is refused: {exc}") from exc


# ------------------------------------------------------------------------------------------ curves
def read_curve(path: Path, codec: str) -> list[dict[str, Any]]:
    """The points of `codec` in an `evaluate` summary.csv, sorted by bpp; VVCError in one line if the file is
    not one. A NaN metric (not measured) is left out; a NaN bpp or any infinite value is refused."""
    import csv

    from vvc_lightning.codec.entropy.gain import parse_quality_label
    from vvc_lightning.errors import VVCError

    fix = "pass the summary.csv written by `evaluate`"
    if not path.is_file():
        raise VVCError(f"'{path}' does not exist; {fix}")
    try:
        with open(path, encoding="utf-8", newline="") as f:
            rows = []
            for r in csv.DictReader(f):
                if r.get("codec") == codec:
                    rows.append(r)
                    if len(rows) > MAX_CURVE_POINTS:
                        raise VVCError(f"'{path}' holds more than {MAX_CURVE_POINTS} rows of codec '{codec}' "
                                       f"(a curve has at most that many points); {fix}")
    except UnicodeDecodeError as exc:
        raise VVCError(f"'{path}' is not UTF-8 text (byte {exc.start}); {fix}") from exc
    except (csv.Error, OSError) as exc:
        raise VVCError(f"'{path}' cannot be read as CSV ({exc}); {fix}") from exc
    if not rows:
        raise VVCError(
            f"'{path}' holds no rows of codec '{codec}'; pass --codec with the name used in evaluate"
        )
    curve = []
    for n, r in enumerate(rows, 1):
        point: dict[str, Any] = {"point": str(r.get("point") or "")}
        if (quality := parse_quality_label(point["point"])) is not None:
            point["quality"] = quality
        for k, v in r.items():
            if not isinstance(k, str) or k in ("codec", "label", "kind", "point", "point_label"):
                continue
            try:
                value = float(v)
            except (TypeError, ValueError):
                continue
            if math.isinf(value) or (math.isnan(value) and k == "bpp"):
                raise VVCError(f"'{path}' row {n} of '{codec}': '{k}' is {v}, not a finite number; {fix}")
            if k == "bpp" and value < 0:
                raise VVCError(f"'{path}' row {n} of '{codec}': 'bpp' is {v}, below 0; {fix}")
            if not math.isnan(value):
                point[k] = value
        if (
            "bpp" not in point
            or point.get("quality", 0.0) < 0
            or not math.isfinite(point.get("quality", 0.0))
        ):
            raise VVCError(f"'{path}' row {n} of '{codec}' has no bpp or a bad quality; {fix}")
        curve.append(point)
    return sorted(curve, key=lambda p: p["bpp"])


# ------------------------------------------------------------------------------------------ writing
def portable_strings(obj: Any, root: str | os.PathLike | None = None) -> Any:
    """`obj` with every absolute path string (one line) made portable (`portable_path`)."""
    if isinstance(obj, dict):
        return {k: portable_strings(v, root) for k, v in obj.items()}
    if isinstance(obj, list):
        return [portable_strings(v, root) for v in obj]
    if isinstance(obj, str) and os.path.isabs(obj) and "\n" not in obj:
        return portable_path(obj, root)
    return obj


def portable_path(path: str | os.PathLike, root: str | os.PathLike | None = None) -> str:
    """`path` as a record keeps it: a relative path as given; an absolute one relative to `root` (default: the
    working folder) when inside it, else its file name. A record holds no absolute path of its machine."""
    text = str(path)
    if not text or not os.path.isabs(text):
        return text
    p = Path(text).resolve()
    try:
        return p.relative_to(Path(root or os.getcwd()).resolve()).as_posix()
    except ValueError:
        return p.name
