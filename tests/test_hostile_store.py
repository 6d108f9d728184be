"""Hostile stores and inputs: a models folder holding a FIFO, device links, a 3 GB sparse file and a damaged
copy shadowing the shipped model; multi-GB bitstreams; curves that would brick a record; oversized backbones;
empty checkpoints. Each ends in one line or one warning, and the installed model keeps serving."""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import small_clip
from vvc_lightning.cli.main import main
from vvc_lightning.errors import ConfigError, WeightsError
from vvc_lightning.store.zoo import ENV, get_entry
from vvc_lightning.video.video_io import write_video

SHIPPED = "vvc-lean-vr"
GB3 = 3 << 30


@pytest.fixture(scope="module")
def shipped(tmp_path_factory, bikes_frames) -> dict:
    """A tiny clip and its bitstream from the shipped model (no user models folder)."""
    root = tmp_path_factory.mktemp("store")
    src = root / "clip.y4m"
    write_video(src, small_clip(bikes_frames, 5, 32, 32), 25)
    vvc = root / "shipped.vvc"
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(ENV, raising=False)
        assert main(["compress", str(src), "-o", str(vvc), "--model", SHIPPED, "--quality", "0"]) == 0
    return {"src": src, "vvc": vvc}


@contextlib.contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """TimeoutError if the block still runs after `seconds` (a read that never ends, an open that hangs)."""

    def hang(signum: int, frame: object) -> None:
        raise TimeoutError(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, hang)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def hostile_models(folder: Path) -> dict[str, str]:
    """A models folder of things that are no record, and a damaged copy of the shipped model under its name;
    returns record file -> the problem its warning names."""
    folder.mkdir()
    os.mkfifo(folder / "fifo.json")
    (folder / "zero.json").symlink_to("/dev/zero")
    (folder / "random.json").symlink_to("/dev/urandom")
    with open(folder / "sparse.json", "wb") as f:
        f.truncate(GB3)
    shipped = get_entry(SHIPPED)
    shutil.copy(shipped.record_path, folder / f"{SHIPPED}.json")  # the shipped record beside other weights
    weights = bytearray(shipped.weights.read_bytes())
    weights[len(weights) // 2] ^= 0xFF
    (folder / f"{SHIPPED}.safetensors").write_bytes(weights)
    return {
        "fifo.json": "it is a FIFO (named pipe), not a record file",
        "zero.json": "it is a character device, not a record file",
        "random.json": "it is a character device, not a record file",
        "sparse.json": f"the record is {GB3} bytes",
        f"{SHIPPED}.json": "does not match the checksum in its record",
    }


def test_a_hostile_models_folder_never_stops_the_installed_model(shipped, tmp_path, monkeypatch, capsys,
                                                                 caplog):
    problems = hostile_models(tmp_path / "zoo")
    monkeypatch.setenv(ENV, str(tmp_path / "zoo"))
    with deadline(120):
        assert main(["models"]) == 0
        assert SHIPPED in capsys.readouterr().out
        out = tmp_path / "out.y4m"
        assert main(["decompress", str(shipped["vvc"]), "-o", str(out)]) == 0  # the damaged copy skipped
        assert out.read_bytes().startswith(b"YUV4MPEG2")
        again = tmp_path / "again.vvc"
        argv = ["compress", str(shipped["src"]), "-o", str(again), "--model", SHIPPED, "--quality", "0"]
        assert main(argv) == 0
    assert again.read_bytes() == shipped["vvc"].read_bytes()  # coded by the installed model
    warnings = [m for m in caplog.messages if m.startswith("warning: skipped model record")]
    for name, problem in problems.items():
        assert any(f"{tmp_path / 'zoo' / name}" in w and problem in w for w in warnings), (name, warnings)
    assert all(len(w.splitlines()) == 1 for w in warnings)


def test_a_damaged_copy_shadowing_the_shipped_model_is_skipped_with_a_warning(shipped, tmp_path, monkeypatch,
                                                                             capsys, caplog):
    hostile_models(tmp_path / "all")
    (tmp_path / "zoo").mkdir()
    for f in (tmp_path / "all").glob(f"{SHIPPED}.*"):
        f.rename(tmp_path / "zoo" / f.name)
    monkeypatch.setenv(ENV, str(tmp_path / "zoo"))
    argv = ["compress", shipped["src"], "-o", tmp_path / "a.vvc", "--model", SHIPPED, "--quality", "0"]
    assert main([str(a) for a in argv]) == 0
    assert (tmp_path / "a.vvc").read_bytes() == shipped["vvc"].read_bytes()
    assert any("checksum" in m and f"{SHIPPED}.json" in m for m in caplog.messages)
    for f in (tmp_path / "zoo").glob(f"{SHIPPED}.*"):  # with nothing behind it, using it is one line
        f.rename(f.with_name("copy" + f.suffix))
    argv = ["compress", shipped["src"], "-o", tmp_path / "b.vvc", "--model", "copy"]
    assert main([str(a) for a in argv]) == 2
    assert "does not match the checksum in its record" in one_line(capsys)


def _max_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss << 10


def test_a_3gb_bitstream_is_refused_without_reading_it(shipped, tmp_path, capsys):
    sparse, padded = tmp_path / "sparse.vvc", tmp_path / "padded.vvc"
    with open(sparse, "wb") as f:
        f.truncate(GB3)
    padded.write_bytes(shipped["vvc"].read_bytes())  # a real header and records, then 3 GB of zeros
    with open(padded, "r+b") as f:
        f.truncate(GB3)
    before = _max_rss()
    for path, problem in ((sparse, "is not a vvc-lightning bitstream"),
                          (padded, "unexpected bytes after its last")):
        assert main(["decompress", str(path), "-o", str(tmp_path / "o.y4m")]) == 2
        assert problem in one_line(capsys)
    assert _max_rss() - before < 256 << 20  # the file was never read whole
    assert not (tmp_path / "o.y4m").exists()


def test_a_header_claiming_a_4gb_body_is_refused_from_its_prefix(tmp_path, capsys):
    from vvc_lightning.codec.pipeline import container

    path = tmp_path / "x.vvc"
    path.write_bytes(container._PREFIX.pack(container.MAGIC, container.VERSION, 0xFFFFFFFF) + bytes(64))
    assert main(["decompress", str(path), "-o", str(tmp_path / "o.y4m")]) == 2
    assert "header claims a body of 4294967295 bytes" in one_line(capsys)


# ------------------------------------------------------------------------------------------ curves
def _summary(path: Path, rows: list[str], extra: str = "") -> Path:
    path.write_text(f"codec,point,bpp{extra}\n" + "".join(r + "\n" for r in rows))
    return path


def test_attach_curve_never_makes_a_record_unreadable(tmp_path, monkeypatch, capsys):
    shipped = get_entry(SHIPPED)
    (tmp_path / "models").mkdir()
    record = tmp_path / "models" / "tiny.json"
    shutil.copy(shipped.record_path, record)
    os.symlink(shipped.weights, tmp_path / "models" / "tiny.safetensors")
    monkeypatch.setenv(ENV, str(tmp_path / "models"))
    before = record.read_bytes()
    wide = ",".join(f"{i:04d}".rjust(150, "m") for i in range(120))  # 120 long metric names
    many = [f"ours,tiny@q0,{i}" for i in range(10_001)]
    wide_rows = [f"ours,tiny@q0,{i}," + ",".join(["1.5"] * 120) for i in range(1000)]
    bad = [
        (_summary(tmp_path / "neg.csv", ["ours,tiny@q0,-0.5"]), "'bpp' is -0.5, below 0"),
        (_summary(tmp_path / "many.csv", many), "more than 10000 rows"),
        (_summary(tmp_path / "wide.csv", wide_rows, "," + wide), "the record would be"),  # > 16 MB
    ]
    for csv_path, problem in bad:
        assert main(["models", "tiny", "--attach-curve", str(csv_path), "--codec", "ours"]) == 2
        assert problem in one_line(capsys)
        assert record.read_bytes() == before
    assert main(["models", "tiny"]) == 0  # the entry still reads
    good = _summary(tmp_path / "good.csv", ["ours,tiny@q0,0.1,20", "ours,tiny@q1,0.2,25"], ",psnr")
    assert main(["models", "tiny", "--attach-curve", str(good), "--codec", "ours"]) == 0
    assert [p["bpp"] for p in get_entry("tiny").record["curve"]] == [0.1, 0.2]


# ------------------------------------------------------------------------------- configs, checkpoints
@pytest.mark.parametrize("override, key", [
    ("model.backbone.latent_channels=99999999", "model.backbone.latent_channels"),
    ("model.backbone.latent_channels=5000", "model.backbone.latent_channels"),
    ("model.backbone.width=70000", "model.backbone.width"),
])
def test_backbone_sizes_no_model_has_are_refused_at_config_time(override, key, tmp_path, capsys):
    from vvc_lightning.configuration.config import load_config

    with pytest.raises(ConfigError, match=f"config key '{key}' is "):
        load_config(["quickstart_scratch.yaml"], [override])
    argv = ["fit", "--config", "quickstart_scratch.yaml", override, "trainer.max_steps=1",
            f"run_dir={tmp_path}"]
    assert main(argv) == 2
    assert key in one_line(capsys)


def test_an_empty_or_foreign_checkpoint_is_one_line_naming_what_it_is(shipped, tmp_path, capsys):
    import vvc_lightning

    empty = tmp_path / "empty.ckpt"
    empty.write_bytes(b"")
    for argv in (
        ["validate", "--ckpt", empty],
        ["test", "--ckpt", empty],
        ["export", "--ckpt", empty, "--name", "m", "-o", tmp_path / "models"],
        ["compress", shipped["src"], "-o", tmp_path / "a.vvc", "--ckpt", empty],
    ):
        assert main([str(a) for a in argv]) == 2, argv
        assert f"'{empty}' is an empty file (0 bytes), not a checkpoint" in one_line(capsys)
    assert not (tmp_path / "a.vvc").exists() and not any((tmp_path / "models").glob("m.*"))
    text = tmp_path / "notes.ckpt"
    text.write_text("root:x:0:0:root:/root:/bin/bash\n")
    for spec, kind in ((empty, r"an empty file \(0 bytes\)"), (text, "a text file")):
        with pytest.raises(WeightsError, match=f"is {kind}, not a checkpoint"):
            vvc_lightning.load(str(spec))
