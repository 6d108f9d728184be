"""The standard test sets as dataset specs: classes of raw 4:2:0 sequences, found under a root folder.

A spec (YAML or JSON) names classes and their sequences; `width`, `height`, `fps`, `frames`, `bit_depth`
and `intra_period` may be given at the top, per class or per sequence (the nearest wins), and may be left
out where the file name says them (`Name_WxH_FPS.yuv`, `..._10bit...`; frames from the file length).
Shipped specs: uvg, mcl-jcv and hevc (classes HEVC_B to HEVC_E). A protocol says how many frames are
coded and the classic codecs' intra period. Inputs are padded to each codec's multiple, never cropped;
metrics are computed on the original size.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from vvc_lightning.errors import VVCError

SPEC_EXTS = (".yaml", ".yml", ".json")
LEVEL_KEYS = ("width", "height", "fps", "frames", "bit_depth", "intra_period")
TOP_KEYS = ("name", "classes") + LEVEL_KEYS
CLASS_KEYS = ("folder", "sequences") + LEVEL_KEYS
SEQUENCE_KEYS = ("file",) + LEVEL_KEYS
BIT_DEPTH_NAME = re.compile(r"(?:^|[_.-])(?:(8|10|12|16)bit|p(10|12|16)(?:le)?)(?:$|[_.-])", re.IGNORECASE)


@dataclass(frozen=True)
class Protocol:
    """How much of each sequence is coded: `frames` (None: all) and the classic codecs' intra period
    (-1: a single intra picture)."""

    name: str
    frames: int | None
    intra_period: int

    def describe(self) -> str:
        """'96 frames, intra period 32' / 'all frames, one intra picture'."""
        n = "all frames" if self.frames is None else f"{self.frames} frames"
        ip = "one intra picture" if self.intra_period < 0 else f"intra period {self.intra_period}"
        return f"{n}, {ip}"


PROTOCOLS = {p.name: p for p in (Protocol("96f-ip32", 96, 32), Protocol("96f-ip96", 96, 96),
                                 Protocol("all-ip-1", None, -1))}
PROTOCOL_ALIASES = {"all-ip1": "all-ip-1", "all": "all-ip-1", "96f": "96f-ip32"}
DEFAULT_PROTOCOL = "96f-ip32"


def get_protocol(name: str) -> Protocol:
    """A protocol by name ('96f-ip32', '96f-ip96', 'all-ip-1'); one line listing them otherwise."""
    key = PROTOCOL_ALIASES.get(name.strip().lower(), name.strip().lower())
    if key not in PROTOCOLS:
        raise VVCError(f"--protocol '{name}' is not known; use one of {', '.join(PROTOCOLS)} (96 frames with "
                       "an intra period of 32 or 96, or all frames with one intra picture)")
    return PROTOCOLS[key]


@dataclass(frozen=True)
class SequenceSpec:
    """One sequence of a test set: its class, name, file and what the file holds."""

    group: str
    name: str
    file: str
    width: int
    height: int
    fps: float
    frames: int | None
    bit_depth: int = 8
    intra_period: int | None = None
    folder: str | None = None
    path: Path | None = None

    @property
    def label(self) -> str:
        return f"{self.group}/{self.name}"

    @property
    def frame_bytes(self) -> int:
        """Bytes of one 4:2:0 frame of the raw file."""
        return self.width * self.height * 3 // 2 * (1 if self.bit_depth <= 8 else 2)

    @property
    def is_raw(self) -> bool:
        return Path(self.file).suffix.lower() == ".yuv"


@dataclass
class TestSetSpec:
    """Classes of sequences, in the spec's order; `origin` is where the spec came from."""

    name: str
    origin: str
    sequences: list[SequenceSpec] = field(default_factory=list)

    @property
    def classes(self) -> list[str]:
        return list(dict.fromkeys(s.group for s in self.sequences))

    def select(self, classes: list[str] | None) -> TestSetSpec:
        """Only the named classes (case-insensitive); one line naming the known ones otherwise."""
        if not classes:
            return self
        known = {c.lower(): c for c in self.classes}
        bad = [c for c in classes if c.lower() not in known]
        if bad:
            raise VVCError(f"--classes: {', '.join(bad)} not in {self.origin}; its classes are "
                           f"{', '.join(self.classes)}")
        keep = {known[c.lower()] for c in classes}
        return replace(self, sequences=[s for s in self.sequences if s.group in keep])


