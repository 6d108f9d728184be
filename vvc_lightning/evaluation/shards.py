"""`evaluate --shard I/N` and `evaluate --merge DIR... -o OUT`: one evaluation spread over the machines of
a cluster's array job.

The work units are the (codec x rate point x sequence) rows in the order one process runs them (the neural
curves', then the classic settings'); shard I of N takes units I-1, I-1+N, I-1+2N, ... (round robin, so
that the costly neural rows spread evenly) and writes into its -o folder its rows' cache (cache/) and
shard.json: the slice, the run's settings (options, codec identities, sequence digests) and its rows. The
classic rate points must be fixed (--points, or no neural curve): a QP search needs every neural row first.
`evaluation.merge` joins the N folders into the outputs of one process.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

from vvc_lightning.errors import VVCError
from vvc_lightning.video.video_io import write_bytes_atomic

SHARD_FILE = "shard.json"
FORMAT = "vvc-lightning evaluate shard"
RUN_ONLY = ("out", "progress", "jobs", "shard", "cached_only")  # how a run is carried out, not what it finds


def parse_shard(text: str) -> tuple[int, int]:
    """'2/4' -> (2, 4); one line for anything that is not I/N with 1 <= I <= N."""
    m = re.fullmatch(r"\s*(\d{1,9})\s*/\s*(\d{1,9})\s*", text)
    if m is None:
        raise VVCError(f"--shard takes I/N, the I-th of N slices of the rows (e.g. 2/4), got '{text}'")
    return check_slice((int(m[1]), int(m[2])))  # type: ignore[return-value]


def check_slice(shard: Any) -> tuple[int, int] | None:
    """`shard` (I, N) if 1 <= I <= N, None if None; one line otherwise."""
    if shard is None:
        return None
    ok = isinstance(shard, tuple | list) and len(shard) == 2 and all(
        isinstance(v, int) and not isinstance(v, bool) for v in shard)
    if not ok or not 1 <= shard[0] <= shard[1]:
        got = "/".join(map(str, shard)) if isinstance(shard, tuple | list) else repr(shard)
        raise VVCError(f"--shard {got}: give I/N with N >= 1 and I from 1 to N (the I-th of N slices, e.g. "
                       "1/4 to 4/4)")
    return int(shard[0]), int(shard[1])


def check_shardable(shard: tuple[int, int] | None, specs: list[Any], given: set[str]) -> None:
    """A shard needs every rate point fixed before it starts: one line naming the searched settings."""
    if shard is None or not any(s.kind == "neural" for s in specs):
        return
    searched = [s.name for s in specs if s.kind != "neural" and s.name not in given and s.point_range]
    if searched:
        raise VVCError(f"--shard needs the classic rate points fixed (a QP search needs every neural row "
                       f"first): give --points for {', '.join(searched)}, e.g. --points {searched[0]}="
                       "22,27,32,37")


def work_units(specs: list[Any], seqs: list[Any]) -> list[tuple[Any, Any, Any]]:
    """(spec, point, sequence) of every row, in the order one process codes them."""
    return ([(s, p, q) for s in specs if s.kind == "neural" for p in s.points for q in seqs]
            + [(s, p, q) for s in specs if s.kind != "neural" for p in s.points for q in seqs])


def _plain(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


def settings(opts: Any, specs: list[Any], seqs: list[Any]) -> dict[str, Any]:
    """What the shards of one evaluation share: its options, codecs (identity, points), sequences."""
    return _plain({"options": {k: v for k, v in asdict(opts).items() if k not in RUN_ONLY},
                   "codecs": {s.name: {"identity": s.identity, "points": [str(p) for p in s.points]}
                              for s in specs},
                   "sequences": {q.name: q.digest for q in seqs}})


def run_shard(harness: Any, specs: list[Any], seqs: list[Any], opts: Any) -> dict[str, Path]:
    """Code and measure the rows of slice `opts.shard` into `opts.out`'s cache, then write shard.json."""
    from tqdm import tqdm

    from vvc_lightning.evaluation.comparison import run_rows

    out, (i, n) = Path(opts.out), opts.shard
    units = work_units(specs, seqs)
    mine = units[i - 1 :: n]
    doc = {"format": FORMAT, "version": 1, "shard": [i, n], "units": len(units),
           "settings": settings(opts, specs, seqs)}
    if (out / SHARD_FILE).is_file():  # a rerun of the same slice resumes from its cache
        before = read_shard(out)
        why = _first_difference({"shard": before["shard"], **before["settings"]},
                                {"shard": doc["shard"], **doc["settings"]})
        if why:
            raise VVCError(f"-o '{out}' holds another shard ({why[0]} there: {why[1]}, now: {why[2]}); give "
                           "each shard its own new -o folder")
    with tqdm(total=len(mine), desc=f"shard {i}/{n}", unit="row", disable=not opts.progress) as bar:
        rows = run_rows(harness, mine, bar)
    doc["rows"] = [{"codec": r["codec"], "point": r["point"], "sequence": r["sequence"], "key": r["key"]}
                   for r in rows]
    write_bytes_atomic(out / SHARD_FILE, json.dumps(doc, indent=1).encode())
    return {"shard": out / SHARD_FILE}


