"""The latent codec shared by every backbone: g_a/g_s, a hyperprior and an ELIC space-channel context.

Shapes: the backbone latent L (B,c,t,h,w) -> Y = g_a(L) (B,c,t,h,w) -> each latent frame is coded as an
image (B*t, c, h, w) with a hyperprior Z (B*t, c, ceil(h/4), ceil(w/4)). `compress` writes one rANS
byte string per batch item (per GoP), z first, then the (group, pass) steps in order.

Determinism: `compress` and `decompress` run the entropy part on the CPU in float32, one GoP at a time,
on one thread, with the CDF tables stored in the state dict, so the entropy decoder sees exactly the
parameters the encoder used whatever the batch size or core count; `forward` in eval mode on the CPU
runs the very same operations, so `decompress(compress(L))` equals the eval-mode `L_hat` to the bit.
(g_s and the backbone are ordinary batched, multi-threaded convolutions: same process settings give
identical frames; another thread count or batch size may change the last bit of a float.)
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass

import torch
from compressai.ans import BufferedRansEncoder
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.models.base import get_scale_table
from compressai.models.utils import conv, deconv
from compressai.ops import quantize_ste
from torch import Tensor, nn

from vvc_lightning.errors import BitstreamError
from vvc_lightning.ops import fold_time, unfold_time
from vvc_lightning.rans_bounded import BoundedRansDecoder
from vvc_lightning.scctx import SpaceChannelContext, default_groups
from vvc_lightning.symbol_check import SymbolDigest, open_payload

TABLE_BUFFERS = {
    "entropy_bottleneck": ("_quantized_cdf", "_offset", "_cdf_length"),
    "gaussian_conditional": ("_quantized_cdf", "_offset", "_cdf_length", "scale_table"),
}


class ResBlock3d(nn.Module):
    """Residual block of two 3x3x3 convolutions on the latent (temporal padding by replication)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(channels, channels, 3, padding=1, padding_mode="replicate")
        self.conv2 = nn.Conv3d(channels, channels, 3, padding=1, padding_mode="replicate")
        self.act = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(self.act(self.conv1(x)))


class LatentTransform(nn.Sequential):
    """g_a / g_s: c -> c channels, same (t,h,w), a stack of 3D residual blocks."""

    def __init__(self, channels: int, blocks: int) -> None:
        layers: list[nn.Module] = [nn.Conv3d(channels, channels, 3, padding=1, padding_mode="replicate")]
        layers += [ResBlock3d(channels) for _ in range(blocks)]
        layers.append(nn.Conv3d(channels, channels, 3, padding=1, padding_mode="replicate"))
        super().__init__(*layers)


@dataclass
class CodecOutput:
    """What the training/eval forward pass gives: the reconstructed latent and the likelihoods."""

    latent_hat: Tensor
    y_likelihoods: Tensor
    z_likelihoods: Tensor


_fold = fold_time