def shipped_specs() -> list[str]:
    """Names of the specs shipped with the package (uvg, mcl-jcv, hevc)."""
    root = resources.files("vvc_lightning.evaluation").joinpath("specs")
    return sorted(p.name.rsplit(".", 1)[0] for p in root.iterdir() if p.name.endswith(".yaml"))


def _spec_path(name: str) -> Path | None:
    """A spec by path, else a shipped spec by name (suffix optional); None if neither (or if `name` is an
    existing folder or other file: plain data)."""
    path = Path(os.path.expanduser(name))
    if path.is_file() and path.suffix.lower() in SPEC_EXTS:
        return path
    if path.exists():
        return None
    stem = name.strip().lower().removesuffix(".yaml")
    packaged = resources.files("vvc_lightning.evaluation").joinpath("specs", f"{stem}.yaml")
    return Path(str(packaged)) if packaged.is_file() else None


def _read(path: Path) -> Any:
    import yaml

    from vvc_lightning.configuration.ranges import check_yaml_size

    try:
        text = path.read_text(encoding="utf-8")
        doc = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        raise VVCError(f"dataset spec '{path}' cannot be read: {str(exc).splitlines()[0]}") from exc
    check_yaml_size(doc, f"dataset spec '{path}'")
    return doc


def is_spec(data: str) -> bool:
    """Whether `--data` names dataset specs: shipped names or spec files with a top-level 'classes'."""
    for part in str(data).split(","):
        path = _spec_path(part)
        if path is None:
            return False
        if path.suffix.lower() in SPEC_EXTS and not str(path).startswith(str(_shipped_root())):
            try:
                doc = _read(path)
            except VVCError:
                return False
            if not (isinstance(doc, dict) and "classes" in doc):
                return False
    return True


def _shipped_root() -> Path:
    return Path(str(resources.files("vvc_lightning.evaluation").joinpath("specs")))


def load_spec(data: str) -> TestSetSpec:
    """The spec(s) named by `data` (a file, a shipped name, or several joined by commas), validated."""
    specs = []
    for part in str(data).split(","):
        path = _spec_path(part)
        if path is None:
            raise VVCError(f"dataset spec '{part}' is neither a .yaml / .json file nor a shipped spec "
                           f"({', '.join(shipped_specs())})")
        specs.append(_parse(_read(path), str(path)))
    if len(specs) == 1:
        return specs[0]
    seqs = [s for spec in specs for s in spec.sequences]
    groups = [c for spec in specs for c in spec.classes]
    if len(set(groups)) != len(groups):
        raise VVCError(f"--data {data}: a class appears in two specs ({', '.join(groups)}); rename one")
    return TestSetSpec("+".join(s.name for s in specs), data, seqs)


def _check_keys(node: Any, allowed: tuple[str, ...], where: str) -> dict:
    if not isinstance(node, dict):
        raise VVCError(f"{where} must be a mapping of {', '.join(allowed)}, got {type(node).__name__}")
    bad = [str(k) for k in node if k not in allowed]
    if bad:
        raise VVCError(f"{where}: unknown key(s) {', '.join(bad)}; allowed: {', '.join(allowed)}")
    return node


