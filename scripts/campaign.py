"""Continue a shipped zoo model inside a wall-clock budget; keep the new weights only if the test split says
so.

1. the shipped entry (NAME.json + NAME.safetensors in --models-dir): its config gives the architecture,
   its record the global step and stage; the stage in force restarts its warm-up and cosine at that step;
2. the previous model is measured on the test split (real bytes, ST-LPIPS, PSNR, MS-SSIM at --qualities);
   that time is kept back again for measuring the new one;
3. a probe gives the seconds per step, max_steps is sized to the time left, and `fit` continues from the
   weights at the recorded step (fresh optimizer);
4. the result is exported (float16, fresh CDF tables) to OUT/candidate and measured the same way;
5. accepted when the ST-LPIPS BD-rate of the new curve against the previous one is below 0: the shipped
   files are replaced; otherwise they are kept and the reason printed. Either way the record gains one
   history entry, and OUT/models holds the record (and, on accept, the weights) to commit.

    python scripts/campaign.py --out $OUT --budget-s 450 --data-dir data/offline     # scripts/gpu_train.sh
    python scripts/campaign.py --smoke --steps 2 --models-dir /tmp/models --out /tmp/out ...   # CPU check
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

START = float(os.environ.get("VVC_SCRIPT_START", time.time()))  # when the shell wrapper began
METRICS = ["psnr", "ms_ssim", "stlpips"]


def gpu_train() -> Any:
    """The helpers of scripts/gpu_train.py (probe, run sizing, callbacks), loaded from beside this file."""
    spec = importlib.util.spec_from_file_location("vvc_gpu_train", Path(__file__).with_name("gpu_train.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def default_models_dir() -> Path:
    """The repository's models folder when run from the repository root, else the installed package's."""
    from vvc_lightning.store.zoo import packaged_dir

    here = Path("vvc_lightning/assets/models")
    return here if here.is_dir() else packaged_dir()


def device_name() -> str:
    """The accelerator's name, or the CPU and its thread count."""
    import platform

    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"cpu {platform.machine()} ({torch.get_num_threads()} threads)"


def continue_stage(cfg: Any, step: int, lr: float | None) -> list[str]:
    """Overrides that restart the stage in force at `step` there (warm-up, then cosine to the new end), when
    it is the last stage; an unfinished schedule goes on as it was."""
    from vvc_lightning.training.stages import stage_index

    idx = stage_index(cfg.stages, step, 0)
    st = cfg.stages[idx]
    if idx != len(cfg.stages) - 1 or st.get("start_step") is None or int(st.start_step) >= step:
        return [f"stages.{idx}.lr={lr}"] if lr else []
    return [f"stages.{idx}.start_step={step}", f"stages.{idx}.lr={lr or float(st.lr or cfg.optim.lr)}"]


def switch_stage(cfg: Any, step: int, name: str, train: list[str] | None, lr: float | None) -> list[str]:
    """Overrides that train stage `name` from `step`: the stages already begun stay (the model's history),
    then the record's stage of that name, or with `train` a new rate-distortion stage training those
    parts, starts at `step` (warm-up, then cosine to the run's end). When `name` is the last stage and in
    force, the same as `continue_stage`."""
    from omegaconf import OmegaConf

    from vvc_lightning.errors import ConfigError
    from vvc_lightning.training.stages import stage_index

    stages = [OmegaConf.to_container(s, resolve=True) for s in cfg.stages]
    idx = stage_index(cfg.stages, step, 0)
    if not train and stages[idx]["name"] == name and idx == len(stages) - 1:
        return continue_stage(cfg, step, lr)
    if train:
        new = {"name": name, "train": list(train), "loss": "rd"}
    else:
        named = [s for s in stages if s["name"] == name]
        if not named:
            have = ", ".join(str(s["name"]) for s in stages)
            raise ConfigError(f"the record has no stage named '{name}' (it has {have}); give --train PARTS "
                              "to define one")
        new = {k: v for k, v in named[-1].items() if k not in ("start_step", "start_epoch")}
    new["lr"] = float(lr or new.get("lr") or cfg.optim.lr)
    new["start_step"] = int(step)
    begun = [s for s in stages if s.get("start_step") is not None and int(s["start_step"]) < step]
    return [f"stages={json.dumps(begun + [new])}"]


