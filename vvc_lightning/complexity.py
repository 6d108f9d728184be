"""Model complexity: parameter counts and multiply-adds per frame of a backbone."""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters of `module` (only those with requires_grad when `trainable_only`)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def human(n: float) -> str:
    """Format a count with a K/M/G/T suffix, e.g. 12.3G."""
    n = float(n)
    for suffix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.1f}{suffix}"
    return f"{n:.0f}"


def _count_flops(fn, *args: torch.Tensor) -> tuple[int, torch.Tensor]:
    with FlopCounterMode(display=False) as counter:
        out = fn(*args)
    return counter.get_total_flops(), out


def _copy_to(module: nn.Module, device: torch.device) -> nn.Module:
    """A copy of `module` on `device`; for "meta" the weights are not copied at all."""
    if device.type != "meta":
        return copy.deepcopy(module).to(device)
    memo: dict[int, torch.Tensor] = {}
    for p in module.parameters():
        memo[id(p)] = nn.Parameter(torch.empty_like(p, device=device), requires_grad=p.requires_grad)
    for b in module.buffers():
        memo[id(b)] = torch.empty_like(b, device=device)
    return copy.deepcopy(module, memo)


@torch.no_grad()
def macs_per_frame(
    backbone: nn.Module, T: int = 9, H: int = 256, W: int = 256, device: str | torch.device = "meta"
) -> dict[str, float]:
    """Multiply-adds per frame of `backbone.encode`, `.decode` and both, on a (1,3,T,H,W) clip.

    Counted with torch.utils.flop_counter.FlopCounterMode (MACs = FLOPs / 2; convolutions, matmuls and
    attention, not norms or activations), divided by T. With device="meta" (default) a copy of the
    model runs on shape-only tensors, which counts the same operations without computing them
    (instant even for big models); device="cpu" runs the real model on a random input.
    """
    device = torch.device(device)
    first = next(iter(backbone.parameters()), None)
    same = first is None or first.device.type == device.type
    model = backbone if same else _copy_to(backbone, device)  # never moves the caller's model
    was_training = model.training
    model.eval()
    try:
        x = torch.rand(1, 3, T, H, W, device=device) * 2 - 1
        enc_flops, latent = _count_flops(model.encode, x)
        dec_flops, _ = _count_flops(model.decode, latent)
    finally:
        model.train(was_training)
    enc, dec = enc_flops / 2 / T, dec_flops / 2 / T
    return {"encode": enc, "decode": dec, "total": enc + dec}
