"""ELIC space-channel context model (He et al. 2022): uneven channel groups, checkerboard in each group.

One routine, `run`, serves training (noise likelihoods, straight-through rounding), evaluation,
compression and decompression, so the dequantized latent is computed by the same operations in all of
them; a `SymbolSink` decides what happens to the integer symbols of each (group, pass) step.
Every layer is an integer network (`vvc_lightning.codec.entropy.intnet`): outside training the scales and
means are exact (float64 multiples of 2**-12), so the coder sees the same values on any machine.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from vvc_lightning.codec.entropy.compressai_parts import GaussianConditional, quantize_ste
from vvc_lightning.codec.entropy.intnet import IntMaskedConv2d, IntReLU, anchor_mask, int_conv

# A sink takes (step, y - means or None, scales, means, positions), the first three at the (h, w) mask
# `positions` only, (n, c, P), and returns the integer symbols (n, c, P) that the decoder will see there
# (encoder: round(y - means); decoder: decoded from the stream).
SymbolSink = Callable[[int, Tensor | None, Tensor, Tensor, Tensor], Tensor]


def default_groups(channels: int) -> list[int]:
    """ELIC's uneven groups [16, 16, 32, 64, rest], scaled down for fewer than 128 channels."""
    if channels >= 128:
        groups = [16, 16, 32, 64]
        if channels > 128:
            groups.append(channels - 128)
        return groups
    unit = max(channels // 8, 1)
    groups = [unit, unit, 2 * unit]
    groups.append(channels - sum(groups))
    return [g for g in groups if g > 0]


def _ramp(in_ch: int, out_ch: int) -> nn.Sequential:
    """ELIC's 'parameter aggregation': three 1x1 convolutions with a linear channel ramp."""
    mid1 = out_ch + (in_ch - out_ch) * 2 // 3
    mid2 = out_ch + (in_ch - out_ch) // 3
    return nn.Sequential(
        int_conv(in_ch, mid1, 1, relu=True),
        IntReLU(),
        int_conv(mid1, mid2, 1, relu=True),
        IntReLU(),
        int_conv(mid2, out_ch, 1),
    )


def _at(x: Tensor, positions: Tensor) -> Tensor:
    """x (n, c, h, w) at the (h, w) mask `positions` -> (n, P, c), channel innermost."""
    return x.permute(0, 2, 3, 1)[:, positions]


def _put(x: Tensor, positions: Tensor, values: Tensor) -> Tensor:
    """x (n, c, h, w) with `values` (n, c, P) at the (h, w) mask `positions`: written in place without
    autograd, else into a copy (the pass before may have saved x for its backward)."""
    if torch.is_grad_enabled():
        x = x.clone()
    x[..., positions] = values
    return x


class SpaceChannelContext(nn.Module):
    """Predicts Gaussian (scale, mean) of each latent element from hyper params and decoded context."""

    def __init__(self, groups: list[int], hyper_params: int, hidden: int) -> None:
        super().__init__()
        self.groups = list(groups)
        self.channel_context = nn.ModuleList(
            [
                nn.Sequential(
                    int_conv(sum(self.groups[:k]), hidden, 5, relu=True),
                    IntReLU(),
                    int_conv(hidden, hidden, 5, relu=True),
                    IntReLU(),
                    int_conv(hidden, 2 * self.groups[k], 5),
                )
                for k in range(1, len(self.groups))
            ]
        )
        self.spatial_context = nn.ModuleList(
            [IntMaskedConv2d(g, 2 * g, kernel_size=5, stride=1, padding=2) for g in self.groups]
        )
        self.aggregation = nn.ModuleList(
            [
                _ramp(2 * g + (k > 0) * 2 * g + hyper_params, 2 * g)
                for k, g in enumerate(self.groups)
            ]
        )

    def _aggregate(self, k: int, parts: list[Tensor]) -> Tensor:
        """aggregation[k] (eval) at some positions only: their parameters (n, 2g, P).

        `parts` are the inputs at the positions, (n, P, C_i) with the channel innermost (`_at`); the ramp is
        pointwise (1x1 integer layers), so each position's parameters are the same as on the full map."""
        sel = torch.cat(parts, 2).permute(0, 2, 1).unsqueeze(-1)  # (n, C, P, 1), channel stride 1
        return self.aggregation[k](sel).squeeze(-1)

    def run(
        self,
        y: Tensor | None,
        hyper: Tensor,
        gaussian: GaussianConditional,
        mode: str,
        sink: SymbolSink | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """Return (y_hat, likelihoods or None) for `mode` in {'train', 'eval', 'code'}.

        'train': straight-through rounding, likelihoods of y + uniform noise.
        'eval':  y_hat = round(y - mu) + mu, likelihoods of y_hat.
        'code':  like 'eval', but symbols come from `sink` (y may be None when decoding).
        `hyper` must be the output of an integer network (float64 outside training); y_hat comes back in
        its dtype, likelihoods in float32.
        """
        n, _, h, w = hyper.shape
        anchors = anchor_mask(h, w, hyper.device)
        passes = (anchors, ~anchors)
        decoded: list[Tensor] = []
        likelihoods: list[Tensor] = []
        hyper_at = [_at(hyper, positions) for positions in passes] if mode != "train" else []
        start = 0
        for k, g in enumerate(self.groups):
            y_k = y[:, start : start + g] if y is not None else None
            start += g
            chan = [self.channel_context[k - 1](torch.cat(decoded, 1))] if k > 0 else []
            y_hat_k = hyper.new_zeros((n, g, h, w))
            params_k = hyper.new_zeros((n, 2 * g, h, w)) if mode != "code" else None
            for p, positions in enumerate(passes):
                if mode == "train":
                    spatial = self.spatial_context[k](y_hat_k) if p else hyper.new_zeros((n, 2 * g, h, w))
                    params = self.aggregation[k](torch.cat([spatial, *chan, hyper], 1))
                    means = params.chunk(2, 1)[1]
                    y_hat_k = torch.where(positions, quantize_ste(y_k - means) + means, y_hat_k)
                    params_k = torch.where(positions, params, params_k)
                    continue
                # eval / code: the step at its positions only, (n, C, P), written into the group's maps
                if p == 0:
                    spatial = hyper.new_zeros((n, hyper_at[p].shape[1], 2 * g))  # nothing decoded yet
                else:
                    spatial = self.spatial_context[k](y_hat_k, non_anchors=True)  # (n, P, 2g) there
                params = self._aggregate(k, [spatial, *(_at(c, positions) for c in chan), hyper_at[p]])
                scales, means = params.chunk(2, 1)
                y_at = None if y_k is None else y_k[..., positions]
                if mode == "eval":
                    step_hat = torch.round(y_at - means) + means
                    params_k = _put(params_k, positions, params)
                else:
                    residual = None if y_at is None else y_at - means
                    step_hat = sink(2 * k + p, residual, scales, means, positions).to(means.dtype) + means
                y_hat_k = _put(y_hat_k, positions, step_hat)
            decoded.append(y_hat_k)
            if mode != "code":
                scales_k, means_k = params_k.chunk(2, 1)
                if mode == "train":
                    noisy = y_k + torch.empty_like(y_k).uniform_(-0.5, 0.5)
                else:
                    noisy = y_hat_k
                lik = gaussian._likelihood(noisy, scales_k, means_k)
                likelihoods.append(gaussian.likelihood_lower_bound(lik).float())
        y_hat = torch.cat(decoded, 1)
        return y_hat, (torch.cat(likelihoods, 1) if likelihoods else None)
