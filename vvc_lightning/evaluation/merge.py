"""`evaluate --merge DIR... -o OUT`: the folders of the N shards of one evaluation (`shards`) joined into a
new folder holding the outputs one process would write.

The shards must be the N slices of one evaluation (the same settings, each slice once, every row in its
cache: one line names what is not). Their caches are copied into the new OUT and the evaluation runs there
from the cache alone: a row missing is an error, never coded. OUT is never an existing folder or file; a
merge that fails leaves nothing behind.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from vvc_lightning.errors import VVCError
from vvc_lightning.evaluation.shards import check_shards, read_shard
from vvc_lightning.video.video_io import atomic_path

CACHE_PARTS = ("rows", "feats", "crops")


def _copy_caches(shards: list[dict[str, Any]], out: Path) -> None:
    """Every cached row, feature and crop of the shards into out/cache (a file of one name: the same)."""
    from vvc_lightning.video.atomic import make_dirs

    for part in CACHE_PARTS:
        dst = make_dirs(out / "cache" / part)
        for s in shards:
            src = s["folder"] / "cache" / part
            for f in sorted(src.iterdir()) if src.is_dir() else []:
                if f.is_file() and not f.name.startswith(".") and not (dst / f.name).exists():
                    with atomic_path(dst / f.name) as tmp:
                        shutil.copyfile(f, tmp)


def merge(folders: list[str], out: str, progress: bool = True) -> dict[str, Path]:
    """Join the shard folders into a new folder `out` holding the report one process would write."""
    from vvc_lightning.codec.pipeline.options import CodecOptions
    from vvc_lightning.evaluation.harness import EvalOptions, evaluate
    from vvc_lightning.video.output_paths import check_output_path

    target = check_output_path(out, kind="folder")  # an existing folder, a device, no parent: refused
    if target.exists() or target.is_symlink():
        raise VVCError(f"-o '{out}' already exists; --merge writes a new folder: name one that is not there")
    if not folders:
        raise VVCError("--merge needs the shard folders: evaluate --merge DIR... -o OUT")
    shards = [read_shard(Path(f)) for f in folders]
    check_shards(shards)
    options = dict(shards[0]["settings"]["options"])
    options["codec"] = CodecOptions(**options["codec"])
    try:
        target.mkdir()
    except FileExistsError as exc:
        raise VVCError(f"-o '{out}' appeared meanwhile; --merge writes a new folder: name another") from exc
    try:
        _copy_caches(shards, target)
        return evaluate(EvalOptions(**options, out=str(target), cached_only=True, progress=progress))
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)  # the folder made here, never one that was there
        raise
