"""Gain units for variable-rate coding (Cui et al., "Asymmetric gained deep image compression with
continuous rate adaptation", CVPR 2021).

N learnt per-channel gain vectors for y (gain before quantisation, inverse gain after) and for the
hyper latent z. A real quality q in [0, N-1] picks the pair of neighbouring vectors i = floor(q),
i + 1 and interpolates them exponentially: g(q) = g_i^(1-l) * g_{i+1}^l with l = q - i. The vectors are
stored as logarithms, so the interpolation is linear in the stored values and every gain stays positive.

Training samples lambda log-uniformly in [lo, hi] per batch; `lambda_to_quality` maps it to q, so
quality 0 is the lowest rate (lambda lo) and N-1 the highest (lambda hi). `GainUnits.resolve` turns a
quality into `Gains` once; the latent codec takes them as an argument of each call.

Exactness: outside training a gain vector is computed on the CPU in float64 and rounded to a multiple of
2^-16 before it becomes float32, so the encoder and decoder multiply by the very same numbers (an
elementwise float32 product is correctly rounded on every device).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from vvc_lightning.errors import VVCError

GRID = 2.0**16


def lambda_to_quality(lmbda: float, lo: float, hi: float, qualities: int) -> float:
    """The quality in [0, N-1] of a lambda in [lo, hi] (log-linear; clamped to the range)."""
    if qualities < 2 or hi <= lo:
        return float(max(qualities - 1, 0))
    t = (math.log(lmbda) - math.log(lo)) / (math.log(hi) - math.log(lo))
    return float(min(max(t, 0.0), 1.0) * (qualities - 1))


def quality_to_lambda(quality: float, lo: float, hi: float, qualities: int) -> float:
    """The lambda a quality was trained for (inverse of `lambda_to_quality`)."""
    if qualities < 2:
        return float(hi)
    t = float(quality) / (qualities - 1)
    return float(math.exp(math.log(lo) + t * (math.log(hi) - math.log(lo))))


def quality_label(quality: float) -> str:
    """The suffix naming a rate point: "@q3.5" for quality 3.5."""
    return f"@q{float(quality):g}"


def parse_quality_label(label: str) -> float | None:
    """The quality a label ends with ("name@q3.5" -> 3.5), or None when it names none."""
    if "@q" not in label:
        return None
    try:
        return float(label.rsplit("@q", 1)[1])
    except ValueError:
        return None


@dataclass(frozen=True, eq=False)
class Gains:
    """The gain vectors of one quality, each (c,) float32: y before quantisation and its inverse, z likewise.

    Exact multiples of 2^-16 when resolved for coding; differentiable when resolved for training."""

    quality: float
    y: Tensor
    y_inv: Tensor
    z: Tensor
    z_inv: Tensor


class GainUnits(nn.Module):
    """Per-quality channel gains of y (`y_gain`, `y_inv`) and z (`z_gain`, `z_inv`), all stored as logs."""

    def __init__(self, channels: int, qualities: int, hyper_channels: int | None = None) -> None:
        super().__init__()
        if qualities < 2:
            raise VVCError(f"model.codec.qualities must be 0 (fixed rate) or 2 or more, got {qualities}")
        self.qualities = int(qualities)
        zc = hyper_channels or channels
        self.y_gain = nn.Parameter(torch.zeros(qualities, channels))
        self.y_inv = nn.Parameter(torch.zeros(qualities, channels))
        self.z_gain = nn.Parameter(torch.zeros(qualities, zc))
        self.z_inv = nn.Parameter(torch.zeros(qualities, zc))

    @torch.no_grad()
    def init_from_lambdas(self, lmbdas: list[float], reference: float) -> None:
        """Start y gains at sqrt(lambda_q / reference) (step ~ 1/sqrt(lambda)), inverse gains at 1/that.

        Only factories and copies: on the meta device (`zoo_record.check_tensors`) arithmetic would run
        torch's Python reference kernels, whose first use imports torch._dynamo (seconds)."""
        log_g = [0.5 * math.log(v / reference) for v in lmbdas]
        for param, values in ((self.y_gain, log_g), (self.y_inv, [-g for g in log_g])):
            param.copy_(torch.tensor(values, dtype=torch.float32)[:, None].expand_as(param))

    def resolve(self, quality: float, exact: bool) -> Gains:
        """The four gain vectors of `quality` (a number in [0, N-1]), checked once."""
        try:
            q = float(quality)
        except (TypeError, ValueError):
            top = self.qualities - 1
            raise VVCError(f"quality must be a number in [0, {top}], got {quality!r}") from None
        if not (0.0 <= q <= self.qualities - 1):  # also rejects NaN
            raise VVCError(f"quality {quality} is outside this model's range [0, {self.qualities - 1}]")
        y, y_inv, z, z_inv = (self.vector(n, q, exact) for n in ("y_gain", "y_inv", "z_gain", "z_inv"))
        return Gains(q, y, y_inv, z, z_inv)

    def vector(self, name: str, quality: float, exact: bool) -> Tensor:
        """Gain vector `name` at a real quality: (c,), interpolated exponentially between neighbours."""
        table: Tensor = getattr(self, name)
        q = float(quality)
        i = min(int(math.floor(q)), self.qualities - 2)
        lw = q - i
        if not exact:
            return torch.exp((1.0 - lw) * table[i] + lw * table[i + 1])
        t = table.detach().to("cpu", torch.float64)
        g = torch.exp((1.0 - lw) * t[i] + lw * t[i + 1])
        return (torch.round(g * GRID) / GRID).clamp_min(1.0 / GRID).to(torch.float32)


def apply_gain(x: Tensor, gain: Tensor) -> Tensor:
    """x (N,c,h,w) times the per-channel vector `gain` (c,), in x's dtype and on x's device."""
    return x * gain.to(x.device, x.dtype).view(1, -1, 1, 1)
