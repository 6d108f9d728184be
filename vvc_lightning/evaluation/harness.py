"""The evaluation harness: codecs x rate points x sequences -> metrics, RD plots, BD-rates, an HTML report.

Each row (codec, rate point, sequence) is cached under OUT/cache/ keyed by what coded it (encoder version,
preset, structure, intra period, QP / the model's weights digest, quality and coding options) and a hash of
the sequence's frames, never by names, with the metric protocol; a rerun computes only what is missing and
keeps earlier runs' rows of other curves (`ledger`). One curve per neural model; classic QPs searched to
meet them (`comparison`). Outputs: results.csv / results.json (one row per codec x point x sequence, every
metric, command lines), summary.csv (mean over sequences; FID/KID pooled over all sequences' patches),
bdrate.csv, rd_<metric>.png, report.html.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import platform
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from vvc_lightning.codec.pipeline.options import CodecOptions
from vvc_lightning.errors import VVCError
from vvc_lightning.evaluation.inputs import CodecSpec, Sequence, build_specs, points_of
from vvc_lightning.evaluation.planes import colour_path, colour_protocol
from vvc_lightning.video.atomic import make_dirs
from vvc_lightning.video.video_io import atomic_path, write_bytes_atomic

CROP = 256
STREAM_CHUNK = 9  # decoded frames scored at a time


@dataclass
class EvalOptions:
    """Everything `evaluate` needs (the CLI fills it)."""

    data: str
    out: str
    ckpts: list[str] = field(default_factory=list)
    ckpt_name: str | list[str] | None = None  # a curve name per checkpoint (default: the model's / file's)
    baselines: list[str] = field(default_factory=list)
    anchor: str | None = None
    metrics: list[str] | None = None
    max_frames: int | None = None
    points: dict[str, list[int]] = field(default_factory=dict)
    presets: dict[str, str] = field(default_factory=dict)
    intra_period: int | None = None
    matrix: str = "bt709"
    rng: str = "limited"
    device: str = "cpu"
    lpips_weights: str | None = None
    frame_stride: int = 1
    codec: CodecOptions = field(default_factory=CodecOptions)  # the neural codec's (matrix / rng: the above)
    progress: bool = True
    qualities: list[float] | None = None  # variable-rate models: one rate point per quality
    root: str | None = None  # the folder holding a dataset spec's files (see evaluation.testsets)
    protocol: str | None = None  # 96f-ip32 | 96f-ip96 | all-ip-1: coded frames and intra period
    classes: list[str] | None = None  # a dataset spec's classes to evaluate (default: all)
    anchor_files: list[str] = field(default_factory=list)  # curves read from anchor files: FILE or NAME=FILE
    jobs: int = 1  # processes coding and measuring the classic rows (`parallel`)
    shard: tuple[int, int] | None = None  # (I, N): only the I-th of N slices of the rows (`shards`)
    cached_only: bool = False  # every row must come from the cache (`shards.merge`)
    log_rate: bool = False  # RD plots with a logarithmic rate axis


def _digest(obj: Any) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:20]


class Harness:
    """Runs the rows of one evaluation, with the cache."""

    def __init__(self, opts: EvalOptions) -> None:
        from vvc_lightning.metrics import METRICS, VideoMetrics, build_metric, resolve_names

        self.opts = opts
        self.out = Path(opts.out)
        self.cache = self.out / "cache"
        for sub in ("rows", "feats", "crops"):
            make_dirs(self.cache / sub)
        names = resolve_names(opts.metrics)
        metric_opts = {"weights": opts.lpips_weights, "matrix": opts.matrix, "rng": opts.rng,
                       "frame_stride": opts.frame_stride}
        self.set_names = [n for n in names if METRICS.get(n).per == "set"]
        frame_names = [n for n in names if n not in self.set_names]
        self.vm = VideoMetrics(frame_names, opts.device, **metric_opts) if frame_names else None
        self.set_metrics = {n: build_metric(n, opts.device, **metric_opts) for n in self.set_names}
        self.keys = (self.vm.keys if self.vm else []) + [m.key for m in self.set_metrics.values()]
        self.info = {**(self.vm.info() if self.vm else {}),
                     **{m.key: {"name": m.name, "higher_is_better": m.higher_is_better, **m.info()}
                        for m in self.set_metrics.values()}}
        # a cached metric value counts only if it was computed under the same protocol
        self.protocol = {k: _digest(v) for k, v in self.info.items()}
        first = next(iter(self.set_metrics.values()), None)
        self.feat_sig = _digest(first.info()) if first is not None else ""
        self.metrics = [*(self.vm.metrics.values() if self.vm else []), *self.set_metrics.values()]
        self.labels = {m.key: m.label or m.key for m in self.metrics}
        self.yuv_keys: list[str] = []  # plane metrics of 4:2:0 sources (`use_planes`)

    def use_planes(self, seqs: list[Sequence]) -> list[str]:
        """Add the plane metrics where a sequence is 4:2:0 (`evaluation.planes`); their notes, said once."""
        from vvc_lightning.evaluation.planes import plane_metrics
        from vvc_lightning.metrics import resolve_names
        from vvc_lightning.metrics.base import say_once
        from vvc_lightning.metrics.yuv import LABELS

        self.yuv_keys, info, notes = plane_metrics(resolve_names(self.opts.metrics), seqs, self.info)
        self.keys += [k for k in self.yuv_keys if k not in self.keys]
        self.info.update(info)
        self.protocol.update({k: _digest(v) for k, v in info.items()})
        self.labels.update({k: LABELS[k] for k in self.yuv_keys})
        for n in notes:
            say_once(n)
        return notes

    def notes(self, seqs: list[Sequence]) -> list[str]:
        """What the metrics must say about these sequences (each said once on the command's output)."""
        from vvc_lightning.metrics.base import say_once

        sizes = dict.fromkeys(q.frames.shape[1:3] for q in seqs)
        out = list(dict.fromkeys(n for m in self.metrics for h, w in sizes if (n := m.note(h, w))))
        for n in out:
            say_once(n)
        return out

    # -------------------------------------------------------------------------------- cache
    def row_key(self, spec: CodecSpec, point: Any, seq: Sequence) -> str:
        """The cache key of a row: what coded it (model weights / encoder settings, point) and the sequence's
        content, never the names they go by."""
        return _digest({"id": spec.point_identity(point), "input": seq.digest,
                        "colour": [self.opts.matrix, self.opts.rng], "v": 2})

    @staticmethod
    def named(row: dict, spec: CodecSpec, point: Any, seq: Sequence) -> dict:
        """The row as this run names its curve, point and sequence."""
        return {**row, "codec": spec.name, "label": spec.label, "kind": spec.kind, "point": str(point),
                "point_label": spec.point_label(point), "sequence": seq.name}

    def cached(self, key: str) -> tuple[dict | None, list[str]]:
        """A row's cache entry (None: none) and the metrics it lacks under today's protocols."""
        row = self._load(key)
        done = {} if row is None else row.get("protocol", {})
        return row, [k for k in self.keys
                     if row is None or k not in row["metrics"] or done.get(k) != self.protocol[k]]

    def _load(self, key: str) -> dict | None:
        path = self.cache / "rows" / f"{key}.json"
        try:
            return json.loads(path.read_text()) if path.is_file() else None
        except json.JSONDecodeError:
            return None

    def _features(self, path: Path, frames: np.ndarray) -> np.ndarray:
        from vvc_lightning.metrics.base import frames_to_u8

        if path.is_file():
            return np.load(path)["f"]
        metric = next(iter(self.set_metrics.values()))
        feats = metric.features(frames_to_u8(frames))
        _save_features(path, feats)
        return feats

    def ref_features(self, seq: Sequence) -> np.ndarray:
        return self._features(self.cache / "feats" / f"ref-{seq.digest}-{self.feat_sig}.npz", seq.frames)

    def rec_features(self, key: str) -> np.ndarray | None:
        path = self.cache / "feats" / f"{key}-{self.feat_sig}.npz"
        return np.load(path)["f"] if path.is_file() else None

    # -------------------------------------------------------------------------------- rows
    def run_row(self, spec: CodecSpec, point: Any, seq: Sequence) -> dict:
        """One row: cached if complete, else coded and measured (only the missing metrics)."""
        from vvc_lightning.metrics.base import check_sequences, frames_to_u8

        key = self.row_key(spec, point, seq)
        row, missing = self.cached(key)
        if row is not None and not missing and (self.cache / "crops" / f"{key}.png").is_file():
            return self.named(row, spec, point, seq)
        if self.opts.cached_only:
            raise VVCError(f"--merge: the shards hold no finished row {spec.name} {spec.point_label(point)} "
                           f"of {seq.name} (its shard's cache is incomplete); run that shard again")
        work = self.cache / "work" / key
        coded = spec.run(seq, point, work)
        what = f"{spec.name} {point} {seq.name}"
        if coded.frames is not None:
            check_sequences(frames_to_u8(seq.frames), frames_to_u8(coded.frames), what)
        n, h, w = seq.frames.shape[:3]
        frame_keys = [k for k in missing if self.vm is not None and k in self.vm.keys]
        set_missing = [m for m in self.set_metrics.values() if m.key in missing]
        cached_f = self.rec_features(key) if set_missing else None
        per_frame, rec_f, middle = self._score_stream(key, coded, seq, frame_keys,
                                                      bool(set_missing) and cached_f is None, what,
                                                      [k for k in missing if k in self.yuv_keys])
        rec_f = cached_f if cached_f is not None else rec_f
        if row is None:
            row = {"key": key, "codec": spec.name, "label": spec.label, "kind": spec.kind,
                   "point": str(point), "point_label": spec.point_label(point), "sequence": seq.name,
                   "frames": n, "width": w, "height": h, "fps": seq.fps, "bytes": coded.size_bytes,
                   "bpp": coded.size_bytes * 8 / (n * w * h), "input_hash": seq.digest,
                   "matrix": self.opts.matrix, "range": self.opts.rng,
                   **colour_path(seq, spec.kind, self.opts.matrix, self.opts.rng),
                   "metrics": {}, "per_frame": {}, "protocol": {}, **coded.info}
        for k, v in per_frame.items():
            row["per_frame"][k] = [float(x) for x in v]
            row["metrics"][k] = float(np.mean(v)) if len(v) else float("nan")
        if set_missing:
            ref_f = self.ref_features(seq)
            if rec_f is None:
                rec_f = self.rec_features(key)
            for m in set_missing:
                row["metrics"][m.key] = m.from_features(ref_f.astype(np.float32), rec_f.astype(np.float32))
        if middle is not None:
            save_crop(self.cache / "crops" / f"{key}.png", middle[None])
        row.setdefault("protocol", {}).update({k: self.protocol[k] for k in missing})
        save_crop(self.cache / "crops" / f"ref-{seq.digest}.png", seq.frames)
        write_bytes_atomic(self.cache / "rows" / f"{key}.json", json.dumps(row).encode())
        _remove_tree(work)
        return self.named(row, spec, point, seq)

    def _score_stream(self, key: str, coded: Any, seq: Sequence, frame_keys: list[str], want_features: bool,
                      what: str, yuv_keys: list[str] = ()
                      ) -> tuple[dict[str, np.ndarray], np.ndarray | None, np.ndarray | None]:
        """Read the decoded frames once, a GoP-sized chunk at a time: per-frame metric values (plane metrics
        `yuv_keys` on a 4:2:0 source's planes), the decoded frames' set-metric features (saved to the cache)
        when wanted, and the middle frame (for the crop)."""
        from vvc_lightning.evaluation.planes import plane_scores_for
        from vvc_lightning.metrics.stream import StreamingScores, score_decoded

        planes = plane_scores_for(seq, coded, list(yuv_keys), self.opts.matrix, self.opts.rng)
        metrics = [m for m in (self.vm.metrics.values() if self.vm else [])
                   if m.key in frame_keys and (planes is None or m.key not in planes.keys)]
        first_set = next(iter(self.set_metrics.values()), None)
        scores = StreamingScores(metrics + ([first_set] if want_features else []), set_ref=False, what=what)
        n = seq.frames.shape[0]
        middle: list[np.ndarray] = []

        def keep_middle(start: int, rec: np.ndarray) -> None:
            if planes is not None:
                planes.update(start, rec)
            if start <= n // 2 < start + len(rec):
                middle.append(np.array(rec[n // 2 - start]))

        try:
            score_decoded(scores, iter(seq.frames), coded.iter_frames(), n, STREAM_CHUNK, keep_middle)
            rec_f = None
            if want_features and first_set is not None:
                rec_f = scores.rec_features(first_set.key)
                _save_features(self.cache / "feats" / f"{key}-{self.feat_sig}.npz", rec_f)
            values = {**{k: np.zeros(0) for k in yuv_keys}, **scores.values(),
                      **(planes.values() if planes is not None else {})}
            return values, rec_f, middle[0] if middle else None
        finally:
            scores.close()


def _save_features(path: Path, feats: np.ndarray) -> None:
    """Inception features to the cache, atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, f=feats.astype(np.float32))


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def crop_box(h: int, w: int, size: int = CROP) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the centre crop shown in the report."""
    ch, cw = min(h, size), min(w, size)
    return (h - ch) // 2, (w - cw) // 2, ch, cw


def save_crop(path: Path, frames: np.ndarray) -> None:
    """The centre crop of the middle frame as PNG."""
    from vvc_lightning.video.images import encode_png

    if path.is_file():
        return
    f = frames[len(frames) // 2]
    t, lft, ch, cw = crop_box(*f.shape[:2])
    write_bytes_atomic(path, encode_png(f[t : t + ch, lft : lft + cw]))


def meta(harness: Harness, specs: list[CodecSpec], opts: EvalOptions) -> dict:
    """Versions, colour protocol, metric protocols, codec identities, hardware, options."""
    import torch

    import vvc_lightning
    from vvc_lightning.evaluation.baselines import ffmpeg_version

    return {
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "vvc_lightning": vvc_lightning.__version__,
        "torch": torch.__version__,
        "ffmpeg": ffmpeg_version(),
        "colour": {
            "matrix": opts.matrix,
            "range": opts.rng,
            "classic_codec_input": "RGB sources: yuv420p 8-bit from RGB via vvc_lightning.video.colour "
                                   "(vvenc: the same samples x4 as yuv420p10le, "
            "output rounded back to 8 bits); decoded YUV -> RGB with the same matrix and range",
            "psnr": "RGB, peak 255",
            "psnr_y": f"Y' from RGB, {opts.matrix} {opts.rng}, 8-bit rounded (RGB sources); the Y plane "
                      "(4:2:0 sources)",
        },
        "intra_period": "one intra picture per sequence" if opts.intra_period is None else opts.intra_period,
        "rate": "bpp = bytes of the raw elementary stream (classic) or .vvc bitstream (neural) x 8 / (frames "
                "x W x H)",
        "metrics": harness.info,
        "codecs": {s.name: {"label": s.label, "kind": s.kind, "points": [str(p) for p in s.points],
                            "rate_option": s.rate_option, "identity": s.identity} for s in specs},
        "hardware": {"machine": platform.machine(), "processor": platform.processor(),
                     "threads": torch.get_num_threads(), "device": opts.device},
        "options": asdict(opts),
    }


def evaluate(opts: EvalOptions) -> dict[str, Path]:
    """Run the whole evaluation and write every output (with `opts.shard`: that slice's rows and cache,
    `shards`); returns the output paths by name."""
    import contextlib

    from vvc_lightning.evaluation.parallel import check_jobs, start_server
    from vvc_lightning.evaluation.shards import check_slice

    check_slice(opts.shard)
    start_server(check_jobs(opts.jobs))
    with contextlib.ExitStack() as stack:
        return _evaluate(opts, stack)


def _evaluate(opts: EvalOptions, stack: Any) -> dict[str, Path]:
    """`evaluate`, its worker processes (`--jobs`) stopped when `stack` closes."""
    from tqdm import tqdm

    from vvc_lightning.evaluation import ledger, report
    from vvc_lightning.evaluation.class_report import class_report
    from vvc_lightning.evaluation.classes import read_anchor_curves
    from vvc_lightning.evaluation.comparison import bd_table, classic_points, run_rows, summarize
    from vvc_lightning.evaluation.parallel import pooled
    from vvc_lightning.evaluation.settings import parse_settings, resolve_anchor
    from vvc_lightning.evaluation.shards import check_shardable, run_shard
    from vvc_lightning.evaluation.testset_data import prepare
    from vvc_lightning.metrics.base import say_once

    asked, out = opts, make_dirs(opts.out)
    data = prepare(opts.data, opts.root, opts.protocol, opts.classes, opts.max_frames, opts.intra_period)
    external = read_anchor_curves(opts.anchor_files)
    file_curves = list(dict.fromkeys(r["codec"] for r in external))
    class_anchor = opts.anchor if opts.anchor in file_curves else None
    opts = replace(opts, intra_period=data.intra_period, anchor=None if class_anchor else opts.anchor)
    settings = parse_settings(opts.baselines, opts.presets)
    specs = build_specs(opts, settings)
    if set(file_curves) & {s.name for s in specs}:
        raise VVCError(f"--anchor-file curve names {', '.join(file_curves)} repeat a codec's; name them "
                       "NAME=FILE")
    anchor = resolve_anchor(opts.anchor, settings)
    if anchor is not None and anchor not in [s.name for s in specs]:
        raise VVCError(
            f"--anchor '{anchor}' is not one of the codecs evaluated ({', '.join(s.name for s in specs)})"
        )
    given = {st.name for st in settings if points_of(opts.points, st)}
    check_shardable(opts.shard, specs, given)
    seqs = data.load(opts.matrix, opts.rng)
    harness = stack.enter_context(pooled(Harness(opts), opts.jobs))
    notes = harness.notes(seqs) + harness.use_planes(seqs)
    if opts.shard is not None:
        return run_shard(harness, specs, seqs, asked)
    if opts.jobs > 1:
        harness.start_fixed(specs, seqs, given)
    neural = [(s, p, q) for s in specs if s.kind == "neural" for p in s.points for q in seqs]
    with tqdm(total=len(neural), desc="evaluate", unit="row", disable=not opts.progress) as bar:
        rows = run_rows(harness, neural, bar)
        kept = ledger.kept_rows(ledger.previous_rows(out), rows, specs)  # earlier runs' other curves
        searches = classic_points(harness, specs, rows + ledger.on_sequences(kept, seqs), seqs, given, bar)
        classic = [(s, p, q) for s in specs if s.kind != "neural" for p in s.points for q in seqs]
        bar.total = (bar.total or 0) + len(classic)
        rows += run_rows(harness, classic, bar)
    for search in searches.values():
        notes += [search.summary(), *search.notes]
        say_once(search.summary())
    rows += kept
    current = ledger.on_sequences(rows, seqs)
    summary = summarize(harness, specs, current, seqs)
    bd = bd_table(harness, specs, current, summary, anchor)
    class_anchor = class_anchor or (file_curves[0] if file_curves else anchor)
    class_paths, per_class, per_seq = class_report(out, current, external, data.groups, data.files,
                                                   class_anchor, harness.keys, harness.info, opts.log_rate)
    info = {**meta(harness, specs, opts), "test_set": data.describe(), "bd_rate_classes": per_class,
            "bd_rate_sequences": per_seq, "anchor": anchor, "metric_labels": harness.labels,
            "qp_search": {k: v.as_dict() for k, v in searches.items()}, "notes": notes}
    info["colour"].update(colour_protocol(opts.matrix, opts.rng, seqs))
    paths = report.write_all(out, rows, summary, bd, info, harness.keys, seqs, harness.cache / "crops",
                             opts.log_rate)
    paths = {**paths, **class_paths}
    ledger.tidy(out, paths.values())
    return paths
