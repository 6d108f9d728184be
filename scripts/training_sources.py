"""Where the offline training data comes from: Debian packages fetched with `apt-get download` and unpacked
with `dpkg -x` into a cache (nothing installed), and Python packages already installed here.

A package that cannot be had stops the build with one line naming it (`SourceError`).
"""

from __future__ import annotations

import fnmatch
import importlib.util
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from vvc_lightning.errors import VVCError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")

# Debian package: globs (inside the unpacked package) of its photographs and backgrounds. Everything the
# globs find is measured; the photo rule (vvc_lightning/video/photo_filter.py) drops what is no photo.
DEB_PHOTOS = {
    "gnome-backgrounds": ["usr/share/backgrounds/gnome/*"],
    "mate-backgrounds": ["usr/share/backgrounds/mate/*/*"],
    "plasma-workspace-wallpapers": ["usr/share/wallpapers/*/contents/images*/*"],
    "ukui-wallpapers": ["usr/share/backgrounds/*"],
    "lomiri-wallpapers-16.04": ["usr/share/backgrounds/*"],
    "lomiri-wallpapers-20.04": ["usr/share/backgrounds/*"],
    "sway-backgrounds": ["usr/share/backgrounds/sway/*"],
    "xfdesktop4-data": ["usr/share/backgrounds/xfce/*"],
    "desktop-base": ["usr/share/desktop-base/*-theme/*/*", "usr/share/plymouth/themes/*/*"],
    "opencv-doc": [
        "usr/share/doc/opencv-doc/examples/data/*",
        "usr/share/doc/opencv-doc/examples/*/*.jpg",
        "usr/share/doc/opencv-doc/examples/*/*.png",
        "usr/share/doc/opencv-doc/examples/*/*/*.jpg",
    ],
    "hugin-data": ["usr/share/hugin/xrc/data/help_en_EN/*.jpg"],
    "forensics-samples-files": ["usr/share/forensics-samples/original-files/*/*"],
    "gimp-help-en": [
        "usr/share/gimp/2.0/help/en/images/tutorials/*.jpg",
        "usr/share/gimp/2.0/help/en/images/tutorials/*/*.jpg",
    ],
    "palapeli-data": ["usr/share/palapeli/collection/*"],
}
# Python package: photos it ships.
PY_PHOTOS = {
    "skimage": ["data/astronaut.png", "data/chelsea.png", "data/coffee.png", "data/rocket.jpg",
                "data/motorcycle_left.png", "data/hubble_deep_field.jpg"],
    "matplotlib": ["mpl-data/sample_data/grace_hopper.jpg"],
    "sklearn": ["datasets/images/china.jpg", "datasets/images/flower.jpg"],
}
PY_LICENCES = {
    "skimage": "BSD-3-Clause (scikit-image; data/README.txt names each image's licence)",
    "matplotlib": "Matplotlib licence (PSF-based)",
    "sklearn": "BSD-3-Clause",
    "skvideo": "BSD-3-Clause",
}

# Package: the folder depth (in the unpacked package) whose folders each hold one scene's files (sizes,
# light and dark variants).
SCENE_FOLDERS = {"plasma-workspace-wallpapers": 4}
# Words that name a variant of the same picture (another size, eye, exposure, projection, colour scheme).
_VARIANT = re.compile(r"([_-](?i:\d+x\d+|portrait|left|right|dark|light|original|modified|no-?logo|fisheye|"
                      r"stereographic|cylindrical|equirectangular|circ|ff|d|l)|(?<=[a-z])[LRAB])+$")


class SourceError(VVCError):
    """A package or file the training data needs cannot be had."""


@dataclass(frozen=True)
class Package:
    """An unpacked package: name, version, licence summary and the folder its files are in."""

    name: str
    version: str
    licence: str
    root: Path
    origin: str  # "debian" or "python"
    stanzas: tuple = ()  # DEP-5 (file patterns, licence) pairs


