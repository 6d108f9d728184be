"""Training throughput of a recipe (default: the zoo's) before and after the device clip bank, in one run.

before: the recipe's own datamodule (DataLoader workers decoding clips, fp32) at its batch size.
after:  the `device_clips` bank (clips cut on the device), then each option alone on top of it (tf32,
        bf16 autocast, channels_last, cudnn_benchmark, fused AdamW, torch.compile), then the options that
        were measured faster, together, at each of --batches (torch.compile only at the best of them).
Per run: clips/s (free-running steps), seconds per step split into data wait / forward+loss / backward /
optimizer (synchronised phases: torch.cuda.synchronize on a GPU, perf_counter on the CPU), achieved FLOP/s
(FlopCounterMode over one real forward+backward step) against the chip's dense peak, peak device memory,
the loss of one fixed batch from the same initial weights and noise (same loss check), and the operators
that take the most time in the bank's fp32 step (torch.profiler, `top_ops`). Writes JSON.

    python benchmarks/bench_train_throughput.py --data data/offline \\
        -o benchmarks/results/bench_train_throughput_h200.json
    python benchmarks/bench_train_throughput.py --smoke -o /tmp/smoke.json   # CPU: tiny steps at 32x32
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput_env import chip_peaks, machine, write_smoke_data  # noqa: E402

from vvc_lightning.complexity import count_parameters, macs_per_frame  # noqa: E402
from vvc_lightning.configuration.config import load_config, section_kwargs  # noqa: E402
from vvc_lightning.errors import VVCError  # noqa: E402
from vvc_lightning.registry import DATAMODULES  # noqa: E402
from vvc_lightning.training.model import VideoCompressionModel  # noqa: E402

FLAGS = ("tf32", "bf16", "channels_last", "cudnn_benchmark", "fused", "compile", "cudagraphs")
DEFAULT_FLAGS = FLAGS[:-1]  # cudagraphs (torch.compile mode reduce-overhead) on request: one more compile
CUDA_ONLY = ("tf32", "cudnn_benchmark", "cudagraphs")
PHASES = ("data", "forward", "backward", "optimizer")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def numerics(flags: set[str]):
    """TF32 matmuls and cuDNN autotuning for the block only (today's defaults are restored after)."""
    precision, bench = torch.get_float32_matmul_precision(), torch.backends.cudnn.benchmark
    torch.set_float32_matmul_precision("high" if "tf32" in flags else "highest")
    torch.backends.cudnn.benchmark = "cudnn_benchmark" in flags
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(precision)
        torch.backends.cudnn.benchmark = bench


class Step:
    """One training step of the recipe's stage (the model's _step without logging), phase by phase."""

    def __init__(self, cfg, device: torch.device, stage: str, flags: set[str]) -> None:
        torch.manual_seed(int(cfg.seed))
        model = VideoCompressionModel(cfg).to(device).train()
        st = next((s for s in cfg.stages if s.name == stage), None)
        if st is None:
            raise VVCError(f"--stage {stage}: the recipe has stages {', '.join(s.name for s in cfg.stages)}")
        model.stage = st
        units = [str(u) for u in st.train]
        for name, p in model.named_parameters():
            p.requires_grad_(any(name == u or name.startswith(u + ".") for u in units))
        self.loss_fn = model.loss_fn()
        if "channels_last" in flags:  # the codec's and the perceptual net's convolutions (the backbone's
            for m in (model.codec, self.loss_fn.perceptual):  # activations are channels-last already)
                for p in m.parameters():
                    if p.dim() in (4, 5):
                        fmt = torch.channels_last if p.dim() == 4 else torch.channels_last_3d
                        p.data = p.data.contiguous(memory_format=fmt)
        groups = model.param_groups()
        for g in groups:
            g["lr"] = float(cfg.optim.aux_lr if g["name"] == "aux" else st.get("lr") or cfg.optim.lr)
        betas = tuple(float(b) for b in cfg.optim.betas)
        self.opt = torch.optim.AdamW(groups, betas=betas, **({"fused": True} if "fused" in flags else {}))
        if "compile" in flags or "cudagraphs" in flags:  # the backbone and the perceptual net: most FLOPs
            mode = "reduce-overhead" if "cudagraphs" in flags else None
            model.backbone.encode = torch.compile(model.backbone.encode, mode=mode)
            model.backbone.decode = torch.compile(model.backbone.decode, mode=mode)
            self.loss_fn.perceptual.compile(mode=mode)
        self.model, self.device, self.flags, self.rd = model, device, flags, st.loss == "rd"

    def forward(self, x: torch.Tensor, quality=None, lmbda=None) -> torch.Tensor:
        """The step's loss (eq. 1 or eq. 2 plus the aux loss) at a random rate point unless given one."""
        if lmbda is None:
            quality, lmbda = self.model.rate_point(True)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled="bf16" in self.flags):
            out = self.model(x, rd=self.rd, quality=quality)
            lik = out.get("likelihoods", {})
            terms = self.loss_fn(x, out["x_hat"], lik.get("y"), lik.get("z"), lmbda=lmbda)
            return terms.loss + self.model.codec.aux_loss()

    def run(self, x: torch.Tensor, times: dict[str, list[float]] | None, t0: float) -> None:
        """forward, backward, optimizer; with `times`, each phase is synchronised and timed from `t0`."""
        def mark(phase: str) -> None:
            nonlocal t0
            if times is not None:
                sync(self.device)
                t = time.perf_counter()
                times[phase].append(t - t0)
                t0 = t

        mark("data")
        loss = self.forward(x)
        mark("forward")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        mark("backward")
        self.model.configure_gradient_clipping(self.opt)
        self.opt.step()
        mark("optimizer")