def _level_value(key: str, value: Any, where: str) -> Any:
    if key == "fps":
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1000:
            raise VVCError(f"{where}: fps must be a number in (0, 1000], got {value!r}")
        return float(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise VVCError(f"{where}: {key} must be a whole number, got {value!r}")
    if key == "intra_period" and (value == -1 or value >= 1):
        return value
    if key == "intra_period":
        raise VVCError(f"{where}: intra_period must be -1 (one intra picture) or >= 1, got {value}")
    if key == "bit_depth" and value not in (8, 10, 12, 16):
        raise VVCError(f"{where}: bit_depth must be 8, 10, 12 or 16, got {value}")
    if key in ("width", "height") and (value < 2 or value % 2):
        raise VVCError(f"{where}: {key} of a 4:2:0 sequence must be even and >= 2, got {value}")
    if value < 1:
        raise VVCError(f"{where}: {key} must be >= 1, got {value}")
    return value


def _levels(node: dict, inherited: dict, where: str) -> dict:
    out = dict(inherited)
    out.update({k: _level_value(k, node[k], where) for k in LEVEL_KEYS if k in node})
    return out


def _parse(doc: Any, origin: str) -> TestSetSpec:
    top = _check_keys(doc, TOP_KEYS, f"dataset spec '{origin}'")
    classes = top.get("classes")
    if not isinstance(classes, dict) or not classes:
        raise VVCError(f"dataset spec '{origin}' needs 'classes:', a mapping of class -> sequences")
    base = _levels(top, {}, f"dataset spec '{origin}'")
    spec = TestSetSpec(str(top.get("name") or Path(origin).stem), origin)
    for group, cnode in classes.items():
        where = f"dataset spec '{origin}', class {group}"
        cnode = _check_keys(cnode, CLASS_KEYS, where)
        cvals = _levels(cnode, base, where)
        seqs = cnode.get("sequences")
        if not isinstance(seqs, dict) or not seqs:
            raise VVCError(f"{where} needs 'sequences:', a mapping of name -> {{file: ..., ...}}")
        for name, snode in seqs.items():
            swhere = f"dataset spec '{origin}', {group}/{name}"
            snode = _check_keys(snode if snode is not None else {}, SEQUENCE_KEYS, swhere)
            spec.sequences.append(_sequence(str(group), str(name), snode, _levels(snode, cvals, swhere),
                                            cnode.get("folder"), swhere))
    return spec


def _sequence(group: str, name: str, node: dict, vals: dict, folder: Any, where: str) -> SequenceSpec:
    """A sequence from its spec entry, with what its file name says filling the gaps."""
    file = str(node.get("file") or "")
    if not file:
        if not {"width", "height", "fps"} <= set(vals):
            raise VVCError(f"{where}: give file: (e.g. {name}_1920x1080_50.yuv) or width, height and fps")
        file = f"{name}_{vals['width']}x{vals['height']}_{vals['fps']:g}.yuv"
    named = _from_name(file) if Path(file).suffix.lower() == ".yuv" else {}
    vals = {**named, **vals}
    missing = [k for k in ("width", "height", "fps") if k not in vals]
    if missing:
        raise VVCError(f"{where}: {', '.join(missing)} not given and not in the file name '{file}'; add "
                       f"them to the spec or name the file like {name}_1920x1080_50.yuv")
    return SequenceSpec(group, name, file, vals["width"], vals["height"], vals["fps"], vals.get("frames"),
                        vals.get("bit_depth", 8), vals.get("intra_period"),
                        str(folder) if folder is not None else None)


def _from_name(file: str) -> dict:
    """Width, height, fps and bit depth that a raw file's name states (those it states)."""
    from vvc_lightning.video.video_io import YUV_NAME

    stem = Path(file).stem
    out: dict[str, Any] = {}
    matches = list(YUV_NAME.finditer(stem))
    if matches:
        m = matches[-1]
        out["width"], out["height"] = int(m["w"]), int(m["h"])
        if m["fps"]:
            out["fps"] = float(m["fps"])
    depth = BIT_DEPTH_NAME.search(stem)
    if depth:
        out["bit_depth"] = int(depth[1] or depth[2])
    return out


def raw_sequence(path: str | Path, group: str = "") -> SequenceSpec:
    """A raw .yuv file described by its name alone (`Name_WxH_FPS.yuv`); frames from its length."""
    path = Path(path)
    vals = _from_name(path.name)
    if not {"width", "height"} <= set(vals):
        raise VVCError(f"cannot tell the size of raw video '{path.name}': name it like NAME_1920x1080_50.yuv "
                       "or describe it in a dataset spec")
    from vvc_lightning.video.video_io import DEFAULT_FPS

    seq = SequenceSpec(group or path.parent.name, path.stem.split("_")[0] or path.stem, path.name,
                       vals["width"], vals["height"], vals.get("fps", DEFAULT_FPS), None,
                       vals.get("bit_depth", 8), path=path)
    size = path.stat().st_size
    if size == 0 or size % seq.frame_bytes:
        raise VVCError(f"'{path}' is {size} bytes, not a whole number of {seq.width}x{seq.height} "
                       f"{seq.bit_depth}-bit 4:2:0 frames ({seq.frame_bytes} bytes each); check its name")
    return replace(seq, frames=size // seq.frame_bytes)


def _candidates(root: Path, spec: TestSetSpec, seq: SequenceSpec) -> list[Path]:
    """Where a sequence's file is looked for first: ROOT/FOLDER, ROOT/CLASS, ROOT/SPEC/CLASS, ROOT."""
    dirs = [root / seq.folder] if seq.folder else []
    dirs += [root / seq.group, root / spec.name / seq.group, root / spec.name, root]
    return list(dict.fromkeys(d / seq.file for d in dirs))


def _index(root: Path) -> dict[str, list[Path]]:
    """Every file below `root` by name (hidden folders skipped)."""
    out: dict[str, list[Path]] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for f in filenames:
            out.setdefault(f, []).append(Path(dirpath) / f)
    return out


def locate(spec: TestSetSpec, root: str | Path) -> TestSetSpec:
    """The spec with each sequence's file found under `root`; all missing files named in one error, a
    line each, saying where they were looked for."""
    root = Path(os.path.expanduser(str(root)))
    if not root.is_dir():
        raise VVCError(f"--root '{root}' is not a folder; give the folder holding the downloaded sequences")
    found, missing, index = [], [], None
    for seq in spec.sequences:
        hit = next((p for p in _candidates(root, spec, seq) if p.is_file()), None)
        if hit is None:
            index = _index(root) if index is None else index
            hits = index.get(seq.file, [])
            if len(hits) > 1:
                raise VVCError(f"{seq.label}: '{seq.file}' is in {len(hits)} places under {root} "
                               f"({hits[0].parent}, {hits[1].parent}); keep one or give its folder as --root")
            hit = hits[0] if hits else None
        if hit is None:
            looked = ", ".join(str(p.parent) for p in _candidates(root, spec, seq))
            missing.append(f"  {seq.label}: {seq.file} not found (looked in {looked} and every folder below)")
        found.append(replace(seq, path=hit))
    if missing:
        raise VVCError(f"{len(missing)} of {len(spec.sequences)} files of {spec.name} missing under --root "
                       f"{root} (download them, or evaluate some classes with --classes):\n"
                       + "\n".join(missing))
    return replace(spec, sequences=found)


def check_sizes(spec: TestSetSpec) -> TestSetSpec:
    """Raw files whose length is not the declared size x frames: one line each, in one error; frames not
    declared are taken from the file length."""
    bad, out = [], []
    for seq in spec.sequences:
        if seq.path is None or not seq.is_raw:
            out.append(seq)
            continue
        size = seq.path.stat().st_size
        what = f"{seq.width}x{seq.height} {seq.bit_depth}-bit 4:2:0"
        if seq.frames is None:
            if size == 0 or size % seq.frame_bytes:
                bad.append(f"  {seq.label}: '{seq.path}' is {size} bytes, not a whole number of {what} "
                           f"frames ({seq.frame_bytes} bytes each)")
            out.append(replace(seq, frames=size // seq.frame_bytes))
            continue
        expected = seq.frame_bytes * seq.frames
        if size != expected:
            bad.append(f"  {seq.label}: '{seq.path}' is {size} bytes, the spec's {what} x {seq.frames} "
                       f"frames is {expected} bytes ({size / seq.frame_bytes:.6g} frames of that size)")
        out.append(seq)
    if bad:
        raise VVCError(f"{len(bad)} file(s) of {spec.name} do not match the spec (fix the spec's width, "
                       "height, frames or bit_depth, or replace the file):\n" + "\n".join(bad))
    return replace(spec, sequences=out)


def coded_frames(seq: SequenceSpec, protocol: Protocol, max_frames: int | None = None) -> int:
    """How many frames of `seq` are coded under `protocol` (and --max-frames)."""
    n = seq.frames if seq.frames is not None else 1 << 30
    for cap in (protocol.frames, max_frames):
        n = min(n, cap) if cap is not None else n
    return n


__all__ = ["PROTOCOLS", "Protocol", "SequenceSpec", "TestSetSpec", "check_sizes", "coded_frames",
           "get_protocol", "is_spec", "load_spec", "locate", "raw_sequence", "shipped_specs"]
