"""Training losses: eq. 1 (VAE stage) and eq. 2 (rate + lambda * distortion); P from `build_perceptual`."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from vvc_lightning.metrics.perceptual import build_perceptual
from vvc_lightning.ops import fold_time

__all__ = ["LossTerms", "RatePerceptionLoss", "bits", "build_perceptual"]


@dataclass
class LossTerms:
    """Every term of the loss, for logging."""

    loss: Tensor
    mse: Tensor
    perceptual: Tensor
    bpp_y: Tensor
    bpp_z: Tensor


def bits(likelihoods: Tensor) -> Tensor:
    """Estimated bits of a tensor of likelihoods."""
    return -torch.log2(likelihoods).sum()


class RatePerceptionLoss(nn.Module):
    """Eq. 1: alpha*MSE + beta*P.  Eq. 2: lambda*(alpha*MSE + beta*P) + R(y) + R(z).  MSE on a 0-255 scale."""

    def __init__(self, perceptual: nn.Module, lmbda: float, alpha: float, beta: float) -> None:
        super().__init__()
        self.perceptual = perceptual
        self.lmbda, self.alpha, self.beta = lmbda, alpha, beta

    def train(self, mode: bool = True) -> RatePerceptionLoss:
        super().train(mode)
        self.perceptual.eval()  # the perceptual network is a fixed metric
        return self

    def distortion(self, x: Tensor, x_hat: Tensor) -> tuple[Tensor, Tensor]:
        """(MSE on 0-255, mean perceptual distance) averaged over frames."""
        mse = torch.mean((x - x_hat) ** 2) * (127.5**2)
        p = self.perceptual(fold_time(x_hat), fold_time(x)).mean() if self.beta else x.new_zeros(())
        return mse, p

    def forward(
        self,
        x: Tensor,
        x_hat: Tensor,
        y_lik: Tensor | None = None,
        z_lik: Tensor | None = None,
        lmbda: float | None = None,
    ) -> LossTerms:
        """The loss terms; `lmbda` overrides the fixed lambda (variable-rate training samples it per
        batch)."""
        mse, p = self.distortion(x, x_hat)
        d = self.alpha * mse + self.beta * p
        if y_lik is None:
            zero = x.new_zeros(())
            return LossTerms(d, mse, p, zero, zero)
        b, _, t, h, w = x.shape
        pixels = b * t * h * w
        bpp_y, bpp_z = bits(y_lik) / pixels, bits(z_lik) / pixels
        lm = self.lmbda if lmbda is None else lmbda
        return LossTerms(lm * d + bpp_y + bpp_z, mse, p, bpp_y, bpp_z)