def step_flops(cfg, device: torch.device, stage: str, x: torch.Tensor) -> float:
    """FLOPs of one real forward+backward of the step (convolutions, matmuls, attention), uncompiled."""
    from torch.utils.flop_counter import FlopCounterMode

    step = Step(cfg, device, stage, set())
    with FlopCounterMode(display=False) as counter:
        step.forward(x).backward()
    return float(counter.get_total_flops())


def measure(step: Step, batches, batch: int, steps: int, warmup: int) -> dict:
    """Warm-up, then `steps` phase-timed steps and `steps` free-running ones (clips/s)."""
    dev = step.device
    t = time.perf_counter()
    for _ in range(warmup):
        step.run(next(batches).to(dev, non_blocking=True), None, 0.0)
    sync(dev)
    warm = time.perf_counter() - t
    times: dict[str, list[float]] = {p: [] for p in PHASES}
    for _ in range(steps):
        t0 = time.perf_counter()
        x = next(batches).to(dev, non_blocking=True)
        step.run(x, times, t0)
    sync(dev)
    t = time.perf_counter()
    for _ in range(steps):
        step.run(next(batches).to(dev, non_blocking=True), None, 0.0)
    sync(dev)
    free = (time.perf_counter() - t) / steps
    split = {p: statistics.median(v) for p, v in times.items()}
    split["total"] = statistics.median([sum(v) for v in zip(*times.values(), strict=True)])
    return {"batch": batch, "clips_per_s": batch / free, "s_per_step": free, "s_per_step_phased": split,
            "warmup_s": warm}


