"""What `evaluate --data` names, as classes of sequences: a dataset spec found under --root, or plain files
(a class per first folder below --data), with the protocol that says which frames are coded."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vvc_lightning.errors import VVCError
from vvc_lightning.evaluation.inputs import Sequence, load_sequences
from vvc_lightning.evaluation.planes import plane_sequence, probe, spec_source
from vvc_lightning.evaluation.testsets import (
    DEFAULT_PROTOCOL,
    Protocol,
    SequenceSpec,
    TestSetSpec,
    check_sizes,
    coded_frames,
    get_protocol,
    is_spec,
    load_spec,
    locate,
)
from vvc_lightning.video.plane_source import PlaneSource

PADDING = "inputs padded to each codec's multiple, never cropped; metrics on the original size"


@dataclass
class EvalData:
    """The sequences to evaluate, their classes and files, and the protocol they are coded under."""

    data: str
    spec: TestSetSpec | None
    protocol: Protocol | None
    intra_period: int | None  # the classic codecs' (None: one intra picture)
    max_frames: int | None
    groups: dict[str, str] = field(default_factory=dict)  # sequence name -> class
    files: dict[str, str] = field(default_factory=dict)  # sequence name -> file name

    def load(self, matrix: str = "bt709", rng: str = "limited") -> list[Sequence]:
        """Read the coded frames of every sequence (RGB, `matrix` / `rng` from the 4:2:0 planes)."""
        if self.spec is None:
            return self._load_plain(matrix, rng)
        names = _names(self.spec.sequences)
        out = []
        for seq, name in zip(self.spec.sequences, names, strict=True):
            n = coded_frames(seq, self.protocol or get_protocol(DEFAULT_PROTOCOL), self.max_frames)
            src = _planes(seq, n)
            if src is not None:  # 4:2:0: its planes as they are (see evaluation.planes)
                out.append(plane_sequence(name, src, str(seq.path), matrix, rng))
            else:
                frames = np.stack(list(read_frames(seq, n, matrix, rng)))
                out.append(Sequence(name, frames, seq.fps, str(seq.path)))
            self.groups[name], self.files[name] = seq.group, seq.file
        return out

    def _load_plain(self, matrix: str, rng: str) -> list[Sequence]:
        seqs = load_sequences(self.data, self.max_frames, matrix, rng)
        base = Path(os.path.expanduser(self.data))
        for s in seqs:
            self.groups[s.name] = plain_class(base, Path(s.source))
            self.files[s.name] = Path(s.source).name
        return seqs

    def describe(self) -> dict[str, Any]:
        """The test set and protocol as the report states them."""
        out: dict[str, Any] = {"data": self.data, "padding": PADDING}
        if self.spec is not None:
            out["spec"] = f"{self.spec.name} ({self.spec.origin})"
            out["classes"] = {c: [s.name for s in self.spec.sequences if s.group == c]
                              for c in self.spec.classes}
        else:
            out["classes"] = {c: [n for n, g in self.groups.items() if g == c]
                              for c in dict.fromkeys(self.groups.values())}
        if self.protocol is not None:
            out["protocol"] = f"{self.protocol.name}: {self.protocol.describe()}"
        out["intra_period"] = "one intra picture" if self.intra_period is None else self.intra_period
        if self.max_frames is not None:
            out["frames_at_most"] = self.max_frames
        return out


def plain_class(base: Path, source: Path) -> str:
    """The class of a file named by plain --data: its first folder below --data, else that folder's name."""
    if base.is_dir():
        try:
            rel = source.resolve().relative_to(base.resolve())
        except ValueError:
            return base.name or "all"
        return rel.parts[0] if len(rel.parts) > 1 else (base.resolve().name or "all")
    return source.parent.name or "all"


