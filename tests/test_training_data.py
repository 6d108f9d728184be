"""scripts/build_training_data.py: one line naming a package that cannot be had, scenes told apart by name,
hash and view, splits by source item, the licence of each file, the test camera, all without the network."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import matplotlib
import numpy as np
import pytest

from vvc_lightning.errors import VVCError

ROOT = Path(__file__).resolve().parents[1]
MISSING = "vvc-lightning-no-such-package"


@pytest.fixture(scope="module")
def build():
    """The build script as a module (it puts scripts/ on sys.path for training_sources)."""
    spec = importlib.util.spec_from_file_location(
        "build_training_data", ROOT / "scripts" / "build_training_data.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def ts(build):
    return sys.modules["training_sources"]


def photo() -> np.ndarray:
    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    return np.ascontiguousarray(cv2.imread(str(path), cv2.IMREAD_COLOR)[..., ::-1])


def save(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]))


@pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs apt-get (Debian)")
def test_a_package_that_cannot_be_had_stops_with_one_line_naming_it(build, ts, tmp_path, capsys, monkeypatch):
    with pytest.raises(ts.SourceError, match=f"package '{MISSING}' cannot be had"):
        ts.fetch_deb(MISSING, tmp_path / "cache")
    assert [p.name for p in (tmp_path / "cache").iterdir()] == []  # nothing half-downloaded left
    monkeypatch.setattr(ts, "DEB_PHOTOS", {MISSING: ["*"]})
    out = tmp_path / "data" / "offline"
    assert build.main(["-o", str(out), "--cache", str(tmp_path / "cache")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: package '{MISSING}' cannot be had")
    assert not out.exists() and list((tmp_path / "data").iterdir()) == []  # no half-built folder either


def test_an_existing_output_folder_is_never_touched(build, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    assert build.main(["-o", str(out), "--cache", str(tmp_path / "cache")]) == 2
    assert "already exists" in capsys.readouterr().err and (out / "keep.txt").read_text() == "x"


def test_scene_keys_join_variants_of_one_picture_only(ts):
    key = ts.scene_key
    assert key("m", "a/Elephants_3840x2160.jpg") == key("m", "a/Elephants.jpg")
    assert key("o", "data/aloeL.jpg") == key("o", "data/aloeR.jpg")
    assert key("g", "bg/adwaita-d.webp") == key("g", "bg/adwaita-l.webp")
    assert key("h", "x/Big_ben_circ_fisheye.jpg") == key("h", "x/Big_ben_cylindrical.jpg")
    p = "plasma-workspace-wallpapers"
    assert key(p, "usr/share/wallpapers/Kay/contents/images/5120x2880.png") == \
        key(p, "usr/share/wallpapers/Kay/contents/images_dark/1080x1920.png")
    assert key("o", "text/scenetext01.jpg") != key("o", "text/scenetext03.jpg")
    assert key("o", "data/home.jpg") != key("o", "reg/home.png")  # other folder, other picture


def test_licence_comes_from_the_files_own_stanza(ts, tmp_path):
    doc = tmp_path / "usr" / "share" / "doc" / "pkg"
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(
        "Format: dep5\n\nFiles: *\nLicense: GPL-2+\n\n"
        "Files: 16.04/Bridge.jpg\n nature/*.jpg\nCopyright: someone\nLicense: CC-BY-SA-4.0\n"
    )
    pkg = ts.Package("pkg", "1", "GPL-2+", tmp_path, "debian", tuple(ts.copyright_stanzas(tmp_path, "pkg")))
    assert (
        ts.licence_for(pkg, "usr/share/backgrounds/Bridge.jpg") == "CC-BY-SA-4.0"
    )  # same name, other folder
    assert ts.licence_for(pkg, "usr/share/backgrounds/nature/Aqua.jpg") == "CC-BY-SA-4.0"
    assert ts.licence_for(pkg, "usr/share/backgrounds/abstract/Flow.png") == "GPL-2+"


def test_select_photos_measures_dedupes_and_lists_what_it_drops(build, ts, tmp_path):
    img = photo()
    root = tmp_path / "pkg"
    save(root / "bg" / "view_1024x1200.png", cv2.resize(img, (1024, 1200)))  # one scene at two sizes ...
    save(root / "bg" / "view.png", img)
    save(root / "bg" / "copy.png", cv2.resize(img, (256, 300), interpolation=cv2.INTER_AREA))  # ... a copy
    save(root / "bg" / "moved.png", cv2.resize(img[60:, 40:], None, fx=0.9, fy=0.9))  # another view of it
    y, x = np.mgrid[0:480, 0:640]
    save(
        root / "bg" / "gradient.png",
        np.stack([x * 255 // 640, x * 0 + 90, y * 255 // 480], -1).astype(np.uint8),
    )
    pkg = ts.Package("pkg", "1", "GPL-2+", root, "debian")
    found = [(pkg, str(p.relative_to(root)), ts.scene_key("pkg", str(p.relative_to(root))))
             for p in ts.deb_images(pkg, ["bg/*"])]
    kept, dropped, same = build.select_photos(found, 720)
    assert [k["file"] for k in kept] == ["bg/view_1024x1200.png"]
    assert [(d["file"], d["reason"].split(" (")[0]) for d in dropped] == [
        ("bg/gradient.png", "smooth render or gradient")
    ]
    assert dropped[0]["traits"]["texture"] < 8.5 and dropped[0]["licence"] == "GPL-2+"
    whys = {s["file"]: s["why"] for s in same}
    assert whys["bg/view.png"] == "variant name"
    assert "hash" in whys["bg/copy.png"] and "ORB" in whys["bg/moved.png"]
    assert min(kept[0]["rgb"].shape[:2]) == 720  # stored at the photo side


def test_splits_are_by_source_item_and_the_test_hold_out_is_new_and_seeded(build):
    def photos():
        big, small = {"short_side": 1080.0}, {"short_side": 480.0}
        return [{"scene": f"deb:s{chr(97 + i)}", "python": False, "traits": big} for i in range(20)] + \
               [{"scene": f"deb:crop_{i:02d}", "python": False, "traits": big} for i in range(4)] + \
               [{"scene": f"deb:small{chr(97 + i)}", "python": False, "traits": small} for i in range(4)] + \
               [{"scene": f"py:{i}", "python": True, "traits": big} for i in range(3)]

    a, b = photos(), photos()
    build.assign_photo_splits(a, 5, seed=0)
    build.assign_photo_splits(b, 5, seed=0)
    assert [p["split"] for p in a] == [p["split"] for p in b]
    test = [p for p in a if p["split"] == "test"]
    assert len(test) == 5 and not any(p["python"] for p in test)  # photos trained on before are never test
    d = photos()
    build.assign_photo_splits(
        d, 20, seed=0
    )  # numbered siblings (crops of one picture), small photos never test
    assert {p["scene"] for p in d if p["split"] == "test"} == {f"deb:s{chr(97 + i)}" for i in range(20)}
    c = photos()
    build.assign_photo_splits(c, 5, seed=1)
    assert {p["scene"] for p in c if p["split"] == "test"} != {p["scene"] for p in test}
    with pytest.raises(VVCError, match="fewer than --test-photos 30"):
        build.assign_photo_splits(photos(), 30, seed=0)

    items = [{"scene": "s1", "split": "train", "kind": "clip", "path": "a"},
             {"scene": "s1", "split": "train", "kind": "clip", "path": "b"},
             {"scene": "s2", "split": "test", "kind": "photo", "path": "c"}]
    assert build.check_splits(items) == {"train": {"scenes": 1, "photos": 0, "clips": 2},
                                         "val": {"scenes": 0, "photos": 0, "clips": 0},
                                         "test": {"scenes": 1, "photos": 1, "clips": 0}}
    items[1]["split"] = "val"  # one shot's scene in two splits
    with pytest.raises(VVCError, match="scene s1 is in both train and val"):
        build.check_splits(items)


def test_the_test_camera_films_a_photo_the_same_way_every_time(build):
    img = photo()
    a, b = build.film(img, "grace", 0), build.film(img, "grace", 0)
    assert a.shape == (17, 256, 256, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a[0], a[-1])  # the camera moves
    assert not np.array_equal(a, build.film(img, "other", 0))  # each photo its own motion


def small_clip() -> np.ndarray:
    """9 frames of 64x96 of a photo under a panning camera: real content that moves."""
    img = photo()
    return np.stack([img[200 + 2 * i: 264 + 2 * i, 150 + 3 * i: 246 + 3 * i] for i in range(9)])


def test_test_clips_are_lossless_mkv_that_every_reader_reads_as_the_y4m(build, tmp_path):
    import av
    import lossless_video as lv

    from vvc_lightning.datamodules.folder import FolderDataModule
    from vvc_lightning.evaluation.inputs import load_sequences
    from vvc_lightning.video.video_io import read_video, write_video

    frames = small_clip()
    (tmp_path / "test").mkdir()
    (tmp_path / "ref").mkdir()
    mkv = lv.write_lossless(tmp_path / "test" / "clip.mkv", frames, 30000 / 1001)
    y4m = write_video(tmp_path / "ref" / "clip.y4m", frames, 30000 / 1001)
    with av.open(str(mkv)) as c:
        planes = [f.to_ndarray(format="yuv420p") for f in c.decode(video=0)]
    want = [np.concatenate([y, u.reshape(-1, 96), v.reshape(-1, 96)]) for y, u, v in lv.yuv_planes(frames)]
    assert len(planes) == 9 and all(np.array_equal(a, b) for a, b in zip(planes, want, strict=True))
    ref = read_video(y4m)
    got = read_video(mkv)
    assert np.array_equal(got.frames, ref.frames) and abs(got.fps - ref.fps) < 1e-9
    source, = FolderDataModule(test_dir=str(tmp_path / "test")).build_test_sources()
    assert np.array_equal(np.stack(list(source.iter_frames())), ref.frames)
    seq, = load_sequences(str(tmp_path / "test"))  # 4:2:0: evaluate reads the planes the y4m holds
    same, = load_sequences(str(y4m))
    pairs = zip(seq.planes.read(0, 9), same.planes.read(0, 9), strict=True)
    assert seq.name == "clip" and all(np.array_equal(a, b) for a, b in pairs)
    assert np.array_equal(np.asarray(seq.frames), np.asarray(same.frames))
    assert mkv.stat().st_size < y4m.stat().st_size / 2
    assert [p.name for p in (tmp_path / "test").iterdir()] == ["clip.mkv"]  # no temporary left beside it


def built(root: Path, test_bytes: int) -> Path:
    """A built data folder: manifest, a shard, a still, a test clip of `test_bytes` (sparse) and footage."""
    for rel, size in (("manifest.json", 1000), ("shards/train/a.tar", 3 << 20), ("stills/a.jpg", 1 << 20),
                      ("test/a.y4m", test_bytes), ("footage/train/a.mp4", 40 << 20)):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        with open(root / rel, "wb") as f:
            f.truncate(size)
    return root


def test_carry_names_what_a_device_needs_and_whether_it_fits(build, tmp_path, capsys):
    out = built(tmp_path / "offline", 2 << 20)
    assert build.main(["--carry", "-o", str(out)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("carry to a GPU machine: 6.0 MiB of 64 MiB")  # footage/ (40 MiB) is not counted
    assert line.endswith(f'carry=["{out}/manifest.json", "{out}/shards", "{out}/stills", "{out}/test"]')
    big = built(tmp_path / "old", 70 << 20)
    assert build.main(["--carry", "-o", str(big)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "74.0 MiB, over the 64 MiB" in err[0] and "rebuild it" in err[0]
    (out / "manifest.json").unlink()
    assert build.main(["--carry", "-o", str(out)]) == 2
    assert "holds no manifest.json; build it first" in capsys.readouterr().err
    dc = build.device_carry  # inside the repository: the paths the device tool's `carry` takes
    assert dc.carry_paths(dc.ROOT / "data" / "offline") == [f"data/offline/{n}" for n in dc.CARRY]


def no_network(tmp_path: Path) -> dict[str, str]:
    """Environment in which apt-get reads its package lists but every download fails at once, as on a
    machine without network (its proxy is a closed local port)."""
    conf = tmp_path / "apt.conf"
    conf.write_text('Acquire::http::Proxy "http://127.0.0.1:9/";\nAcquire::https::Proxy "http://127.0.0.1:9/";\n')
    return {"APT_CONFIG": str(conf)}


HAS_LISTS = shutil.which("apt-get") is not None and bool(
    subprocess.run(["apt-cache", "show", "sway-backgrounds"], capture_output=True).stdout)


@pytest.mark.skipif(not HAS_LISTS, reason="needs apt-get with package lists (apt-get update)")
def test_without_network_can_build_says_to_build_here_and_carry(build, ts, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(ts, "DEB_PHOTOS", {"sway-backgrounds": ["*"]})
    for k, v in no_network(tmp_path).items():
        monkeypatch.setenv(k, v)
    out, cache = tmp_path / "offline", tmp_path / "cache"
    assert build.main(["--can-build", "-o", str(out), "--cache", str(cache)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        f"error: {out}/manifest.json is missing and this machine cannot fetch"
    )
    assert "'sway-backgrounds' cannot be had" in err[0] and f"carry {out} without footage/" in err[0]
    assert list(cache.iterdir()) == [] and not out.exists()
    (cache / "sway-backgrounds_1.7-6_all.deb").write_bytes(b"x")  # cached: no network needed
    assert build.main(["--can-build", "-o", str(out), "--cache", str(cache)]) == 0


@pytest.mark.skipif(not HAS_LISTS, reason="needs apt-get with package lists (apt-get update)")
def test_device_scripts_stop_in_one_line_without_data_or_network(tmp_path):
    env = {
        **os.environ,
        **no_network(tmp_path),
        "DATA": str(tmp_path / "offline"),
        "PYTHON": sys.executable,
        "VVC_DEB_CACHE": str(tmp_path / "cache"),
        "VVC_SITE": str(tmp_path / "site"),
        "OUT": str(tmp_path / "o"),
    }
    r = subprocess.run(
        ["bash", "benchmarks/gpu_throughput.sh"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    err = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(err) == 1, r.stderr
    assert err[0].startswith(f"error: {tmp_path}/offline/manifest.json is missing") and "carry" in err[0]
    assert not (tmp_path / "offline").exists() and not (tmp_path / "o").exists()
