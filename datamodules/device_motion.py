"""The stills camera (motion.py) for a whole batch at once, with torch ops on the photos' device.

The same draws as `motion_clip` (pan, zoom, rotation, brightness drift, a linear or eased profile, a
random scale at which the window fits, a window that never leaves the photo), but computed for all
clips together: the per-clip scale change of the photo is one area resize on the device, a fixed-size
box around the path of the window is cut out, and one bicubic `grid_sample` films every frame of every
clip (the T frames of a clip are stacked as rows of one sampling grid, so the box is never copied T
times). A horizontal mirror is applied to the filmed clip rather than to the photo: the motion draws are
symmetric, so the clips have the same distribution.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from vvc_lightning.datamodules.motion import Motion

DRAWS = 11  # uniforms per clip: flip, profile, angle, zoom, direction, travel, gain, scale, x, y, (spare)
MARGIN = 3  # pixels around the window's path: the bicubic kernel reaches 2 beyond a sample


def rotation_factor(rotate_deg: float) -> float:
    """Half-diagonal / half-side of the largest rotated window (1 without rotation)."""
    a = math.radians(rotate_deg)
    return math.sqrt(2) * math.cos(math.pi / 4 - abs(a)) if a else 1.0


def box_side(crop: int, motion: Motion) -> int:
    """Side of the square box that holds a window's whole path at the largest motion."""
    return (
        math.ceil(crop * (math.exp(motion.zoom) * rotation_factor(motion.rotate) + motion.pan))
        + 2 * MARGIN
        + 2
    )


def plan_motion(u: torch.Tensor, sizes: torch.Tensor, frames: int, stride: int, crop: int,
                motion: Motion) -> dict[str, torch.Tensor]:
    """Per clip: resized photo size, box origin, per-frame affine maps (in box coordinates), gains, flips.

    `u` (n, DRAWS) uniforms in [0,1) and `sizes` (n, 2) photo heights and widths, float64 on the CPU."""
    u = u.double()
    height, width = sizes[:, 0].double(), sizes[:, 1].double()
    span = (frames - 1) * stride + 1
    t = torch.arange(frames, dtype=torch.float64) * stride / max(1, span - 1)
    smooth = (u[:, 1] >= 0.5)[:, None]
    prof = torch.where(smooth, t * t * (3 - 2 * t), t.expand(len(u), -1))  # (n,T)
    angle = torch.deg2rad((2 * u[:, 2] - 1) * motion.rotate)
    log_zoom = (2 * u[:, 3] - 1) * motion.zoom
    direction = u[:, 4] * 2 * math.pi
    travel = u[:, 5] * motion.pan * crop
    dx, dy = travel * torch.cos(direction), travel * torch.sin(direction)
    gain_end = 1 + (2 * u[:, 6] - 1) * motion.brightness
    zoom_max = torch.exp(log_zoom.clamp_min(0))
    rot = torch.where(angle != 0, math.sqrt(2) * torch.cos(math.pi / 4 - angle.abs()), torch.ones_like(angle))
    half = crop / 2 * zoom_max * rot
    fit = torch.minimum(width / (2 * half + dx.abs() + 1), height / (2 * half + dy.abs() + 1))
    scale = torch.where(fit <= 1, fit, torch.exp(u[:, 7] * torch.log(fit.clamp_min(1))))
    h2 = torch.floor(height / scale).clamp_min(1)
    w2 = torch.floor(width / scale).clamp_min(1)
    sx, sy = w2 / width * scale, h2 / height * scale
    room_x = (w2 - 2 * half * sx - dx.abs() * sx).clamp_min(0)
    room_y = (h2 - 2 * half * sy - dy.abs() * sy).clamp_min(0)
    x0 = half * sx + u[:, 8] * room_x + torch.where(dx < 0, dx.abs() * sx, torch.zeros_like(dx))
    y0 = half * sy + u[:, 9] * room_y + torch.where(dy < 0, dy.abs() * sy, torch.zeros_like(dy))
    side = box_side(crop, motion)
    bx = torch.floor(torch.minimum(x0, x0 + dx * sx) - half * sx) - MARGIN
    by = torch.floor(torch.minimum(y0, y0 + dy * sy) - half * sy) - MARGIN
    z = torch.exp(log_zoom[:, None] * prof)
    a = angle[:, None] * prof
    cx = x0[:, None] + (dx * sx)[:, None] * prof - bx[:, None]
    cy = y0[:, None] + (dy * sy)[:, None] * prof - by[:, None]
    c, s = torch.cos(a) * crop / 2 * z, torch.sin(a) * crop / 2 * z
    k = 2 / side
    theta = torch.stack([
        torch.stack([k * c * sx[:, None], -k * s * sx[:, None], k * cx - 1], -1),
        torch.stack([k * s * sy[:, None], k * c * sy[:, None], k * cy - 1], -1),
    ], -2)  # (n,T,2,3)
    gain = 1 + (gain_end[:, None] - 1) * prof
    return {"size": torch.stack([h2, w2], 1).long(), "box": torch.stack([by, bx], 1).long(), "theta": theta,
            "gain": gain, "flip": u[:, 0] < 0.5, "down": scale > 1, "side": torch.tensor(side)}


