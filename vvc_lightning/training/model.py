"""The LightningModule: the inference model (`vvc_lightning.model`) trained with eq. 1 / eq. 2."""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from vvc_lightning.codec.entropy.gain import lambda_to_quality
from vvc_lightning.configuration.config import from_container, to_yaml
from vvc_lightning.errors import WeightsError
from vvc_lightning.metrics.functional import psnr_from_mse
from vvc_lightning.model import CompressionModel, for_stored_weights
from vvc_lightning.training.losses import RatePerceptionLoss, build_perceptual
from vvc_lightning.training.stages import AUX_GROUP
from vvc_lightning.version import __version__

BAR_METRICS = ("loss", "psnr", "bpp")  # what the training progress bar shows of each step's metrics


class VideoCompressionModel(CompressionModel, pl.LightningModule):
    """The inference model trained with eq. 1 / eq. 2: losses, stages, optimizer and logging on top of
    `CompressionModel` (same state-dict keys); the stage-freeze callback sets `self.stage`."""

    def __init__(self, config: DictConfig | dict[str, Any]) -> None:
        cfg = config if isinstance(config, DictConfig) else from_container(config)
        super().__init__(cfg)
        self.save_hyperparameters(
            {"config": OmegaConf.to_container(cfg, resolve=True), "version": __version__}
        )
        self.stage: DictConfig = cfg.stages[0]
        self._loss: list[RatePerceptionLoss] = []  # kept out of the state dict on purpose
        self.test_rows: list[dict[str, Any]] = []  # `test`'s results per sequence and quality

    @classmethod
    def from_model(cls, model: CompressionModel, config: DictConfig) -> VideoCompressionModel:
        """A LightningModule holding the weights of `model`, built from `config` (its stored config, with any
        overrides), in the first stage until `stage` is set."""
        module = cls(for_stored_weights(config))
        try:
            module.load_state_dict(model.state_dict())
        except RuntimeError as exc:
            raise WeightsError(f"the weights of '{model.checkpoint_path}' do not fit this config: "
                               f"{str(exc).splitlines()[0]}") from exc
        module.checkpoint_path = model.checkpoint_path
        return module

    def rate_point(self, train: bool) -> tuple[float | None, float]:
        """(quality, lambda) of a step: lambda log-uniform in the range in training, else model.loss.lmbda."""
        lmbda = float(self.cfg.model.loss.lmbda)
        if self.lmbda_range is None:
            return None, lmbda
        lo, hi = self.lmbda_range
        if train:
            u = float(torch.rand(()))
            lmbda = math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
        lmbda = min(max(lmbda, lo), hi)
        return lambda_to_quality(lmbda, lo, hi, self.codec.qualities), lmbda

    # ------------------------------------------------------------------------------- helpers
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

    @staticmethod
    def frames(batch: Any) -> Tensor:
        """The (B,3,T,H,W) tensor of a batch (a tensor, or a dict/tuple holding it first)."""
        if isinstance(batch, dict):
            batch = batch.get("video", batch.get("frames"))
        if isinstance(batch, (list, tuple)):
            batch = batch[0]
        return batch

    # ------------------------------------------------------------------------------- forward
    def forward(self, x: Tensor, rd: bool = True, quality: float | None = None) -> dict[str, Any]:
        """x (B,3,T,H,W) -> {"x_hat", "likelihoods": {"y", "z"}} through the codec at `quality`
        (`CompressionModel.forward`), or {"x_hat"} through the backbone alone (rd=False)."""
        if not rd:
            return {"x_hat": self.backbone(x)}
        return super().forward(x, quality)

    def _step(self, x: Tensor, prefix: str) -> Tensor:
        rd = self.stage.loss == "rd"
        quality, lmbda = self.rate_point(prefix == "train")
        out = self(x, rd=rd, quality=quality)
        lik = out.get("likelihoods", {})
        terms = self.loss_fn()(x, out["x_hat"], lik.get("y"), lik.get("z"), lmbda=lmbda)
        logs = {
            "loss": terms.loss,
            "mse": terms.mse,
            "psnr": psnr_from_mse(terms.mse.detach()),
            self.perceptual_name: terms.perceptual,
        }
        if rd:
            logs.update(bpp_y=terms.bpp_y, bpp_z=terms.bpp_z, bpp=terms.bpp_y + terms.bpp_z)
            if quality is not None and prefix == "train":
                logs.update(quality=torch.tensor(quality), lmbda=torch.tensor(lmbda))
        total = terms.loss
        if prefix == "train":
            aux = self.codec.aux_loss()
            logs["aux_loss"] = aux
            total = total + aux
        for bar in (True, False):  # the progress bar shows a few (BAR_METRICS), the logger gets them all
            self.log_dict(
                {f"{prefix}/{k}": v.detach() for k, v in logs.items() if (k in BAR_METRICS) == bar},
                prog_bar=bar and prefix == "train",
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
        from vvc_lightning.training.test_step import run_test_sequence

        run_test_sequence(self, self.frames(batch), batch_idx)

    def on_test_start(self) -> None:
        self.test_rows = []

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

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
        clip = self.cfg.optim.grad_clip
        if clip:
            params = [p for g in optimizer.param_groups if g["name"] != AUX_GROUP for p in g["params"]]
            torch.nn.utils.clip_grad_norm_([p for p in params if p.grad is not None], float(clip))

    # --------------------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Store CDF tables that match the weights, so every loader codes with identical integer tables.
        was_training = self.codec.training
        self.codec.apply_context_masks()
        # The aux loss moves the quantiles by at most aux_lr a step (Adam), too slowly to follow z when the
        # main
        # stages change it; solve them exactly (bisection on the monotone cumulative) before building the
        # tables.
        self.codec.entropy_bottleneck._update_quantiles()
        self.codec.update_tables(force=True)
        state = checkpoint["state_dict"]
        for key, value in self.codec.state_dict(prefix="codec.").items():
            state[key] = value.detach().clone()
        checkpoint["vvc_lightning"] = {"version": __version__, "config_yaml": to_yaml(self.cfg)}
        if was_training:
            self.codec._tables_fresh = False

