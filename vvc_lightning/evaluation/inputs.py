"""What the evaluation harness compares: the test sequences, and the codecs (classic and neural) as runners.

`--data` is a folder / file / glob of videos and .yuv files, or a config (.yaml) whose datamodule's test
split gives the sequences. A codec runner maps (sequence, rate point, work folder) to decoded frames and
the real size of what was coded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from vvc_lightning.codec.entropy.gain import quality_label
from vvc_lightning.codec.pipeline.options import CodecOptions
from vvc_lightning.errors import VVCError
from vvc_lightning.evaluation.sequence import Coded, Sequence

VIDEO_EXTS = (".mp4", ".avi", ".mkv", ".y4m", ".mov", ".webm", ".m4v", ".yuv")


def _unique(name: str, taken: set[str]) -> str:
    out, k = name, 1
    while out in taken:
        k += 1
        out = f"{name}_{k}"
    taken.add(out)
    return out


def _from_config(path: str, max_frames: int | None) -> list[Sequence]:
    from vvc_lightning.configuration.config import load_config
    from vvc_lightning.registry import DATAMODULES

    cfg = load_config([path])
    data = dict(cfg.data)
    name = data.pop("name")
    dm = DATAMODULES.create(name, **data)
    sources = dm.test_sources
    if not sources:
        raise VVCError(f"config '{path}' has no test split (data.test_dir); give a folder of videos instead")
    taken: set[str] = set()
    out = []
    for src in sources:
        frames = list(src.iter_frames(max_frames))
        if not frames:
            raise VVCError(f"test sequence '{src.label}' holds no decodable frame")
        out.append(Sequence(_unique(src.name, taken), np.stack(frames), float(src.fps()), str(src.label)))
    return out


def load_sequences(data: str, max_frames: int | None = None, matrix: str = "bt709",
                   rng: str = "limited") -> list[Sequence]:
    """The reference sequences named by `--data` (at most `max_frames` frames each)."""
    if max_frames is not None and max_frames < 1:
        raise VVCError(f"--max-frames must be 1 or more, got {max_frames}")
    if str(data).endswith((".yaml", ".yml")):
        return _from_config(str(data), max_frames)
    from vvc_lightning.datamodules.base import resolve_paths
    from vvc_lightning.video.video_io import read_video

    paths = resolve_paths(str(data), VIDEO_EXTS, "--data")
    taken: set[str] = set()
    out = []
    for p in paths:
        from vvc_lightning.evaluation.planes import plane_sequence, probe

        src = probe(p, max_frames)
        if src is not None:  # 4:2:0: its planes as they are
            out.append(plane_sequence(_unique(p.stem, taken), src, str(p), matrix, rng))
            continue
        kw = {"matrix": matrix, "rng": rng} if p.suffix.lower() == ".yuv" else {}
        v = read_video(p, max_frames=max_frames, **kw)
        out.append(Sequence(_unique(p.stem, taken), v.frames, v.fps, str(p)))
    return out


@dataclass
class CodecSpec:
    """A codec curve: its name, rate points, a runner, and what identifies its outputs (for the cache)."""

    name: str
    label: str
    kind: str  # baseline | neural
    points: list[Any]
    run: Callable[[Sequence, Any, Path], Coded]
    identity: dict[str, Any]
    rate_option: str = ""
    point_range: tuple[int, int] | None = None  # classic codecs: the lowest and highest point they take
    point_ids: Callable[[Any], dict[str, Any]] | None = None  # what codes a point (default: identity + point)

    def point_label(self, point: Any) -> str:
        return f"{self.rate_option}{point}" if self.rate_option else str(point)

    def point_identity(self, point: Any) -> dict[str, Any]:
        """What the rows of one rate point depend on (never the curve's name)."""
        return self.point_ids(point) if self.point_ids else {"codec": self.identity, "point": str(point)}


def baseline_spec(name: str, points: list[int] | None = None, preset: str | None = None,
                  intra_period: int | None = None, matrix: str = "bt709", rng: str = "limited",
                  structure: str | None = None, curve: str | None = None) -> CodecSpec:
    """A classic codec through ffmpeg (see `vvc_lightning.evaluation.baselines`), as the curve `curve`
    (default: the encoder's name); `structure` 'ld' (low delay) or 'ra' (see `settings`)."""
    from vvc_lightning.evaluation.baselines import ffmpeg_version, get_encoder
    from vvc_lightning.evaluation.settings import STRUCTURES

    enc = get_encoder(name)
    enc.check_available()
    preset = preset or enc.default_preset
    structure = structure or enc.default_structure

    def run(seq: Sequence, point: Any, work: Path) -> Coded:
        if seq.planes is not None:  # a 4:2:0 source: its own planes (see evaluation.planes)
            from vvc_lightning.evaluation.planes import run_classic

            return run_classic(enc, seq.planes, int(point), work, intra_period, preset, matrix, rng,
                               structure)
        r = enc.run(seq.video, int(point), work, intra_period, preset, matrix, rng, structure)
        return Coded(r.frames, r.stream_bytes, {
            "command": r.command, "decode_command": r.decode_command, "version": r.version,
            "intra_pictures": r.intra_pictures, "encode_seconds": r.encode_seconds,
            "decode_seconds": r.decode_seconds, "stream_format": enc.raw_format, "preset": preset,
            "structure": structure,
        })

    identity = {"encoder": name, "preset": preset, "intra_period": intra_period, "ffmpeg": ffmpeg_version(),
                "version": enc.version, "matrix": matrix, "range": rng, "structure": structure, "protocol": 1}
    pts = list(points) if points else list(enc.default_points)
    label = f"{enc.label} {preset}, {STRUCTURES[structure]}"
    return CodecSpec(curve or name, label, "baseline", pts, run, identity, enc.rate_option, enc.point_range)


def _file_digest(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()[:16]


def _neural_sources(ckpts: list[str]) -> dict[str, Any]:
    """Label -> checkpoint path or 'zoo:NAME', each checked before any work."""
    from vvc_lightning.store.loader import read_checkpoint
    from vvc_lightning.store.zoo import PREFIX, get_entry

    labels: dict[str, Any] = {}
    for spec in ckpts:
        if str(spec).startswith(PREFIX):
            get_entry(str(spec))  # an unknown name fails here, listing the known ones
            labels[_unique(str(spec)[len(PREFIX):], set(labels))] = str(spec)
        else:
            read_checkpoint(spec)  # a missing, foreign or incompatible file fails here, before any work
            labels[_unique(Path(spec).stem, set(labels))] = Path(spec)
    return labels


def _source_digest(src: Any) -> str:
    from vvc_lightning.store.zoo import get_entry

    return _file_digest(src) if isinstance(src, Path) else _file_digest(get_entry(src).weights)


def neural_specs(ckpts: list[str], names: list[str] | None = None, options: CodecOptions | None = None,
                 device: str = "cpu", qualities: list[float] | None = None) -> list[CodecSpec]:
    """The neural curves: one per checkpoint or shipped model 'zoo:NAME', named after the model or the file
    (or `names[i]`; entries given the same name join one curve, one rate point each), one rate point per
    quality of a variable-rate model; coded with `options` to real .vvc bytes on `device` and decoded back
    a few GoPs at a time. A point's rows depend on its weights, quality and coding options, not on names."""
    import re
    import time

    options = options if options is not None else CodecOptions()
    sources = _neural_sources(ckpts)
    entries = list(sources)
    names = list(names) if names else entries
    if len(names) != len(entries):
        raise VVCError(f"{len(names)} --ckpt-name for {len(entries)} models (--ckpt, then --model): give one "
                       "name per model in that order; repeat a name to join fixed-rate checkpoints in one "
                       "curve")
    bad = [n for n in names if not re.fullmatch(r"[\w.+@-]+", n)]
    if bad:
        raise VVCError(f"curve name '{bad[0]}': use letters, digits and . _ + @ - only")
    digests = {k: _source_digest(p) for k, p in sources.items()}
    groups: dict[str, list[str]] = {}
    for entry, name in zip(entries, names, strict=True):
        groups.setdefault(name, []).append(entry)
    points: dict[tuple[str, str], tuple[str, float | None]] = {}  # (curve, point) -> (entry, quality)
    for name, members in groups.items():
        for entry in members:
            for q in qualities or [None]:  # a one-model curve's points go by its name: NAME@q3, NAME
                label = name if len(members) == 1 else entry
                points[name, label if q is None else label + quality_label(q)] = (entry, q)
    codecs: dict[tuple[str, float | None], Any] = {}
    coding = {"gop": options.gop, "overlap": options.overlap, "theta": options.theta, "tile": options.tile,
              "matrix": options.matrix, "range": options.rng}

    def codec_for(entry: str, q: float | None) -> Any:
        if (digests[entry], q) not in codecs:
            from vvc_lightning.codec.pipeline.video_codec import VideoCodec
            from vvc_lightning.store.loader import load

            codec = VideoCodec(load(sources[entry]), options.replace(quality=q))
            codec.model.to(device)
            codecs[digests[entry], q] = codec
        return codecs[digests[entry], q]

    def curve(name: str) -> CodecSpec:
        def run(seq: Sequence, point: Any, work: Path) -> Coded:
            entry, q = points[name, str(point)]
            codec = codec_for(entry, q)
            t0 = time.perf_counter()
            data = codec.encode_frames(iter(seq.frames), seq.fps, seq.frames.shape[0])
            info = {
                "command": f"VideoCodec(load('{sources[entry]}'), {codec.options}); device {device}",
                "version": "vvc-lightning", "quality": q, "device": str(device),
                "encode_seconds": time.perf_counter() - t0, "decode_seconds": None,
                "stream_format": "vvc-lightning bitstream",
            }

            def decoded() -> Iterator[np.ndarray]:  # decodes a few GoPs at a time as the harness reads
                yield from codec.decode_frames(data)
                info["decode_seconds"] = codec.timings.get("total", 0.0)  # decoding only, not the reader's

            return Coded(None, len(data), info, stream=decoded())

        def point_ids(point: Any) -> dict[str, Any]:
            entry, q = points[name, str(point)]
            return {"weights": digests[entry], "quality": q, **coding}

        identity = {"checkpoints": {e: digests[e] for e in groups[name]}, **coding}
        return CodecSpec(name, f"{name} (neural)", "neural", [p for c, p in points if c == name], run,
                         identity, point_ids=point_ids)

    return [curve(name) for name in groups]


def build_specs(opts: Any, settings: list[Any] | None = None) -> list[CodecSpec]:
    """The codec curves of `opts` (`harness.EvalOptions`) to run: one per neural model, then each classic
    setting (`settings.Setting`)."""
    from vvc_lightning.evaluation.settings import parse_settings

    settings = parse_settings(opts.baselines, opts.presets) if settings is None else settings
    specs = []
    if opts.ckpts:
        codec = replace(opts.codec, matrix=opts.matrix, rng=opts.rng)
        names = [opts.ckpt_name] if isinstance(opts.ckpt_name, str) else opts.ckpt_name
        specs += neural_specs(opts.ckpts, names, codec, opts.device, opts.qualities)
    for st in settings:
        specs.append(baseline_spec(st.encoder, points_of(opts.points, st), st.preset, opts.intra_period,
                                   opts.matrix, opts.rng, st.structure, st.name))
    if not specs:
        raise VVCError("nothing to evaluate: give --ckpt and/or --baselines (e.g. --baselines x265,vvenc)")
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise VVCError(f"codec names repeat ({names}); use --ckpt-name to rename a neural curve")
    unknown = set(opts.points) - {n for st in settings for n in (st.name, st.alias)}
    if unknown:
        raise VVCError(f"--points names codecs not in --baselines: {', '.join(sorted(unknown))}")
    return specs


def points_of(points: dict[str, list[int]], setting: Any) -> list[int] | None:
    """The --points given for a setting, by its name or the bare encoder name it was asked for by."""
    return points.get(setting.name) or (points.get(setting.alias) if setting.alias else None)


def parse_mapping(items: list[str] | None, what: str) -> dict[str, str]:
    """['x265=27,32', 'vvenc=30'] -> {'x265': '27,32', 'vvenc': '30'}."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise VVCError(f"{what} takes CODEC=VALUE, got '{item}'")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def parse_points(text: str, codec: str) -> list[int]:
    """'22,27,32' -> [22, 27, 32]."""
    try:
        pts = [int(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise VVCError(f"rate points for {codec} must be integers like 22,27,32, got '{text}'") from exc
    if not pts:
        raise VVCError(f"no rate point given for {codec}")
    return pts


__all__ = [
    "Coded",
    "CodecSpec",
    "Sequence",
    "baseline_spec",
    "build_specs",
    "load_sequences",
    "neural_specs",
    "parse_mapping",
    "parse_points",
]