def _unfold(x: Tensor, b: int) -> Tensor:
    return unfold_time(x, x.shape[0] // b)


class LatentCodec(nn.Module):
    """Hyperprior + space-channel context codec of a video VAE latent; channels of L, Y and Z all equal c."""

    def __init__(
        self,
        channels: int = 128,
        groups: list[int] | None = None,
        transform_blocks: int = 2,
        context_hidden: int | None = None,
    ) -> None:
        super().__init__()
        c = channels
        self.channels = c
        self.groups = list(groups) if groups else default_groups(c)
        if sum(self.groups) != c:
            from vvc_lightning.errors import ConfigError

            raise ConfigError(f"model.codec.groups {self.groups} must sum to the latent channels {c}")
        self.g_a = LatentTransform(c, transform_blocks)
        self.g_s = LatentTransform(c, transform_blocks)
        self.h_a = nn.Sequential(
            conv(c, c, kernel_size=3, stride=1),
            nn.ReLU(inplace=True),
            conv(c, c, kernel_size=5, stride=2),
            nn.ReLU(inplace=True),
            conv(c, c, kernel_size=5, stride=2),
        )
        self.h_s = nn.Sequential(
            deconv(c, c, kernel_size=5, stride=2),
            nn.ReLU(inplace=True),
            deconv(c, c * 3 // 2, kernel_size=5, stride=2),
            nn.ReLU(inplace=True),
            conv(c * 3 // 2, 2 * c, kernel_size=3, stride=1),
        )
        self.entropy_bottleneck = EntropyBottleneck(c)
        self.gaussian_conditional = GaussianConditional(None)
        self.context = SpaceChannelContext(self.groups, 2 * c, context_hidden or c)
        self.apply_context_masks()
        self._tables_fresh = False
        self._twin: list[LatentCodec] = []  # a CPU copy for coding; a list so it is no submodule
        self.coding_device = "cpu"  # "cpu": deterministic everywhere; "model": fast, same-hardware only

    # ------------------------------------------------------------------------------ parameters
    def aux_parameters(self) -> list[nn.Parameter]:
        """The entropy bottleneck's quantiles: trained by the auxiliary loss only."""
        return [p for n, p in self.named_parameters() if n.endswith("quantiles")]

    def main_parameters(self) -> list[nn.Parameter]:
        """Every parameter except the auxiliary quantiles."""
        return [p for n, p in self.named_parameters() if not n.endswith("quantiles")]

    def aux_loss(self) -> Tensor:
        """Quantile-fitting loss of the entropy bottleneck (touches only `aux_parameters`)."""
        return self.entropy_bottleneck.loss()

    @torch.no_grad()
    def apply_context_masks(self) -> None:
        """Zero the masked taps of the checkerboard convolutions (their forward does it lazily).

        An optimizer step moves masked taps off zero until the next forward masks them again; masking
        before hashing or saving keeps a model's identity independent of whether a forward ran."""
        for masked in self.context.spatial_context:
            masked.weight.mul_(masked.mask)

    # -------------------------------------------------------------------------------- tables
    def train(self, mode: bool = True) -> LatentCodec:
        if mode:
            self._tables_fresh = False
            self._twin.clear()
        return super().train(mode)

    def update_tables(self, force: bool = False) -> None:
        """Rebuild the CDF tables from the current weights (call after training, before coding)."""
        if self._tables_fresh and not force:
            return
        self.entropy_bottleneck.update(force=True)
        self.gaussian_conditional.update_scale_table(get_scale_table(), force=True)
        self._tables_fresh = True
        self._twin.clear()

    def tables_ready(self) -> bool:
        """Whether CDF tables are present (built or loaded)."""
        return self.entropy_bottleneck._offset.numel() > 0 and self.gaussian_conditional._offset.numel() > 0

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001
        # CDF buffers change size after update(); resize ours to the incoming ones before loading.
        for mod_name, names in TABLE_BUFFERS.items():
            module = getattr(self, mod_name)
            for name in names:
                key = f"{prefix}{mod_name}.{name}"
                if key in state_dict:
                    module._buffers[name] = torch.empty_like(state_dict[key])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        loaded = all(f"{prefix}{m}._offset" in state_dict for m in TABLE_BUFFERS)
        self._tables_fresh = loaded and state_dict[f"{prefix}entropy_bottleneck._offset"].numel() > 0
        self._twin.clear()

    def _coder(self) -> LatentCodec:
        """This module on the CPU in float32 (itself if already there) with fresh tables."""
        if not self.tables_ready() or not self._tables_fresh:
            self.update_tables(force=True)
        p = next(self.parameters())
        if self.coding_device == "model" or (p.device.type == "cpu" and p.dtype == torch.float32):
            return self
        if not self._twin:
            twin = copy.deepcopy(self).to("cpu", torch.float32).eval()
            twin._tables_fresh = True
            twin._twin = []
            self._twin.append(twin)
        return self._twin[0]

    def _threads(self):  # noqa: ANN202
        return fixed_threads() if self.coding_device == "cpu" else contextlib.nullcontext()

    # ------------------------------------------------------------------------------- forward
    def _hyper(self, y: Tensor, training: bool) -> tuple[Tensor, Tensor, Tensor]:
        z = self.h_a(y)
        _, z_lik = self.entropy_bottleneck(z, training=training)
        medians = self.entropy_bottleneck._get_medians()
        if training:
            z_hat = quantize_ste(z - medians) + medians
        else:
            z_hat = torch.round(z - medians) + medians
        hyper = self.h_s(z_hat)[..., : y.shape[-2], : y.shape[-1]]
        return z_hat, z_lik, hyper

    def forward(self, latent: Tensor) -> CodecOutput:
        """L (B,c,t,h,w) -> L_hat and likelihoods (noise/STE in training, rounding in eval).

        In eval mode the entropy part runs one batch item (GoP) at a time, exactly as `compress` and
        `decompress` do: convolution results may differ in the last bit with the batch size.
        """
        b = latent.shape[0]
        y = _fold(self.g_a(latent))
        if self.training:
            _, z_lik, hyper = self._hyper(y, True)
            y_hat, y_lik = self.context.run(y, hyper, self.gaussian_conditional, "train")
        else:
            parts = []
            with fixed_threads() if y.device.type == "cpu" else contextlib.nullcontext():
                for y_i in y.chunk(b):
                    _, z_i, hyper_i = self._hyper(y_i, False)
                    parts.append((z_i, *self.context.run(y_i, hyper_i, self.gaussian_conditional, "eval")))
            z_lik = torch.cat([p[0] for p in parts])
            y_hat = torch.cat([p[1] for p in parts])
            y_lik = torch.cat([p[2] for p in parts])
        latent_hat = self.g_s(_unfold(y_hat, b))
        return CodecOutput(latent_hat, y_lik, z_lik)

    # ------------------------------------------------------------------------------ coding
    @torch.no_grad()
    def compress(self, latent: Tensor) -> tuple[list[bytes], Tensor]:
        """L (B,c,t,h,w) -> (one byte string per batch item, L_hat exactly as `decompress` returns it)."""
        b, _, t = latent.shape[:3]
        coder = self._coder()
        dev = next(coder.parameters()).device
        y = _fold(self.g_a(latent)).to(dev, torch.float32)
        with self._threads():
            coded = [coder._encode(y_i) for y_i in y.chunk(b)]
        y_hat = torch.cat([c[0] for c in coded])
        streams = [c[1] for c in coded]
        latent_hat = self.g_s(_unfold(y_hat.to(latent.device, latent.dtype), b))
        return streams, latent_hat

    @torch.no_grad()
    def decompress(self, strings: list[bytes], latent_shape: tuple[int, int, int, int]) -> Tensor:
        """Byte strings (one per batch item) and (c,t,h,w) -> L_hat (B,c,t,h,w)."""
        c, t, h, w = latent_shape
        if c != self.channels:
            raise BitstreamError(f"stream holds {c} latent channels but the model codes {self.channels}")
        coder = self._coder()
        with self._threads():
            y_hat = torch.cat([coder._decode(s, t, h, w) for s in strings])
        p = next(self.parameters())
        return self.g_s(_unfold(y_hat.to(p.device, p.dtype), len(strings)))

    def _encode(self, y: Tensor) -> tuple[Tensor, bytes]:
        """One GoP's folded y (t,c,h,w) -> (y_hat, its rANS string: z, then each (group, pass) step)."""
        eb, gc = self.entropy_bottleneck, self.gaussian_conditional
        h, w = y.shape[-2:]
        z = self.h_a(y)
        medians = eb._get_medians()
        z_sym = torch.round(z - medians).int()
        hyper = self.h_s(z_sym.float() + medians)[..., :h, :w]
        enc, digest = BufferedRansEncoder(), SymbolDigest()
        digest.update(_flat(z_sym))
        enc.encode_with_indexes(_flat(z_sym), _flat(_channel_indexes(z_sym.shape)), *_tables(eb))
        gc_tables = _tables(gc)

        def sink(step: int, residual: Tensor, scales: Tensor, means: Tensor, positions: Tensor) -> Tensor:
            symbols = torch.round(residual).int()
            indexes = gc.build_indexes(scales).int()
            digest.update(_flat(symbols[..., positions]))
            enc.encode_with_indexes(_flat(symbols[..., positions]), _flat(indexes[..., positions]), *gc_tables)
            return symbols

        y_hat, _ = self.context.run(y, hyper, gc, "code", sink)
        return y_hat, digest.seal(enc.flush())

    def _decode(self, string: bytes, t: int, h: int, w: int) -> Tensor:
        """One GoP's rANS string -> its folded y_hat (t,c,h,w)."""
        eb, gc = self.entropy_bottleneck, self.gaussian_conditional
        expected, string = open_payload(string)
        dec, digest = BoundedRansDecoder(), SymbolDigest()
        dec.set_stream(string)
        z_shape = (t, self.channels, -(-h // 4), -(-w // 4))
        z_sym = dec.decode_stream(_flat(_channel_indexes(z_shape)), *_tables(eb))
        digest.update(z_sym)
        medians = eb._get_medians()
        z_hat = torch.tensor(z_sym, dtype=torch.int32, device=medians.device).reshape(z_shape).float() + medians
        hyper = self.h_s(z_hat)[..., :h, :w]
        gc_tables = _tables(gc)

        def sink(step: int, residual: Tensor | None, scales: Tensor, means: Tensor, positions: Tensor) -> Tensor:
            indexes = gc.build_indexes(scales).int()[..., positions]
            symbols = torch.zeros(scales.shape, dtype=torch.int32, device=scales.device)
            values = dec.decode_stream(_flat(indexes), *gc_tables)
            digest.update(values)
            symbols[..., positions] = torch.tensor(values, dtype=torch.int32, device=scales.device).reshape(indexes.shape)
            return symbols

        y_hat, _ = self.context.run(None, hyper, gc, "code", sink)
        dec.finish()
        digest.verify(expected)
        return y_hat


@contextlib.contextmanager
def fixed_threads(n: int = 1):
    """Run the entropy-parameter networks with a fixed CPU thread count, whatever the machine has."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _flat(x: Tensor) -> list[int]:
    return x.reshape(-1).tolist()


def _channel_indexes(shape: tuple[int, ...] | torch.Size) -> Tensor:
    n, c, h, w = shape
    return torch.arange(c, dtype=torch.int32).view(1, c, 1, 1).expand(n, c, h, w)


def _tables(model: nn.Module) -> tuple[list[list[int]], list[int], list[int]]:
    return (
        model._quantized_cdf.tolist(),
        model._cdf_length.reshape(-1).int().tolist(),
        model._offset.reshape(-1).int().tolist(),
    )
