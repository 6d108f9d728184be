"""Train the zoo recipe on one GPU inside a wall-clock budget and put the results in an output folder (its
probe, sizing and callbacks also serve scripts/campaign.py, which continues the shipped model instead).

1. probe: a few dozen steps in the joint stage (the dearest: every part trains), data loading included,
   give the seconds per step on this machine;
2. size the run: max_steps from the time left, the stage starts at the same fractions of it as in the
   config, `trainer.max_time` as a hard stop (Lightning then saves last.ckpt all the same);
3. fit (saving final.ckpt however it stops), then copy to OUT: last.ckpt = the final state (split into
   <=15 MiB parts when larger: `cat last.ckpt.part* > last.ckpt`), metrics.csv, run_config.yaml (the
   config of the run, to stack for resuming) and summary.json.

    python scripts/gpu_train.py --out $OUT --budget-s 450  # what SCRATCH=1 bash scripts/gpu_train.sh runs
    python scripts/gpu_train.py --smoke --out /tmp/out     # the same path on a CPU, tiny and fast
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

START = float(os.environ.get("VVC_SCRIPT_START", time.time()))  # when the shell wrapper began
PART = 15 * 2**20  # files that come back from the device machine: 16 MiB each at most
MAX_BACK = 60 * 2**20  # and 64 MiB together
SMOKE = ["data.crop_size=64", "data.batch_size=2", "data.num_workers=2", "data.epoch_length=64",
         "trainer.accelerator=cpu", "trainer.log_every_n_steps=2", "trainer.val_check_interval=4",
         "trainer.limit_val_batches=1", "data.shuffle_buffer=2", "trainer.enable_progress_bar=false"]


def callbacks():
    """(StepTimer, FinalCheckpoint) Lightning callback classes (built lazily: lightning imports late)."""
    import lightning.pytorch as pl

    class StepTimer(pl.Callback):
        """Wall-clock time at the end of every training step."""

        def __init__(self) -> None:
            self.times: list[float] = []

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
            if trainer.strategy.root_device.type == "cuda":
                import torch

                torch.cuda.synchronize()
            self.times.append(time.perf_counter())

    class FinalCheckpoint(pl.Callback):
        """Saves final.ckpt when training ends, however it ends (max_steps, max_time): Lightning's
        last.ckpt is only refreshed with the periodic checkpoints."""

        def __init__(self, path: Path) -> None:
            self.path = path

        def on_train_end(self, trainer, module) -> None:
            trainer.save_checkpoint(str(self.path))

    class Progress(pl.Callback):
        """One line every `every` steps: step, stage, logged loss terms, seconds since the script began."""

        def __init__(self, every: int) -> None:
            self.every = max(1, every)

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
            if trainer.global_step % self.every == 0:
                m = trainer.callback_metrics
                keys = ("train/loss", "train/psnr", "train/bpp", "train/stlpips", "val/psnr", "val/bpp")
                vals = " ".join(
                    f"{k.split('/')[0][0]}/{k.split('/')[1]}={float(m[k]):.4g}" for k in keys if k in m
                )
                print(
                    f"step {trainer.global_step} stage {module.stage.name} {vals} "
                    f"t={time.time() - START:.0f}s",
                    flush=True,
                )

    return StepTimer, FinalCheckpoint, Progress


def fit_function():
    """`fit` of the training package (imported late: the script sets up paths first)."""
    from vvc_lightning.training.trainer import fit

    return fit


def seconds_per_step(cfg, steps: int, skip: int) -> float:
    """Median-free mean seconds per joint-stage step after `skip` warm-up steps (data loading included)."""
    from omegaconf import OmegaConf

    from vvc_lightning.configuration.config import apply_overrides

    fit = fit_function()
    probe = apply_overrides(
        cfg.copy(),
        [
            f"run_dir={cfg.run_dir}_probe",
            f"trainer.max_steps={steps}",
            "trainer.limit_val_batches=0",
            "checkpoint.every_n_train_steps=100000",
            "trainer.logger=false",
            "trainer.enable_progress_bar=false",
        ],
    )
    last = cfg.stages[len(cfg.stages) - 1]
    OmegaConf.set_struct(probe.stages, False)
    probe.stages = [
        {
            "name": "probe",
            "train": list(last.train),
            "start_step": 0,
            "lr": float(last.lr or cfg.optim.lr),
            "loss": str(last.loss),
        }
    ]
    timer = callbacks()[0]()
    fit(probe, callbacks=[timer])
    t = timer.times
    return (t[-1] - t[skip]) / max(1, len(t) - 1 - skip)


def size_run(
    cfg, s_per_step: float, seconds: float, max_steps: int | None, resume_step: int = 0
) -> list[str]:
    """Overrides: max_steps for `seconds` of training, stage starts at the config's fractions, max_time.

    When resuming at `resume_step`, the run continues for `seconds` more and the stages stay where they
    are."""
    old = int(cfg.trainer.max_steps)
    steps = max_steps or resume_step + max(len(cfg.stages) * 10, int(seconds / (s_per_step * 1.08)))
    out = [
        f"trainer.max_steps={steps}",
        f"checkpoint.every_n_train_steps={max(1, (steps - resume_step) // 5)}",
    ]
    if not resume_step:
        for i, st in enumerate(cfg.stages):
            if i:
                out.append(f"stages.{i}.start_step={max(i, round(int(st.start_step) / old * steps))}")
        warmup = int(cfg.optim.warmup_steps)
        out.append(f"optim.warmup_steps={min(warmup, max(1, steps // 20))}")
    val = int(cfg.trainer.get("val_check_interval") or 0)
    if val:
        out.append(f"trainer.val_check_interval={max(1, min(val, (steps - resume_step) // 5))}")
    total = max(60, int(seconds * 1.1))  # hard stop a little after the planned end
    out.append(f"trainer.max_time=00:00:{total // 60:02d}:{total % 60:02d}")
    return out


def bring_back(run_dir: Path, out: Path, summary: dict) -> None:
    """Copy the checkpoint (in parts when large), the CSV log and the summary into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    ckpt = run_dir / "final.ckpt" if (run_dir / "final.ckpt").is_file() else run_dir / "last.ckpt"
    if ckpt.is_file():
        data = ckpt.read_bytes()
        summary["last_ckpt_bytes"] = len(data)
        if len(data) > MAX_BACK:  # keep the weights (and CDF tables and config) only
            import io

            import torch

            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
            state.pop("optimizer_states", None)
            state.pop("lr_schedulers", None)
            buf = io.BytesIO()
            torch.save(state, buf)
            data = buf.getvalue()
            summary["note"] = "last.ckpt without optimizer state (too large to bring back whole)"
        if len(data) <= PART:
            (out / "last.ckpt").write_bytes(data)
        else:
            for k in range(0, len(data), PART):
                (out / f"last.ckpt.part{k // PART}").write_bytes(data[k : k + PART])
    logs = sorted(run_dir.glob("logs/version_*/metrics.csv"))
    if logs:
        shutil.copyfile(logs[-1], out / "metrics.csv")
        summary["final_logged"] = last_values(logs[-1])
    summary["wall_s"] = round(time.time() - START, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))


