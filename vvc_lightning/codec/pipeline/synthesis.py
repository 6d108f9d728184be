"""The precision of the synthesis side (`CodecOptions.synthesis`): g_s and the backbone decoder in fp32, or
under bfloat16 autocast where the device has bfloat16 arithmetic.

Only what turns decoded symbols into pixels runs in bfloat16: the entropy side (h_s, the context model, the
coder) is integer arithmetic outside autocast, so the symbols and the bytes are those of fp32 and the
pixels differ slightly. A CPU without bfloat16 instructions (AVX512-BF16 or AMX) runs bfloat16 convolutions
through a slow reference path (80 times slower than fp32 on an AVX2 server), so there the synthesis stays
fp32 and one line says so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch

log = logging.getLogger(__name__)
_said: set[str] = set()


def bf16_supported(device: torch.device) -> bool:
    """Whether `device` has bfloat16 arithmetic: a CUDA GPU that reports it, a CPU with AVX512-BF16 or AMX."""
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        names = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private: absent in some versions
        return any(bool(probe()) for name in names if (probe := getattr(torch.cpu, name, None)) is not None)
    return False


def synthesis_dtype(synthesis: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of the synthesis side for `synthesis` ('fp32' or 'bf16') on `device`: None for
    fp32, and for bf16 where the device lacks bfloat16 arithmetic (said in one line)."""
    if synthesis != "bf16":
        return None
    if bf16_supported(device):
        return torch.bfloat16
    what = "this CPU has no bfloat16 instructions (AVX512-BF16 or AMX)" if device.type == "cpu" else (
        f"device {device} has no bfloat16 arithmetic")
    if what not in _said:  # once per process
        _said.add(what)
        log.warning("synthesis bf16: %s, so the synthesis runs in fp32 (the default)", what)
    return None


def in_precision(fn: Callable[..., torch.Tensor], dtype: torch.dtype | None,
                 device: torch.device) -> Callable[..., torch.Tensor]:
    """`fn` run under `dtype` autocast on `device`, its output back in float32 (`fn` itself for None)."""
    if dtype is None:
        return fn

    def run(*args: Any, **kwargs: Any) -> torch.Tensor:
        with torch.autocast(device.type, dtype=dtype):
            return fn(*args, **kwargs).float()

    return run
