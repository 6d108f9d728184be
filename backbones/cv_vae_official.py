"""CV-VAE family with the official parameter layout (Zhao et al. 2024): presets `cv_vae_sd21`, `cv_vae_sd3`.

Computes what the released CV-VAE computes (AILab-CVC/CV-VAE, `CVVAEModel` "vae3d" and
`CVVAESD3Model` "vae3d_sd3"), with the module names of the SD2.1 release so that its state dict maps
one to one (the SD3 release is renamed here, `sd3_to_ours`, for `pretrained=`):

- GroupNorm over the whole clip (SD2.1 eps 1e-5, SD3 1e-6); the attention's GroupNorm is per frame;
- "half-3D" resnet blocks: a 3x3x3 conv then a per-frame 3x3 conv, 1x1x1 shortcut;
- encoder causal in time (first frame replicated on the past side); decoder not causal (SD2.1 zero
  time padding, replicate padding in its upsampler; SD3 replicate padding everywhere in 3D convs);
- decoder mid attention spatial then temporal in series (SD2.1), spatial only (SD3).

Differences, all options: the encoder head outputs the c-channel mean only (the codec quantizes the
posterior mean; `pretrained=` copies the official mean filters), `causal_decoder=True` and
`norm="frame"` make the network strictly causal for GoP coding. timm provides the activation lookup
and `checkpoint_seq`; the 3D convolutions, clip-wide norms and 3D resampling have no timm equivalent
(timm's layers are 2D), so they are written here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from vvc_lightning.backbones.base import EncoderDecoderBackbone
from vvc_lightning.backbones.layers import FrameConv2d, FrameGroupNorm
from vvc_lightning.backbones.pretrained import Release, register_release
from vvc_lightning.backbones.tile_aware import FrameMixing, TileGroupNorm
from vvc_lightning.errors import ConfigError
from vvc_lightning.ops import fold_time, unfold_time
from vvc_lightning.registry import BACKBONES

LAYOUTS = ("sd21", "sd3")


class PadConv3d(nn.Conv3d):
    """3D conv, explicit padding: `causal` puts 2p frames on the past side (replicated), else p each side."""

    def __init__(self, cin: int, cout: int, k: int, *, causal: bool, mode: str, time_mode: str,
                 stride: int | tuple[int, int, int] = 1) -> None:
        super().__init__(cin, cout, k, stride=stride, padding=0)
        p = k // 2
        self.space = (p, p, p, p, 0, 0)
        self.time = (0, 0, 0, 0, 2 * p, 0) if causal else (0, 0, 0, 0, p, p)
        self.mode, self.time_mode = mode, time_mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pad (space, then time) and convolve."""
        if any(self.space):
            x = F.pad(x, self.space, mode=self.mode) if self.mode != "zeros" else F.pad(x, self.space)
        if any(self.time):
            x = F.pad(x, self.time, mode=self.time_mode) if self.time_mode != "zeros" else F.pad(x, self.time)
        return super().forward(x)


class Spec:
    """How one side (encoder or decoder) of a layout pads and normalises."""

    def __init__(self, causal: bool, layout: str, norm: str, eps: float) -> None:
        self.causal, self.norm, self.eps = causal, norm, eps
        self.mode = "replicate" if layout == "sd3" else "zeros"
        self.time_mode = "replicate" if (causal or layout == "sd3") else "zeros"

    def conv(self, cin: int, cout: int, k: int = 3) -> PadConv3d:
        """A 3D conv padded the way this side pads."""
        return PadConv3d(cin, cout, k, causal=self.causal, mode=self.mode, time_mode=self.time_mode)

    def groupnorm(self, channels: int) -> nn.Module:
        """GroupNorm over the clip (official) or per frame (causal option)."""
        if self.norm == "frame":
            return FrameGroupNorm(channels, eps=self.eps)
        return TileGroupNorm(32, channels, eps=self.eps)


