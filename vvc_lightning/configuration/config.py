"""Configs: packaged defaults, config files (by path or packaged name), `key.sub=value` overrides, checks."""

from __future__ import annotations

import copy
import difflib
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from vvc_lightning.configuration.ranges import (
    PERCEPTUAL_DISTANCES,
    check_choices,
    check_gop,
    check_ranges,
    check_test_metrics,
    check_test_qualities,
    check_yaml_size,
)
from vvc_lightning.configuration.types import NUMBER, check_file_shape, check_shape, check_types
from vvc_lightning.errors import ConfigError

# sections whose keys are checked against the named constructor
OPEN_SECTIONS = ("model.backbone", "data", "trainer", "test.codec")
TEST_CODEC_KEYS = ("overlap", "theta", "batch", "tile")  # codec options that stored configs hold as test.KEY
LOSSES = ("vae", "rd")
ROOT_DIR_ALIAS = "trainer.default_root_dir"  # Lightning's name of the run folder: accepted as run_dir
# Trainer arguments the project sets itself (build_trainer), and where a config sets them instead.
TRAINER_OWNED = {  # (trainer.default_root_dir in a file or override becomes run_dir before these are checked)
    "default_root_dir": "the run's folder (checkpoints, logs) is the top-level key run_dir: "
    "run_dir=runs/NAME",
    "plugins": "checkpoints are always written atomically; the checkpoint section sets how often",
}


def _package_path(rel: str) -> str:
    """Absolute path of a file shipped inside the vvc_lightning package (the `pkg:` resolver)."""
    return str(resources.files("vvc_lightning").joinpath(rel))


if not OmegaConf.has_resolver("pkg"):
    OmegaConf.register_resolver("pkg", _package_path)


def packaged_configs() -> list[str]:
    """Names of the configs shipped with the package."""
    root = resources.files("vvc_lightning.configs")
    return sorted(p.name for p in root.iterdir() if p.name.endswith(".yaml") and p.name != "defaults.yaml")


def find_config(name: str) -> Path:
    """A config by path first, then among the packaged configs (the .yaml suffix may be left out)."""
    path = Path(name)
    if path.is_file():
        return path
    root = resources.files("vvc_lightning.configs")
    for candidate in (name, f"{name}.yaml"):
        packaged = root.joinpath(candidate)
        if packaged.is_file():
            return Path(str(packaged))
    raise ConfigError(
        f"config '{name}' not found as a file nor among the packaged configs "
        f"({', '.join(packaged_configs())})"
    )


def _defaults() -> DictConfig:
    cfg = OmegaConf.load(str(resources.files("vvc_lightning.configs").joinpath("defaults.yaml")))
    OmegaConf.set_struct(cfg, True)
    for key in OPEN_SECTIONS:
        OmegaConf.set_struct(OmegaConf.select(cfg, key), False)
    return cfg


def packaged_defaults() -> DictConfig:
    """The packaged defaults.yaml: every key a config may set, with its default."""
    return _defaults()


def _known_keys(cfg: DictConfig, prefix: str = "") -> list[str]:
    keys = []
    for k, v in cfg.items():
        full = f"{prefix}{k}"
        keys.append(full)
        if isinstance(v, DictConfig):
            keys += _known_keys(v, full + ".")
    return keys


