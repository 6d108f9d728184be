"""Reproducible coding: a cached model identity, and batch-size-invariant convolutions on the CPU."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch


def model_identity(model: Any) -> str:
    """`model.identity()`, cached on the model until a state-dict tensor is replaced or changed in place."""

    def key() -> tuple | None:
        try:
            return tuple((k, v.data_ptr(), v._version, tuple(v.shape)) for k, v in model.state_dict().items())
        except RuntimeError:  # inference tensors (made under torch.inference_mode) have no version counter
            return None

    model.codec.update_tables()
    cached = getattr(model, "_vvc_identity", None)
    current = key()
    if cached is None or current is None or cached[0] != current:
        identity = model.identity()  # masks the context convolutions first, as their forward does
        cached = (key(), identity)
        model._vvc_identity = cached
    return cached[1]


# ATen runs a convolution through its native kernel instead of oneDNN when the batch is 1 and
# N*C*size(2)*size(3) <= 20480 ("use_mkldnn" in aten/src/ATen/native/ConvUtils); the two kernels round
# differently, so such a lone item is convolved as a pair (itself twice) to keep results batch-invariant.
# Batch invariance keeps `batch` and a frame range (a, b) from changing a decoded pixel. Its cost is nil on
# whole frames (docs/perf.md): lean_vae calls no conv module (its convs run functionally, batch-invariant by
# construction) and cv_vae pairs 2 of its 66 conv calls at 720x400 (the 3-channel conv_in and the decoder's
# first conv on the latent, under 0.5% of its multiply-adds). The latent codec's float transforms (g_a, h_a,
# g_s: `float_codec_parts`) are paired the same way, so a GoP decoded alone (`batch=1`, or the last GoP of
# a pass) gets the L_hat it gets in a batch: without it, frames differ by 1 level in a few pixels.
_NATIVE_CONV_LIMIT = 20480


def _pair_hook(module: torch.nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
    x = args[0]
    if x.shape[0] == 1 and x.dim() >= 4 and x.shape[1] * x.shape[2] * x.shape[3] <= _NATIVE_CONV_LIMIT:
        module._vvc_paired = True
        return (torch.cat([x, x]), *args[1:])
    module._vvc_paired = False
    return None


def _unpair_hook(module: torch.nn.Module, args: tuple[Any, ...], out: torch.Tensor) -> torch.Tensor | None:
    return out[:1] if getattr(module, "_vvc_paired", False) else None


@contextlib.contextmanager
def batch_invariant(*modules: torch.nn.Module) -> Iterator[None]:
    """Within this block, each of `modules` gives every item the same result whatever the batch size (CPU)."""
    on_cpu = [m for m in modules if (p := next(m.parameters(), None)) is not None and p.device.type == "cpu"]
    convs = [m for mod in on_cpu for m in mod.modules() if isinstance(m, torch.nn.modules.conv._ConvNd)]
    handles = []
    for m in convs:
        handles.append(m.register_forward_pre_hook(_pair_hook))
        handles.append(m.register_forward_hook(_unpair_hook))
    try:
        yield
    finally:
        for h in handles:
            h.remove()
        for m in convs:
            m.__dict__.pop("_vvc_paired", None)


def float_codec_parts(codec: Any) -> list[torch.nn.Module]:
    """The latent codec's float parts (g_a, h_a, g_s): what batching could change outside the integer nets."""
    return [
        m for name in ("g_a", "h_a", "g_s") if isinstance(m := getattr(codec, name, None), torch.nn.Module)
    ]