# ------------------------------------------------------------------------------------------- merging
def read_shard(folder: Path) -> dict[str, Any]:
    """A shard folder's shard.json (with its folder); one line where there is none or it is not one."""
    path = folder / SHARD_FILE
    if not folder.is_dir():
        raise VVCError(f"--merge: '{folder}' is not a folder; give the -o folders of evaluate --shard runs")
    if not path.is_file():
        raise VVCError(f"--merge: '{folder}' holds no {SHARD_FILE}, so it is no finished shard (a shard "
                       "writes it when its rows are done); run its evaluate --shard I/N again")
    try:
        doc = json.loads(path.read_text())
        if doc.get("format") != FORMAT or not isinstance(doc.get("settings"), dict):
            raise ValueError("not an evaluate shard file")
        doc["shard"] = (int(doc["shard"][0]), int(doc["shard"][1]))
        rows = [dict(r) for r in doc["rows"]]
    except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise VVCError(f"--merge: '{path}' cannot be read as a shard file ({exc}); run that shard "
                       "again") from exc
    return {**doc, "rows": rows, "folder": folder}


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def _first_difference(a: Any, b: Any, path: str = "") -> tuple[str, str, str] | None:
    """(dotted path, value in a, value in b) of the first place two settings differ, None if equal."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if k not in a or k not in b:
                return f"{path}{k}", _short(a.get(k, "(none)")), _short(b.get(k, "(none)"))
            found = _first_difference(a[k], b[k], f"{path}{k}.")
            if found:
                return found
        return None
    return None if a == b else (path.rstrip("."), _short(a), _short(b))


def check_shards(shards: list[dict[str, Any]]) -> None:
    """The folders are the N slices of one evaluation, each once, with their rows cached: one line else."""
    first = shards[0]
    n = first["shard"][1]
    for s in shards[1:]:
        if s["shard"][1] != n:
            raise VVCError(f"--merge: '{first['folder']}' is shard {first['shard'][0]}/{n} but "
                           f"'{s['folder']}' is {s['shard'][0]}/{s['shard'][1]}: merge the slices of one run")
        why = _first_difference(first["settings"], s["settings"])
        if why:
            raise VVCError(f"--merge: '{first['folder']}' and '{s['folder']}' are shards of different "
                           f"evaluations: {why[0]} is {why[1]} in one, {why[2]} in the other")
    seen: dict[int, Path] = {}
    for s in shards:
        i = s["shard"][0]
        if i in seen:
            raise VVCError(f"--merge: '{seen[i]}' and '{s['folder']}' are both shard {i}/{n}; give each "
                           "slice once")
        seen[i] = s["folder"]
    missing = [f"{i}/{n}" for i in range(1, n + 1) if i not in seen]
    if missing:
        raise VVCError(f"--merge: shard{'s' if len(missing) > 1 else ''} {', '.join(missing)} missing "
                       f"(given: {', '.join(f'{i}/{n}' for i in sorted(seen))}); run them with --shard and "
                       f"merge all {n} folders")
    for s in shards:
        for r in s["rows"]:
            if not (s["folder"] / "cache" / "rows" / f"{r['key']}.json").is_file():
                raise VVCError(f"--merge: '{s['folder']}' lacks the row {r['codec']} {r['point']} of "
                               f"{r['sequence']} in its cache; run that shard again")