def last_values(csv_path: Path) -> dict:
    """The last logged value of every column of a Lightning CSV log."""
    import csv

    last: dict = {}
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            last.update({k: float(v) for k, v in row.items() if v not in ("", None)})
    return last


def resume_yaml(cfg, to_yaml) -> str:
    """The run's config as YAML for resuming elsewhere: without this machine's time limit."""
    from omegaconf import open_dict

    cfg = cfg.copy()
    with open_dict(cfg):
        cfg.trainer.pop("max_time", None)
    return to_yaml(cfg)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--config", action="append", default=None, help="config(s); default configs/zoo_lean_vr.yaml"
    )
    ap.add_argument("--out", default=os.environ.get("OUT", "runs/gpu_out"), help="folder for the results")
    ap.add_argument(
        "--budget-s", type=float, default=450, help="seconds for everything since VVC_SCRIPT_START"
    )
    ap.add_argument(
        "--reserve-s", type=float, default=45, help="seconds kept for start-up of the run and copying"
    )
    ap.add_argument("--probe-steps", type=int, default=40)
    ap.add_argument("--max-steps", type=int, default=None, help="fix the step count instead of sizing it")
    ap.add_argument(
        "--ckpt", default=None, help="resume from this checkpoint or exported weights file (zoo:NAME too)"
    )
    ap.add_argument(
        "--resume-step", type=int, default=0, help="the step --ckpt was taken at (sizes the rest)"
    )
    ap.add_argument(
        "--s-per-step", type=float, default=None, help="skip the probe: seconds per step measured before"
    )
    ap.add_argument(
        "--smoke", action="store_true", help="CPU, 64-pixel crops, a few steps: checks this script"
    )
    ap.add_argument("overrides", nargs="*", help="key.sub=value overrides of the config")
    args = ap.parse_intermixed_args()

    import torch

    from vvc_lightning.configuration.config import apply_overrides, load_config, to_yaml

    fit = fit_function()

    torch.backends.cuda.matmul.allow_tf32 = True  # fp32 weights, TF32 matmuls/convs (faster than bf16 here)
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    overrides = (SMOKE if args.smoke else []) + list(args.overrides)
    cfg = load_config(args.config or ["configs/zoo_lean_vr.yaml"], overrides)
    if not args.smoke and not torch.cuda.is_available():
        raise SystemExit("error: no GPU visible; run with --smoke for the CPU check")
    probe_steps = 6 if args.smoke else args.probe_steps
    s_step = args.s_per_step or seconds_per_step(cfg, probe_steps, skip=2 if args.smoke else 10)
    left = args.budget_s - (time.time() - START) - args.reserve_s
    print(f"probe: {s_step:.3f} s/step; {left:.0f} s left for training", flush=True)
    sized = size_run(cfg, s_step, left, args.max_steps, args.resume_step)
    print("run overrides:", " ".join(sized), flush=True)
    cfg = apply_overrides(cfg, sized)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "run_config.yaml").write_text(resume_yaml(cfg, to_yaml))
    summary = {"device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
               "torch": torch.__version__, "probe_s_per_step": s_step, "overrides": overrides + sized}
    t0 = time.time()
    try:
        run_dir = Path(str(cfg.run_dir))
        if (run_dir / "final.ckpt").exists():
            raise SystemExit(f"error: {run_dir}/final.ckpt exists; give another run_dir=")
        _, final, progress = callbacks()
        every = max(1, int(cfg.trainer.max_steps) // 20)
        trainer = fit(cfg, ckpt=args.ckpt, callbacks=[final(run_dir / "final.ckpt"), progress(every)])
        summary["global_step"] = int(trainer.global_step)
    finally:
        summary["train_s"] = round(time.time() - t0, 1)
        bring_back(Path(str(cfg.run_dir)), out, summary)
    print(json.dumps(summary, indent=2), flush=True)


if __name__ == "__main__":
    main()
