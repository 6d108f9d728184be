"""LeanVAE-style lightweight video VAE (Cheng & Yuan 2025): patchify first, then cheap token mixing.

All downsampling happens at the input by a non-overlapping patchify:

- a Haar wavelet transform (2D on the first frame, 3D over frame pairs on the rest) splits the clip
  into a low-frequency subband (LL / LLL, 3 channels) and high-frequency subbands (9 / 21 channels)
  at half resolution;
- a non-overlapping patch embedding (kernel = stride = 1x4x4 for the first frame, 2x4x4 for the frame
  pairs) turns each subband group into tokens on the latent grid (1+(T-1)/4, H/8, W/8); the first
  frame is embedded alone (causal), each later token covers 4 frames.

The low- and high-frequency tokens go through `sep_layers` Neighborhood-Aware Feedforward (NAF)
blocks each (widths width/4 and 3*width/4, as LeanVAE's l_dim/h_dim), are concatenated to `width`
channels and mixed by `fusion_layers` NAF blocks, then a linear head gives the latent. NAF blocks
are a causal depthwise 3x3x3 conv (neighbourhood mixing) followed by a pointwise MLP. The decoder
mirrors this and ends with a linear un-patchify and the inverse Haar transform.

Deviation from LeanVAE: a plain linear latent head instead of its ISTA compressed-sensing bottleneck,
and a deterministic latent (no logvar branch), because the codec quantizes the latent.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from vvc_lightning.backbones.base import VideoBackbone
from vvc_lightning.backbones.layers import (
    ChannelLayerNorm,
    NAFBlock,
    haar_space,
    haar_time,
    ihaar_space,
    ihaar_time,
    maybe_checkpoint,
    patches,
    unpatch,
)
from vvc_lightning.errors import ConfigError
from vvc_lightning.registry import register_backbone

LOW_IMG, HIGH_IMG = 3, 9  # first frame: 2D Haar -> LL (3) + LH/HL/HH (9) channels
LOW_VID, HIGH_VID = 3, 21  # frame pairs: 3D Haar -> LLL (3) + 7 other subbands (21) channels
PATCH_IMG, PATCH_VID = (1, 4, 4), (2, 4, 4)  # on the half-resolution subbands -> stride 4x8x8 overall
_MLP_BLOCK_BYTES = 1 << 20  # a row block's hidden MLP activations at inference: about a core's L2 cache
_UNPATCH_BLOCK_BYTES = 1 << 20  # the pixels of a block of token rows before they are placed (inference)


def _split_width(width: int) -> tuple[int, int]:
    low = max(1, width // 4)
    return low, width - low


def _plain_device(x: torch.Tensor) -> bool:
    """Whether `x` holds real numbers outside autocast (not on the meta device, which FLOP counting uses,
    and whose type autocast does not know)."""
    if x.device.type == "meta":
        return False
    try:
        return not torch.is_autocast_enabled(x.device.type)
    except RuntimeError:  # a device type autocast does not know
        return True


class NAFStack(nn.Module):
    """A sequence of NAF blocks, optionally checkpointed."""

    def __init__(self, channels: int, depth: int, mlp_ratio: float) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(NAFBlock(channels, mlp_ratio) for _ in range(depth))
        self.gradient_checkpointing = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the blocks in order to a channels-first (B,C,T,H,W) tensor."""
        return self.forward_cl(x.movedim(1, -1)).movedim(-1, 1)

    def forward_cl(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the blocks in order to a channels-last (B,T,H,W,C) tensor (without autograd: `inference`,
        unless under autocast, whose bfloat16 results its float32 buffers would not take)."""
        if not torch.is_grad_enabled() and len(self.blocks) and _plain_device(x):
            return self.inference(x)
        x = x.contiguous()
        ckpt = self.gradient_checkpointing and self.training
        for block in self.blocks:
            x = maybe_checkpoint(block.forward_cl, x, ckpt)
        return x

    def inference(self, x: torch.Tensor) -> torch.Tensor:
        """`forward_cl` without autograd, the same operations on less memory traffic: the activations live in
        two buffers (B, past + T, H, W, C) used in turn, so the causal padding is a copy of the first frame
        into the past slots, not a concatenation of the whole clip; each block's depthwise convolution reads
        one buffer and its residual sum is written into the other's frames, where the MLP adds its output in
        place, row block by row block (`NAFBlock.mlp_rows_`). Returns a view of the frames of a buffer."""
        b, t, h, w, c = x.shape
        past = self.blocks[0].dwconv.time_pad
        bufs = [x.new_empty((b, past + t, h, w, c)) for _ in range(2)]
        bufs[0][:, past:] = x
        hidden = self.blocks[0].fc1.out_channels
        rows = max(16, _MLP_BLOCK_BYTES // (x.element_size() * hidden))
        scratch = (x.new_empty((rows, hidden)), x.new_empty((rows, c)))
        for i, block in enumerate(self.blocks):
            src, dst, dw = bufs[i % 2], bufs[1 - i % 2], block.dwconv
            src[:, :past] = src[:, past : past + 1]  # the first frame, replicated on the past side
            pad = (0, dw.kernel_size[1] // 2, dw.kernel_size[2] // 2)
            mixed = F.conv3d(src.permute(0, 4, 1, 2, 3), dw.weight, dw.bias, dw.stride, pad, groups=dw.groups)
            torch.add(src[:, past:], mixed.permute(0, 2, 3, 4, 1), out=dst[:, past:])
            for item in dst[:, past:]:  # each item's frames are contiguous: its rows, whatever the batch
                block.mlp_rows_(item.view(-1, c), *scratch)
        return bufs[len(self.blocks) % 2][:, past:]


def cached_maps(module: nn.Module, build: Callable[[], dict], sources: list[nn.Module]) -> dict:
    """`build()` (patch maps made from the weights of `sources`), kept on `module` while those weights are
    unchanged and no gradient is needed; built afresh where autograd may need them."""
    params = [p for m in sources for p in m.parameters()]
    if torch.is_grad_enabled() and any(p.requires_grad for p in params):
        return build()
    try:
        key = tuple((p.data_ptr(), p._version, p.dtype, p.device) for p in params)
    except RuntimeError:  # inference tensors (torch.inference_mode) have no version counter
        return build()
    cached = module.__dict__.get("_maps_cache")
    if cached is None or cached[0] != key:
        with torch.no_grad():
            cached = (key, build())
        module.__dict__["_maps_cache"] = cached
    return cached[1]


def _conv_pair(v: torch.Tensor, low: nn.Conv3d, high: nn.Conv3d, split: int) -> torch.Tensor:
    """cat([low(v[:, :split]), high(v[:, split:])]) without the biases."""
    return torch.cat([F.conv3d(v[:, :split], low.weight, None, low.stride),
                      F.conv3d(v[:, split:], high.weight, None, high.stride)], dim=1)


def _deconv_pair(t: torch.Tensor, low: nn.ConvTranspose3d, high: nn.ConvTranspose3d, split: int,
                 bias: bool) -> torch.Tensor:
    """cat([low(t[:, :split]), high(t[:, split:])]) (transposed convs), with or without the biases."""
    lb, hb = (low.bias, high.bias) if bias else (None, None)
    return torch.cat([F.conv_transpose3d(t[:, :split], low.weight, lb, low.stride),
                      F.conv_transpose3d(t[:, split:], high.weight, hb, high.stride)], dim=1)


class LiteEncoder(nn.Module):
    """Frames (B,3,T,H,W) -> latent (B,c,1+(T-1)/4,H/8,W/8)."""

    def __init__(
        self, width: int, latent: int, sep_layers: int, fusion_layers: int, mlp_ratio: float
    ) -> None:
        super().__init__()
        low, high = _split_width(width)
        self.low = low
        self.embed_low_img = nn.Conv3d(LOW_IMG, low, PATCH_IMG, stride=PATCH_IMG)
        self.embed_high_img = nn.Conv3d(HIGH_IMG, high, PATCH_IMG, stride=PATCH_IMG)
        self.embed_low_vid = nn.Conv3d(LOW_VID, low, PATCH_VID, stride=PATCH_VID)
        self.embed_high_vid = nn.Conv3d(HIGH_VID, high, PATCH_VID, stride=PATCH_VID)
        self.sep_low = NAFStack(low, sep_layers, mlp_ratio)
        self.sep_high = NAFStack(high, sep_layers, mlp_ratio)
        self.fusion = NAFStack(width, fusion_layers, mlp_ratio)
        self.norm_out = ChannelLayerNorm(width)
        self.head = nn.Conv3d(width, latent, 1)

    def patch_maps(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Haar transform and patch embedding fused, one affine map a path: weight (width, 3*pt*64), bias."""
        maps = {}
        for key, frames, low, high, split in (
            ("img", 1, self.embed_low_img, self.embed_high_img, LOW_IMG),
            ("vid", 4, self.embed_low_vid, self.embed_high_vid, LOW_VID),
        ):
            n = 3 * frames * 64
            basis = torch.eye(n, dtype=low.weight.dtype, device=low.weight.device).reshape(n, 3, frames, 8, 8)
            bands = haar_space(basis) if frames == 1 else haar_space(haar_time(basis))
            weight = _conv_pair(bands, low, high, split).reshape(n, -1).t()
            maps[key] = (weight, torch.cat([low.bias, high.bias]))
        return maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode a clip."""
        x = x.contiguous()
        embeds = [self.embed_low_img, self.embed_high_img, self.embed_low_vid, self.embed_high_vid]
        maps = cached_maps(self, self.patch_maps, embeds)
        tokens = [F.linear(patches(x[:, :, :1], 1), *maps["img"])]
        if x.shape[2] > 1:
            tokens.append(F.linear(patches(x[:, :, 1:], 4), *maps["vid"]))
        h = torch.cat(tokens, dim=1) if len(tokens) > 1 else tokens[0]  # (B,t,h,w,width) channels-last
        lo = self.sep_low.forward_cl(h[..., : self.low])
        hi = self.sep_high.forward_cl(h[..., self.low :])
        h = self.fusion.forward_cl(torch.cat([lo, hi], dim=-1))
        z = F.linear(self.norm_out.forward_cl(h), self.head.weight.flatten(1), self.head.bias)
        return z.permute(0, 4, 1, 2, 3).contiguous()


class LiteDecoder(nn.Module):
    """Latent (B,c,t,h,w) -> frames (B,3,1+4(t-1),8h,8w)."""

    def __init__(
        self, width: int, latent: int, sep_layers: int, fusion_layers: int, mlp_ratio: float
    ) -> None:
        super().__init__()
        self.low, high = _split_width(width)
        self.proj_in = nn.Conv3d(latent, width, 1)
        self.fusion = NAFStack(width, fusion_layers, mlp_ratio)
        self.sep_low = NAFStack(self.low, sep_layers, mlp_ratio)
        self.sep_high = NAFStack(high, sep_layers, mlp_ratio)
        self.norm_low = ChannelLayerNorm(self.low)
        self.norm_high = ChannelLayerNorm(high)
        self.unembed_low_img = nn.ConvTranspose3d(self.low, LOW_IMG, PATCH_IMG, stride=PATCH_IMG)
        self.unembed_high_img = nn.ConvTranspose3d(high, HIGH_IMG, PATCH_IMG, stride=PATCH_IMG)
        self.unembed_low_vid = nn.ConvTranspose3d(self.low, LOW_VID, PATCH_VID, stride=PATCH_VID)
        self.unembed_high_vid = nn.ConvTranspose3d(high, HIGH_VID, PATCH_VID, stride=PATCH_VID)

    def patch_maps(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Patch un-embedding and inverse Haar fused, one affine map a path: weight (3*pt*64, width), bias."""
        maps = {}
        for key, low, high in (
            ("img", self.unembed_low_img, self.unembed_high_img),
            ("vid", self.unembed_low_vid, self.unembed_high_vid),
        ):
            width = low.in_channels + high.in_channels
            eye = torch.eye(width, dtype=low.weight.dtype, device=low.weight.device)
            basis = eye.reshape(width, width, 1, 1, 1)
            inverse = ihaar_space if key == "img" else (lambda v: ihaar_time(ihaar_space(v)))
            weight = inverse(_deconv_pair(basis, low, high, self.low, bias=False)).reshape(width, -1).t()
            bias = inverse(_deconv_pair(basis[:1] * 0, low, high, self.low, bias=True)).reshape(-1)
            maps[key] = (weight, bias)
        return maps

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Decode a latent."""
        # matrix products on contiguous operands only: a strided one may take another (differently rounding)
        # kernel depending on the batch size, and each item must decode the same alone or in a batch
        h = F.linear(z.permute(0, 2, 3, 4, 1).contiguous(), self.proj_in.weight.flatten(1), self.proj_in.bias)
        h = self.fusion.forward_cl(h)
        lo = self.norm_low.forward_cl(self.sep_low.forward_cl(h[..., : self.low]))
        hi = self.norm_high.forward_cl(self.sep_high.forward_cl(h[..., self.low :]))
        tokens = torch.cat([lo, hi], dim=-1)
        maps = cached_maps(self, self.patch_maps, [self.unembed_low_img, self.unembed_high_img,
                                                   self.unembed_low_vid, self.unembed_high_vid])
        b, t, hh, ww, _ = tokens.shape
        out = tokens.new_empty(b, 3, 1 + 4 * (t - 1), 8 * hh, 8 * ww)
        if torch.is_grad_enabled():
            unpatch(F.linear(tokens[:, :1].contiguous(), *maps["img"]), out[:, :, :1], 1)
            if t > 1:
                unpatch(F.linear(tokens[:, 1:].contiguous(), *maps["vid"]), out[:, :, 1:], 4)
            return out
        # without autograd: token rows a few at a time, so the pixels of a block stay in cache until placed
        rows = max(1, _UNPATCH_BLOCK_BYTES // (ww * 3 * 4 * 64 * tokens.element_size()))
        for k in range(t):
            weight, bias = maps["img" if k == 0 else "vid"]
            first, frames = (0, 1) if k == 0 else (1 + 4 * (k - 1), 4)
            for i in range(b):
                for y in range(0, hh, rows):
                    p = F.linear(tokens[i : i + 1, k : k + 1, y : y + rows], weight, bias)
                    unpatch(p, out[i : i + 1, :, first : first + frames, 8 * y : 8 * (y + rows)], frames)
        return out


@register_backbone("lean_vae_lite")
class LeanVAE(VideoBackbone):
    """LeanVAE-style lightweight video VAE: temporal stride 4, spatial stride 8, deterministic latent."""

    temporal_stride = 4
    spatial_stride = 8

    def __init__(
        self,
        latent_channels: int = 128,
        width: int = 256,
        sep_layers: int = 2,
        fusion_layers: int = 4,
        mlp_ratio: float = 4.0,
        gradient_checkpointing: bool = False,
        weights: str | None = None,
    ) -> None:
        super().__init__()
        if width < 4 or latent_channels < 1 or sep_layers < 0 or fusion_layers < 0 or mlp_ratio <= 0:
            raise ConfigError(
                "model.backbone needs width >= 4, latent_channels >= 1, sep_layers >= 0, fusion_layers >= 0 "
                f"and mlp_ratio > 0, got width={width}, latent_channels={latent_channels}, "
                f"sep_layers={sep_layers}, fusion_layers={fusion_layers}, mlp_ratio={mlp_ratio}"
            )
        self.latent_channels = int(latent_channels)
        self.width = int(width)
        args = (self.width, self.latent_channels, int(sep_layers), int(fusion_layers), float(mlp_ratio))
        self.encoder = LiteEncoder(*args)
        self.decoder = LiteDecoder(*args)
        self.gradient_checkpointing = gradient_checkpointing
        if weights:
            self.load_weights(weights)

    @property
    def gradient_checkpointing(self) -> bool:
        """Whether the NAF blocks recompute activations in backward while training."""
        return self.encoder.fusion.gradient_checkpointing

    @gradient_checkpointing.setter
    def gradient_checkpointing(self, value: bool) -> None:
        for module in self.modules():
            if isinstance(module, NAFStack):
                module.gradient_checkpointing = bool(value)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Frames (B,3,T,H,W) in [-1,1] -> latent (B,c,1+(T-1)/4,H/8,W/8)."""
        self.check_input(x)
        return self.encoder(x)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Latent (B,c,t,h,w) -> frames (B,3,1+4(t-1),8h,8w), roughly in [-1,1]."""
        return self.decoder(latent)
