"""The field's classic-codec settings by name: `x265-medium-ld`, `x265-veryslow-ra`, `vvenc-ld`, ...

A setting is an encoder, its preset and its picture structure: `ld`, low delay (no picture reordering:
x265 / x264 `bframes=0`, vvenc's low-delay GOP of 8, SVT-AV1 `pred-struct=1`), or `ra`, random access (the
encoder's own reordering: B-frames, vvenc's random-access GOP). A name is ENCODER-PRESET-STRUCTURE, or
ENCODER-STRUCTURE for vvenc / SVT-AV1 at their default preset. A bare encoder name is its default setting
(`x265` -> `x265-veryslow-ra`, `vvenc` -> `vvenc-ra`), with the preset `--preset ENCODER=NAME` gives it.
"""

from __future__ import annotations

from dataclasses import dataclass

from vvc_lightning.errors import VVCError

STRUCTURES = {"ld": "low delay", "ra": "random access"}
FIELD_SETTINGS = ("x265-medium-ld", "x265-veryslow-ld", "x265-medium-ra", "x265-veryslow-ra", "vvenc-ld",
                  "vvenc-ra")
_X26X = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
         "placebo")
PRESETS = {"x265": _X26X, "x264": _X26X, "vvenc": ("faster", "fast", "medium", "slow", "slower"),
           "svtav1": tuple(str(i) for i in range(-1, 14))}
DEFAULT_ANCHOR = "x265"  # the anchor: the first x265 setting evaluated, else the first classic codec


@dataclass(frozen=True)
class Setting:
    """One named classic setting; `alias` is the bare encoder name it was asked for by, if any."""

    name: str
    encoder: str
    preset: str
    structure: str
    alias: str = ""


def setting_name(encoder: str, preset: str, structure: str) -> str:
    """The canonical name of (encoder, preset, structure)."""
    from vvc_lightning.evaluation.baselines import get_encoder

    enc = get_encoder(encoder)
    if enc.name_preset or preset != enc.default_preset:
        return f"{encoder}-{preset}-{structure}"
    return f"{encoder}-{structure}"


def parse_setting(text: str, presets: dict[str, str] | None = None) -> Setting:
    """A setting from its name or a bare encoder name (whose preset `presets[encoder]` may give)."""
    from vvc_lightning.evaluation.baselines import ENCODERS, get_encoder

    text = text.strip()
    known = ENCODERS.names()
    if text in known:
        enc = get_encoder(text)
        preset = (presets or {}).get(text) or enc.default_preset
        _check_preset(text, preset, f"--preset {text}={preset}")
        return Setting(setting_name(text, preset, enc.default_structure), text, preset, enc.default_structure,
                       alias=text)
    parts = text.split("-")
    example = "e.g. " + ", ".join(FIELD_SETTINGS[:3]) + " or vvenc-ra"
    if parts[0] not in known:
        raise VVCError(f"unknown classic codec '{text}': give an encoder ({', '.join(known)}) or a setting "
                       f"ENCODER[-PRESET]-ld|ra, {example}")
    if len(parts) < 2 or parts[-1] not in STRUCTURES:
        raise VVCError(f"setting '{text}' must end in -ld (low delay) or -ra (random access), {example}")
    encoder = parts[0]
    preset = "-".join(parts[1:-1]) or get_encoder(encoder).default_preset
    _check_preset(encoder, preset, f"setting '{text}'")
    return Setting(setting_name(encoder, preset, parts[-1]), encoder, preset, parts[-1])


def _check_preset(encoder: str, preset: str, what: str) -> None:
    allowed = PRESETS.get(encoder)
    if allowed is not None and preset not in allowed:
        raise VVCError(f"{what}: {encoder} has no preset '{preset}'; use one of {', '.join(allowed)}")


def parse_settings(names: list[str], presets: dict[str, str] | None = None) -> list[Setting]:
    """Settings from `--baselines` entries; a `--preset` key naming a setting (it has its own) fails."""
    settings = [parse_setting(n, presets) for n in names]
    for key in presets or {}:
        named = next((s for s in settings if s.name == key and not s.alias), None)
        if named is not None:
            raise VVCError(f"--preset {key}=...: the setting '{key}' names its preset; name another setting "
                           f"instead, e.g. {named.encoder}-{presets[key]}-{named.structure}")
    return settings


def anchor_for(settings: list[Setting]) -> str | None:
    """The default BD-rate anchor: the first x265 setting, else the first classic setting."""
    first = next((s for s in settings if s.encoder == DEFAULT_ANCHOR), settings[0] if settings else None)
    return first.name if first else None


def resolve_anchor(anchor: str | None, settings: list[Setting]) -> str | None:
    """`--anchor` as a curve name: a setting's name, or an encoder's name (its first setting), else as given
    (a neural curve's name)."""
    if anchor is None:
        return anchor_for(settings)
    named = [s.name for s in settings if anchor in (s.name, s.alias)]
    return (named or [s.name for s in settings if s.encoder == anchor] or [anchor])[0]
