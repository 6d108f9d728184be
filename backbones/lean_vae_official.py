"""LeanVAE family with the official function (Cheng & Yuan 2025, westlake-repl/LeanVAE): `lean_vae_base`.

- input: frames in [-1,1] are scaled to the official [-0.5,0.5]; the first frame gets a 2D Haar
  transform, frame pairs a 3D one, with the official scaling (subband k of n filters times 2^(n/2),
  so LL = a+b+c+d) and subband order (time, height, width; low first), RGB inside each subband;
- patch embedding: Linear layers on (c pt ph pw)-flattened patches, one per (image|video, low|high);
- Neighborhood-Aware Feedforward blocks, channels last: x + depthwise 3x3x3 conv (zero padding, two
  frames on the past side), x + LayerNorm -> GEGLU MLP (hidden 8/3 C, no bias; timm `GluMlp`);
- low 128 / high 384 widths, 2 separate + 4 fusion blocks, fused width 512;
- latent: the ISTA bottleneck (`phi` projects to c, `Q` and two unrolled ISTA iterations of plain NAF
  layers reconstruct). The encoder returns the mean (the official `std_layer` is dropped).

The decoder mirrors it and ends with Linear un-patchify and the inverse Haar transform. Output is
scaled back to [-1,1].
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from vvc_lightning.backbones.base import EncoderDecoderBackbone
from vvc_lightning.backbones.layers import GegluNAFBlock
from vvc_lightning.backbones.pretrained import Release, register_release
from vvc_lightning.errors import ConfigError
from vvc_lightning.registry import BACKBONES

RGB = 3
PATCH = {"image": (1, 4, 4), "video": (2, 4, 4)}
HIGH_BANDS = {"image": 3, "video": 7}


# ------------------------------------------------------------------ official Haar (rescaled, ordered)
def _split(x: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = x.unflatten(dim, (-1, 2)).unbind(dim + 1)
    return a + b, a - b


def haar_image(x: torch.Tensor) -> torch.Tensor:
    """(B,3,1,2H,2W) -> (B,12,1,H,W): [LL, LH, HL, HH] (width filter first) with LL = a+b+c+d."""
    lo, hi = _split(x, 4)
    bands = [band for half in (lo, hi) for band in _split(half, 3)]
    return torch.cat(bands, dim=1)


def haar_video(x: torch.Tensor) -> torch.Tensor:
    """(B,3,2T,2H,2W) -> (B,24,T,H,W): 8 subbands ordered (time, height, width), low first, LLL = sum of 8."""
    bands = [x]
    for dim in (2, 3, 4):
        bands = [band for b in bands for band in _split(b, dim)]
    return torch.cat(bands, dim=1)


def _merge(lo: torch.Tensor, hi: torch.Tensor, dim: int) -> torch.Tensor:
    return torch.stack([(lo + hi) / 2, (lo - hi) / 2], dim=dim + 1).flatten(dim, dim + 1)


def ihaar_image(x: torch.Tensor) -> torch.Tensor:
    """Inverse of `haar_image`."""
    ll, lh, hl, hh = x.chunk(4, dim=1)
    return _merge(_merge(ll, lh, 3), _merge(hl, hh, 3), 4)


def ihaar_video(x: torch.Tensor) -> torch.Tensor:
    """Inverse of `haar_video`."""
    bands = list(x.chunk(8, dim=1))
    for dim in (4, 3, 2):
        bands = [_merge(bands[i], bands[i + 1], dim) for i in range(0, len(bands), 2)]
    return bands[0]


# ------------------------------------------------------------------ NAF stacks and the ISTA bottleneck
def naf_stack(dim: int, depth: int, residual: bool = True, drop_path: float = 0.0) -> nn.Sequential:
    """`depth` NAF layers in sequence."""
    return nn.Sequential(*(GegluNAFBlock(dim, residual, drop_path) for _ in range(depth)))


class ISTA(nn.Module):
    """Compressed-sensing latent bottleneck: y = phi p; p is rebuilt by unrolled ISTA iterations."""

    def __init__(self, dim: int, latent: int, iters: int, layers: int) -> None:
        super().__init__()
        phi = torch.randn(latent, dim) * dim**-0.5
        self.phi = nn.Parameter(phi)
        self.Q = nn.Parameter(phi.t().clone())
        self.forward_l = nn.ModuleList(naf_stack(dim, layers, residual=False) for _ in range(iters))
        self.backward_l = nn.ModuleList(naf_stack(dim, layers, residual=False) for _ in range(iters))
        self.weights = nn.ParameterList(nn.Parameter(torch.tensor(1.0)) for _ in range(iters))
        self.threshold = nn.ParameterList(nn.Parameter(torch.tensor([0.01])) for _ in range(iters))

    def sample(self, p: torch.Tensor) -> torch.Tensor:
        """(B,T,H,W,D) features -> (B,T,H,W,c) latent."""
        return p @ self.phi.t()

    def recon(self, y: torch.Tensor) -> torch.Tensor:
        """(B,T,H,W,c) latent -> (B,T,H,W,D) features."""
        x = y @ self.Q.t()
        steps = zip(self.weights, self.threshold, self.forward_l, self.backward_l, strict=True)
        for w, thr, fwd, bwd in steps:
            r = x - w * ((x @ self.phi.t() - y) @ self.phi)
            h = fwd(r)
            h = torch.sign(h) * F.relu(h.abs() - thr)
            x = r + bwd(h)
        return x


class LeanEncoder(nn.Module):
    """Haar subbands -> fused features (B,t,h,w,low+high)."""

    def __init__(self, low: int, high: int, sep: int, fusion: int, drop_path: float) -> None:
        super().__init__()
        for kind, (pt, ph, pw) in PATCH.items():
            n = RGB * pt * ph * pw
            setattr(self, f"{kind}_low_proj", nn.Linear(n, low))
            setattr(self, f"{kind}_high_proj", nn.Linear(n * HIGH_BANDS[kind], high))
        self.low_layer = naf_stack(low, sep, drop_path=drop_path)
        self.high_layer = naf_stack(high, sep, drop_path=drop_path)
        self.fusion_layer = naf_stack(low + high, fusion, drop_path=drop_path)
        self.gradient_checkpointing = False

    def _run(self, stack: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
        if self.gradient_checkpointing and self.training:
            from timm.models import checkpoint_seq

            return checkpoint_seq(stack, x)
        return stack(x)

    def forward(self, bands: list[tuple[str, torch.Tensor]]) -> torch.Tensor:
        """[(kind, subbands (B,3n,t,H,W))...] in time order -> features."""
        low, high = [], []
        for kind, x in bands:
            pt, ph, pw = PATCH[kind]
            tok = rearrange(x, "b c (t pt) (h ph) (w pw) -> b t h w (c pt ph pw)", pt=pt, ph=ph, pw=pw)
            split = RGB * pt * ph * pw
            low.append(getattr(self, f"{kind}_low_proj")(tok[..., :split]))
            high.append(getattr(self, f"{kind}_high_proj")(tok[..., split:]))
        lo, hi = self._run(self.low_layer, torch.cat(low, 1)), self._run(self.high_layer, torch.cat(high, 1))
        return self._run(self.fusion_layer, torch.cat([lo, hi], -1))


class LeanDecoder(LeanEncoder):
    """Features -> Haar subbands; the mirror of `LeanEncoder` with Linear un-patchify."""

    def __init__(self, low: int, high: int, sep: int, fusion: int, drop_path: float) -> None:
        nn.Module.__init__(self)
        self.low = low
        for kind, (pt, ph, pw) in PATCH.items():
            n = RGB * pt * ph * pw
            setattr(self, f"{kind}_low_proj", nn.Linear(low, n))
            setattr(self, f"{kind}_high_proj", nn.Linear(high, n * HIGH_BANDS[kind]))
        self.low_layer = naf_stack(low, sep, drop_path=drop_path)
        self.high_layer = naf_stack(high, sep, drop_path=drop_path)
        self.fusion_layer = naf_stack(low + high, fusion, drop_path=drop_path)
        self.gradient_checkpointing = False

    def unpatch(self, kind: str, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
        """Tokens of one kind -> subbands (B,3n,t*pt,H,W)."""
        pt, ph, pw = PATCH[kind]
        x = torch.cat([getattr(self, f"{kind}_low_proj")(lo), getattr(self, f"{kind}_high_proj")(hi)], -1)
        n = RGB * pt * ph * pw
        parts = [x[..., :n], x[..., n:]]
        pattern = "b t h w (c pt ph pw) -> b c (t pt) (h ph) (w pw)"
        return torch.cat([rearrange(p, pattern, pt=pt, ph=ph, pw=pw) for p in parts], dim=1)

    def forward(self, p: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """Features (B,t,h,w,D) -> frames (B,3,1+4(t-1),8h,8w) in [-0.5,0.5]."""
        h = self._run(self.fusion_layer, p)
        lo, hi = self._run(self.low_layer, h[..., : self.low]), self._run(self.high_layer, h[..., self.low :])
        frames = [ihaar_image(self.unpatch("image", lo[:, :1], hi[:, :1]))]
        if p.shape[1] > 1:
            frames.append(ihaar_video(self.unpatch("video", lo[:, 1:], hi[:, 1:])))
        return torch.cat(frames, dim=2)


class LeanVAEOfficial(EncoderDecoderBackbone):
    """LeanVAE, official layout and function: temporal stride 4, spatial stride 8, deterministic latent."""

    temporal_stride = 4
    spatial_stride = 8

    def __init__(
        self,
        latent_channels: int = 128,
        width: int = 512,
        low_width: int = 128,
        sep_layers: int = 2,
        fusion_layers: int = 4,
        ista_iters: int = 2,
        ista_layers: int = 2,
        drop_path: float = 0.0,
        gradient_checkpointing: bool = False,
        weights: str | None = None,
        pretrained: str | None = None,
    ) -> None:
        super().__init__()
        if not 0 < low_width < width or latent_channels < 1 or min(sep_layers, fusion_layers, ista_iters) < 0:
            raise ConfigError(
                "model.backbone needs 0 < low_width < width, latent_channels >= 1 and non-negative layer "
                "counts; "
                f"got width={width}, low_width={low_width}, latent_channels={latent_channels}"
            )
        self.latent_channels = int(latent_channels)
        self.width = int(width)
        self.latent_bottleneck = ISTA(width, latent_channels, ista_iters, ista_layers)
        self.encoder = LeanEncoder(low_width, width - low_width, sep_layers, fusion_layers, drop_path)
        self.decoder = LeanDecoder(low_width, width - low_width, sep_layers, fusion_layers, drop_path)
        self.gradient_checkpointing = gradient_checkpointing
        self.load_initial(weights, pretrained)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Frames (B,3,T,H,W) in [-1,1] -> latent (B,c,1+(T-1)/4,H/8,W/8)."""
        self.check_input(x)
        x = x * 0.5
        bands = [("image", haar_image(x[:, :, :1]))]
        if x.shape[2] > 1:
            bands.append(("video", haar_video(x[:, :, 1:])))
        return rearrange(self.latent_bottleneck.sample(self.encoder(bands)), "b t h w c -> b c t h w")

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Latent (B,c,t,h,w) -> frames (B,3,1+4(t-1),8h,8w), roughly in [-1,1]."""
        p = self.latent_bottleneck.recon(rearrange(latent, "b c t h w -> b t h w c"))
        return self.decoder(p) * 2.0


BACKBONES.register_variant("lean_vae_base", LeanVAEOfficial)


# ------------------------------------------------------------------------------------------ released files
PARTS = ("encoder.", "decoder.", "latent_bottleneck.")
PREFIXES = ("autoencoder.", "model.", "module.")  # a training checkpoint's wrappers around the VAE
DROPPED = ("std_layer.",)  # the official log-variance head; the codec codes the mean
_RULES = [
    (r"^(encoder|decoder)\.(image|video)_(low|high)_proj\.[01]\.", r"\1.\2_\3_proj."),
    (r"\.dconv_layer\.(\d+)\.ds_conv\.", r".\1.dwconv.conv."),
    (r"\.ffd_layer\.(\d+)\.0\.", r".\1.ffn.norm."),
    (r"\.ffd_layer\.(\d+)\.1\.", r".\1.ffn.mlp.fc1."),
    (r"\.ffd_layer\.(\d+)\.4\.", r".\1.ffn.mlp.fc2."),
]


def release_to_ours(key: str) -> str | None:
    """Our name for a key of the LeanVAE release (or a training checkpoint of it), None for one we drop."""
    for prefix in PREFIXES:
        if key.startswith(prefix) and not key.startswith(PARTS):
            key = key[len(prefix):]
    if key.startswith(DROPPED) or not key.startswith(PARTS):
        return None
    for pat, rep in _RULES:
        key = re.sub(pat, rep, key)
    return key


register_release(Release(
    "leanvae", LeanVAEOfficial, "lean_vae_base", rename=release_to_ours,
    matches=lambda keys: any(k.endswith("latent_bottleneck.phi") for k in keys),
    adapted={"latent_bottleneck.phi": (0, False), "latent_bottleneck.Q": (1, False)}))
