"""Named registries for everything a config names (backbones, datamodules), with entry-point plugins."""

from __future__ import annotations

import contextlib
import difflib
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from vvc_lightning.deprecation import warn_deprecated
from vvc_lightning.errors import ConfigError, RegistryError

OWN_DISTRIBUTION = "vvc-lightning"


@dataclass
class Entry:
    """One registered object and where it came from."""

    name: str
    obj: Any
    source: str  # "built-in" or "plugin: <distribution> <version>"


class Registry:
    """Maps short names to classes; third-party ones come from an entry-point group."""

    def __init__(self, kind: str, group: str, builtin_modules: tuple[str, ...] = (),
                 aliases: dict[str, str] | None = None) -> None:
        self.kind = kind
        self.group = group
        self.builtin_modules = builtin_modules
        self._entries: dict[str, Entry] = {}
        # alias -> current name (as timm register_model_deprecations); `aliases`: the built-in ones
        self._deprecated: dict[str, str] = dict(aliases or {})
        self._scanned = False
        self._quiet = 0  # > 0: inside `stored_names()`

    def register(self, name: str) -> Callable[[Any], Any]:
        """Class decorator registering `obj` under `name`."""

        def deco(obj: Any) -> Any:
            existing = self._entries.get(name)
            if existing is not None and _qualname(existing.obj) != _qualname(obj):
                raise RegistryError(
                    f"{self.kind} name '{name}' is taken by {_qualname(existing.obj)}; "
                    f"choose another name for {_qualname(obj)}"
                )
            source = "built-in" if obj.__module__.startswith("vvc_lightning.") else f"module {obj.__module__}"
            if existing is not None:
                source = existing.source
            self._entries[name] = Entry(name, obj, source)
            obj.registry_name = name
            return obj

        return deco

    def register_variant(self, name: str, family: type, **defaults: Any) -> type:
        """Register `name` as a preset of `family`: a subclass whose constructor defaults are `defaults`."""
        sig = inspect.signature(family.__init__)
        unknown = [k for k in defaults if k not in sig.parameters]
        if unknown:
            raise RegistryError(f"variant '{name}' sets unknown {family.__name__} arguments: "
                                f"{', '.join(unknown)}")
        params = [
            p.replace(default=defaults[p.name]) if p.name in defaults else p for p in sig.parameters.values()
        ]

        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            family.__init__(self, *args, **{**defaults, **kwargs})

        __init__.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        doc = (family.__doc__ or "").split("\n")[0]
        variant = type(name, (family,), {"__init__": __init__, "__doc__": f"{doc} Preset '{name}'.",
                                         "__module__": family.__module__, "variant_defaults": dict(defaults)})
        variant.__qualname__ = f"{family.__qualname__}[{name}]"
        return self.register(name)(variant)

    def register_deprecations(self, aliases: dict[str, str]) -> None:
        """Register deprecated aliases: each maps to the current name it means (same class, same keys)."""
        for old, new in aliases.items():
            if old in self._entries:
                raise RegistryError(
                    f"{self.kind} alias '{old}' would hide the registered {self.kind} '{old}'"
                )
            self._deprecated[old] = new

    @contextlib.contextmanager
    def stored_names(self) -> Iterator[None]:
        """Within this block a deprecated alias resolves without a warning: the names met there come from
        stored records (a shipped model's, a checkpoint's) or configs already checked, not from the user."""
        self._quiet += 1
        try:
            yield
        finally:
            self._quiet -= 1

    def aliases(self) -> dict[str, str]:
        """Deprecated aliases and the current names they resolve to."""
        self._scan()
        return dict(self._deprecated)

    def _scan(self) -> None:
        if self._scanned:
            return
        self._scanned = True
        import importlib

        for mod in self.builtin_modules:
            importlib.import_module(mod)
        for ep in metadata.entry_points(group=self.group):
            dist = getattr(ep, "dist", None)
            dist_name = dist.metadata["Name"] if dist is not None else "unknown"
            if dist_name == OWN_DISTRIBUTION and (ep.name in self._entries or ep.name in self._deprecated):
                continue
            if ep.name in self._entries and self._entries[ep.name].source == "built-in":
                continue
            try:
                obj = ep.load()
            except Exception as exc:  # a broken plugin must not break the others
                raise RegistryError(
                    f"{self.kind} plugin '{ep.name}' from distribution '{dist_name}' failed to load "
                    f"({ep.value}): {exc}"
                ) from exc
            version = dist.version if dist is not None else "?"
            source = "built-in" if dist_name == OWN_DISTRIBUTION else f"plugin: {dist_name} {version}"
            self._entries[ep.name] = Entry(ep.name, obj, source)
            try:
                obj.registry_name = ep.name
            except (AttributeError, TypeError):
                pass

    def names(self) -> list[str]:
        """All registered names and aliases, plugins included, sorted."""
        self._scan()
        return sorted([*self._entries, *(a for a in self._deprecated if a not in self._entries)])

    def canonical(self, name: str, scan: bool = True) -> str:
        """The registered name that `name` means: itself, or the current name of a deprecated alias (no
        warning); `scan=False` imports nothing and knows the built-in aliases (plugins' once loaded)."""
        if scan:
            self._scan()
        return name if name in self._entries else self._deprecated.get(name, name)

    def entry(self, name: str, warn: bool = True) -> Entry:
        """The entry for `name`; a deprecated alias gives its target's class and, with `warn`, a FutureWarning
        once per process. An unknown name lists the known ones."""
        self._scan()
        if name not in self._entries and name in self._deprecated:
            current = self._deprecated[name]
            if warn and not self._quiet:
                warn_deprecated(f"{self.kind} '{name}'", f"'{current}'", stacklevel=4)
            target = self.entry(current)
            origin = "built-in alias" if target.source == "built-in" else "alias"
            return Entry(name, target.obj, f"{origin} of {target.name}")
        if name not in self._entries:
            close = difflib.get_close_matches(name, self.names(), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise RegistryError(
                f"unknown {self.kind} '{name}'. Known {self.kind}s: {', '.join(self.names())}.{hint}"
            )
        return self._entries[name]

    def get(self, name: str) -> Any:
        """The class registered as `name`."""
        return self.entry(name).obj

    def create(self, name: str, /, **kwargs: Any) -> Any:
        """Instantiate `name` with `kwargs`, rejecting unknown keyword arguments by name."""
        cls = self.get(name)
        check_kwargs(cls, kwargs, f"{self.kind} '{name}'")
        return cls(**kwargs)


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def accepted_kwargs(fn: Any) -> set[str] | None:
    """Keyword names `fn` accepts, or None where it takes **kwargs."""
    sig = inspect.signature(fn)
    names = set()
    for p in sig.parameters.values():
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            return None
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY):
            names.add(p.name)
    names.discard("self")
    return names


def check_kwargs(fn: Any, kwargs: dict[str, Any], what: str, prefix: str = "") -> None:
    """Raise ConfigError naming every key of `kwargs` that `fn` does not accept."""
    allowed = accepted_kwargs(fn)
    if allowed is None:
        return
    bad = [k for k in kwargs if k not in allowed]
    if bad:
        parts = []
        for k in bad:
            close = difflib.get_close_matches(k, allowed, n=1)
            parts.append(f"'{prefix}{k}'" + (f" (did you mean '{prefix}{close[0]}'?)" if close else ""))
        raise ConfigError(
            f"unknown config key {', '.join(parts)} for {what}; valid keys: {', '.join(sorted(allowed))}"
        )


BACKBONES = Registry("backbone", "vvc_lightning.backbones", ("vvc_lightning.backbones",),
                     aliases={"cv_vae": "cv_vae_causal", "lean_vae": "lean_vae_lite"})
DATAMODULES = Registry("datamodule", "vvc_lightning.datamodules", ("vvc_lightning.datamodules",))
register_backbone = BACKBONES.register
register_datamodule = DATAMODULES.register
