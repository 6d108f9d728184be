"""The latent codec shared by every backbone: g_a/g_s, a hyperprior and an ELIC space-channel context.

Shapes: the backbone latent L (B,c,t,h,w) -> Y = g_a(L) (B,c,t,h,w) -> each latent frame is coded as an
image (B*t, c, h, w) with a hyperprior Z (B*t, c, ceil(h/4), ceil(w/4)). `compress` writes one rANS
byte string per batch item (per GoP), z first, then the (group, pass) steps in order.

Determinism: h_s and the context model are integer networks (`vvc_lightning.codec.entropy.intnet`), so outside
training the scales and means handed to the Gaussian coder are exact: the same on any thread count,
batch size, convolution backend, process and device. The entropy part therefore runs batched across
GoPs on the model's device. `forward` in eval mode runs the very same operations, so
`decompress(compress(L))` equals the eval-mode `L_hat` to the bit. (g_a, h_a and g_s are ordinary float
layers: h_a runs only at the encoder and its z symbols are transmitted; g_s output may differ in the last
bit of a float with the thread count or backend, the decoded symbols never do.)

Rate: a variable-rate codec codes at the `Gains` each call is given (`rate(quality)` resolves them): y is
scaled after g_a and z after h_a, each scaling undone before g_s and h_s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from vvc_lightning.codec.entropy.compressai_parts import EntropyBottleneck, GaussianConditional, quantize_ste
from vvc_lightning.codec.entropy.context_model import SpaceChannelContext, default_groups
from vvc_lightning.codec.entropy.gain import Gains, GainUnits, apply_gain
from vvc_lightning.codec.entropy.intnet import IntReLU, int_conv, int_deconv
from vvc_lightning.codec.entropy.rans_bounded import BoundedRansDecoder, RansEncoder, RansTables
from vvc_lightning.codec.entropy.symbol_check import SymbolDigest, open_payload
from vvc_lightning.errors import BitstreamError, VVCError, WeightsError
from vvc_lightning.ops import fold_time, unfold_time

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


def _unfold(x: Tensor, b: int) -> Tensor:
    """The inverse of `fold_time` for `b` batch items."""
    return unfold_time(x, x.shape[0] // b)


class LatentCodec(nn.Module):
    """Hyperprior + space-channel context codec of a video VAE latent; channels of L, Y and Z all equal c."""

    def __init__(
        self,
        channels: int = 128,
        groups: list[int] | None = None,
        transform_blocks: int = 2,
        context_hidden: int | None = None,
        qualities: int = 0,
        hyper_gain: bool = True,
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
            nn.Conv2d(c, c, 3, stride=1, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c, c, 5, stride=2, padding=2),
            nn.ReLU(inplace=True),
            nn.Conv2d(c, c, 5, stride=2, padding=2),
        )
        self.h_s = nn.Sequential(  # integer network: its output feeds the entropy coder
            int_deconv(c, c, 5, 2, relu=True),
            IntReLU(),
            int_deconv(c, c * 3 // 2, 5, 2, relu=True),
            IntReLU(),
            int_conv(c * 3 // 2, 2 * c, 3),
        )
        self.entropy_bottleneck = EntropyBottleneck(c)
        self.gaussian_conditional = GaussianConditional(None)
        self.context = SpaceChannelContext(self.groups, 2 * c, context_hidden or c)
        self.apply_context_masks()
        self._tables_fresh = False
        self._init_gains(qualities, hyper_gain)

    # -------------------------------------------------------------------- variable rate (gains)
    def _init_gains(self, qualities: int, hyper_gain: bool) -> None:
        """Gain units for `qualities` rates (0: a fixed-rate codec, no gains); hyper_gain: z gains too."""
        self.gain = GainUnits(self.channels, qualities) if qualities else None
        self.hyper_gain = bool(hyper_gain)

    @property
    def qualities(self) -> int:
        """Number of trained rate points (0 for a fixed-rate codec)."""
        return self.gain.qualities if self.gain is not None else 0

    def rate(self, quality: float | None, exact: bool | None = None) -> Gains | None:
        """The gains to code at `quality` (None: the highest); None for a fixed-rate codec.

        exact: gains on the 2^-16 grid, as coding needs (default: unless training with autograd)."""
        if self.gain is None:
            if quality is not None:
                raise VVCError(f"quality {quality} asked of a fixed-rate model (it has none); pass None")
            return None
        if exact is None:
            exact = not (self.training and torch.is_grad_enabled())
        return self.gain.resolve(self.gain.qualities - 1 if quality is None else quality, exact)

    def _check_gains(self, gains: Gains | None) -> None:
        """Refuse gains a fixed-rate codec cannot use, or their absence where the codec needs them."""
        if self.gain is None:
            if gains is not None:
                raise VVCError("gains given to a fixed-rate codec; pass gains=None (see LatentCodec.rate)")
        elif not isinstance(gains, Gains):
            got = type(gains).__name__
            raise VVCError(f"a variable-rate codec needs gains=codec.rate(quality), got {got}")
        elif gains.y.shape != (self.channels,):
            raise VVCError(f"gains hold {gains.y.shape[0]} channels but this codec codes {self.channels}")

    def _z_gain(self, z: Tensor, gains: Gains | None, inverse: bool) -> Tensor:
        if gains is None or not self.hyper_gain:
            return z
        return apply_gain(z, gains.z_inv if inverse else gains.z)

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
        before hashing or saving keeps a model's identity independent of whether a forward ran. A model on the
        meta device (a skeleton, `zoo_record.check_tensors`) holds no values to mask."""
        for masked in self.context.spatial_context:
            if not masked.weight.is_meta:
                masked.weight.mul_(masked.mask)

    # -------------------------------------------------------------------------------- tables
    def train(self, mode: bool = True) -> LatentCodec:
        if mode:
            self._tables_fresh = False
        return super().train(mode)

    def update_tables(self, force: bool = False) -> None:
        """Rebuild the CDF tables from the current weights (call after training, before coding)."""
        if self._tables_fresh and not force:
            return
        from compressai.models.base import get_scale_table

        self.entropy_bottleneck.update(force=True)
        self.gaussian_conditional.update_scale_table(get_scale_table(), force=True)
        self._tables_fresh = True

    def tables_ready(self) -> bool:
        """Whether CDF tables are present (built or loaded)."""
        return self.entropy_bottleneck._offset.numel() > 0 and self.gaussian_conditional._offset.numel() > 0

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        check_tables(state_dict, prefix, self.channels)
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

    def _ensure_tables(self) -> None:
        if not self.tables_ready() or not self._tables_fresh:
            self.update_tables(force=True)

    # ------------------------------------------------------------------------------- forward
    def _z_hat(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """(z_hat, z likelihoods) of h_a's output: STE rounding in training, exact float64 otherwise."""
        _, z_lik = self.entropy_bottleneck(z, training=self.training)
        medians = self.entropy_bottleneck._get_medians()
        if self.training:
            return quantize_ste(z - medians) + medians, z_lik
        return torch.round(z - medians).double() + medians.double(), z_lik

    def _analysis(self, latent: Tensor, gains: Gains | None) -> Tensor:
        """L (B,c,t,h,w) -> folded y (B*t,c,h,w), times the y gains."""
        y = fold_time(self.g_a(latent))
        return y if gains is None else apply_gain(y, gains.y)

    def _synthesis(self, y_hat: Tensor, gains: Gains | None, b: int) -> Tensor:
        """Folded y_hat of `b` items -> L_hat (B,c,t,h,w), after the inverse y gains."""
        if gains is not None:
            y_hat = apply_gain(y_hat, gains.y_inv)
        return self.g_s(_unfold(y_hat, b))

    def _hyper_analysis(self, y: Tensor, gains: Gains | None) -> Tensor:
        """Folded y -> z, h_a's output times the z gains."""
        return self._z_gain(self.h_a(y), gains, inverse=False)

    def _hyper(self, z_hat: Tensor, h: int, w: int, gains: Gains | None) -> Tensor:
        """z_hat -> h_s's entropy parameters (N,2c,h,w), after the inverse z gains."""
        return self.h_s(self._z_gain(z_hat, gains, inverse=True))[..., :h, :w]

    def entropy(self, y: Tensor, gains: Gains | None) -> tuple[Tensor, Tensor, Tensor]:
        """Folded y (N,c,h,w) -> (y_hat in y's dtype, y likelihoods, z likelihoods); all items at once."""
        z_hat, z_lik = self._z_hat(self._hyper_analysis(y, gains))
        hyper = self._hyper(z_hat, *y.shape[-2:], gains)
        y_hat, y_lik = self.context.run(
            y, hyper, self.gaussian_conditional, "train" if self.training else "eval"
        )
        return y_hat.to(y.dtype), y_lik, z_lik

    def forward(self, latent: Tensor, gains: Gains | None) -> CodecOutput:
        """L (B,c,t,h,w) -> L_hat and likelihoods at `gains` (noise/STE in training, exact rounding else)."""
        self._check_gains(gains)
        y_hat, y_lik, z_lik = self.entropy(self._analysis(latent, gains), gains)
        return CodecOutput(self._synthesis(y_hat, gains, latent.shape[0]), y_lik, z_lik)

    # ------------------------------------------------------------------------------ coding
    @torch.no_grad()
    def compress(
        self, latent: Tensor, gains: Gains | None, reconstruct: bool = True
    ) -> tuple[list[bytes], Tensor | None]:
        """L (B,c,t,h,w) at `gains` -> (a byte string per batch item, L_hat exactly as `decompress` gives it).

        reconstruct=False skips g_s (an encoder that only writes the bytes) and returns None for L_hat."""
        self._check_gains(gains)
        b = latent.shape[0]
        y_hat, strings = self.encode_y(self._analysis(latent, gains), b, gains)
        if not reconstruct:
            return strings, None
        return strings, self._synthesis(y_hat.to(latent.dtype), gains, b)  # the same operations as `forward`

    @torch.no_grad()
    def decompress(
        self, strings: list[bytes], latent_shape: tuple[int, int, int, int], gains: Gains | None,
        synthesis: torch.dtype | None = None,
    ) -> Tensor:
        """Byte strings (one per batch item), (c,t,h,w) and the gains coded at -> L_hat (B,c,t,h,w).

        synthesis: None, or the autocast dtype of g_s alone (torch.bfloat16): y_hat is decoded exactly
        first, outside autocast; L_hat comes back in the weights' dtype."""
        c, t, h, w = latent_shape
        if c != self.channels:
            raise BitstreamError(f"stream holds {c} latent channels but the model codes {self.channels}")
        self._check_gains(gains)
        p = next(self.parameters())
        y_hat = self.decode_y(strings, t, h, w, gains)
        if synthesis is None:
            return self._synthesis(y_hat.to(p.dtype), gains, len(strings))
        with torch.autocast(p.device.type, dtype=synthesis):
            return self._synthesis(y_hat.to(p.dtype), gains, len(strings)).to(p.dtype)

    @torch.no_grad()
    def encode_y(self, y: Tensor, gops: int, gains: Gains | None) -> tuple[Tensor, list[bytes]]:
        """Folded, gained y of `gops` GoPs ((gops*t),c,h,w) -> (exact float64 y_hat, one rANS string per GoP).

        Each string holds z (scaled by `gains`), then each (group, pass) step of the context model."""
        self._check_gains(gains)
        self._ensure_tables()
        eb, gc = self.entropy_bottleneck, self.gaussian_conditional
        h, w = y.shape[-2:]
        t = y.shape[0] // gops
        z = self._hyper_analysis(y, gains)
        z_sym = _symbols(z - eb._get_medians())
        z_hat = z_sym.double() + eb._get_medians().double()
        hyper = self._hyper(z_hat, h, w, gains)
        encoders = [RansEncoder() for _ in range(gops)]
        digests = [SymbolDigest() for _ in range(gops)]  # per GoP: a CRC of every symbol it codes
        z_cpu, eb_tables = z_sym.cpu(), _rans_tables(eb)
        for i, enc in enumerate(encoders):
            part = z_cpu[i * t : (i + 1) * t]
            flat = part.reshape(-1).numpy()
            digests[i].update(flat)
            enc.encode_with_indexes(flat, _channel_indexes(part.shape).numpy(), eb_tables)
        gc_tables = _rans_tables(gc)

        def sink(step: int, residual: Tensor, scales: Tensor, means: Tensor, positions: Tensor) -> Tensor:
            symbols = _symbols(residual)  # (n, c, P): the step's positions only
            sel = symbols.cpu()
            indexes = _scale_indexes(gc, scales).cpu()
            for i, enc in enumerate(encoders):
                part = sel[i * t : (i + 1) * t].reshape(-1).numpy()
                digests[i].update(part)
                enc.encode_with_indexes(part, indexes[i * t : (i + 1) * t].numpy(), gc_tables)
            return symbols

        y_hat, _ = self.context.run(y, hyper, gc, "code", sink)
        return y_hat, [d.seal(enc.flush()) for d, enc in zip(digests, encoders, strict=True)]

    @torch.no_grad()
    def decode_y(self, strings: list[bytes], t: int, h: int, w: int, gains: Gains | None) -> Tensor:
        """One rANS string per GoP, coded at `gains` -> their folded, exact float64 y_hat (G*t,c,h,w)."""
        self._check_gains(gains)
        self._ensure_tables()
        eb, gc = self.entropy_bottleneck, self.gaussian_conditional
        medians = eb._get_medians()
        z_shape = (t, self.channels, -(-h // 4), -(-w // 4))
        z_indexes, eb_tables = _channel_indexes(z_shape).numpy(), _rans_tables(eb)
        opened = [open_payload(s) for s in strings]  # (stored symbol check, rANS string) per GoP
        decoders = [BoundedRansDecoder() for _ in strings]
        digests = [SymbolDigest() for _ in strings]
        z_parts = []
        for (_, string), dec, digest in zip(opened, decoders, digests, strict=True):
            dec.set_stream(string)
            z_parts.append(dec.decode_array(z_indexes, eb_tables))
            digest.update(z_parts[-1])
        z_sym = torch.from_numpy(np.concatenate(z_parts)).reshape(len(strings) * t, *z_shape[1:])
        hyper = self._hyper(z_sym.to(medians.device).double() + medians.double(), h, w, gains)
        gc_tables = _rans_tables(gc)

        def sink(
            step: int, residual: Tensor | None, scales: Tensor, means: Tensor, positions: Tensor
        ) -> Tensor:
            indexes = _scale_indexes(gc, scales).cpu()  # (n, c, P): the step's positions only
            per_gop = indexes.reshape(len(strings), -1).numpy()
            values = np.empty(per_gop.shape, dtype=np.int32)
            for i, (dec, digest) in enumerate(zip(decoders, digests, strict=True)):
                values[i] = dec.decode_array(per_gop[i], gc_tables)
                digest.update(values[i])
            return torch.from_numpy(values).reshape(indexes.shape).to(scales.device)

        y_hat, _ = self.context.run(None, hyper, gc, "code", sink)
        for (expected, _), dec, digest in zip(opened, decoders, digests, strict=True):
            dec.finish()  # the payload is used up exactly, the coder back in its initial state
            digest.verify(expected)
        return y_hat


MAX_CDF_LENGTH = (1 << 16) + 1  # a strictly increasing CDF of 16-bit precision has at most this many entries
MAX_OFFSET = (
    1 << 24
)  # with symbols within +-2**26 (`_symbols`), every escape value stays below 2**31: decodable


def check_tables(state: dict[str, Tensor], prefix: str, channels: int) -> None:
    """Refuse (WeightsError) loaded CDF tables that could code a stream no decoder reads: rows not rising
    strictly
    from 0 to 2**16, too long, offsets past +-2**24, counts unlike the channels or scale table (absent:
    rebuilt)."""
    for mod in TABLE_BUFFERS:
        cdf, offset, length = (state.get(f"{prefix}{mod}.{n}") for n in TABLE_BUFFERS[mod][:3])
        if cdf is None or offset is None or length is None or cdf.numel() == offset.numel() == 0:
            continue
        where = f"CDF table '{prefix}{mod}'"
        if (
            cdf.dim() != 2
            or offset.dim() != 1
            or length.dim() != 1
            or len({cdf.shape[0], len(offset), len(length)}) != 1
        ):
            raise WeightsError(
                f"{where}: {tuple(cdf.shape)} rows with {len(offset)} offsets, {len(length)} lengths"
            )
        if any(t.is_floating_point() for t in (cdf, offset, length)):
            raise WeightsError(f"{where} holds floats, not integers")
        scales = state.get(f"{prefix}{mod}.scale_table", torch.ones(1)).double().reshape(-1)
        if not (torch.isfinite(scales).all() and (scales > 0).all() and (scales.diff() > 0).all()):
            raise WeightsError(f"scale table '{prefix}{mod}.scale_table' is not positive and increasing")
        rows = channels if mod == "entropy_bottleneck" else len(scales)
        if cdf.shape[0] != rows or not 0 < cdf.shape[1] <= MAX_CDF_LENGTH:
            raise WeightsError(
                f"{where} is {tuple(cdf.shape)}; it should have {rows} rows of at most {MAX_CDF_LENGTH}"
            )
        if int(offset.long().abs().max()) > MAX_OFFSET:
            raise WeightsError(
                f"{where} has an offset of {int(offset.long().abs().max())} (at most {MAX_OFFSET})"
            )
        for i, size in enumerate(length.tolist()):
            row = cdf[i, : max(size, 0)].cpu().numpy().astype(np.int64)
            if (
                not 2 <= size <= cdf.shape[1]
                or row[0] != 0
                or row[-1] != 1 << 16
                or (np.diff(row) <= 0).any()
            ):
                raise WeightsError(
                    f"{where} row {i} is not a CDF rising strictly from 0 to 2**16; it cannot code"
                )


def _symbols(x: Tensor) -> Tensor:
    """round(x) as int32, within +-2**26 (NaN -> 0): CompressAI's C++ encoder loops forever on escapes past
    2**28, so streams stay within what its coders (and ours, bit-compatible) handle."""
    return torch.round(x).nan_to_num_(0.0).clamp_(-(2**26), 2**26).int()


def _scale_indexes(gc: GaussianConditional, scales: Tensor) -> Tensor:
    """`gc.build_indexes(scales)` in one search: per scale, the table entries (not the last) below it."""
    table = gc.scale_table[:-1].to(scales.device, torch.float64).contiguous()
    bounded = torch.clamp_min(scales.double(), float(gc.lower_bound_scale.bound))
    return torch.searchsorted(table, bounded.contiguous()).int()


def _rans_tables(model: nn.Module) -> RansTables:
    """The model's CDF tables as numpy arrays, built once per table version (cached on the module)."""
    bufs = (model._quantized_cdf, model._cdf_length, model._offset)
    key = tuple((b.data_ptr(), b._version, tuple(b.shape)) for b in bufs)
    cached = model.__dict__.get("_rans_tables")
    if cached is None or cached[0] != key:
        cached = (key, RansTables(*(b.detach().cpu().numpy() for b in bufs)))
        model.__dict__["_rans_tables"] = cached
    return cached[1]


def _channel_indexes(shape: tuple[int, ...] | torch.Size) -> Tensor:
    n, c, h, w = shape
    return torch.arange(c, dtype=torch.int32).view(1, c, 1, 1).expand(n, c, h, w)
