"""Integer networks (Ballé et al. 2019) for everything that feeds the entropy coder.

Weights sit on a grid of 2**-WEIGHT_BITS, activations on a grid of 2**-ACT_BITS clamped to
[-ACT_LIMIT, ACT_LIMIT]. In training a layer runs in float32 with fake quantisation and straight-through
gradients. In eval mode it runs on integers held in float64: inputs are rounded onto the activation
grid, every product and partial sum is an integer below 2**53 (`check_bound` proves it from the weight
norms), so the convolution is exact whatever the summation order, thread count, batch size, kernel or
device; the result is rescaled by a power of two and rounded half up (exact in float64). Values between
layers are real numbers on the activation grid (float64 in eval, float32 in training).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ACT_BITS = 12  # activations: multiples of 2**-12
WEIGHT_BITS = 14  # weights: multiples of 2**-14
ACT_LIMIT = 1024.0  # every activation, input and output is clamped to [-1024, 1024]
EXACT_LIMIT = 2.0**53  # float64 holds every integer below this exactly

_A = 2.0**ACT_BITS
_W = 2.0**WEIGHT_BITS


def _round_half_up(x: Tensor) -> Tensor:
    return torch.floor(x + 0.5)


def _fake_round(x: Tensor) -> Tensor:
    """floor(x + 0.5) forward, identity gradient."""
    return x + (_round_half_up(x) - x).detach()


def quantize_act(x: Tensor, training: bool, lo: float = -ACT_LIMIT) -> Tensor:
    """x onto the activation grid, clamped to [lo, ACT_LIMIT]: float32 + STE in training, exact float64 else."""
    if training:
        return torch.clamp(_fake_round(x.float() * _A) / _A, lo, ACT_LIMIT)
    return torch.clamp(_round_half_up(x.double() * _A) / _A, lo, ACT_LIMIT)


@contextlib.contextmanager
def exact_kernels(device: torch.device) -> Iterator[None]:
    """No autocast, and on CUDA no cuDNN (its FFT/Winograd kernels are not plain sums of products)."""
    with torch.autocast(device.type, enabled=False):
        if device.type == "cuda":
            with torch.backends.cudnn.flags(enabled=False):
                yield
        else:
            yield


class _IntConvMixin:
    """Shared fake-quantised / exact-integer forward of IntConv2d and IntTransposedConv2d."""

    weight: Tensor
    bias: Tensor | None
    relu: bool

    def _weight(self) -> Tensor:
        return self.weight

    def _out_channel_dim(self) -> int:
        return 0

    def _conv(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        raise NotImplementedError

    def check_bound(self) -> None:
        """Raise if some output's integer accumulator could reach 2**53 (from each output channel's L1 norm)."""
        w_int = torch.round(self._weight().detach().double() * _W).abs()
        dims = [d for d in range(w_int.dim()) if d != self._out_channel_dim()]
        worst = w_int.sum(dims) * (ACT_LIMIT * _A)
        if self.bias is not None:
            worst = worst + torch.round(self.bias.detach().double() * _A * _W).abs()
        if float(worst.max()) >= EXACT_LIMIT:
            raise ValueError(
                f"{type(self).__name__}: weights too large for an exact integer convolution "
                f"(bound {float(worst.max()):.3g} >= 2**53); the entropy model cannot code exactly"
            )

    def forward(self, x: Tensor) -> Tensor:
        lo = 0.0 if self.relu else -ACT_LIMIT
        weight = self._weight()
        with exact_kernels(x.device):
            if self.training:  # float32, fake quantisation, straight-through gradients
                w_q = _fake_round(weight.float() * _W) / _W
                b_q = None if self.bias is None else _fake_round(self.bias.float() * _A * _W) / (_A * _W)
                return quantize_act(self._conv(quantize_act(x, True), w_q, b_q), True, lo)
            self.check_bound()
            x_int = quantize_act(x, False) * _A
            w_int = torch.round(weight.detach().double() * _W)
            b_int = None if self.bias is None else torch.round(self.bias.detach().double() * _A * _W)
            acc = self._conv(x_int, w_int, b_int)  # integers, |acc| < 2**53: exact in any order
            return torch.clamp(_round_half_up(acc / _W) / _A, lo, ACT_LIMIT)


class IntConv2d(_IntConvMixin, nn.Conv2d):
    """A Conv2d on the integer grid; relu=True folds a ReLU into the output clamp."""

    def __init__(self, *args, relu: bool = False, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.relu = relu

    def _conv(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)


class IntMaskedConv2d(IntConv2d):
    """IntConv2d with ELIC's checkerboard mask (type A: the centre and the anchors' own parity are unseen)."""

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        mask = torch.ones_like(self.weight.data)
        mask[:, :, 0::2, 0::2] = 0
        mask[:, :, 1::2, 1::2] = 0
        _, _, h, w = mask.shape
        mask[:, :, h // 2, w // 2] = 0
        self.register_buffer("mask", mask)

    def _weight(self) -> Tensor:
        return self.weight * self.mask


class IntTransposedConv2d(_IntConvMixin, nn.ConvTranspose2d):
    """A ConvTranspose2d on the integer grid; relu=True folds a ReLU into the output clamp."""

    def __init__(self, *args, relu: bool = False, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.relu = relu

    def _out_channel_dim(self) -> int:
        return 1

    def _conv(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        return F.conv_transpose2d(
            x, weight, bias, self.stride, self.padding, self.output_padding, self.groups, self.dilation
        )


class IntReLU(nn.Module):
    """Placeholder where a ReLU was: the preceding Int layer already clamps at zero (keeps state-dict keys)."""

    def forward(self, x: Tensor) -> Tensor:
        return x


def int_conv(cin: int, cout: int, kernel_size: int = 5, stride: int = 1, relu: bool = False) -> IntConv2d:
    """compressai's `conv` (same padding) as an integer layer."""
    return IntConv2d(cin, cout, kernel_size, stride=stride, padding=kernel_size // 2, relu=relu)


def int_deconv(cin: int, cout: int, kernel_size: int = 5, stride: int = 2, relu: bool = False) -> IntTransposedConv2d:
    """compressai's `deconv` (output = stride * input) as an integer layer."""
    return IntTransposedConv2d(
        cin, cout, kernel_size, stride=stride, output_padding=stride - 1, padding=kernel_size // 2, relu=relu
    )


__all__ = [
    "ACT_BITS",
    "ACT_LIMIT",
    "WEIGHT_BITS",
    "IntConv2d",
    "IntMaskedConv2d",
    "IntReLU",
    "IntTransposedConv2d",
    "exact_kernels",
    "int_conv",
    "int_deconv",
    "quantize_act",
]
