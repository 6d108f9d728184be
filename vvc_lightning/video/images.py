"""Still images with Pillow (PNG frames, crops, training photos); OpenCV only where image analysis needs it.

The core install has no OpenCV: `opencv()` names the `metrics` extra, which brings one (opencv-python).
"""

from __future__ import annotations

import io
from pathlib import Path
from types import ModuleType

import numpy as np

from vvc_lightning.errors import VVCError

PNG_LEVEL = 3  # zlib level: as fast as OpenCV's default PNG writer here, files about 4x smaller
METRICS_EXTRA = 'pip install "vvc-lightning[metrics]"'


def decode_image(source: str | Path | bytes, label: str | None = None) -> np.ndarray:
    """An image file (or its bytes) as RGB uint8 (H, W, 3), as OpenCV's IMREAD_COLOR reads it: EXIF
    orientation applied, alpha dropped, grey repeated on 3 channels, 16 bits cut to their high 8; VVCError
    when it does not decode."""
    from PIL import Image, ImageOps

    label = label or (str(source) if not isinstance(source, bytes) else "<bytes>")
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as img:
            img = ImageOps.exif_transpose(img)
            if img.mode.startswith("I"):  # 16-bit grey (I;16*, or I as some PNGs open)
                grey = (np.asarray(img).astype(np.int64) >> 8).clip(0, 255).astype(np.uint8)
                return np.repeat(grey[..., None], 3, axis=2)
            return np.array(img.convert("RGB"), dtype=np.uint8)  # a writable copy, as cv2 gave
    except Exception as exc:  # Pillow raises OSError, ValueError, SyntaxError... on a broken file
        raise VVCError(f"'{label}' is not a readable image ({type(exc).__name__}: {exc})") from exc


def encode_png(rgb: np.ndarray) -> bytes:
    """RGB uint8 (H, W, 3) as PNG bytes (lossless)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).save(buf, "PNG", compress_level=PNG_LEVEL)
    return buf.getvalue()


def opencv(what: str) -> ModuleType:
    """The cv2 module, or a VVCError naming the extra that installs it (`what` needs it)."""
    try:
        import cv2
    except ImportError as exc:
        msg = f"{what} needs OpenCV (cv2), which the metrics extra installs: {METRICS_EXTRA}"
        raise VVCError(msg) from exc
    return cv2