def _names(seqs: list[SequenceSpec]) -> list[str]:
    """Sequence names, with the class added to a name that two classes share (RaceHorses in HEVC C, D)."""
    count: dict[str, int] = {}
    for s in seqs:
        count[s.name] = count.get(s.name, 0) + 1
    return [s.name if count[s.name] == 1 else f"{s.name}-{s.group}" for s in seqs]


def _planes(seq: SequenceSpec, n: int) -> PlaneSource | None:
    """A located sequence's first `n` frames as 4:2:0 planes (None where it is not plain 4:2:0)."""
    assert seq.path is not None
    if not seq.is_raw:
        return probe(seq.path, n)
    return spec_source(seq.path, seq.width, seq.height, seq.bit_depth, min(n, seq.frames or n), seq.fps)


def read_frames(seq: SequenceSpec, n: int, matrix: str = "bt709",
                rng: str = "limited") -> Iterator[np.ndarray]:
    """The first `n` frames of a located sequence as RGB uint8; raw planes above 8 bits are rounded to 8."""
    from vvc_lightning.video.colour import yuv420_to_rgb
    from vvc_lightning.video.video_io import read_video

    assert seq.path is not None
    if not seq.is_raw:
        yield from read_video(seq.path, max_frames=n).frames
        return
    w, h, deep = seq.width, seq.height, seq.bit_depth > 8
    with open(seq.path, "rb") as f:
        for _ in range(n):
            chunk = f.read(seq.frame_bytes)
            if len(chunk) < seq.frame_bytes:
                return
            buf = np.frombuffer(chunk, "<u2" if deep else np.uint8)
            if deep:
                shift = seq.bit_depth - 8
                buf = np.minimum((buf.astype(np.uint32) + (1 << (shift - 1))) >> shift, 255).astype(np.uint8)
            y = buf[: w * h].reshape(h, w)
            u = buf[w * h : w * h * 5 // 4].reshape(h // 2, w // 2)
            v = buf[w * h * 5 // 4 :].reshape(h // 2, w // 2)
            yield yuv420_to_rgb(y, u, v, matrix, rng)


def prepare(data: str, root: str | None = None, protocol: str | None = None, classes: list[str] | None = None,
            max_frames: int | None = None, intra_period: int | None = None) -> EvalData:
    """Resolve --data (a spec under --root, or plain files), --protocol and --classes; reads no frame."""
    proto = get_protocol(protocol) if protocol else None
    if proto is not None and intra_period is not None and intra_period != proto.intra_period:
        raise VVCError(f"--intra-period {intra_period} contradicts --protocol {proto.name} "
                       f"({proto.describe()}); give one of them")
    if not is_spec(data):
        if root is not None:
            raise VVCError(f"--root is for dataset specs (e.g. --data uvg --root DIR); --data '{data}' names "
                           "files: leave --root out")
        if classes:
            raise VVCError("--classes picks classes of a dataset spec (e.g. --data hevc --classes HEVC_B)")
        frames = _cap(proto.frames if proto else None, max_frames)
        ip = intra_period if proto is None else (None if proto.intra_period < 0 else proto.intra_period)
        return EvalData(data, None, proto, ip, frames)
    if root is None:
        raise VVCError(f"--data {data} is a dataset spec: give --root DIR, the folder holding its files")
    spec = check_sizes(locate(load_spec(data).select(classes), root))
    if proto is None and intra_period is None:
        declared = {s.intra_period for s in spec.sequences if s.intra_period is not None}
        if len(declared) > 1:
            raise VVCError(f"{spec.name} declares intra periods {sorted(declared)}; evaluate one --classes "
                           "at a time or give --protocol")
        if declared:
            intra_period = declared.pop()
    if proto is None:
        proto = get_protocol(DEFAULT_PROTOCOL)
        if intra_period is not None and intra_period != proto.intra_period:
            proto = Protocol(f"{proto.frames}f-ip{intra_period}", proto.frames, intra_period)
    return EvalData(data, spec, proto, None if proto.intra_period < 0 else proto.intra_period, max_frames)


def _cap(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)
