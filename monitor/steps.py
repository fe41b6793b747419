"""Step segmentation: where a reasoning step ends (a line end, or a sentence end followed by whitespace).

Boundaries are found only once the character after the punctuation has arrived, so the segmentation of a
text is the same however it was chunked while streaming.
"""

from __future__ import annotations

import re

__all__ = ["STEP_END", "step_ends"]

# A newline ends a step; so does sentence punctuation (optionally closed by a quote or bracket) followed by
# one space or tab (exactly one, so the result does not depend on chunking). "3.5" is no boundary (no
# whitespace after the dot); "e.g. x" is one, which is harmless. The dot of a list number at the start of a
# line ("2. 7 * 4 = 28") is no boundary either: the number belongs to its step, so a rollback removes it too.
STEP_END = re.compile(r"\n|(?<!^\d)(?<!^\d\d)(?<!^\d\d\d)[.!?]+[\"'”’)\]]*[ \t]", re.MULTILINE)


def step_ends(text: str, start: int, *, pattern: re.Pattern[str] = STEP_END) -> list[int]:
    """Positions after each step boundary found in ``text[start:]`` (a step includes its end)."""
    return [m.end() for m in pattern.finditer(text, start)]