def _reword(exc: OmegaConfBaseException, base: DictConfig, origin: str) -> ConfigError:
    key = getattr(exc, "full_key", None) or ""
    msg = str(exc).splitlines()[0]
    if "not in struct" in msg or "Missing key" in msg or "Key '" in msg:
        close = difflib.get_close_matches(key, _known_keys(base), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return ConfigError(f"unknown config key '{key}' in {origin}{hint}")
    return ConfigError(f"bad config value for '{key}' in {origin}: {msg}")


def load_config(configs: list[str] | None = None, overrides: list[str] | None = None,
                precheck: Callable[[DictConfig], None] | None = None) -> DictConfig:
    """Defaults <- each config file in order <- `key.sub=value` overrides; then validated (after `precheck`, a
    quick check of the merged config that may fail before the slower validation imports every backbone)."""
    cfg = _defaults()
    base = cfg.copy()
    for name in configs or []:
        path = find_config(name)
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
            check_yaml_size(raw, f"config '{path}'")
            check_file_shape(raw, base, f"config '{path}'")
            loaded = _unwrap_hparams(OmegaConf.load(path))
        except ConfigError:
            raise
        except Exception as exc:
            raise ConfigError(f"cannot parse config '{path}': {str(exc).splitlines()[0]}") from exc
        _alias_root_dir(loaded, str(path))
        _move_test_codec_keys(loaded, str(path))
        for section in OPEN_SECTIONS[:2]:
            new_name = OmegaConf.select(loaded, f"{section}.name", default=None)
            _reset_if_renamed(cfg, section, new_name)
        try:
            cfg = OmegaConf.merge(cfg, loaded)
        except OmegaConfBaseException as exc:
            raise _reword(exc, base, str(path)) from exc
    return apply_overrides(cfg, overrides, precheck)


def apply_overrides(cfg: DictConfig, overrides: list[str] | None,
                    precheck: Callable[[DictConfig], None] | None = None) -> DictConfig:
    """Apply `key.sub=value` overrides to a config, then validate it (see load_config for `precheck`)."""
    base = _defaults()
    OmegaConf.set_struct(cfg.stages, False)  # stage entries are checked by _validate_stages
    run_dirs: dict[str, Any] = {}
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override '{item}' must look like key.sub=value")
        key, value = item.split("=", 1)
        key = _test_codec_key(key)
        try:
            parsed = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError as exc:
            raise ConfigError(f"cannot parse the value of override '{item}': {exc}") from exc
        check_yaml_size(parsed, f"the value of override '{key}'")
        parsed = _as_number(parsed)
        if key.strip() in (ROOT_DIR_ALIAS, "run_dir"):
            run_dirs[key.strip()] = parsed
            if len(run_dirs) == 2 and len(set(map(str, run_dirs.values()))) == 2:
                raise ConfigError(
                    f"run_dir={run_dirs['run_dir']} and {ROOT_DIR_ALIAS}={run_dirs[ROOT_DIR_ALIAS]} "
                    "name two run folders; give one of them"
                )
            key = "run_dir"
        check_shape(parsed, _default_of(base, key.strip()), key.strip(), f"override '{item}'")
        if key.strip().endswith(".name") and key.strip()[: -len(".name")] in OPEN_SECTIONS[:2]:
            _reset_if_renamed(cfg, key.strip()[: -len(".name")], parsed)
        try:
            OmegaConf.update(cfg, key.strip(), parsed, merge=True)
        except OmegaConfBaseException as exc:
            raise _reword(exc, base, f"override '{item}'") from exc
        except (IndexError, TypeError, ValueError) as exc:
            raise ConfigError(f"cannot apply override '{item}': {exc}") from exc
    if precheck is not None:
        precheck(cfg)
    validate(cfg)
    return cfg


def _default_of(base: DictConfig, key: str) -> Any:
    """The default value of config key `key` (None when the defaults do not hold it)."""
    try:
        return OmegaConf.select(base, key, default=None)
    except OmegaConfBaseException:  # e.g. an index into a mapping
        return None


def _unwrap_hparams(loaded: Any) -> Any:
    """The config inside a run's logs/version_N/hparams.yaml (config:, version:, and the datamodule's
    arguments, which the config's data section holds too); else `loaded`."""
    if isinstance(loaded, DictConfig) and {"config", "version"} <= set(loaded):
        return loaded.config if isinstance(loaded.config, DictConfig) else loaded
    return loaded


def _alias_root_dir(loaded: DictConfig, origin: str) -> None:
    """A config file's trainer.default_root_dir (Lightning's name) becomes the run folder, run_dir."""
    trainer = loaded.get("trainer") if isinstance(loaded, DictConfig) else None
    if not isinstance(trainer, DictConfig) or "default_root_dir" not in trainer:
        return
    root = trainer.default_root_dir
    if loaded.get("run_dir") is not None and str(loaded.run_dir) != str(root):
        raise ConfigError(f"{origin} sets run_dir: {loaded.run_dir} and {ROOT_DIR_ALIAS}: {root}, two run "
                          "folders; keep one of them")
    with open_dict(loaded):
        loaded.run_dir = root
        del loaded.trainer["default_root_dir"]


def _reset_if_renamed(cfg: DictConfig, section: str, new_name: Any) -> None:
    """A config that switches to another backbone / datamodule drops the arguments of the one it replaces."""
    node = OmegaConf.select(cfg, section)
    if new_name is not None and node is not None and not _same_entry(section, node.get("name"), new_name):
        parent, leaf = section.rsplit(".", 1) if "." in section else ("", section)
        target = OmegaConf.select(cfg, parent) if parent else cfg
        fresh = OmegaConf.create({"name": new_name})
        OmegaConf.set_struct(fresh, False)
        with open_dict(target):
            target[leaf] = fresh
        OmegaConf.set_struct(OmegaConf.select(cfg, section), False)


def _same_entry(section: str, old: Any, new: Any) -> bool:
    """Whether two names in `section` (model.backbone / data) mean one registered entry (aliases resolved)."""
    from vvc_lightning.registry import BACKBONES, DATAMODULES

    registry = BACKBONES if section == "model.backbone" else DATAMODULES
    canonical = [registry.canonical(str(n)) if isinstance(n, str) else n for n in (old, new)]
    return canonical[0] == canonical[1]


def section_kwargs(node: DictConfig) -> dict[str, Any]:
    """A registry-backed section as constructor kwargs: every key but `name`, resolved."""
    kwargs = OmegaConf.to_container(node, resolve=True)
    assert isinstance(kwargs, dict)
    kwargs.pop("name", None)
    return kwargs


def validate(cfg: DictConfig, warn_aliases: bool = True, stored: bool = False) -> None:
    """Check names, keys and values; raise ConfigError naming the first problem and the fix (`stored`: a
    checkpoint's config, whose test-only keys do not keep its model from loading; its data and trainer
    sections are checked where a run builds them, so loading a model imports no datamodule or trainer)."""
    from vvc_lightning.registry import BACKBONES, DATAMODULES, check_kwargs

    try:
        OmegaConf.resolve(cfg.copy())
    except OmegaConfBaseException as exc:
        raise ConfigError(f"cannot resolve config: {str(exc).splitlines()[0]}") from exc
    _check_types(cfg, _defaults())
    check_gop(cfg.model.gop)
    sections = [(cfg.model.backbone, BACKBONES, "backbone", "model.backbone.")]
    if not stored:
        sections.append((cfg.data, DATAMODULES, "datamodule", "data."))
    for node, registry, kind, prefix in sections:
        cls = registry.entry(str(node.name), warn=warn_aliases).obj
        what = f"{kind} '{node.name}'"
        check_kwargs(cls, section_kwargs(node), what, prefix)
        for key, number in check_types(cls, section_kwargs(node), what, prefix).items():
            node[key] = number
    if not stored:
        _check_trainer_keys(cfg.trainer)  # before the ranges: it stores a number spelt as text as a number
    check_ranges(cfg)
    if not stored:
        check_choices(cfg)
        check_test_metrics(cfg)
        if cfg.model.get("init") is None:  # model.init: the range of the model fit takes over, checked then
            check_test_qualities(cfg)
    if cfg.model.loss.perceptual not in PERCEPTUAL_DISTANCES:
        raise ConfigError(f"model.loss.perceptual must be one of {', '.join(PERCEPTUAL_DISTANCES)}, got "
                          f"'{cfg.model.loss.perceptual}'")
    _validate_stages(cfg.stages)
    _check_test_codec(cfg.test.codec)


def _check_test_codec(node: DictConfig) -> None:
    """test.codec: the keys and values a CodecOptions takes."""
    from vvc_lightning.codec.pipeline.options import CodecOptionError, CodecOptions
    from vvc_lightning.registry import check_kwargs

    if not isinstance(node, DictConfig):
        raise ConfigError(f"config key 'test.codec' must be a mapping of codec options (e.g. {{batch: 4, "
                          f"max_memory: 8G}}), got {node!r}")
    kwargs = OmegaConf.to_container(node, resolve=True)
    assert isinstance(kwargs, dict)
    check_kwargs(CodecOptions, kwargs, "the codec options", "test.codec.")
    try:
        CodecOptions(**kwargs)
    except CodecOptionError as exc:
        raise ConfigError(f"config key 'test.codec.{exc.field}' {exc.problem}") from None


def _test_codec_key(key: str) -> str:
    """An override's key, with test.KEY of a codec option as test.codec.KEY (a FutureWarning once)."""
    head, _, leaf = key.strip().rpartition(".")
    if head != "test" or leaf not in TEST_CODEC_KEYS:
        return key
    from vvc_lightning.deprecation import warn_deprecated

    warn_deprecated(f"config key 'test.{leaf}'", f"'test.codec.{leaf}'", stacklevel=4)
    return f"test.codec.{leaf}"


def _move_test_codec_keys(data: Any, origin: str | None = None) -> None:
    """Move test.overlap / theta / batch / tile of `data` (a dict or DictConfig) under test.codec; a
    FutureWarning once when a config file (`origin`) holds them, none for stored configs."""
    test = data.get("test") if isinstance(data, (dict, DictConfig)) else None
    if not isinstance(test, (dict, DictConfig)):
        return
    moved = [k for k in TEST_CODEC_KEYS if k in test]
    if not moved:
        return
    codec = dict(test.get("codec") or {})
    for key in moved:
        codec.setdefault(key, test[key])
    if isinstance(test, DictConfig):
        with open_dict(test):
            for key in moved:
                del test[key]
            test["codec"] = codec
    else:
        for key in moved:
            del test[key]
        test["codec"] = codec
    if origin is not None:
        from vvc_lightning.deprecation import warn_deprecated

        warn_deprecated(f"config key 'test.{moved[0]}' in {origin}", f"'test.codec.{moved[0]}'", stacklevel=4)


def _check_trainer_keys(trainer: DictConfig) -> None:
    """Trainer keys must be Lightning's, and not the ones the project sets itself."""
    import lightning.pytorch as pl

    from vvc_lightning.registry import accepted_kwargs, check_kwargs

    for key in trainer:
        if key in TRAINER_OWNED:
            raise ConfigError(f"config key 'trainer.{key}' is set by vvc-lightning, not the config: "
                              f"{TRAINER_OWNED[key]}")
    try:
        check_kwargs(pl.Trainer.__init__, dict(trainer), "lightning's Trainer", "trainer.")
    except ConfigError as exc:
        unknown = [k for k in trainer if k not in (accepted_kwargs(pl.Trainer.__init__) or ())]
        if any("dir" in str(k) or "root" in str(k) for k in unknown):
            raise ConfigError(
                f"{exc}; the run's folder is the top-level key run_dir (run_dir=runs/NAME)"
            ) from None
        raise
    for key, number in check_types(pl.Trainer.__init__, section_kwargs(trainer), "lightning's Trainer",
                                   "trainer.").items():
        trainer[key] = number


def _as_number(value: Any) -> Any:
    """A string that spells a number as a float (YAML 1.1 reads 1e-3, without a dot, as a string), also
    inside the lists and mappings of an override value (`stages=[{..., lr: 5e-05}]`), as config files read."""
    if isinstance(value, str) and NUMBER.fullmatch(value.strip()):
        return float(value)
    if isinstance(value, list):
        return [_as_number(v) for v in value]
    if isinstance(value, dict):
        return {k: _as_number(v) for k, v in value.items()}
    return value


def _check_types(cfg: DictConfig, defaults: DictConfig, prefix: str = "") -> None:
    """Each key with a number / bool / text default must hold a value of that type (ints count as floats)."""
    for key, default in defaults.items():
        if key not in cfg or f"{prefix}{key}" in OPEN_SECTIONS:
            continue
        value = cfg[key]
        if isinstance(default, DictConfig) and isinstance(value, DictConfig):
            _check_types(value, default, f"{prefix}{key}.")
            continue
        if default is None or value is None or isinstance(default, (DictConfig, ListConfig)):
            continue
        if type(default) is float and isinstance(value, str):
            cfg[key] = value = _as_number(value)
        kinds = {bool: (bool,), int: (int,), float: (int, float), str: (str,)}.get(type(default))
        if kinds and (
            not isinstance(value, kinds) or (isinstance(value, bool) and type(default) is not bool)
        ):
            raise ConfigError(
                f"config key '{prefix}{key}' must be a {type(default).__name__} (like {default!r}), "
                f"got {value!r}"
            )


def _validate_stages(stages: ListConfig) -> None:
    allowed = {"name", "train", "start_step", "start_epoch", "lr", "loss"}
    if not stages:
        raise ConfigError("stages is empty; give at least one stage (name, train, start_step, loss)")
    last = (-1, -1)
    units = set()
    for i, st in enumerate(stages):
        where = f"stages.{i}"
        if not isinstance(st, DictConfig):
            raise ConfigError(f"{where} must be a mapping with name, train, start_step/start_epoch, lr, loss")
        bad = [k for k in st if k not in allowed]
        if bad:
            raise ConfigError(f"unknown config key '{where}.{bad[0]}'; stage keys: "
                              f"{', '.join(sorted(allowed))}")
        for k in ("name", "train", "loss"):
            if st.get(k) is None:
                raise ConfigError(f"{where} needs '{k}'")
        if (st.get("start_step") is None) == (st.get("start_epoch") is None):
            raise ConfigError(f"{where} ('{st.name}') needs exactly one of start_step or start_epoch")
        if st.loss not in LOSSES:
            raise ConfigError(f"{where}.loss must be 'vae' (eq. 1) or 'rd' (eq. 2), got '{st.loss}'")
        if not isinstance(st.train, ListConfig) or not st.train:
            raise ConfigError(f"{where}.train must be a non-empty list such as [backbone, codec]")
        unit = "step" if st.get("start_step") is not None else "epoch"
        units.add(unit)
        start = st.get(f"start_{unit}")
        if not isinstance(start, int) or start < 0:
            raise ConfigError(f"{where}.start_{unit} must be a whole number >= 0, got {start}")
        key = (start, i)
        if i == 0 and start != 0:
            raise ConfigError(f"the first stage must start at 0, '{st.name}' starts at {start}")
        if start <= last[0] and i > 0:
            raise ConfigError(f"stages must start in increasing order: {where} ('{st.name}') starts at "
                              f"{start}")
        last = key
    if len(units) > 1:
        raise ConfigError("give every stage a start_step, or every stage a start_epoch, not a mix")


def to_yaml(cfg: DictConfig) -> str:
    """The resolved config as YAML text (stored in every checkpoint)."""
    return OmegaConf.to_yaml(cfg, resolve=True)


def from_container(data: dict) -> DictConfig:
    """Rebuild a validated config from a checkpoint's stored dict (keys unknown today are an error)."""
    cfg = _defaults()
    data = copy.deepcopy(data)
    _move_test_codec_keys(data)
    try:
        cfg = OmegaConf.merge(cfg, OmegaConf.create(data))
    except OmegaConfBaseException as exc:
        raise _reword(exc, _defaults(), "the checkpoint's stored config") from exc
    validate(cfg, warn_aliases=False, stored=True)  # a stored alias was the user's choice: it loads silently
    return cfg


def stage_index(stages: ListConfig | list[DictConfig], global_step: int, epoch: int) -> int:
    """Index of the last stage whose start (start_step or start_epoch) has been reached."""
    idx = 0
    for i, st in enumerate(stages):
        start = st.get("start_step")
        if (global_step >= start) if start is not None else (epoch >= st.get("start_epoch")):
            idx = i
    return idx