def cut_box(
    img: torch.Tensor, size: tuple[int, int], box: tuple[int, int], side: int, down: bool
) -> torch.Tensor:
    """(3,side,side) float 0..255: `img` (3,H,W) uint8 resized to `size`, the box at `box` (edges
    replicated)."""
    x = img[None].float()
    if tuple(size) != tuple(img.shape[-2:]):
        x = F.interpolate(x, size=tuple(size), mode="area" if down else "bicubic",
                          align_corners=None if down else False)
    h2, w2 = size
    top, left = box
    y0, y1 = max(0, top), min(h2, top + side)
    x0, x1 = max(0, left), min(w2, left + side)
    x = x[..., y0:y1, x0:x1]
    pads = (x0 - left, left + side - x1, y0 - top, top + side - y1)
    if any(pads):
        x = F.pad(x, pads, mode="replicate")
    return x[0]


def film(photos: list[torch.Tensor], which: list[int], u: torch.Tensor, frames: int, stride: int, crop: int,
         motion: Motion) -> torch.Tensor:
    """(n,3,T,crop,crop) float in [-1,1] on the photos' device: photo `which[i]` filmed with draws `u[i]`."""
    device = photos[0].device
    sizes = torch.tensor([list(photos[i].shape[-2:]) for i in which], dtype=torch.float64)
    plan = plan_motion(u, sizes, frames, stride, crop, motion)
    side = int(plan["side"])
    size, box, down = plan["size"].tolist(), plan["box"].tolist(), plan["down"].tolist()
    canvas = torch.stack([cut_box(photos[i], size[k], box[k], side, down[k]) for k, i in enumerate(which)])
    n = len(which)
    theta = plan["theta"].to(device=device, dtype=torch.float32).reshape(n * frames, 2, 3)
    grid = F.affine_grid(theta, [n * frames, 3, crop, crop], align_corners=False)
    grid = grid.reshape(n, frames * crop, crop, 2)  # the T frames of a clip stacked as rows
    out = F.grid_sample(canvas, grid, mode="bicubic", padding_mode="reflection", align_corners=False)
    out = out.reshape(n, 3, frames, crop, crop)
    gain = plan["gain"].to(device=device, dtype=torch.float32).reshape(n, 1, frames, 1, 1)
    out = (out * gain).clamp(0, 255).round()  # 8-bit frames, as a camera writes them
    flip = plan["flip"].to(device).reshape(n, 1, 1, 1, 1)
    out = torch.where(flip, out.flip(-1), out)
    return out / 127.5 - 1
