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

from omegaconf import DictConfig, OmegaConf, open_dict
from torch import nn

from vvc_lightning.codec.entropy.gain import lambda_to_quality, quality_to_lambda
from vvc_lightning.codec.entropy.latent_codec import LatentCodec
from vvc_lightning.config import from_container, section_kwargs
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