class ResnetBlock(nn.Module):
    """Norm-act-3x3x3 conv, norm-act-per-frame 3x3 conv, plus a 1x1x1 `nin_shortcut` when widths differ."""

    def __init__(self, cin: int, cout: int, spec: Spec, act: type[nn.Module], dropout: float) -> None:
        super().__init__()
        self.norm1 = spec.groupnorm(cin)
        self.conv1 = spec.conv(cin, cout)
        self.norm2 = spec.groupnorm(cout)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = FrameConv2d(cout, cout, 3, padding=1)
        self.act = act()
        if cin != cout:
            self.nin_shortcut = nn.Conv3d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual update."""
        h = self.conv1(self.act(self.norm1(x)))
        h = self.conv2(self.dropout(self.act(self.norm2(h))))
        return (self.nin_shortcut(x) if hasattr(self, "nin_shortcut") else x) + h


class MidAttention(FrameMixing):
    """Single-head spatial self-attention per frame, then (optionally) temporal attention per pixel (masked
    when causal); tile-aware."""

    def __init__(self, ch: int, eps: float, temporal: bool, causal: bool = False) -> None:
        super().__init__()
        self.causal = causal
        self.norm = nn.GroupNorm(32, ch, eps=eps)
        self.q, self.k, self.v, self.proj_out = (nn.Conv2d(ch, ch, 1) for _ in range(4))
        self.temporal = temporal
        if temporal:
            self.norm_t = nn.LayerNorm(ch)
            self.q_t, self.k_t, self.v_t, self.proj_out_t = (nn.Linear(ch, ch) for _ in range(4))

    def mix(self, x: torch.Tensor) -> torch.Tensor:
        """x + attention(x)."""
        b, c, t, hh, ww = x.shape
        y = self.norm(fold_time(x))
        q, k, v = (rearrange(f(y), "n c h w -> n (h w) c") for f in (self.q, self.k, self.v))
        y = rearrange(F.scaled_dot_product_attention(q, k, v), "n (h w) c -> n c h w", h=hh)
        y = self.proj_out(y)
        if not self.temporal:
            return x + unfold_time(y, t)
        s = self.norm_t(rearrange(y, "(b t) c h w -> (b h w) t c", t=t))
        s = F.scaled_dot_product_attention(self.q_t(s), self.k_t(s), self.v_t(s), is_causal=self.causal)
        s = rearrange(self.proj_out_t(s), "(b h w) t c -> b c t h w", b=b, h=hh)
        return x + s


class Downsample(nn.Module):
    """Stride-2 conv in space (and time when `time`), causal in time; SD2.1 pads (0,1) in space, SD3 (1,1)."""

    def __init__(self, ch: int, time: bool, layout: str) -> None:
        super().__init__()
        self.conv = nn.Conv3d(ch, ch, 3, stride=(2 if time else 1, 2, 2))
        self.space = (1, 1, 1, 1, 0, 0) if layout == "sd3" else (0, 1, 0, 1, 0, 0)
        self.mode = "replicate" if layout == "sd3" else "constant"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Halve H, W (and T-1)."""
        x = F.pad(x, self.space, mode=self.mode)
        return self.conv(F.pad(x, (0, 0, 0, 0, 2, 0), mode="replicate"))


