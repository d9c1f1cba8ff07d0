"""Ids as people and scripts type them: a row's integer id, or not one."""

from __future__ import annotations

# Below 2**63, so every database takes it; a longer number is no id of ours.
MAX_ID_DIGITS = 18


def as_id(text: object) -> int | None:
    """`text` as a row id when it is one (ASCII digits, at most MAX_ID_DIGITS of them), else None.

    Converting a longer one would fail in Python (over 4,300 digits) or in the database (over
    2**63), which would answer a 500 instead of "no such thing"."""
    text = str(text).strip()
    if text.isascii() and text.isdigit() and len(text) <= MAX_ID_DIGITS:
        return int(text)
    return None
