"""Integer networks (Ballé et al. 2019) for everything that feeds the entropy coder.

Weights sit on a grid of 2**-WEIGHT_BITS, activations on a grid of 2**-ACT_BITS clamped to
[-ACT_LIMIT, ACT_LIMIT]. In training a layer runs in float32 with fake quantisation and straight-through
gradients. In eval mode it runs on integers held in float64: inputs are rounded onto the activation
grid, every product and partial sum is an integer below 2**53 (`_check_bound` proves it from the weight
norms), so the convolution is exact whatever the summation order, thread count, batch size, kernel or
device; the result is rescaled by a power of two and rounded half up (exact in float64). Values between
layers are real numbers on the activation grid (float64 in eval, float32 in training).
On a CPU the same integers come from int8 GEMMs on 7-bit digits (`vvc_lightning.codec.entropy.intgemm`,
several times faster; its docstring proves it exact); `intgemm.disabled()` forces the float64 path.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vvc_lightning.codec.entropy import intgemm
from vvc_lightning.codec.entropy.grid import ACT_BITS, ACT_LIMIT, EXACT_LIMIT, WEIGHT_BITS

_A = 2.0**ACT_BITS
_W = 2.0**WEIGHT_BITS


def _round_half_up(x: Tensor) -> Tensor:
    return torch.floor(x + 0.5)


def _fake_round(x: Tensor) -> Tensor:
    """floor(x + 0.5) forward, identity gradient."""
    return x + (_round_half_up(x) - x).detach()


def quantize_act(x: Tensor, training: bool, lo: float = -ACT_LIMIT) -> Tensor:
    """x onto the activation grid, clamped to [lo, ACT_LIMIT]: float32 + STE in training, exact float64
    else."""
    if training:
        return torch.clamp(_fake_round(x.float() * _A) / _A, lo, ACT_LIMIT)
    return x.double().mul(_A).add_(0.5).floor_().div_(_A).clamp_(lo, ACT_LIMIT)


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

    def _conv(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        raise NotImplementedError

    def _int_params(self) -> tuple[Tensor, Tensor | None]:
        """Integer weight and bias (float64), cached until a parameter changes; checked against 2**53 once."""
        key = tuple((p.data_ptr(), p._version, p.device) for p in (self.weight, self.bias) if p is not None)
        cached = self.__dict__.get("_int_cache")
        if cached is None or cached[0] != key:
            with torch.no_grad():
                w_int = torch.round(self._weight().detach().double() * _W)
                b_int = None if self.bias is None else torch.round(self.bias.detach().double() * _A * _W)
                _check_bound(self, w_int, b_int)
            cached = (key, w_int, b_int, {})
            self.__dict__["_int_cache"] = cached
        return cached[1], cached[2]

    def _digit_weights(self, weight: Tensor) -> intgemm.DigitWeights | None:
        """The int8-digit form of the cached integer weights (built once), or None where unsupported."""
        extra = self.__dict__["_int_cache"][3]
        if "digits" not in extra:
            digits = None
            plain = self.dilation == (1, 1) and self.groups == 1 and self.padding_mode == "zeros"
            if plain and isinstance(self.padding, tuple) and (self.transposed or self.stride == (1, 1)):
                make = intgemm.transposed_weights if self.transposed else intgemm.conv_weights
                digits = make(weight.cpu())
                digits = digits if digits.usable else None
            extra["digits"] = digits
        return extra["digits"]

    def _fast_forward(self, x: Tensor, lo: float, non_anchors: bool = False) -> Tensor | None:
        """The eval output by int8 digit GEMMs (`intgemm`, the same integers) where it applies, else None;
        non_anchors: at the checkerboard's non-anchor positions only (`intgemm.checkerboard_conv2d`)."""
        if not intgemm.available(x):
            return None
        w_int, b_int = self._int_params()
        digits = self._digit_weights(w_int)
        if digits is None:
            return None
        conv = {"padding": self.padding, "non_anchors": non_anchors}
        if self.transposed:
            conv.update(stride=self.stride, output_padding=self.output_padding)
        return intgemm.layer_forward(x, digits, b_int, lo, ACT_LIMIT, conv)

    def forward(self, x: Tensor) -> Tensor:
        lo = 0.0 if self.relu else -ACT_LIMIT
        with exact_kernels(x.device):
            if self.training:  # float32, fake quantisation, straight-through gradients
                self.__dict__.pop("_int_cache", None)
                w_q = _fake_round(self._weight().float() * _W) / _W
                b_q = None if self.bias is None else _fake_round(self.bias.float() * _A * _W) / (_A * _W)
                return quantize_act(self._conv(quantize_act(x, True), w_q, b_q), True, lo)
            fast = self._fast_forward(x, lo)
            if fast is not None:
                return fast
            w_int, b_int = self._int_params()
            # quantize_act(x, False) * 2**12 without the exact /2**12 and *2**12 round trip
            x_int = x.double().mul(_A).add_(0.5).floor_().clamp_(-ACT_LIMIT * _A, ACT_LIMIT * _A)
            acc = self._conv(x_int, w_int, b_int)  # integers, |acc| < 2**53: exact in any order
            return acc.div_(_W).add_(0.5).floor_().div_(_A).clamp_(lo, ACT_LIMIT)