class Upsample(nn.Module):
    """Nearest x2 in space, a 3D conv predicting `factor` frames a step (channels -> time), first dropped."""

    def __init__(self, ch: int, time: bool, spec: Spec) -> None:
        super().__init__()
        self.factor = 2 if time else 1
        self.conv = nn.Conv3d(ch, ch * self.factor, 3)
        self.space_mode = spec.mode
        self.time = (0, 0, 0, 0, 2, 0) if spec.causal else (0, 0, 0, 0, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Double H, W (and T-1 when `time`)."""
        x = F.interpolate(x, scale_factor=(1.0, 2.0, 2.0), mode="nearest")
        x = F.pad(x, (1, 1, 1, 1, 0, 0), mode="replicate" if self.space_mode == "replicate" else "constant")
        x = self.conv(F.pad(x, self.time, mode="replicate"))
        x = rearrange(x, "b (n c) t h w -> b c (t n) h w", n=self.factor)
        return x[:, :, 1:] if self.factor > 1 else x


class Mid(nn.Module):
    """block_1, attn_1, block_2."""

    def __init__(self, ch: int, spec: Spec, act: type[nn.Module], dropout: float, attn: nn.Module) -> None:
        super().__init__()
        self.block_1 = ResnetBlock(ch, ch, spec, act, dropout)
        self.attn_1 = attn
        self.block_2 = ResnetBlock(ch, ch, spec, act, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the three sub-blocks."""
        return self.block_2(self.attn_1(self.block_1(x)))


class Encoder(nn.Module):
    """Frames -> c-channel latent (the official posterior mean)."""

    def __init__(self, width: int, mults: tuple[int, ...], blocks: int, latent: int, spec: Spec,
                 layout: str, act: type[nn.Module], dropout: float) -> None:
        super().__init__()
        self.conv_in = spec.conv(3, width)
        self.down = nn.ModuleList()
        ch = width
        for level, m in enumerate(mults):
            stage = nn.Module()
            widths = [(ch if i == 0 else width * m, width * m) for i in range(blocks)]
            stage.block = nn.Sequential(*(ResnetBlock(a, b, spec, act, dropout) for a, b in widths))
            ch = width * m
            if level < len(mults) - 1:
                stage.downsample = Downsample(ch, level % 2 == 0, layout)
            self.down.append(stage)
        self.mid = Mid(ch, spec, act, dropout, MidAttention(ch, spec.eps, temporal=False))
        self.norm_out = spec.groupnorm(ch)
        self.act = act()
        self.conv_out = spec.conv(ch, latent)
        self.gradient_checkpointing = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode a clip."""
        ckpt = self.gradient_checkpointing and self.training and torch.is_grad_enabled()
        if ckpt:
            from timm.models import checkpoint_seq
        h = self.conv_in(x)
        for stage in self.down:
            h = checkpoint_seq(stage.block, h) if ckpt else stage.block(h)
            if hasattr(stage, "downsample"):
                h = stage.downsample(h)
        return self.conv_out(self.act(self.norm_out(self.mid(h))))


class Decoder(nn.Module):
    """Latent -> frames; levels numbered from the top as in the release (`up.3` runs first)."""

    def __init__(self, width: int, mults: tuple[int, ...], blocks: int, latent: int, spec: Spec,
                 act: type[nn.Module], dropout: float, temporal_attention: bool) -> None:
        super().__init__()
        ch = width * mults[-1]
        self.conv_in = spec.conv(latent, ch)
        self.mid = Mid(ch, spec, act, dropout, MidAttention(ch, spec.eps, temporal_attention, spec.causal))
        stages: list[nn.Module] = []
        for level in reversed(range(len(mults))):
            stage = nn.Module()
            out = width * mults[level]
            stage.block = nn.Sequential(*(ResnetBlock(ch if i == 0 else out, out, spec, act, dropout)
                                          for i in range(blocks)))
            ch = out
            if level > 0:
                stage.upsample = Upsample(ch, level % 2 == 1, spec)
            stages.insert(0, stage)
        self.up = nn.ModuleList(stages)
        self.norm_out = spec.groupnorm(ch)
        self.act = act()
        self.conv_out = spec.conv(ch, 3)
        self.gradient_checkpointing = False

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Decode a latent."""
        ckpt = self.gradient_checkpointing and self.training and torch.is_grad_enabled()
        if ckpt:
            from timm.models import checkpoint_seq
        h = self.mid(self.conv_in(z))
        for stage in reversed(self.up):
            h = checkpoint_seq(stage.block, h) if ckpt else stage.block(h)
            if hasattr(stage, "upsample"):
                h = stage.upsample(h)
        return self.conv_out(self.act(self.norm_out(h)))


class CVVAEOfficial(EncoderDecoderBackbone):
    """CV-VAE, official layout and function: temporal stride 4, spatial stride 8, deterministic latent."""

    temporal_stride = 4
    spatial_stride = 8

    def __init__(
        self,
        latent_channels: int = 128,
        width: int = 128,
        channel_mult: Sequence[int] = (1, 2, 4, 4),
        enc_blocks: int = 2,
        dec_blocks: int = 3,
        layout: str = "sd21",
        norm: str = "clip",
        causal_decoder: bool = False,
        temporal_attention: bool | None = None,
        activation: str = "silu",
        dropout: float = 0.0,
        gradient_checkpointing: bool = False,
        weights: str | None = None,
        pretrained: str | None = None,
    ) -> None:
        super().__init__()
        mults = tuple(int(m) for m in channel_mult)
        if layout not in LAYOUTS or norm not in ("clip", "frame") or len(mults) != 4 or min(mults) < 1:
            raise ConfigError(
                f"model.backbone: layout must be one of {LAYOUTS}, norm 'clip' or 'frame', channel_mult 4 "
                f"positive integers; got layout={layout!r}, norm={norm!r}, channel_mult={list(channel_mult)}"
            )
        if width < 1 or width % 32 or latent_channels < 1 or enc_blocks < 1 or dec_blocks < 1:
            raise ConfigError(
                "model.backbone.width must be a positive multiple of 32 (GroupNorm(32)) and latent_channels, "
                f"enc_blocks, dec_blocks positive; got width={width}, latent_channels={latent_channels}, "
                f"enc_blocks={enc_blocks}, dec_blocks={dec_blocks}"
            )
        eps = 1e-6 if layout == "sd3" else 1e-5
        temporal = (layout == "sd21") if temporal_attention is None else bool(temporal_attention)
        from timm.layers import get_act_layer

        act = get_act_layer(activation)
        self.latent_channels = int(latent_channels)
        self.width = int(width)
        self.layout = layout
        enc_spec, dec_spec = Spec(True, layout, norm, eps), Spec(causal_decoder, layout, norm, eps)
        self.encoder = Encoder(width, mults, enc_blocks, latent_channels, enc_spec, layout, act, dropout)
        self.decoder = Decoder(width, mults, dec_blocks, latent_channels, dec_spec, act, dropout, temporal)
        self.gradient_checkpointing = gradient_checkpointing
        self.load_initial(weights, pretrained)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Frames (B,3,T,H,W) in [-1,1] -> latent (B,c,1+(T-1)/4,H/8,W/8) (the posterior mean)."""
        self.check_input(x)
        return self.encoder(x)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Latent (B,c,t,h,w) -> frames (B,3,1+4(t-1),8h,8w), roughly in [-1,1]."""
        return self.decoder(latent)


BACKBONES.register_variant("cv_vae_sd21", CVVAEOfficial, layout="sd21")
BACKBONES.register_variant("cv_vae_sd3", CVVAEOfficial, layout="sd3")


# ------------------------------------------------------------------------------------------ released files
LEVELS = 4  # resolution levels of every CV-VAE (channel_mult has 4 entries)
ADAPTED = {  # our latent-facing keys -> (dim of the latent channels, file holds (mean, logvar) there)
    "encoder.conv_out.weight": (0, True),
    "encoder.conv_out.bias": (0, True),
    "decoder.conv_in.weight": (1, False),
}
_SD3_RULES = [
    (r"^(encoder|decoder)\.conv_norm_out\.", r"\1.norm_out."),
    (r"^encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.", r"encoder.down.\1.block.\2."),
    (r"^encoder\.down_blocks\.(\d+)\.downsamplers\.0\.", r"encoder.down.\1.downsample."),
    (r"^(encoder|decoder)\.mid_block\.resnets\.0\.", r"\1.mid.block_1."),
    (r"^(encoder|decoder)\.mid_block\.resnets\.1\.", r"\1.mid.block_2."),
    (r"^(encoder|decoder)\.mid_block\.attentions\.0\.group_norm\.", r"\1.mid.attn_1.norm."),
    (r"^(encoder|decoder)\.mid_block\.attentions\.0\.to_(q|k|v)\.", r"\1.mid.attn_1.\2."),
    (r"^(encoder|decoder)\.mid_block\.attentions\.0\.to_out\.0\.", r"\1.mid.attn_1.proj_out."),
    (r"\.conv_shortcut\.", ".nin_shortcut."),
]


def _is_sd3(keys: Sequence[str]) -> bool:
    """Whether the keys are the diffusers-named SD3 release (`down_blocks`, `mid_block`)."""
    return any(".down_blocks." in k or ".mid_block." in k for k in keys)


def sd3_to_ours(key: str) -> str:
    """Our name for a key of the SD3 release (diffusers names; decoder levels numbered from the bottom)."""
    m = re.match(r"^decoder\.up_blocks\.(\d+)\.(resnets|upsamplers)\.(\d+)\.(.*)$", key)
    if m:
        part = f"block.{m.group(3)}" if m.group(2) == "resnets" else "upsample"
        key = f"decoder.up.{LEVELS - 1 - int(m.group(1))}.{part}.{m.group(4)}"
    for pat, rep in _SD3_RULES:
        key = re.sub(pat, rep, key)
    return key


register_release(Release(
    "cvvae_sd21", CVVAEOfficial, "cv_vae_sd21", rename=lambda key: key, adapted=ADAPTED,
    matches=lambda keys: not _is_sd3(keys) and any(k.startswith("encoder.down.") for k in keys),
    fits=lambda model: getattr(model, "layout", None) == "sd21", subfolder="vae3d"))
register_release(Release(
    "cvvae_sd3", CVVAEOfficial, "cv_vae_sd3", rename=sd3_to_ours, adapted=ADAPTED, matches=_is_sd3,
    fits=lambda model: getattr(model, "layout", None) == "sd3", subfolder="vae3d_sd3"))
