"""The CLI names codec options by their flags where the library names them by their Python names."""

import pytest

from vvc_lightning.cli.codec import cli_wording, flag_wording
from vvc_lightning.codec.pipeline.gop import GopPlan, parse_frame_range
from vvc_lightning.codec.pipeline.tiling import check_tile_options
from vvc_lightning.errors import BitstreamError, CodecOptionError, ModelMismatchError, VVCError


def test_tile_errors_name_python_arguments_in_the_library_and_flags_in_the_cli():
    with pytest.raises(CodecOptionError) as info:
        check_tile_options(64, 40, 8)
    assert (
        str(info.value)
        == "tile_overlap 40 must be less than half of tile 64; e.g. tile 64 with tile_overlap 16"
    )
    assert str(flag_wording(info.value)) == (
        "--tile-overlap 40 must be less than half of --tile 64; e.g. --tile 64 with --tile-overlap 16"
    )


def test_cli_wording_rewords_option_and_model_errors():
    with pytest.raises(VVCError, match="^--overlap must be 0 or more .* use --overlap 1"):
        with cli_wording():
            GopPlan(10, 9, 5)
    with pytest.raises(VVCError, match="^--frames takes a:b"):
        with cli_wording():
            parse_frame_range("x", 10)
    with pytest.raises(BitstreamError, match="^a.vvc was made with model 1; pass --ckpt with the checkpoint"):
        with cli_wording():
            raise ModelMismatchError("a.vvc was made with model 1")
