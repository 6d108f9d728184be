"""Value ranges of config keys (rates, weights, step counts, GoP length) and bounds on YAML values."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from vvc_lightning.errors import ConfigError

MAX_YAML_NODES = 100_000  # scalars + containers of one value, aliases expanded
MAX_YAML_DEPTH = 64
MAX_QUALITIES = 64
PERCEPTUAL_DISTANCES = ("lpips", "stlpips", "ms-ssim")  # model.loss.perceptual: metrics.perceptual.DISTANCES
MAX_MODEL_INT = 1 << 16  # any size in model.* (width, channels, blocks, gop) above this is refused
MAX_LATENT_CHANNELS = 4096  # as the bitstream header stores them


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _whole(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# key -> (test, what the value must be)
RANGES: dict[str, tuple[Any, str]] = {
    "model.loss.lmbda": (lambda v: _number(v) and v > 0, "a finite number above 0 (e.g. 0.1)"),
    "model.loss.alpha": (lambda v: _number(v) and v >= 0, "a finite number >= 0 (e.g. 1e-3)"),
    "model.loss.beta": (lambda v: _number(v) and v >= 0, "a finite number >= 0 (e.g. 1.0)"),
    "model.codec.qualities": (
        lambda v: _whole(v) and 0 <= v <= MAX_QUALITIES,
        f"a whole number from 0 (fixed rate) to {MAX_QUALITIES} (e.g. 8)",
    ),
    "model.codec.context_hidden": (
        lambda v: v is None or (_whole(v) and v >= 1),
        "a whole number >= 1 (channels), or null (the latent channels)",
    ),
    "model.codec.groups": (
        lambda v: v is None or (isinstance(v, ListConfig) and len(v) and all(_whole(c) and c > 0 for c in v)),
        "a list of channel counts >= 1 that sum to the latent channels (e.g. [16, 16, 32]), or null",
    ),
    "seed": (lambda v: _whole(v) and 0 <= v < 2**32, "a whole number from 0 to 4294967295"),
    "model.codec.transform_blocks": (
        lambda v: _whole(v) and 0 <= v <= 64,
        "a whole number from 0 to 64 (e.g. 2)",
    ),
    "optim.betas": (
        lambda v: isinstance(v, ListConfig) and len(v) == 2 and all(_number(b) and 0 <= b < 1 for b in v),
        "two numbers in [0, 1) (e.g. [0.9, 0.999])",
    ),
    "optim.lr": (lambda v: _number(v) and v > 0, "a finite number above 0 (e.g. 5e-6)"),
    "optim.aux_lr": (lambda v: _number(v) and v > 0, "a finite number above 0 (e.g. 1e-3)"),
    "optim.weight_decay": (lambda v: _number(v) and v >= 0, "a finite number >= 0 (e.g. 0.0)"),
    "optim.grad_clip": (
        lambda v: v is None or (_number(v) and v > 0),
        "a finite number above 0, or null (off)",
    ),
    "optim.warmup_steps": (lambda v: _whole(v) and v >= 0, "a whole number >= 0"),
    "optim.min_lr_ratio": (lambda v: _number(v) and 0 <= v <= 1, "a number from 0 to 1 (e.g. 0.1)"),
    "checkpoint.every_n_train_steps": (lambda v: _whole(v) and v >= 1, "a whole number >= 1 (e.g. 1000)"),
    "checkpoint.keep": (lambda v: _whole(v) and v >= -1, "a whole number >= 0 (or -1: keep all)"),
    "trainer.max_steps": (
        lambda v: _whole(v) and (v >= 1 or v == -1),
        "a whole number >= 1 (or -1: no limit)",
    ),
    "trainer.accumulate_grad_batches": (lambda v: _whole(v) and v >= 1, "a whole number >= 1 (e.g. 1)"),
    "trainer.check_val_every_n_epoch": (
        lambda v: v is None or (_whole(v) and v >= 1),
        "a whole number >= 1, or null (validate by trainer.val_check_interval only)",
    ),
    "trainer.log_every_n_steps": (lambda v: _whole(v) and v >= 0, "a whole number >= 0 (e.g. 10; 0: none)"),
    "trainer.num_nodes": (lambda v: _whole(v) and v >= 1, "a whole number >= 1"),
    "trainer.num_sanity_val_steps": (lambda v: _whole(v) and v >= -1, "a whole number >= 0, or -1 (all)"),
    "trainer.max_epochs": (
        lambda v: v is None or (_whole(v) and (v >= 1 or v == -1)),
        "a whole number >= 1, -1 (no limit) or null",
    ),
}


def _accelerators() -> tuple[str, ...]:
    from lightning.pytorch.accelerators import AcceleratorRegistry

    return ("auto", "gpu", *sorted(AcceleratorRegistry.available_accelerators()))


def _strategies() -> tuple[str, ...]:
    from lightning.pytorch.strategies import StrategyRegistry

    return ("auto", *StrategyRegistry.available_strategies())


# key -> (the names it may hold, whether case is ignored as the consumer ignores it); absent keys are skipped
CHOICES: dict[str, tuple[Callable[[], tuple[str, ...]], bool]] = {
    "trainer.accelerator": (_accelerators, False),
    "trainer.strategy": (_strategies, True),
    "optim.decay": (lambda: ("constant", "cosine"), False),
    "model.loss.lpips_net": (lambda: ("alex", "vgg"), False),
}


def check_choices(cfg: DictConfig) -> None:
    """Raise ConfigError naming the first key of CHOICES whose text value is none of its names."""
    for key, (names, fold) in CHOICES.items():
        value = OmegaConf.select(cfg, key, default=None, throw_on_missing=False)
        if value is None:
            continue
        allowed = names()
        if not isinstance(value, str) or (value.lower() if fold else value) not in allowed:
            shown = ", ".join(allowed[:8]) + (f", ... ({len(allowed)} names)" if len(allowed) > 8 else "")
            raise ConfigError(f"config key '{key}' must be one of {shown}, got {value!r}")


def check_test_qualities(cfg: DictConfig) -> None:
    """test.qualities: null, or qualities within the model's range [0, model.codec.qualities - 1]."""
    value = cfg.test.get("qualities")
    if value is None:
        return
    n = cfg.model.codec.qualities
    if not n:
        raise ConfigError(f"config key 'test.qualities' is for a variable-rate model, but "
                          f"model.codec.qualities is 0 (fixed rate); leave it null, got {_listed(value)}")
    if not isinstance(value, ListConfig) or not all(_number(q) and 0 <= q <= n - 1 for q in value):
        raise ConfigError(f"config key 'test.qualities' must be a list of numbers in [0, {n - 1}] (the "
                          f"qualities of model.codec.qualities={n}, e.g. [0, {n - 1}]) or null, got "
                          f"{_listed(value)}")


