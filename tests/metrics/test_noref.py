"""BRISQUE: scores every decoded frame, worse (higher) for blurred frames, reference unused."""

from __future__ import annotations

import numpy as np

from tests.metrics.conftest import blur
from vvc_lightning.metrics import build_metric
from vvc_lightning.metrics.base import frames_to_u8


def test_brisque_is_higher_for_blurred_frames_and_ignores_the_reference(clip):
    m = build_metric("brisque")
    sharp = m.scores(frames_to_u8(clip[:3]), frames_to_u8(clip[:3]))
    blurred = m.scores(frames_to_u8(clip[:3]), frames_to_u8(blur(clip[:3], 9)))
    other_ref = m.scores(frames_to_u8(blur(clip[:3], 3)), frames_to_u8(clip[:3]))
    assert sharp.shape == (3,)
    assert float(blurred.mean()) > float(sharp.mean()) + 5
    np.testing.assert_allclose(other_ref.numpy(), sharp.numpy(), rtol=1e-9)
