"""The report's protocol values as words (`readable`)."""

from vvc_lightning.evaluation.text_tables import readable


def test_readable_turns_protocol_values_into_words():
    assert readable({"name": "psnr", "higher_is_better": False, "peak": 255, "weights": [0.5, 0.25],
                     "rounded_to_8bit": True, "window": None, "RGB sources": {"matrix": "bt709"}}) == (
        "lower is better; peak: 255; weights: 0.5, 0.25; rounded to 8bit: yes; window: none; "
        "RGB sources: (matrix: bt709)")