def check_test_metrics(cfg: DictConfig) -> None:
    """test.metrics: names the metrics registry knows (checked before training, not when `test` runs)."""
    from vvc_lightning.errors import VVCError
    from vvc_lightning.metrics import resolve_names

    try:
        resolve_names([str(m) for m in cfg.test.metrics])
    except VVCError as exc:
        raise ConfigError(f"config key 'test.metrics': {exc}") from None


def _listed(value: Any) -> Any:
    return OmegaConf.to_container(value) if isinstance(value, ListConfig) else value


def model_size_problem(model: Any, where: str = "model") -> str | None:
    """What is wrong with the first size in a plain `model` section (as a record or `to_container` holds it)
    that no model this version builds has: a whole number beyond MAX_MODEL_INT, a non-finite number, or
    backbone.latent_channels above MAX_LATENT_CHANNELS; None when every value is in range."""
    latent = model.get("backbone", {}).get("latent_channels") if isinstance(model, dict) else None
    if _whole(latent) and not 1 <= latent <= MAX_LATENT_CHANNELS:
        return f"'{where}.backbone.latent_channels' is {latent}, not from 1 to {MAX_LATENT_CHANNELS}"
    stack: list[tuple[str, Any]] = [(where, model)]
    while stack:
        key, node = stack.pop()
        if isinstance(node, dict):
            stack.extend((f"{key}.{k}", v) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((f"{key}[{i}]", v) for i, v in enumerate(node))
        elif isinstance(node, float) and not math.isfinite(node):
            return f"'{key}' is {node!r}"
        elif _whole(node) and abs(node) > MAX_MODEL_INT:
            return f"'{key}' is {node}, beyond any model this version builds (at most {MAX_MODEL_INT})"
    return None


def check_ranges(cfg: DictConfig) -> None:
    """Raise ConfigError naming the first key whose (resolved) value is out of its range."""
    problem = model_size_problem(OmegaConf.to_container(cfg.model, resolve=True))
    if problem is not None:
        raise ConfigError(f"config key {problem}; use a size a model of this kind has (see configs/)")
    for key, (ok, what) in RANGES.items():
        value = OmegaConf.select(cfg, key, default=None, throw_on_missing=False)
        if value is None and key.startswith("trainer.") and key.rsplit(".", 1)[1] not in cfg.trainer:
            continue
        if not ok(value):
            raise ConfigError(f"config key '{key}' must be {what}, got {value!r}")
    rng = cfg.model.loss.get("lmbda_range")
    if rng is not None:
        lo_hi = list(rng) if isinstance(rng, ListConfig) else rng
        if not (isinstance(lo_hi, list) and len(lo_hi) == 2 and all(_number(v) for v in lo_hi)
                and 0 < lo_hi[0] < lo_hi[1]):
            raise ConfigError(f"config key 'model.loss.lmbda_range' must be [lo, hi] with 0 < lo < hi "
                              f"(e.g. [0.01, 1.0]), got {rng}")
    for i, stage in enumerate(cfg.stages):
        lr = stage.get("lr") if isinstance(stage, DictConfig) else None
        if lr is not None and not (_number(lr) and lr > 0):
            raise ConfigError(f"config key 'stages.{i}.lr' must be a finite number above 0 (e.g. 1e-4), got "
                              f"{lr!r}")


def check_gop(gop: Any) -> None:
    """model.gop: 1 + 4k frames, at most the bitstream's GoP limit."""
    from vvc_lightning.codec.pipeline.container import MAX_GOP

    if not _whole(gop) or gop < 1 or (gop - 1) % 4 or gop > MAX_GOP:
        raise ConfigError(f"model.gop must be 1 + 4k frames (5, 9, 13, 17, ...) and at most {MAX_GOP}, got "
                          f"{gop}")


def check_yaml_size(value: Any, origin: str) -> None:
    """Refuse a parsed YAML value whose expansion (aliases counted each time used) is huge or too deep."""
    budget = [MAX_YAML_NODES]
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        budget[0] -= 1
        if budget[0] < 0 or depth > MAX_YAML_DEPTH:
            raise ConfigError(
                f"{origin} expands to more than {MAX_YAML_NODES} values or {MAX_YAML_DEPTH} levels "
                "(YAML anchors / aliases?); write the value out plainly"
            )
        if isinstance(node, dict):
            stack.extend((x, depth + 1) for pair in node.items() for x in pair)
        elif isinstance(node, (list, tuple)):
            stack.extend((x, depth + 1) for x in node)
