"""Text on its way out (a terminal, a JSON line, an HTML file): lone surrogates become U+FFFD, and are counted.

Python strings may hold lone surrogates (``"\\ud800"``, which JSON's ``\\ud800`` escape produces) that UTF-8
cannot encode, so writing them raises and the output is lost. The project's policy: replace each one with
U+FFFD on output and record that it happened; what was recorded before is never lost.
"""

from __future__ import annotations

import re

__all__ = ["REPLACEMENT", "scrub"]

REPLACEMENT = "\ufffd"
_LONE = re.compile("[\ud800-\udfff]")  # a str never holds a valid pair: any surrogate in it is alone


def scrub(text: str) -> tuple[str, int]:
    """``text`` with every lone surrogate replaced by U+FFFD, and how many there were."""
    if text.isascii():
        return text, 0
    return _LONE.subn(REPLACEMENT, text)
