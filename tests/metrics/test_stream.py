"""Metrics fed a few frames at a time equal whole-sequence values (frame, pair, strided and set metrics)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.metrics.conftest import add_noise
from vvc_lightning.errors import FrameCountError
from vvc_lightning.metrics import VideoMetrics, build_metric
from vvc_lightning.metrics.base import frames_to_u8
from vvc_lightning.metrics.stream import StreamingScores, score_decoded


def feed(scores: StreamingScores, ref: np.ndarray, rec: np.ndarray, sizes: list[int]) -> None:
    start = 0
    for n in sizes:
        scores.update(ref[start : start + n], rec[start : start + n])
        start += n
    assert start == len(ref)


def test_chunks_give_the_whole_sequence_values_of_frame_and_pair_metrics(clip):
    rec = add_noise(clip, 6)
    vm = VideoMetrics(["psnr", "psnr_y", "ms_ssim", "tof", "stlpips", "tlp"])
    whole = vm.sequence(clip, rec)
    scores = StreamingScores(vm.metrics.values())
    feed(scores, clip, rec, [4, 1, 3, 1])  # uneven chunks, one of a single frame
    got = scores.values()
    assert set(got) == set(whole)
    for k in whole:
        assert got[k].shape == whole[k].shape, k
        np.testing.assert_allclose(got[k], whole[k], rtol=1e-5, atol=1e-7, err_msg=k)
    assert len(got["tof"]) == len(clip) - 1 and scores.count == len(clip)
    assert scores.means()["psnr"] == pytest.approx(float(np.mean(whole["psnr"])))


def test_every_kth_frame_is_counted_in_the_whole_sequence_not_in_each_chunk(clip):
    rec = add_noise(clip, 6)
    m = build_metric("brisque", frame_stride=2)
    whole = m.scores(frames_to_u8(clip), frames_to_u8(rec)).numpy()
    scores = StreamingScores([m])
    feed(scores, clip, rec, [3, 3, 3])  # a naive per-chunk stride would score frames 0,2,3,5,6,8
    np.testing.assert_allclose(scores.values()["brisque"], whole)
    assert len(whole) == 5


def test_fewer_decoded_frames_in_a_chunk_is_a_clear_error(clip):
    scores = StreamingScores(VideoMetrics(["psnr"]).metrics.values())
    with pytest.raises(FrameCountError, match="2 frames but the reference has 3"):
        scores.update(clip[:3], clip[:2])


def test_score_decoded_feeds_chunks_and_gives_the_whole_sequence_values(clip):
    rec = add_noise(clip, 6)
    vm = VideoMetrics(["psnr", "tof"])
    whole = vm.sequence(clip, rec)
    scores, starts = StreamingScores(vm.metrics.values()), []
    score_decoded(scores, iter(clip), iter(rec), len(clip), 4, lambda start, chunk: starts.append(start))
    assert starts == list(range(0, len(clip), 4))
    for k in whole:
        np.testing.assert_allclose(scores.values()[k], whole[k], rtol=1e-5, atol=1e-7, err_msg=k)


@pytest.mark.parametrize(("decoded", "words"), [(-1, "has 8 frames but the reference has 9"),
                                                (+1, "more frames than the reference's 9")])
def test_score_decoded_refuses_a_decoded_video_of_another_length(clip, decoded, words):
    assert len(clip) == 9
    rec = np.concatenate([clip, clip[-1:]]) if decoded > 0 else clip[:-1]
    scores = StreamingScores(VideoMetrics(["psnr"]).metrics.values(), what="seq")
    with pytest.raises(FrameCountError, match=f"^seq: the decoded video {words}" if decoded < 0 else words):
        score_decoded(scores, iter(clip), iter(rec), len(clip), 4)