def measure(folder: Path, name: str, label: str, args: argparse.Namespace, qualities: list[float],
            out: Path) -> tuple[list[dict], list[str]]:
    """(curve points, sequence names) of zoo entry `name` in `folder` on the test split."""
    import torch

    from vvc_lightning.codec.entropy.gain import parse_quality_label
    from vvc_lightning.evaluation.harness import EvalOptions, evaluate
    from vvc_lightning.training.campaign import models_from

    device = "cuda" if torch.cuda.is_available() else "cpu"
    opts = EvalOptions(
        data=args.test_data,
        out=str(out),
        ckpts=[f"zoo:{name}"],
        ckpt_name=label,
        metrics=METRICS,
        max_frames=args.max_frames,
        device=device,
        qualities=qualities,
        progress=False,
    )
    with models_from(folder):
        paths = evaluate(opts)
    doc = json.loads(Path(paths["json"]).read_text())
    curve = []
    for s in doc["summary"]:
        if s.get("codec") != label:
            continue
        point = {"point": s["point"], "quality": parse_quality_label(s["point"])}
        point.update({k: s[k] for k in ("sequences", "bytes", "bpp", *METRICS) if k in s})
        curve.append(point)
    seqs = sorted({r["sequence"] for r in doc["rows"]})
    return sorted(curve, key=lambda p: p["bpp"]), seqs


def show(label: str, curve: list[dict]) -> None:
    """One line per curve: quality: bpp / PSNR / ST-LPIPS."""
    pts = "  ".join(f"q{p['quality']:g}: {p['bpp']:.4f} bpp {p.get('psnr', float('nan')):.2f} dB "
                    f"{p.get('stlpips', float('nan')):.4f}" for p in curve)
    print(f"{label:>8}: {pts}", flush=True)


