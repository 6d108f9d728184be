"""Tell natural photographs from renders, gradients, logos, text and greyscale images by measurable traits,
and find the files that show the same scene (perceptual hashes; ORB features that agree on one geometry).

Every trait is measured on a copy area-downscaled so its long side is `MEASURE_SIDE` pixels:

    colourfulness  Hasler & Suesstrunk's M (std and mean of the rg / yb opponent channels), 0-255 scale
    top_colours    share of pixels in the 16 most frequent colours, 6 bits a channel
    texture        median gradient magnitude (3x3 Sobel on 8-bit luma): renders and gradients are smooth
                   over most of the picture (median below 8.5), pure noise has no calm area (over 140)
    short_side     the original's short side, in pixels
    transparent    share of the original's pixels that are not opaque (a cut-out, not a whole scene)

An image is a photo when every rule in `RULES` holds; the first that fails names why it is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vvc_lightning.video.images import opencv

MEASURE_SIDE = 384


@dataclass(frozen=True)
class Rule:
    """One measurable condition a photo meets (`value <op> limit`) and the reason given when it fails."""

    trait: str
    op: str  # ">=" or "<="
    limit: float
    reason: str

    def holds(self, traits: dict[str, float]) -> bool:
        """Whether `traits` meet this rule."""
        value = traits[self.trait]
        return value >= self.limit if self.op == ">=" else value <= self.limit


RULES = (
    Rule("short_side", ">=", 256, "smaller than one 256x256 training crop"),
    Rule("transparent", "<=", 0.05, "a cut-out (over 5 % of pixels transparent)"),
    Rule("colourfulness", ">=", 8.0, "greyscale or nearly so (colourfulness below 8)"),
    Rule(
        "top_colours",
        "<=",
        0.35,
        "few flat colours, as a logo, text or flat render (16 colours cover > 35 %)",
    ),
    Rule("texture", ">=", 8.5, "smooth render or gradient (median gradient below 8.5)"),
    Rule("texture", "<=", 140.0, "noise, not a scene (median gradient over 140)"),
)


def _downscale(rgb: np.ndarray, side: int) -> np.ndarray:
    """Area-downscale (H,W,3) uint8 so its long side is at most `side`."""
    cv2 = opencv("the photo filter")

    h, w = rgb.shape[:2]
    f = side / max(h, w)
    if f >= 1:
        return rgb
    return cv2.resize(rgb, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)


def measure(rgb: np.ndarray, short_side: int | None = None, transparent: float = 0.0) -> dict[str, float]:
    """The traits of an (H,W,3) uint8 RGB image (see the module docstring); `short_side` is the original's
    when `rgb` was decoded reduced, `transparent` the share of its pixels that are not opaque."""
    cv2 = opencv("the photo filter")

    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"measure needs an (H,W,3) uint8 image, got {rgb.shape} {rgb.dtype}")
    small = _downscale(rgb, MEASURE_SIDE)
    f = small.astype(np.float64)
    rg, yb = f[..., 0] - f[..., 1], 0.5 * (f[..., 0] + f[..., 1]) - f[..., 2]
    colourful = np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean())
    q = (small >> 2).astype(np.int64)
    codes = (q[..., 0] << 12) | (q[..., 1] << 6) | q[..., 2]
    counts = np.sort(np.bincount(codes.ravel(), minlength=1 << 18))[::-1]
    luma = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32)
    grad = np.hypot(cv2.Sobel(luma, cv2.CV_32F, 1, 0), cv2.Sobel(luma, cv2.CV_32F, 0, 1))
    return {
        "colourfulness": round(float(colourful), 2),
        "top_colours": round(float(counts[:16].sum() / codes.size), 4),
        "texture": round(float(np.median(grad)), 2),
        "short_side": float(short_side or min(rgb.shape[:2])),
        "transparent": round(float(transparent), 4),
    }


def photo_verdict(traits: dict[str, float]) -> str | None:
    """None for a photo, else the reason of the first rule it fails."""
    for rule in RULES:
        if not rule.holds(traits):
            return rule.reason
    return None


def dhash(rgb: np.ndarray, size: int = 16) -> int:
    """A difference hash of `size`*`size` bits: near-equal for the same picture at other sizes or codings."""
    cv2 = opencv("the photo filter")

    luma = cv2.cvtColor(_downscale(rgb, 4 * size), cv2.COLOR_RGB2GRAY)
    small = cv2.resize(luma, (size + 1, size), interpolation=cv2.INTER_AREA).astype(np.int16)
    bits = (small[:, 1:] > small[:, :-1]).ravel()
    return int("".join("1" if b else "0" for b in bits), 2)


def hamming(a: int, b: int) -> int:
    """Bits in which two hashes differ."""
    return (a ^ b).bit_count()


def orb_features(rgb: np.ndarray, side: int = 512, n: int = 500) -> tuple[np.ndarray, np.ndarray | None]:
    """ORB keypoint positions (K,2) and descriptors of the luma downscaled to `side` px on its long side."""
    cv2 = opencv("the photo filter")

    luma = cv2.cvtColor(_downscale(rgb, side), cv2.COLOR_RGB2GRAY)
    keys, desc = cv2.ORB_create(n).detectAndCompute(luma, None)
    return np.float32([k.pt for k in keys]).reshape(-1, 2), desc


def shared_view(a: tuple[np.ndarray, np.ndarray | None], b: tuple[np.ndarray, np.ndarray | None]) -> int:
    """Matches of two `orb_features` that one epipolar geometry explains (RANSAC inliers): tens for two views
    of one scene (stereo pairs, another viewpoint or exposure), under ten for unrelated pictures."""
    cv2 = opencv("the photo filter")

    (pa, da), (pb, db) = a, b
    if da is None or db is None or len(da) < 2 or len(db) < 2:
        return 0
    pairs = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(da, db, k=2)
    good = [m[0] for m in pairs if len(m) == 2 and m[0].distance < 0.75 * m[1].distance]
    if len(good) < 15:
        return 0
    qa = pa[[m.queryIdx for m in good]]
    qb = pb[[m.trainIdx for m in good]]
    cv2.setRNGSeed(0)
    _, mask = cv2.findFundamentalMat(qa, qb, cv2.FM_RANSAC, 3.0, 0.99)
    return int(np.count_nonzero(mask)) if mask is not None and mask.shape[0] == len(good) else 0
