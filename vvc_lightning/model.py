"""The inference model: a video VAE backbone and the latent codec, with the identity a bitstream is tied to.

`architecture` is the one rule for which keys of a config's `model` section describe the built model: all
of them but where its first weights came from (`ORIGIN_KEYS`) and the rate keys a fixed-rate model does
not use. The identity hashes exactly those keys and every tensor of the state dict.
"""

from __future__ import annotations

import copy
import hashlib
import math
from collections.abc import Mapping
from typing import Any

import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf, open_dict
from torch import Tensor, nn

from vvc_lightning.codec.entropy.gain import lambda_to_quality, quality_to_lambda
from vvc_lightning.codec.entropy.latent_codec import LatentCodec
from vvc_lightning.configuration.config import from_container, section_kwargs
from vvc_lightning.errors import ConfigError, VVCError
from vvc_lightning.registry import BACKBONES

# Keys naming where a model's first weights came from (section -> keys; "" is the `model` section itself).
ORIGIN_KEYS: dict[str, tuple[str, ...]] = {"backbone": ("weights", "pretrained"), "": ("init",)}
# Keys of the codec that only a variable-rate model uses.
VARIABLE_RATE_KEYS = ("qualities", "hyper_gain")


def architecture(model_cfg: Mapping[str, Any] | DictConfig) -> dict[str, Any]:
    """The keys of a `model` config section that describe the built model (a plain dict, in config order):
    all but the origin keys and, for a fixed-rate model, `codec.qualities`, `codec.hyper_gain` and a null
    `loss.lmbda_range`."""
    if isinstance(model_cfg, DictConfig):
        cfg = OmegaConf.to_container(model_cfg, resolve=True)
    else:
        cfg = copy.deepcopy(dict(model_cfg))
    assert isinstance(cfg, dict)
    for section, keys in ORIGIN_KEYS.items():
        node = cfg.get(section) if section else cfg
        for key in keys if isinstance(node, dict) else ():
            node.pop(key, None)
    codec = cfg.get("codec")
    if isinstance(codec, dict) and not codec.get("qualities"):
        for key in VARIABLE_RATE_KEYS:
            codec.pop(key, None)
    loss = cfg.get("loss")
    if isinstance(loss, dict) and loss.get("lmbda_range") is None:
        loss.pop("lmbda_range", None)
    return cfg


def for_stored_weights(config: DictConfig) -> DictConfig:
    """A copy of `config` whose origin keys are null: the model is built to receive stored weights."""
    cfg = config.copy()
    with open_dict(cfg):
        for section, keys in ORIGIN_KEYS.items():
            node = cfg.model.get(section) if section else cfg.model
            for key in keys:
                if node is not None and node.get(key) is not None:
                    node[key] = None
    return cfg


