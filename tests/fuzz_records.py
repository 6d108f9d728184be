"""Fuzzer of untrusted model folders: crafted zoo records (NAME.json) and weight files
(NAME.safetensors) beside a genuine entry, each case run in a forked child with bounded memory and time.

A case passes when the genuine entry is still listed and found by name and for its bitstreams, every listed
row prints, and the crafted entry is either refused in one line naming it ("model 'bad' (PATH): ...") or loads
into a model whose coded latent decodes exactly. Anything else (a traceback, a crash, a hang, memory past
the bound, a stream that does not decode) is a finding.

Run as a script for a report: `python -m tests.fuzz_records [N] [SEED]`; `tests/test_fuzz_records.py` runs it.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

from tests.fuzz_vvc import Outcome, run_in_child

MEMORY_LIMIT = 2 << 30  # address space one case may add to what the process already maps
TIME_LIMIT = 60  # seconds of one case
VR = ["model.codec.qualities=2", "model.loss.lmbda_range=[0.01,0.4]"]
_INF = "__INF__"  # placeholders turned into JSON text no json.dumps writes
_NAN = "__NAN__"


def make_entry(folder: Path, name: str, seed: int = 0) -> Path:
    """Export a tiny random variable-rate model (the test config) as zoo entry `name` in `folder`."""
    import torch
    from omegaconf import OmegaConf

    from tests.conftest import TINY_OVERRIDES
    from vvc_lightning import __version__
    from vvc_lightning.configuration.config import load_config
    from vvc_lightning.model import CompressionModel
    from vvc_lightning.store.export import export_model

    torch.manual_seed(seed)
    cfg = load_config(["quickstart_scratch.yaml"], TINY_OVERRIDES + VR)
    model = CompressionModel(cfg).eval()
    model.codec.update_tables(force=True)
    ckpt = folder.parent / f"{name}.ckpt"
    torch.save(
        {
            "state_dict": model.state_dict(),
            "global_step": 3,
            "epoch": 0,
            "hyper_parameters": {"config": OmegaConf.to_container(cfg, resolve=True), "version": __version__},
        },
        ckpt,
    )
    folder.mkdir(parents=True, exist_ok=True)
    return export_model(ckpt, name, folder)


# ------------------------------------------------------------------------------------------ records
def _dump(rec: object) -> bytes:
    text = json.dumps(rec, indent=1)
    return text.replace(f'"{_INF}"', "1e999").replace(f'"{_NAN}"', "NaN").encode()


def _paths(obj: object, prefix: tuple = ()) -> list[tuple]:
    """Every key path of a parsed record (dict keys and list indexes)."""
    out = []
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else []
    for k, v in items:
        out.append((*prefix, k))
        out.extend(_paths(v, (*prefix, k)))
    return out


def _set(rec: dict, path: tuple, value: object) -> None:
    node = rec
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value


def _value(rng: random.Random) -> object:
    return rng.choice(
        [
            None,
            True,
            "abc",
            "many",
            -1,
            0,
            1,
            2**21,
            2**40,
            10**30,
            _INF,
            _NAN,
            -7.5,
            [],
            {},
            [1, 2, 3],
            ["a", "b"],
            {"x": 1},
            [[[[[[[[1]]]]]]]],
            "9" * 50,
            {"bpp": _INF},
            [{"bpp": "x"}],
            [{"bpp": 1}, 2],
        ]
    )


NAMED_RECORDS = {  # named crafted records, one per kind of damage
    "config-missing": lambda r: r.pop("config"),
    "config-list": lambda r: r.__setitem__("config", [1, 2]),
    "training-list": lambda r: r.__setitem__("training", [1]),
    "global-step-inf": lambda r: r["training"].__setitem__("global_step", _INF),
    "params-abc": lambda r: r.__setitem__("params", "abc"),
    "params-inf": lambda r: r.__setitem__("params", _INF),
    "qualities-many": lambda r: r.__setitem__("qualities", "many"),
    "curve-ints": lambda r: r.__setitem__("curve", [1, 2, 3]),
    "curve-strings": lambda r: r.__setitem__("curve", [{"point": "a", "bpp": "low"}]),
    "curve-nan": lambda r: r.__setitem__("curve", [{"point": "a", "bpp": _NAN}, {"point": "b", "bpp": 0.1}]),
    "width-2^21": lambda r: r["config"]["model"]["backbone"].__setitem__("width", 2**21),
    "channels-huge": lambda r: (
        r.__setitem__("latent_channels", 2**20),
        r["config"]["model"]["backbone"].__setitem__("latent_channels", 2**20),
    ),
    "qualities-huge": lambda r: (
        r.__setitem__("qualities", 2**20),
        r["config"]["model"]["codec"].__setitem__("qualities", 2**20),
    ),
    "width-wrong": lambda r: r["config"]["model"]["backbone"].__setitem__("width", 16),
    "identity-false-no-sha": lambda r: (r.__setitem__("identity", "ab" * 32), r.pop("sha256")),
    "format-2": lambda r: r.__setitem__("format", 2),
}


def record_mutation(rec_bytes: bytes, rng: random.Random) -> tuple[str, bytes]:
    """(kind, damaged record text)."""
    kind = rng.choice(["utf8", "deep", "truncate", "field", "field", "delete", "named", "named"])
    if kind == "utf8":
        i = rng.randrange(len(rec_bytes))
        return kind, rec_bytes[:i] + bytes([rng.choice([0xFF, 0xC3, 0x80, 0xFE])]) + rec_bytes[i:]
    if kind == "deep":
        depth = rng.choice([100, 1000, 100_000])
        return kind, rec_bytes.replace(b'"curve": []', b'"curve": ' + b"[" * depth + b"]" * depth, 1)
    if kind == "truncate":
        return kind, rec_bytes[: rng.randrange(len(rec_bytes))]
    rec = json.loads(rec_bytes)
    if kind == "named":
        name = rng.choice(sorted(NAMED_RECORDS))
        NAMED_RECORDS[name](rec)
        return f"record:{name}", _dump(rec)
    path = rng.choice(_paths(rec))
    if kind == "delete":
        node = rec
        for k in path[:-1]:
            node = node[k]
        node.pop(path[-1]) if isinstance(node, dict) else node.pop(path[-1])
        return kind, _dump(rec)
    _set(rec, path, _value(rng))
    return kind, _dump(rec)


# ------------------------------------------------------------------------------------------ tensors
def tensor_mutation(weights: Path, rng: random.Random) -> str:
    """Damage the weight file in place; returns the kind."""
    import torch
    from safetensors.torch import load_file, save_file

    state = load_file(str(weights))
    floats = sorted(k for k, v in state.items() if v.is_floating_point() and v.numel())
    ints = sorted(
        k for k in floats if k.startswith(("codec.h_s.", "codec.context.")) and k.endswith("weight")
    )
    cdfs = sorted(k for k in state if k.endswith("_quantized_cdf"))
    kind = rng.choice(["nan", "inf", "int-huge", "cdf-reversed", "cdf-zero", "cdf-long", "offset-extreme",
                       "length-bad", "drop", "extra", "reshape", "dtype", "scale-table"])
    if kind in ("nan", "inf"):
        k = rng.choice(floats)
        state[k] = state[k].clone().reshape(-1)
        state[k][rng.randrange(state[k].numel())] = float("nan") if kind == "nan" else float("inf")
        state[k] = state[k].reshape(load_file(str(weights))[k].shape)
    elif kind == "int-huge":
        k = rng.choice(ints)
        state[k] = state[k] * 1e6
    elif kind.startswith("cdf") or kind in ("offset-extreme", "length-bad"):
        k = rng.choice(cdfs)
        base = k.rsplit(".", 1)[0]
        if kind == "cdf-reversed":
            state[k] = state[k].flip(1).contiguous()
        elif kind == "cdf-zero":
            state[k] = torch.zeros_like(state[k])
        elif kind == "cdf-long":
            state[k] = torch.cat([state[k], torch.zeros(state[k].shape[0], 70_000, dtype=state[k].dtype)], 1)
        elif kind == "offset-extreme":
            state[f"{base}._offset"] = torch.full_like(
                state[f"{base}._offset"], rng.choice([2**30, -(2**30), 2**31 - 1])
            )
        else:
            state[f"{base}._cdf_length"] = torch.full_like(
                state[f"{base}._cdf_length"], rng.choice([0, -5, 10**6])
            )
    elif kind == "drop":
        state.pop(rng.choice(sorted(state)))
    elif kind == "extra":
        state["codec.extra.weight"] = torch.zeros(3)
    elif kind == "reshape":
        k = rng.choice(floats)
        state[k] = torch.zeros(state[k].numel() + rng.choice([-1, 1, 64]) if state[k].numel() > 1 else 2)
    elif kind == "dtype":
        k = rng.choice(sorted(state))
        state[k] = state[k].to(torch.int32 if state[k].is_floating_point() else torch.float32)
    else:
        k = "codec.gaussian_conditional.scale_table"
        state[k] = state[k].flip(0).contiguous()
    save_file(state, str(weights))
    return f"tensor:{kind}"


def _fix_checksum(rec_path: Path, weights: Path, rng: random.Random) -> str:
    """Recompute, drop or keep the record's sha256 (so the checks past the checksum are reached too)."""
    mode = rng.choices(["sha-fixed", "sha-dropped", "sha-kept"], weights=[5, 4, 1])[0]
    rec = json.loads(rec_path.read_bytes())
    if mode == "sha-fixed":
        rec["sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()
    elif mode == "sha-dropped":
        rec.pop("sha256", None)
    rec_path.write_text(json.dumps(rec, indent=1))
    return mode


# ------------------------------------------------------------------------------------------ one case
def _check_in_child(folder: Path, good_identity: str) -> tuple[str, str]:
    """(result, detail) of listing the folder and loading both entries."""

    from vvc_lightning.errors import VVCError
    from vvc_lightning.store.loader import load
    from vvc_lightning.store.zoo import ENV, find_for_header, get_entry, list_models

    os.environ[ENV] = str(folder)
    try:
        listed = list_models()
        rows = [e.summary() for e in listed]
        if "good" not in [r["name"] for r in rows]:
            return "good-hidden", str([r["name"] for r in rows])
        found = find_for_header(good_identity, "zoo:good")
        if found is None or found.identity != good_identity:
            return "good-not-found", str(found)
        if get_entry("good").identity != good_identity:  # (loading it is the same code as loading 'bad')
            return "good-not-found", "get_entry"
    except Exception as exc:
        return "good-broken", f"{type(exc).__name__}: {str(exc)[:200]}"
    try:
        model = load("bad")
    except VVCError as exc:
        text = str(exc)
        ok = "\n" not in text and text.startswith("model 'bad' (")
        return ("refused" if ok else "unclear-error"), text[:240]
    except MemoryError:
        return "memory", "MemoryError"
    except Exception as exc:
        return "exception", f"{type(exc).__name__}: {str(exc)[:200]}"
    try:  # it loaded: what it codes must decode
        same = roundtrip(model)
    except Exception as exc:
        return "undecodable", f"{type(exc).__name__}: {str(exc)[:200]}"
    return ("loaded" if same else "different"), ""


def roundtrip(model) -> bool:
    """Whether a random latent coded by `model` decodes to exactly what its encoder reconstructed."""
    import torch

    torch.manual_seed(0)
    c = model.codec.channels
    latent = torch.randn(1, c, 2, 8, 8) * 4
    gains = model.codec.rate(1.0 if model.codec.qualities else None)
    strings, expected = model.codec.compress(latent, gains)
    return torch.equal(model.codec.decompress(strings, (c, 2, 8, 8), gains), expected)


def run_case(kind: str, folder: Path, good_identity: str) -> Outcome:
    """One case in a forked child limited to MEMORY_LIMIT bytes and TIME_LIMIT seconds."""
    return run_in_child(kind, lambda: _check_in_child(folder, good_identity), TIME_LIMIT, MEMORY_LIMIT)


def fuzz(count: int, seed: int = 0) -> list[Outcome]:
    """Run `count` crafted cases (every named record first); returns every outcome."""
    import logging

    import torch

    import tests.conftest  # noqa: F401  (it sets the thread count on import)

    torch.set_num_threads(1)  # no OpenMP pool: forking stays safe
    logging.getLogger("vvc_lightning.store.zoo").setLevel(logging.ERROR)  # skip warnings: tested elsewhere
    rng = random.Random(seed)
    outcomes = []
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "source"
        good_rec = make_entry(source, "good")
        bad_rec = make_entry(source, "bad", seed=1)
        good_identity = json.loads(good_rec.read_bytes())["identity"]
        os.environ["VVC_LIGHTNING_MODELS"] = str(source)
        from vvc_lightning.store.loader import load

        assert roundtrip(load("good"))  # compiles the coder's kernels once, before the children fork
        named = sorted(NAMED_RECORDS)
        for i in range(count):
            folder = Path(tmp) / f"case{i}"
            folder.mkdir()
            for suffix in (".json", ".safetensors"):
                shutil.copy(good_rec.with_suffix(suffix), folder / f"good{suffix}")
                shutil.copy(bad_rec.with_suffix(suffix), folder / f"bad{suffix}")
            rec_path, weights = folder / "bad.json", folder / "bad.safetensors"
            if i < len(named):
                rec = json.loads(rec_path.read_bytes())
                NAMED_RECORDS[named[i]](rec)
                rec_path.write_bytes(_dump(rec))
                kind = f"record:{named[i]}"
            elif rng.random() < 0.5:
                kind, data = record_mutation(rec_path.read_bytes(), rng)
                rec_path.write_bytes(data)
            else:
                kind = tensor_mutation(weights, rng)
                kind += "/" + _fix_checksum(rec_path, weights, rng)
            outcomes.append(run_case(kind, folder, good_identity))
            shutil.rmtree(folder)
    return outcomes


def findings(outcomes: list[Outcome]) -> list[Outcome]:
    """Outcomes that are bugs: all but a one-line refusal naming the entry or a model that codes exactly."""
    return [o for o in outcomes if o.result not in ("refused", "loaded")]


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    t0 = time.perf_counter()
    outcomes = fuzz(count, seed)
    by: dict[tuple[str, str], list[Outcome]] = {}
    for o in outcomes:
        by.setdefault((o.kind, o.result), []).append(o)
    for (kind, result), group in sorted(by.items()):
        print(f"{kind:40s} {result:12s} n={len(group):4d} max_s={max(o.seconds for o in group):6.2f} "
              f"max_peak_MB={max(o.peak_kb for o in group) / 1024:7.1f}  e.g. {group[0].detail[:110]}")
    bad = findings(outcomes)
    print(f"{len(outcomes)} cases, {len(bad)} findings, {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