def train(
    args: argparse.Namespace, entry: Any, gt: Any, out: Path, eval_s: float
) -> tuple[Any, Path, int, float]:
    """Continue the model inside the time left; (config, final checkpoint, global step reached, seconds)."""
    from omegaconf import OmegaConf

    from vvc_lightning.configuration.config import apply_overrides, load_config
    from vvc_lightning.errors import VVCError

    rec_cfg = out / "record_config.yaml"
    OmegaConf.save(OmegaConf.create(entry.record["config"]), rec_cfg)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
    overrides = [f"run_dir=runs/campaign_{entry.name}_{stamp}", "model.init=null"]
    overrides += (gt.SMOKE if args.smoke else []) + list(args.overrides)
    cfg = load_config([str(rec_cfg), *(args.config or [])], overrides)
    step0 = int(entry.record.get("training", {}).get("global_step", 0))
    if args.stage:
        train_parts = [p for p in (args.train or "").split(",") if p] or None
        cfg = apply_overrides(cfg, switch_stage(cfg, step0, args.stage, train_parts, args.lr))
    else:
        cfg = apply_overrides(cfg, continue_stage(cfg, step0, args.lr))
    run_dir = Path(str(cfg.run_dir))
    if (run_dir / "final.ckpt").exists():
        raise VVCError(f"{run_dir}/final.ckpt exists; give another run_dir=")
    if args.steps:
        s_step = 1.0
    else:
        probe = args.probe_steps or (6 if args.smoke else 40)
        s_step = args.s_per_step or gt.seconds_per_step(cfg, probe, skip=2 if args.smoke else 10)
    left = args.budget_s - (time.time() - START) - args.reserve_s - eval_s
    print(f"probe: {s_step:.3f} s/step; {left:.0f} s left for training", flush=True)
    if not args.steps and left < 10 * s_step:
        raise VVCError(f"{left:.0f} s left for training after measuring the previous model; raise --budget-s")
    sized = gt.size_run(cfg, s_step, max(left, 60.0), step0 + args.steps if args.steps else None, step0)
    steps = int(sized[0].split("=")[1]) - step0
    sized.append(f"optim.warmup_steps={min(int(cfg.optim.warmup_steps), max(1, steps // 10))}")
    cfg = apply_overrides(cfg, sized)
    print(f"continuing {entry.name} at step {step0} for {steps} steps:", " ".join(sized), flush=True)
    _, final, progress = gt.callbacks()
    t0 = time.time()
    trainer = gt.fit_function()(cfg, ckpt=str(entry.weights),
                                callbacks=[final(run_dir / "final.ckpt"), progress(max(1, steps // 20))])
    return cfg, run_dir / "final.ckpt", int(trainer.global_step), time.time() - t0


def run(args: argparse.Namespace) -> int:
    """The whole campaign; returns the exit code."""
    from vvc_lightning.cli.evaluate import parse_qualities
    from vvc_lightning.store.export import export_model
    from vvc_lightning.store.zoo import attach_curve
    from vvc_lightning.training import campaign as cp

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    models_dir = Path(args.models_dir) if args.models_dir else default_models_dir()
    entry = cp.entry_in(models_dir, args.name)
    step0 = int(entry.record.get("training", {}).get("global_step", 0))
    n_q = int(entry.record.get("qualities") or 0)
    qualities = sorted({min(q, max(0, n_q - 1)) for q in parse_qualities(args.qualities)})
    if args.test_data is None:
        args.test_data = str(entry.record["config"]["data"].get("test_dir") or "")
    manifest = Path(args.manifest or Path(args.data_dir) / "manifest.json")
    gt = gpu_train()

    t_eval = time.time()
    prev_curve, seqs = measure(models_dir, args.name, "previous", args, qualities, out / "eval_previous")
    eval_s = (time.time() - t_eval) * 1.2
    show("previous", prev_curve)
    cfg, final_ckpt, step1, train_s = train(args, entry, gt, out, eval_s)
    if step1 <= step0 or not final_ckpt.is_file():
        decision = cp.Decision(False, f"no training step was taken (still at step {step0})", float("nan"))
        new_curve, staged = [], None
    else:
        staged = out / "candidate"
        notes = str(entry.record.get("training", {}).get("notes", ""))
        tail = " Later runs: see history."
        export_model(
            final_ckpt,
            args.name,
            staged,
            overwrite=True,
            notes=notes if notes.endswith(tail) else notes + tail,
        )
        new_curve, _ = measure(staged, args.name, "new", args, qualities, out / "eval_new")
        with cp.models_from(staged):
            attach_curve(args.name, out / "eval_new" / "summary.csv", codec="new",
                         source=f"scripts/campaign.py on {cp.portable_path(args.test_data)}, qualities "
                                f"{','.join(f'{q:g}' for q in qualities)}, at most {args.max_frames} frames")
        show("new", new_curve)
        decision = cp.decide(prev_curve, new_curve)
    from vvc_lightning.training.stages import stage_index

    stage = str(cfg.stages[stage_index(cfg.stages, max(step1, step0), 0)].name)
    hist = cp.history_entry(
        device=device_name(),
        device_seconds=time.time() - START,
        steps=max(0, step1 - step0),
        step_start=step0,
        step_end=max(step1, step0),
        stage=stage,
        manifest_sha256=cp.file_sha256(manifest),
        manifest=str(manifest),
        test_data=args.test_data,
        sequences=seqs,
        previous_curve=prev_curve,
        new_curve=new_curve,
        decision=decision,
        train_seconds=train_s,
    )
    record_path = cp.commit(decision, hist, args.name, models_dir, staged, entry.record.get("sha256"))
    keep = out / "models"
    keep.mkdir(exist_ok=True)
    shutil.copyfile(record_path, keep / record_path.name)
    if decision.accept:
        shutil.copyfile(models_dir / f"{args.name}.safetensors", keep / f"{args.name}.safetensors")
        shutil.rmtree(staged, ignore_errors=True)  # the same files are in OUT/models now
        print(
            f"campaign: accepted: {decision.reason}; {args.name} replaced in {models_dir} (step {step0} -> "
            f"{step1}); "
            f"to commit: cp {keep}/{args.name}.* vvc_lightning/assets/models/",
            flush=True,
        )
    else:
        print(
            f"campaign: rejected: {decision.reason}; kept the previous weights of {args.name} in "
            f"{models_dir}; "
            f"history entry added to its record (to commit: cp {keep}/{record_path.name} "
            "vvc_lightning/assets/models/)",
            flush=True,
        )
    logs = sorted(Path(str(cfg.run_dir)).glob("logs/version_*/metrics.csv"))
    if logs:
        shutil.copyfile(logs[-1], out / "metrics.csv")
    (out / "campaign.json").write_text(
        json.dumps({"accepted": decision.accept, "entry": hist}, indent=1) + "\n"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", default="vvc-lean-vr", help="the shipped model to continue")
    ap.add_argument(
        "--models-dir",
        default=None,
        help="folder holding NAME.json + NAME.safetensors, replaced on "
        "accept (default: vvc_lightning/assets/models of the repository)",
    )
    ap.add_argument(
        "--config", action="append", default=None, help="config(s) stacked on the record's config"
    )
    ap.add_argument(
        "--out", default=os.environ.get("OUT", "runs/campaign_out"), help="folder for the results"
    )
    ap.add_argument(
        "--budget-s", type=float, default=450, help="seconds for everything since VVC_SCRIPT_START"
    )
    ap.add_argument("--reserve-s", type=float, default=30, help="seconds kept for start-up and copying")
    ap.add_argument(
        "--probe-steps", type=int, default=None, help="steps of the timing probe (default 40; 6 with --smoke)"
    )
    ap.add_argument(
        "--s-per-step", type=float, default=None, help="skip the probe: seconds per step measured before"
    )
    ap.add_argument(
        "--steps", type=int, default=None, help="train this many steps instead of sizing to the budget"
    )
    ap.add_argument(
        "--lr", type=float, default=None, help="learning rate of the continued stage (default: its own)"
    )
    ap.add_argument(
        "--stage",
        default=None,
        help="train this stage from the recorded step: one of the record's stages by name, or a new "
        "one with --train (default: the stage in force at the recorded step)",
    )
    ap.add_argument(
        "--train",
        default=None,
        help="with --stage NAME: the comma-separated parts a new stage trains, e.g. "
        "backbone.decoder,codec.g_s,codec.gain.y_inv",
    )
    ap.add_argument(
        "--data-dir", default="data/offline", help="training data folder (its manifest.json is hashed)"
    )
    ap.add_argument(
        "--manifest", default=None, help="the data manifest to hash (default: DATA_DIR/manifest.json)"
    )
    ap.add_argument(
        "--test-data", default=None, help="test split (default: data.test_dir of the record's config)"
    )
    ap.add_argument("--qualities", default="0,2,4,6,7", help="qualities measured for both models")
    ap.add_argument("--max-frames", type=int, default=17, help="frames per test sequence")
    ap.add_argument(
        "--smoke", action="store_true", help="CPU, 64-pixel crops, tiny batches: checks this script"
    )
    ap.add_argument("overrides", nargs="*", help="key.sub=value overrides of the config")
    args = ap.parse_intermixed_args(argv)
    if args.train and not args.stage:
        ap.error("--train needs --stage NAME, the name of the stage it defines")
    from vvc_lightning.errors import VVCError

    try:
        return run(args)
    except VVCError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