def top_ops(step: Step, batches, steps: int = 3, top: int = 15) -> list[dict]:
    """The operators that take the most time in `steps` profiled steps (self time on the device / CPU)."""
    from torch.profiler import ProfilerActivity, profile

    cuda = step.device.type == "cuda"
    # Kineto (torch.profiler) for device kernels; on a CPU the legacy one (Kineto takes seconds to start)
    prof_cm = (profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) if cuda
               else torch.autograd.profiler.profile(use_kineto=False))
    with prof_cm as prof:
        for _ in range(steps):
            step.run(next(batches).to(step.device, non_blocking=True), None, 0.0)
        sync(step.device)
    events = prof.key_averages()

    def self_us(e) -> float:
        return float(getattr(e, "self_device_time_total", 0.0) if cuda else e.self_cpu_time_total)

    total = sum(self_us(e) for e in events) or 1.0
    return [{"op": e.key, "ms_per_step": self_us(e) / 1e3 / steps, "share": self_us(e) / total,
             "calls_per_step": e.count / steps} for e in sorted(events, key=self_us, reverse=True)[:top]]


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (CUDA errors run to many lines)."""
    return (str(exc).splitlines() or [""])[0]


def forever(loader):
    """Batches of a loader, epoch after epoch."""
    while True:
        yield from loader


def data_cfg(cfg, name: str, batch: int, device: torch.device) -> dict:
    kwargs = section_kwargs(cfg.data)
    kwargs["batch_size"] = batch
    if name == "device_clips":
        kwargs["device"] = str(device)
    return kwargs


def before_batches(cfg, batch: int, device: torch.device):
    """The recipe's own datamodule (its DataLoader, its workers)."""
    dm = DATAMODULES.create(str(cfg.data.name), **data_cfg(cfg, str(cfg.data.name), batch, device))
    dm.train_set = dm.build_train()  # training data only (no validation set needed)
    return forever(dm.train_dataloader())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-o", "--out", default="benchmarks/results/bench_train_throughput.json")
    ap.add_argument("--config", action="append", default=None,
                    help="recipe configs (default zoo_lean_vr.yaml)")
    ap.add_argument("--override", action="append", default=[], help="key=value, after the data paths")
    ap.add_argument("--data", default=None,
                    help="offline data folder (stills/, shards/train/) as gpu_train.sh")
    ap.add_argument("--stage", default="joint",
                    help="the recipe stage to time (default joint: everything trains)")
    ap.add_argument("--flags", default=",".join(DEFAULT_FLAGS),
                    help=f"options to measure one by one, of {','.join(FLAGS)}")
    ap.add_argument("--batches", default="8,16,32,64", help="batch sizes of the combined run")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--budget-s", type=float, default=420.0, help="runs that would start later are skipped")
    ap.add_argument("--no-profile", dest="profile", action="store_false",
                    help="skip the operator profile of the bank's fp32 step (top_ops)")
    ap.add_argument("--smoke", action="store_true", help="CPU smoke: 32x32 crops, tiny steps, own tiny data")
    args = ap.parse_args(argv)
    start = time.perf_counter()
    device = torch.device("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    tmp = None
    if args.smoke:
        args.steps, args.warmup = min(args.steps, 2), min(args.warmup, 1)
        args.batches = "4" if args.batches == ap.get_default("batches") else args.batches
        if args.data is None:
            tmp = tempfile.TemporaryDirectory(prefix="vvc_throughput_")
            args.data = write_smoke_data(Path(tmp.name))
    overrides = []
    if args.data is not None:
        d = Path(args.data)
        overrides += [f"data.train_images={d / 'stills'}", f"data.train_shards={d / 'shards' / 'train'}"]
    if args.smoke:
        overrides += ["data.crop_size=32", "data.batch_size=2", "data.num_workers=0", "data.shuffle_buffer=2",
                      "data.epoch_length=64"]
    try:
        cfg = load_config(args.config or ["zoo_lean_vr.yaml"], overrides + args.override)
        flags = [f for f in args.flags.split(",") if f]
        if args.smoke and args.flags == ap.get_default("flags"):
            flags.remove("compile")  # minutes of C++ compiling on a CPU; ask for it with --flags
        bad = [f for f in flags if f not in FLAGS]
        if bad:
            raise VVCError(f"--flags: unknown option {', '.join(bad)}; choose from {', '.join(FLAGS)}")
        result = run(cfg, args, device, flags, [int(b) for b in args.batches.split(",") if b], start)
    except VVCError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if tmp is not None:
            tmp.cleanup()
    result["env"]["load_average_end"] = list(os.getloadavg())
    result["env"]["wall_s"] = time.perf_counter() - start
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_name(out.name + ".part")
    part.write_text(json.dumps(result, indent=2))
    part.replace(out)
    print(f"wrote {out}")
    return 0


def run(cfg, args, device: torch.device, flags: list[str], batches: list[int], start: float) -> dict:
    """Every configuration in turn; a failure (e.g. out of memory) is recorded and the others go on."""
    data = cfg.data
    frames, crop, base = int(data.frames), int(data.crop_size), int(data.batch_size)
    key, peaks = chip_peaks(device)
    probe = VideoCompressionModel(cfg)
    result = {
        "smoke": bool(args.smoke),
        "note": ("CPU smoke run of the benchmark's own path (tiny steps at 32x32 on its own tiny data): "
                 "NOT a measurement of the target" if args.smoke else "measurement"),
        "peak_note": (
            "dense peaks; runs without tf32/bf16 are set against the CUDA-core FP32 peak although cuDNN "
            "convolutions use TF32 by default; FLOPs counted by FlopCounterMode over one real step "
            "(convolutions, matmuls, attention; not norms, activations or the optimizer)"
        ),
        "env": machine(device),
        "recipe": {"configs": args.config or ["zoo_lean_vr.yaml"], "overrides": args.override,
                   "stage": args.stage, "datamodule": str(data.name), "frames": frames,
                   "frame_stride": int(data.frame_stride), "crop": crop, "batch": base,
                   "perceptual": str(cfg.model.loss.perceptual),
                   "params_backbone": count_parameters(probe.backbone),
                   "params_codec": count_parameters(probe.codec)},
        "macs_per_frame_backbone": macs_per_frame(probe.backbone, T=frames, H=crop, W=crop)["total"],
        "peak_chip": key,
        "peaks_tflops": peaks if peaks else "unknown (CPU or an unlisted chip)",
        "flops_per_step": {}, "runs": [], "errors": [], "skipped": [],
    }
    del probe
    bank_dm = DATAMODULES.create("device_clips", **data_cfg(cfg, "device_clips", base, device))
    t = time.perf_counter()
    bank = bank_dm.build_bank(device)
    result["bank"] = {"gb": bank.nbytes / 2**30, "videos": len(bank.videos), "photos": len(bank.photos),
                      "build_s": time.perf_counter() - t}
    from vvc_lightning.datamodules.device_clips import DeviceClipLoader

    fixed = bank.batch(min(base, 4), torch.Generator().manual_seed(12345))

    def one(name: str, path: str, on: set[str], batch: int, profile: bool = False) -> dict | None:
        if time.perf_counter() - start > args.budget_s:
            result["skipped"].append(f"{name} (time budget --budget-s {args.budget_s:g} spent)")
            return None
        try:
            with numerics(on):
                step = Step(cfg, device, args.stage, on)
                quality, lmbda = step.model.rate_point(False)  # the fixed batch at the config's lambda
                torch.manual_seed(0)  # the same codec noise for every configuration
                loss = float(step.forward(fixed.to(device), quality, lmbda).detach())
                step.opt.zero_grad(set_to_none=True)
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                if path == "before":
                    batches = before_batches(cfg, batch, device)
                else:
                    batches = forever(DeviceClipLoader(bank, batch, 1000, int(cfg.seed)))
                timing = measure(step, batches, batch, args.steps, args.warmup)
                row = {"name": name, "path": path, "flags": sorted(on), **timing}
                if profile:
                    row["top_ops"] = top_ops(step, batches, steps=1 if args.smoke else 3)
                if device.type == "cuda":
                    row["peak_mem_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
                del step, batches
        except Exception as exc:  # out of memory, a compile failure: record it, go on with the others
            result["errors"].append(f"{name} batch {batch}: {type(exc).__name__}: {first_line(exc)}")
            print(result["errors"][-1], flush=True)
            return None
        finally:
            if device.type == "cuda":
                torch.cuda.empty_cache()
            torch._dynamo.reset()
        if batch not in result["flops_per_step"]:
            try:
                x = bank.batch(batch, torch.Generator().manual_seed(1))
                result["flops_per_step"][batch] = step_flops(cfg, device, args.stage, x)
            except Exception as exc:
                result["flops_per_step"][batch] = None
                result["errors"].append(f"FLOP count at batch {batch}: {type(exc).__name__}: "
                                        f"{first_line(exc)}")
            finally:
                if device.type == "cuda":
                    torch.cuda.empty_cache()
        flops = result["flops_per_step"][batch]
        achieved = flops * row["clips_per_s"] / batch / 1e12 if flops else None
        kind = "bf16" if "bf16" in on else "tf32" if "tf32" in on else "fp32"
        row.update(loss_fixed_batch=loss, achieved_tflops=achieved, peak_kind=kind,
                   peak_tflops=peaks[kind] if peaks else None,
                   fraction_of_peak=achieved / peaks[kind] if peaks and achieved else None)
        row.setdefault("peak_mem_gb", None)
        result["runs"].append(row)
        print(json.dumps({k: row[k] for k in ("name", "batch", "clips_per_s", "s_per_step_phased")}),
              flush=True)
        return row

    before = one("before", "before", set(), base)
    bank_row = one("bank", "after", set(), base, profile=args.profile)
    faster = []
    for f in flags:
        if f in CUDA_ONLY and device.type != "cuda":
            result["skipped"].append(f"{f} (CUDA only)")
            continue
        row = one(f"bank+{f}", "after", {f}, base)
        if row and bank_row and row["clips_per_s"] > 1.03 * bank_row["clips_per_s"]:
            faster.append(f)
    result["faster_options"] = faster
    # The options together at each batch, compiling ones left out (a compile per batch size costs minutes)...
    eager = [f for f in faster if f not in ("compile", "cudagraphs")]
    rows = []
    for b in batches:
        rows.append(one(f"bank+{'+'.join(eager) or 'none'}@{b}", "after", set(eager), b))
        if rows[-1] is None and result["errors"]:
            break  # a larger batch would fail the same way
    # ... then added at the best batch.
    best_eager = max((r for r in rows if r), key=lambda r: r["clips_per_s"], default=None)
    if best_eager and eager != faster:
        one(f"bank+{'+'.join(faster)}@{best_eager['batch']}", "after", set(faster), best_eager["batch"])
    ref = before or bank_row
    for row in result["runs"]:
        row["speedup_vs_before"] = row["clips_per_s"] / before["clips_per_s"] if before else None
        row["loss_rel_diff_vs_before"] = (abs(row["loss_fixed_batch"] - ref["loss_fixed_batch"])
                                          / abs(ref["loss_fixed_batch"]) if ref else None)
    best = max(result["runs"], key=lambda r: r["clips_per_s"], default=None)
    result["best"] = ({k: best[k] for k in ("name", "batch", "clips_per_s", "speedup_vs_before")}
                      if best else None)
    result["flops_per_step"] = {str(k): v for k, v in result["flops_per_step"].items()}
    return result


if __name__ == "__main__":
    sys.exit(main())
