"""A .vvc bitstream parsed once: its bytes, header and record index, ready to decode any number of times."""

from __future__ import annotations

from dataclasses import dataclass

from vvc_lightning.codec.entropy.symbol_check import DIGEST_SIZE
from vvc_lightning.codec.pipeline import container
from vvc_lightning.codec.pipeline.container import Header, RecordIndex


@dataclass(frozen=True)
class ParsedStream:
    """The bytes of a bitstream with its parsed header and record index; `label` names it in errors."""

    data: bytes  # or a .vvc file read on demand (`files.read_bitstream_file`), sliced the same way
    header: Header
    records: RecordIndex
    label: str = "bitstream"


def parse_stream(data: bytes | ParsedStream, label: str = "bitstream") -> ParsedStream:
    """Parse the header and record index of `data` (a ParsedStream is returned as it is)."""
    if isinstance(data, ParsedStream):
        return data
    header, records = container.unpack(data, label, min_payload=DIGEST_SIZE)  # no GoP payload is shorter
    return ParsedStream(data, header, records, label)
