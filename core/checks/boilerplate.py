"""Boilerplate: text most rows share, removed before rows are compared with each other.

A segment (line or sentence) of at least BOILERPLATE_MIN_CHARS characters found in at least
BOILERPLATE_MIN_SHARE of the rows (an instruction template, a sign-off every answer carries)
says, like the shared system prompt, nothing about whether two examples are the same.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence

BOILERPLATE_MIN_CHARS = 30
BOILERPLATE_MIN_SHARE = 0.2
BOILERPLATE_SAMPLE_ROWS = 20_000
_SEGMENT_BREAK = re.compile(r"\n+|(?<=[.!?:;])\s+")


def boilerplate_stripper(texts: Sequence[str]) -> Callable[[str], str] | None:
    """A function that removes the segments most rows share, or None when there are none.

    Counted on an evenly spaced sample, so the cost is fixed however large the dataset.
    """
    if len(texts) < 10:
        return None
    step = max(1, len(texts) // BOILERPLATE_SAMPLE_ROWS)
    sample = texts[::step]
    counts: Counter[str] = Counter()
    for text in sample:
        counts.update(
            {
                segment.strip()
                for segment in _SEGMENT_BREAK.split(text)
                if len(segment.strip()) >= BOILERPLATE_MIN_CHARS
            }
        )
    needed = max(5, BOILERPLATE_MIN_SHARE * len(sample))
    frequent = sorted((s for s, c in counts.items() if c >= needed), key=len, reverse=True)
    if not frequent:
        return None

    def strip(text: str) -> str:
        # Literal substring tests and replaces run in C; a regex alternation of the same
        # segments costs several times more over a million rows.
        original = text
        for segment in frequent:
            if segment in text:
                text = text.replace(segment, " ")
        if text is original:
            return original
        return text.strip() or original  # a row made only of boilerplate keeps its text

    return strip


def stripped(texts: Sequence[str]) -> Sequence[str]:
    """`texts` without their shared boilerplate (the same list when there is none)."""
    strip = boilerplate_stripper(texts)
    if strip is None:
        return texts
    return [strip(text) for text in texts]