def _check_bound(layer: nn.Module, w_int: Tensor, b_int: Tensor | None) -> None:
    """Raise if some output's integer accumulator could reach 2**53 (from each output channel's L1 norm)."""
    out_dim = 1 if isinstance(layer, nn.ConvTranspose2d) else 0
    worst = w_int.abs().sum([d for d in range(w_int.dim()) if d != out_dim]) * (ACT_LIMIT * _A)
    if b_int is not None:
        worst = worst + b_int.abs()
    if float(worst.max()) >= EXACT_LIMIT:
        raise ValueError(
            f"{type(layer).__name__}: weights too large for an exact integer convolution "
            f"(bound {float(worst.max()):.3g} >= 2**53); the entropy model cannot code exactly"
        )


class IntConv2d(_IntConvMixin, nn.Conv2d):
    """A Conv2d on the integer grid; relu=True folds a ReLU into the output clamp."""

    def __init__(self, *args, relu: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.relu = relu

    def _conv(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)


def anchor_mask(h: int, w: int, device: torch.device | None = None) -> Tensor:
    """Boolean (h, w) mask of checkerboard anchors: positions with (i + j) even."""
    i = torch.arange(h, device=device)[:, None]
    j = torch.arange(w, device=device)[None, :]
    return (i + j) % 2 == 0


class IntMaskedConv2d(IntConv2d):
    """IntConv2d with ELIC's checkerboard mask (type A: the centre and the anchors' own parity are unseen)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        weight = self.weight  # a factory, not ones_like: on the meta device (zoo_record) it stays in C++
        mask = torch.ones(weight.shape, dtype=weight.dtype, device=weight.device)
        mask[:, :, 0::2, 0::2] = 0
        mask[:, :, 1::2, 1::2] = 0
        _, _, h, w = mask.shape
        mask[:, :, h // 2, w // 2] = 0
        self.register_buffer("mask", mask)

    def _weight(self) -> Tensor:
        return self.weight * self.mask

    def forward(self, x: Tensor, non_anchors: bool = False) -> Tensor:
        """The output map; non_anchors: the output at the checkerboard's non-anchor positions ((i + j) odd)
        only, (n, P, C) in row-major order (what the second pass of the context model uses), computed at
        those positions alone where the float64 GEMMs apply (the same values as the whole map's there)."""
        if not non_anchors:
            return super().forward(x)
        if not self.training and not intgemm.use_int8():  # its columns are float64 values
            with exact_kernels(x.device):
                out = self._fast_forward(x, 0.0 if self.relu else -ACT_LIMIT, non_anchors=True)
            if out is not None:
                return out
        full = super().forward(x)
        return full.permute(0, 2, 3, 1)[:, ~anchor_mask(*full.shape[-2:], x.device)]


class IntTransposedConv2d(_IntConvMixin, nn.ConvTranspose2d):
    """A ConvTranspose2d on the integer grid; relu=True folds a ReLU into the output clamp."""

    def __init__(self, *args, relu: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.relu = relu

    def _conv(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        return F.conv_transpose2d(
            x, weight, bias, self.stride, self.padding, self.output_padding, self.groups, self.dilation
        )


class IntReLU(nn.Module):
    """Identity in the ReLU's place (its state-dict keys): the preceding Int layer clamps at zero."""

    def forward(self, x: Tensor) -> Tensor:
        return x


def int_conv(cin: int, cout: int, kernel_size: int = 5, stride: int = 1, relu: bool = False) -> IntConv2d:
    """compressai's `conv` (same padding) as an integer layer."""
    return IntConv2d(cin, cout, kernel_size, stride=stride, padding=kernel_size // 2, relu=relu)


def int_deconv(
    cin: int, cout: int, kernel_size: int = 5, stride: int = 2, relu: bool = False
) -> IntTransposedConv2d:
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
    "anchor_mask",
    "exact_kernels",
    "int_conv",
    "int_deconv",
    "quantize_act",
]
