"""Running the ffmpeg binary: its failures are one VVCError line, whatever bytes it prints."""

from __future__ import annotations

import os

import pytest

from vvc_lightning.errors import VVCError
from vvc_lightning.video.ffmpeg import run_ffmpeg


def test_a_file_name_that_is_not_utf8_still_gives_ffmpegs_words(tmp_path):
    name = os.fsdecode(b"clip-\xff\xfe.mp4")  # a Linux file name no UTF-8 decoder reads
    with pytest.raises(VVCError) as err:
        run_ffmpeg(["-hide_banner", "-i", name, "-f", "null", "-"], tmp_path, "probe")
    text = str(err.value)
    assert text.startswith("probe failed (ffmpeg exit") and "\n" not in text
    assert "No such file or directory" in text
