"""Config values checked against a constructor's type annotations (backbone and datamodule keys)."""

from __future__ import annotations

import collections.abc as cabc
import inspect
import os
import re
import types
import typing
from pathlib import PurePath
from typing import Any

from omegaconf import DictConfig, ListConfig

from vvc_lightning.errors import ConfigError

NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
INTEGER = re.compile(r"[-+]?\d{1,18}")
_SEQUENCES = (list, tuple, set, frozenset, cabc.Sequence, cabc.Iterable, cabc.Collection)
_MAPPINGS = (dict, cabc.Mapping)


def annotations_of(fn: Any) -> dict[str, Any]:
    """Parameter name -> annotation of a callable (a class: its __init__); names whose hint cannot be
    evaluated are left out (the constructor then checks those itself)."""
    target = fn.__init__ if inspect.isclass(fn) else fn
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # a hint naming a type the module only imports for type checkers
        hints = {}
        for name, p in inspect.signature(target).parameters.items():
            if isinstance(p.annotation, str):
                try:
                    hints[name] = eval(p.annotation, vars(inspect.getmodule(target)))
                except Exception:
                    continue
            elif p.annotation is not inspect.Parameter.empty:
                hints[name] = p.annotation
    hints.pop("return", None)
    return hints


def conforms(value: Any, tp: Any) -> bool:
    """Whether a config value (int, float, bool, str, None, list, dict) fits annotation `tp`."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any or isinstance(tp, typing.TypeVar):
        return True
    if origin in (typing.Union, types.UnionType):
        return any(conforms(value, a) for a in args)
    if origin is typing.Literal:
        return value in args
    if tp is None or tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if tp is os.PathLike or (inspect.isclass(tp) and issubclass(tp, PurePath)):
        return isinstance(value, str)
    if tp in _SEQUENCES or origin in _SEQUENCES:
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(conforms(v, a) for v, a in zip(value, args, strict=True))
        return all(conforms(v, args[0]) for v in value) if args else True
    if tp in _MAPPINGS or origin in _MAPPINGS:
        return isinstance(value, dict) and (not args or all(conforms(v, args[-1]) for v in value.values()))
    return True  # a type a config file cannot spell: the constructor checks it


def describe(tp: Any) -> str:
    """An annotation in words: `int | None` -> 'an integer or null'."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(dict.fromkeys(describe(a) for a in args))
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    words = {bool: "true or false", int: "an integer", float: "a number", str: "a string", type(None): "null"}
    if tp in words or tp is None:
        return words[type(None) if tp is None else tp]
    if tp is os.PathLike or (inspect.isclass(tp) and issubclass(tp, PurePath)):
        return "a path"
    if tp in _SEQUENCES or origin in _SEQUENCES:
        return "a list" + (f" of {describe(args[0]).removeprefix('an ').removeprefix('a ')}s" if args else "")
    if tp in _MAPPINGS or origin in _MAPPINGS:
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def check_types(fn: Any, kwargs: dict[str, Any], what: str, prefix: str = "") -> dict[str, float | int]:
    """Raise ConfigError for the first key whose value does not fit `fn`'s annotation; returns the keys
    whose text value spells a number where a number is expected (the caller stores them as numbers)."""
    numbers: dict[str, float | int] = {}
    hints = annotations_of(fn)
    for key, value in kwargs.items():
        if key not in hints or conforms(value, hints[key]):
            continue
        if isinstance(value, str) and INTEGER.fullmatch(value.strip()) and conforms(int(value), hints[key]):
            numbers[key] = int(value)  # e.g. an ${oc.env:...} interpolation, which is always text
            continue
        if isinstance(value, str) and NUMBER.fullmatch(value.strip()) and conforms(float(value), hints[key]):
            numbers[key] = float(value)
            continue
        raise ConfigError(
            f"config key '{prefix}{key}' must be {describe(hints[key])} for {what}, got {value!r}"
        )
    return numbers


# how a section whose defaults hold no keys is described
SECTION_WORDS = {"test.codec": "of codec options (e.g. {batch: 4, max_memory: 8G})"}


def _show(value: Any, limit: int = 60) -> str:
    """A config value as the user would write it, cut to `limit` characters."""
    if isinstance(value, (DictConfig, ListConfig)):
        from omegaconf import OmegaConf

        value = OmegaConf.to_container(value, resolve=False)
    text = "null" if value is None else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_shape(value: Any, default: Any, key: str, origin: str) -> None:
    """ConfigError when `value` lacks the shape of its `default`: a section (mapping) of the defaults must be
    given as a mapping and a list as a list, at any depth (the keys and values inside are checked later)."""
    if isinstance(default, (dict, DictConfig)):
        if not isinstance(value, (dict, DictConfig)):
            first = next(iter(default.items()), None)
            such = f" (such as {first[0]}: {_show(first[1])})" if first else ""
            what = SECTION_WORDS.get(key, f"of its keys{such}")
            raise ConfigError(f"config key '{key}' must be a mapping {what}, got {_show(value)} ({origin})")
        for k, v in value.items():
            if isinstance(k, str) and k in default:
                check_shape(v, default[k], f"{key}.{k}", origin)
    elif isinstance(default, (list, ListConfig)) and not isinstance(value, (list, ListConfig)):
        raise ConfigError(f"config key '{key}' must be a list (like {_show(default)}), got {_show(value)} "
                          f"({origin})")


def check_file_shape(data: Any, defaults: DictConfig, origin: str) -> None:
    """A parsed config file must be empty or a mapping of the defaults' shape (see `check_shape`)."""
    if data is None:
        return
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"the single value {_show(data)}"
        raise ConfigError(f"{origin} must be a mapping of config keys (model:, data:, trainer:, ...), got "
                          f"{kind}")
    for key, value in data.items():
        if isinstance(key, str) and key in defaults:
            check_shape(value, defaults[key], str(key), origin)
