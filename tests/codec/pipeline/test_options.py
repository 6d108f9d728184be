"""CodecOptions: one frozen declaration of the codec options, checked once, errors naming the field."""

from __future__ import annotations

import dataclasses

import pytest

from vvc_lightning.codec.pipeline.options import CodecOptionError, CodecOptions, field_names
from vvc_lightning.errors import VVCError


def test_defaults_are_declared_once_and_max_memory_is_stored_in_bytes():
    opts = CodecOptions()
    got = (opts.gop, opts.overlap, opts.theta, opts.batch, opts.tile, opts.max_memory)
    assert got == (None, 1, 0.5, 4, None, 8 << 30)
    assert CodecOptions(max_memory="512M").max_memory == 512 << 20
    assert CodecOptions(max_memory=3 << 20).max_memory == 3 << 20


@pytest.mark.parametrize(
    ("field", "value"),
    [("gop", 0), ("gop", 10**6), ("overlap", -1), ("theta", 1.5), ("theta", float("nan")), ("batch", 0),
     ("batch", 2.5), ("tile", -8), ("tile_overlap", -1), ("matrix", "bt2020"), ("rng", "studio"),
     ("quality", -1.0), ("max_memory", "8X"), ("max_memory", 1024), ("norm_passes", -1), ("threads", 0)],
)
def test_each_bad_field_is_refused_in_one_line_naming_it(field, value):
    with pytest.raises(CodecOptionError) as info:
        CodecOptions(**{field: value})
    msg = str(info.value)
    assert info.value.field == field and msg.startswith(f"{field} ") and "\n" not in msg and "--" not in msg


def test_an_overlap_of_half_the_gop_is_refused_naming_overlap():
    with pytest.raises(CodecOptionError, match="^overlap must be less than half the GoP"):
        CodecOptions(gop=9, overlap=5)


def test_options_are_frozen_and_replace_checks_again():
    opts = CodecOptions(batch=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.batch = 3  # type: ignore[misc]
    assert opts.replace(batch=3).batch == 3 and opts.batch == 2
    with pytest.raises(CodecOptionError, match="^batch must be 1 or more, got 0"):
        opts.replace(batch=0)
    with pytest.raises(VVCError, match="unknown codec option"):
        opts.replace(bacth=3)
    assert field_names()[:3] == ["gop", "overlap", "theta"]
