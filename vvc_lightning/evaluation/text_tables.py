"""Records as CSV text and as HTML tables (the report's and the BD-rate tables')."""

from __future__ import annotations

import csv
import html
import io
import math
from typing import Any


def csv_text(columns: list[str], records: list[dict]) -> str:
    """Records as CSV text with `columns` (missing cells empty)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in records:
        w.writerow({c: r.get(c, "") for c in columns})
    return buf.getvalue()


def html_table(columns: list[str], records: list[dict], fmt: dict[str, str] | None = None) -> str:
    """Records as an HTML table (floats in `fmt`'s format per column, non-finite empty)."""
    fmt = fmt or {}

    def cell(c: str, v: Any) -> str:
        if isinstance(v, float):
            return "" if not math.isfinite(v) else format(v, fmt.get(c, ".4g"))
        return html.escape(str(v))

    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{cell(c, r.get(c, ''))}</td>" for c in columns) + "</tr>" for r in records
    )
    # a table wider than the page scrolls in its own box; the page keeps the window's width
    return f"<div style='overflow-x:auto'><table><tr>{head}</tr>{body}</table></div>"


def readable(value: Any) -> str:
    """A protocol value (dicts, lists, flags) as words for a reader, not JSON: 'key: value; ...', nested
    dicts in parentheses, higher_is_better as 'higher (lower) is better', lists joined by commas."""
    if isinstance(value, dict):
        words = []
        for k, v in value.items():
            if k == "higher_is_better":
                words.append("higher is better" if v else "lower is better")
            elif k != "name":
                text = f"({readable(v)})" if isinstance(v, dict) else readable(v)
                words.append(f"{str(k).replace('_', ' ')}: {text}")
        return "; ".join(words)
    if isinstance(value, (list, tuple)):
        return ", ".join(readable(v) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "none"
    return str(value)
