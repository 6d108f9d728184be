"""The LightningModule: a video VAE backbone + the shared latent codec, trained with eq. 1 / eq. 2."""

from __future__ import annotations

import hashlib
from typing import Any

import lightning.pytorch as pl
import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from vvc_lightning import __version__
from vvc_lightning.config import from_container, section_kwargs, to_yaml
from vvc_lightning.latent_codec import LatentCodec
from vvc_lightning.losses import RatePerceptionLoss, build_perceptual
from vvc_lightning.registry import BACKBONES

AUX_GROUP = "aux"


def psnr_from_mse(mse: Tensor) -> Tensor:
    """PSNR in dB of an MSE on the 0-255 scale."""
    return 10 * torch.log10(255.0**2 / mse.clamp_min(1e-10))


class VideoCompressionModel(pl.LightningModule):
    """Backbone (video VAE) + LatentCodec; the stage-freeze callback sets `self.stage`."""

    def __init__(self, config: DictConfig | dict[str, Any]) -> None:
        super().__init__()
        cfg = config if isinstance(config, DictConfig) else from_container(config)
        self.cfg = cfg
        self.save_hyperparameters({"config": OmegaConf.to_container(cfg, resolve=True), "version": __version__})
        self.backbone = BACKBONES.create(str(cfg.model.backbone.name), **section_kwargs(cfg.model.backbone))
        codec_kwargs = OmegaConf.to_container(cfg.model.codec, resolve=True)
        self.codec = LatentCodec(channels=self.backbone.latent_channels, **codec_kwargs)
        self.stage: DictConfig = cfg.stages[0]
        self._loss: list[RatePerceptionLoss] = []  # kept out of the state dict on purpose

    # ------------------------------------------------------------------------------- helpers
    @property
    def gop(self) -> int:
        return int(self.cfg.model.gop)

    @property
    def perceptual_name(self) -> str:
        return str(self.cfg.model.loss.perceptual)

    def loss_fn(self) -> RatePerceptionLoss:
        """The loss module, built on first use (so coding never needs perceptual weights)."""
        if not self._loss:
            lc = self.cfg.model.loss
            perceptual = build_perceptual(lc.perceptual, lc.lpips_net, lc.lpips_weights)
            self._loss.append(RatePerceptionLoss(perceptual, lc.lmbda, lc.alpha, lc.beta))
        loss = self._loss[0]
        if next(iter(loss.perceptual.parameters()), torch.empty(0)).device != self.device:
            loss.to(self.device)
        return loss

    def identity(self) -> str:
        """Hex SHA-256 of the config and every weight and CDF table: what a bitstream is tied to."""
        self.codec.update_tables()
        self.codec.apply_context_masks()
        h = hashlib.sha256()
        cfg = OmegaConf.to_container(self.cfg.model, resolve=True)
        for key in ("weights", "pretrained"):  # where the initial weights came from is not identity
            cfg["backbone"].pop(key, None)
        h.update(repr(cfg).encode())
        for name, tensor in sorted(self.state_dict().items()):
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    @staticmethod
    def frames(batch: Any) -> Tensor:
        """The (B,3,T,H,W) tensor of a batch (a tensor, or a dict/tuple holding it first)."""
        if isinstance(batch, dict):
            batch = batch.get("video", batch.get("frames"))
        if isinstance(batch, (list, tuple)):
            batch = batch[0]
        return batch

    # ------------------------------------------------------------------------------- forward
    def forward(self, x: Tensor, rd: bool = True) -> dict[str, Tensor]:
        """x (B,3,T,H,W) -> reconstruction (and likelihoods when going through the codec)."""
        if not rd:
            return {"x_hat": self.backbone(x)}
        latent = self.backbone.encode(x)
        out = self.codec(latent)
        return {
            "x_hat": self.backbone.decode(out.latent_hat),
            "y_likelihoods": out.y_likelihoods,
            "z_likelihoods": out.z_likelihoods,
        }

    def _step(self, x: Tensor, prefix: str) -> Tensor:
        rd = self.stage.loss == "rd"
        out = self(x, rd=rd)
        terms = self.loss_fn()(x, out["x_hat"], out.get("y_likelihoods"), out.get("z_likelihoods"))
        logs = {
            "loss": terms.loss,
            "mse": terms.mse,
            "psnr": psnr_from_mse(terms.mse.detach()),
            self.perceptual_name: terms.perceptual,
        }
        if rd:
            logs.update(bpp_y=terms.bpp_y, bpp_z=terms.bpp_z, bpp=terms.bpp_y + terms.bpp_z)
        total = terms.loss
        if prefix == "train":
            aux = self.codec.aux_loss()
            logs["aux_loss"] = aux
            total = total + aux
        self.log_dict(
            {f"{prefix}/{k}": v.detach() for k, v in logs.items()},
            prog_bar=prefix == "train",
            on_step=prefix == "train",
            on_epoch=prefix != "train",
            batch_size=x.shape[0],
            sync_dist=prefix != "train",
        )
        return total

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        return self._step(self.frames(batch), "train")

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._step(self.frames(batch), "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        from vvc_lightning.testing import run_test_sequence

        run_test_sequence(self, self.frames(batch), batch_idx)

    def on_fit_start(self) -> None:
        self.loss_fn()  # fail early (e.g. missing LPIPS weights) rather than at the first step

    # ---------------------------------------------------------------------------- optimizer
    def param_groups(self) -> list[dict[str, Any]]:
        """One AdamW group per unit that a stage trains (fixed across stages), plus the aux quantiles."""
        units = sorted({str(u) for st in self.cfg.stages for u in st.train}, key=lambda u: (-len(u), u))
        groups: dict[str, list[torch.nn.Parameter]] = {u: [] for u in units}
        groups["rest"], groups[AUX_GROUP] = [], []
        for name, p in self.named_parameters():
            if name.endswith("entropy_bottleneck.quantiles"):
                groups[AUX_GROUP].append(p)
                continue
            unit = next((u for u in units if name == u or name.startswith(u + ".")), "rest")
            groups[unit].append(p)
        wd = float(self.cfg.optim.weight_decay)
        return [
            {"params": ps, "name": n, "lr": 0.0, "weight_decay": 0.0 if n == AUX_GROUP else wd}
            for n, ps in groups.items()
            if ps
        ]

    def configure_optimizers(self) -> torch.optim.Optimizer:
        betas = tuple(float(b) for b in self.cfg.optim.betas)
        return torch.optim.AdamW(self.param_groups(), lr=float(self.cfg.optim.lr), betas=betas)

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):  # noqa: ANN001
        clip = self.cfg.optim.grad_clip
        if clip:
            params = [p for g in optimizer.param_groups if g["name"] != AUX_GROUP for p in g["params"]]
            torch.nn.utils.clip_grad_norm_([p for p in params if p.grad is not None], float(clip))

    # --------------------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Store CDF tables that match the weights, so every loader codes with identical integer tables.
        was_training = self.codec.training
        self.codec.apply_context_masks()
        self.codec.update_tables(force=True)
        state = checkpoint["state_dict"]
        for key, value in self.codec.state_dict(prefix="codec.").items():
            state[key] = value.detach().clone()
        checkpoint["vvc_lightning"] = {"version": __version__, "config_yaml": to_yaml(self.cfg)}
        if was_training:
            self.codec._tables_fresh = False