class CompressionModel(nn.Module):
    """Backbone (video VAE) + LatentCodec, built from a config (only its `model` section is read; the rest
    is kept as `cfg`, the config the model was trained with). `checkpoint_path` is the source a bitstream
    header records."""

    checkpoint_path: str = ""

    def __init__(self, config: DictConfig | Mapping[str, Any]) -> None:
        super().__init__()
        cfg = config if isinstance(config, DictConfig) else from_container(dict(config))
        self.cfg = cfg
        name = BACKBONES.canonical(str(cfg.model.backbone.name))  # a stored alias builds silently
        self.backbone = BACKBONES.create(name, **section_kwargs(cfg.model.backbone))
        codec_kwargs = OmegaConf.to_container(cfg.model.codec, resolve=True)
        self.codec = LatentCodec(channels=self.backbone.latent_channels, **codec_kwargs)
        self._init_variable_rate()

    # ------------------------------------------------------------------------------- rates
    @property
    def gop(self) -> int:
        """Frames per GoP the model was trained at."""
        return int(self.cfg.model.gop)

    @property
    def qualities(self) -> int:
        """Number of qualities of a variable-rate model (0: fixed rate)."""
        return int(self.codec.qualities)

    @property
    def lmbda_range(self) -> tuple[float, float] | None:
        """(lo, hi) of the lambdas a variable-rate model is trained across, or None (fixed lambda)."""
        r = self.cfg.model.loss.get("lmbda_range")
        return None if r is None else (float(r[0]), float(r[1]))

    def _init_variable_rate(self) -> None:
        """Check qualities / lmbda_range together and start the y gains at sqrt(lambda_q / lmbda)."""
        n, r = self.codec.qualities, self.cfg.model.loss.get("lmbda_range")
        if r is None and not n:
            return
        if r is None or not n:
            raise ConfigError(
                "a variable-rate model needs both model.codec.qualities (e.g. 8) and model.loss.lmbda_range "
                "(e.g. [0.01, 0.4]); set both, or neither for fixed-lambda training"
            )
        try:
            lo, hi = (float(v) for v in r)
        except (TypeError, ValueError):
            lo = hi = 0.0
        if not 0 < lo < hi:
            raise ConfigError(f"model.loss.lmbda_range must be [lo, hi] with 0 < lo < hi, got {r}")
        lmbdas = [quality_to_lambda(q, lo, hi, n) for q in range(n)]
        self.codec.gain.init_from_lambdas(lmbdas, float(self.cfg.model.loss.lmbda))

    def quality_for_lambda(self, lmbda: float) -> float | None:
        """The quality of a variable-rate model that was trained for `lmbda` (None: fixed-rate model)."""
        if self.lmbda_range is None:
            return None
        lo, hi = self.lmbda_range
        if not lo <= float(lmbda) <= hi:
            raise ConfigError(
                f"lambda {lmbda} is outside the range this model was trained for [{lo:g}, {hi:g}]"
            )
        return lambda_to_quality(float(lmbda), lo, hi, self.codec.qualities)

    def check_quality(self, quality: float | None) -> float | None:
        """`quality` as a float in [0, qualities - 1] (None: fixed-rate model), or a one-line VVCError."""
        n = self.qualities
        if not n:
            if quality is not None:
                raise VVCError(
                    f"quality {quality} asked of a fixed-rate model (it has no qualities); pass None"
                )
            return None
        if quality is None:
            return None
        try:
            q = float(quality)
        except (TypeError, ValueError) as exc:
            raise VVCError(f"quality must be a number in [0, {n - 1}], got {quality!r}") from exc
        if not (math.isfinite(q) and 0 <= q <= n - 1):
            raise VVCError(f"quality {quality} is outside this model's range [0, {n - 1}]")
        return q

    # ------------------------------------------------------------- CompressAI's model contract
    def _pad(self, x: Tensor) -> Tensor:
        """Frames (B,3,T,H,W) padded at the bottom and right to the backbone stride by edge replication,
        as the video codec pads them."""
        if x.dim() != 5 or x.shape[1] != 3:
            raise VVCError(f"expected GoPs shaped (B,3,T,H,W) in [-1, 1], got {tuple(x.shape)}")
        s = int(self.backbone.spatial_stride)
        ph, pw = -x.shape[-2] % s, -x.shape[-1] % s
        return F.pad(x, (0, pw, 0, ph, 0, 0), mode="replicate") if ph or pw else x

    def forward(self, x: Tensor, quality: float | None = None) -> dict[str, Any]:
        """GoPs x (B,3,T,H,W) in [-1, 1] -> {"x_hat", "likelihoods": {"y", "z"}} at `quality` (None: the
        highest; fixed rate: None), as CompressAI's models give: noise / STE in training, rounding in eval."""
        h, w = x.shape[-2:]
        out = self.codec(self.backbone.encode(self._pad(x)), self.codec.rate(self.check_quality(quality)))
        x_hat = self.backbone.decode(out.latent_hat)[..., :h, :w]
        return {"x_hat": x_hat, "likelihoods": {"y": out.y_likelihoods, "z": out.z_likelihoods}}

    def update(self, force: bool = False) -> bool:
        """Build the CDF tables from the weights when they are missing or stale (`force`: always); returns
        whether they were built, as CompressAI's `update`."""
        stale = force or not (self.codec.tables_ready() and self.codec._tables_fresh)
        self.codec.update_tables(force=stale)
        return stale

    def aux_loss(self) -> Tensor:
        """The entropy bottleneck's quantile loss (CompressAI's `aux_loss`)."""
        return self.codec.aux_loss()

    def compress(self, x: Tensor, quality: float | None = None) -> dict[str, Any]:
        """GoPs x (B,3,T,H,W) in [-1, 1] -> {"strings": [one byte string per GoP], "shape": (T, H, W)}:
        each string holds z then y, the bytes the video codec stores as that GoP's record (`bind_to_gop`
        ties it to its index in the file)."""
        from vvc_lightning.codec.pipeline.determinism import batch_invariant, float_codec_parts
        from vvc_lightning.codec.pipeline.video_codec import _inference

        gains = self.codec.rate(self.check_quality(quality), exact=True)
        with _inference(self), batch_invariant(self.backbone):
            latent = self.backbone.encode(self._pad(x))
        with _inference(self), batch_invariant(*float_codec_parts(self.codec)):
            strings = self.codec.compress(latent, gains, reconstruct=False)[0]
        return {"strings": [strings], "shape": tuple(int(v) for v in x.shape[-3:])}

    def decompress(self, strings: list[list[bytes]], shape: tuple[int, int, int],
                   quality: float | None = None) -> dict[str, Tensor]:
        """`compress`'s strings and shape (and the quality coded at) -> {"x_hat": (B,3,T,H,W) in [-1, 1]}."""
        from vvc_lightning.codec.pipeline.determinism import batch_invariant, float_codec_parts
        from vvc_lightning.codec.pipeline.video_codec import _inference

        if (not isinstance(strings, (list, tuple)) or len(strings) != 1 or not strings[0]
                or not all(isinstance(s, (bytes, bytearray)) for s in strings[0])):
            raise VVCError("strings must be compress(x)['strings']: a list holding one list of byte strings "
                           "(one per GoP)")
        t, h, w = (int(v) for v in shape)
        s = int(self.backbone.spatial_stride)
        latent_shape = self.backbone.latent_shape(t, -(-h // s) * s, -(-w // s) * s)
        gains = self.codec.rate(self.check_quality(quality), exact=True)
        with _inference(self), batch_invariant(*float_codec_parts(self.codec)):
            latent = self.codec.decompress([bytes(b) for b in strings[0]], latent_shape, gains)
        with _inference(self), batch_invariant(self.backbone):
            x_hat = self.backbone.decode(latent)
        return {"x_hat": x_hat[..., :h, :w].clamp_(-1, 1)}

    # ---------------------------------------------------------------------------- identity
    def identity(self) -> str:
        """Hex SHA-256 of the architecture and every weight and CDF table: what a bitstream is tied to."""
        self.codec.update_tables()
        self.codec.apply_context_masks()
        h = hashlib.sha256()
        h.update(repr(architecture(self.cfg.model)).encode())
        for name, tensor in sorted(self.state_dict().items()):
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()