def _run(cmd: list[str], cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(cmd, 124, "", f"E: no answer within {timeout:.0f} s (no network?)")


def fetch_deb(name: str, cache: Path, timeout: float = 600, apt_options: tuple[str, ...] = (),
              advice: bool = True) -> Path:
    """The package's .deb from `cache`, downloaded there with `apt-get download` when not yet cached (the
    error ends with what to do unless `advice` is False)."""
    cache.mkdir(parents=True, exist_ok=True)
    have = sorted(cache.glob(f"{name}_*.deb"))
    if have:
        return have[-1]
    if shutil.which("apt-get") is None:
        raise SourceError(f"package '{name}' cannot be had: no apt-get here; put its .deb in {cache}")
    with tempfile.TemporaryDirectory(dir=cache) as tmp:  # a failed download leaves nothing in the cache
        r = _run(["apt-get", "download", "-q", *apt_options, name], cwd=Path(tmp), timeout=timeout)
        debs = list(Path(tmp).glob(f"{name}_*.deb"))
        if r.returncode != 0 or not debs:
            why = next((ln for ln in r.stderr.splitlines() if ln.startswith("E:")), r.stderr.strip()[-200:])
            fix = f"; run 'apt-get update', or put its .deb in {cache}" if advice else ""
            raise SourceError(
                f"package '{name}' cannot be had: apt-get download failed ({why or 'no .deb'}){fix}"
            )
        return Path(shutil.move(str(debs[0]), cache / debs[0].name))


def check_can_fetch(names: list[str], cache: Path, timeout: float = 60) -> None:
    """Return when every package's .deb is in `cache` or this machine downloads the smallest missing one
    there within `timeout` s (a machine without network fails in seconds); else raise `SourceError`."""
    missing = [n for n in names if not any(cache.glob(f"{n}_*.deb"))]
    if not missing:
        return
    if shutil.which("apt-get") is None:
        raise SourceError(f"package '{missing[0]}' cannot be had: no apt-get here")
    r = _run(["apt-get", "download", "--print-uris", "-q", *missing], timeout=timeout)  # sizes, no network
    sizes = {ln.split()[1].split("_")[0]: int(ln.split()[2]) for ln in r.stdout.splitlines()
             if ln.startswith("'") and len(ln.split()) >= 3 and ln.split()[2].isdigit()}
    if r.returncode != 0 or not sizes:
        why = next((ln for ln in r.stderr.splitlines() if ln.startswith("E:")), r.stderr.strip()[-200:])
        raise SourceError(f"package '{missing[0]}' cannot be had: {why or 'apt-get lists no download'}")
    fetch_deb(
        min(sizes, key=sizes.__getitem__),
        cache,
        timeout,
        ("-o", "Acquire::Retries=0", "-o", f"Acquire::http::Timeout={max(1, int(timeout) // 4)}"),
        advice=False,
    )


def copyright_stanzas(root: Path, name: str) -> list[tuple[tuple[str, ...], str]]:
    """(file patterns, licence) of each `Files:` stanza of the package's DEP-5 copyright file, in order."""
    path = root / "usr" / "share" / "doc" / name / "copyright"
    if not path.is_file():
        return []
    stanzas = []
    for block in re.split(r"\n\s*\n", path.read_text(errors="replace")):
        files = re.search(r"^Files:(.*(?:\n[ \t]+.*)*)", block, re.MULTILINE)
        lic = re.search(r"^License:[ \t]*(.+)$", block, re.MULTILINE)
        if files and lic:
            stanzas.append((tuple(files.group(1).split()), lic.group(1).strip()))
    return stanzas


def licence_for(pkg: Package, rel: str) -> str:
    """The licence the package's copyright file gives `rel` (its last matching `Files:` stanza, matched on
    the path's tail since installed paths differ from source paths)."""
    found = None
    for patterns, lic in pkg.stanzas:
        for p in patterns:
            p = p.lstrip("./")
            same_name = "*" not in p and Path(p).name == Path(rel).name
            if p == "*" or same_name or fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(rel, "*/" + p):
                found = lic
    return found or pkg.licence


def unpack_deb(name: str, cache: Path) -> Package:
    """Fetch (or reuse) the .deb and unpack it once into `cache/unpacked/<file stem>` with `dpkg -x`."""
    deb = fetch_deb(name, cache)
    r = _run(["dpkg-deb", "-f", str(deb), "Version"])
    if r.returncode != 0:
        raise SourceError(f"package '{name}' cannot be had: {deb} is no readable .deb; delete it and rebuild")
    root = cache / "unpacked" / deb.stem
    if not root.is_dir():
        root.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=root.parent, prefix=".part-"))
        x = _run(["dpkg", "-x", str(deb), str(tmp)])
        if x.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise SourceError(f"package '{name}' cannot be unpacked: {x.stderr.strip()[-200:]}")
        tmp.rename(root)
    doc = root / "usr" / "share" / "doc" / name
    if doc.is_symlink():  # Debian lets a package share the doc folder (and copyright) of one it depends on
        other = unpack_deb(Path(os.readlink(doc)).name, cache)
        return Package(name, r.stdout.strip(), other.licence, root, "debian", other.stanzas)
    stanzas = copyright_stanzas(root, name)
    names = list(dict.fromkeys(lic for _, lic in stanzas))
    if not names and (doc / "copyright").is_file():  # not DEP-5: the licences its prose names
        text = (doc / "copyright").read_text(errors="replace")
        names = list(dict.fromkeys(m.strip() for m in re.findall(r"Licensed under (?:the )?([^.\n]+)", text)))
    summary = (
        " / ".join(names[:4]) + (" / ..." if len(names) > 4 else "")
        if names
        else "unknown (no licence in its copyright file)"
    )
    return Package(name, r.stdout.strip(), summary, root, "debian", tuple(stanzas))


def python_package(name: str) -> Package | None:
    """An installed Python package (found without importing it), or None when absent."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    from importlib import metadata

    dist = {"skimage": "scikit-image", "sklearn": "scikit-learn", "skvideo": "scikit-video"}.get(name, name)
    try:
        version = metadata.version(dist)
    except metadata.PackageNotFoundError:
        version = "unknown"
    return Package(dist, version, PY_LICENCES.get(name, "see the package's metadata"),
                   Path(list(spec.submodule_search_locations)[0]), "python")


def deb_images(pkg: Package, globs: list[str]) -> list[Path]:
    """The image files the globs find in an unpacked package (sorted, no preview thumbnails)."""
    found = {p for g in globs for p in pkg.root.glob(g)
             if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and "screenshot" not in p.name.lower()}
    return sorted(found)


def scene_key(pkg: str, rel: str) -> str:
    """Files of one package with the same key show one scene: its `SCENE_FOLDERS` folder, else the folder and
    the file's stem without the words that name a variant (size, eye, exposure, projection, light/dark)."""
    parts = Path(rel).parts
    if pkg in SCENE_FOLDERS and len(parts) > SCENE_FOLDERS[pkg]:
        return f"{pkg}:{'/'.join(parts[:SCENE_FOLDERS[pkg]])}"
    stem = Path(rel).stem
    base = _VARIANT.sub("", stem) or stem
    return f"{pkg}:{Path(rel).parent.as_posix()}/{base.lower()}"
