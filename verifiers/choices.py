"""Multiple-choice questions as SpatialEval writes them, and the answer a trace gives.

The prompt lists its options after the question ("Available options:\\nA. Northeast\\nB. Northwest\\n...", or on
one line "A. 2 B. 5 C. 3 D. 8."); the trace answers with a letter (``\\boxed{B}``, "Answer: B", "**B**",
"the answer is B. Northwest") or with an option's text ("\\boxed{Northwest}"). Only the last answer counts,
and an answer inside ``<think>`` is a candidate, not the answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Choice", "final_choice", "options"]

_OPTION = re.compile(r"(?:(?<=\s)|^)(?P<letter>[A-H])[.)]\s+(?P<text>.+?)\s*(?=(?:\s[A-H][.)]\s)|\n|$)")
_BOXED = re.compile(r"\\boxed\s*\{\s*(?:\\text\{)?(?P<body>[^{}\n]{1,60}?)\}?\s*\}")
_SAID = re.compile(r"(?:final\s+answer|answer(?:\s+is)?|correct\s+(?:option|answer)\s+is|option)\s*[:=]?\s*"
                   r"(?:\*\*)?\(?(?P<letter>[A-H])\)?(?:\*\*)?(?=[\s.,:;)]|$)", re.IGNORECASE)


@dataclass(frozen=True)
class Choice:
    """The answer a trace gives: the letter (when it gave one), the option's text, and where it is."""

    letter: str | None
    text: str
    start: int
    end: int


def options(prompt: str) -> dict[str, str]:
    """The lettered options of the last "Available options" (or "Options") list in ``prompt``."""
    at = max(prompt.rfind("Available options"), prompt.rfind("Options:"))
    if at < 0:
        return {}
    tail = prompt[at:].split(":", 1)[-1]
    end = re.search(r"\n\s*\n|First,|Please|Answer", tail)
    if end is not None:
        tail = tail[:end.start()]
    found: dict[str, str] = {}
    for m in _OPTION.finditer(tail):
        letter, text = m.group("letter"), m.group("text").strip().rstrip(".").strip()
        if letter not in found and text:
            found[letter] = text
    return found


def final_choice(text: str, choices: dict[str, str]) -> Choice | None:
    """The trace's final answer: the last boxed answer, else the last "Answer: X" outside ``<think>``."""
    think = max(text.rfind("</think>"), -1)
    start = think + len("</think>") if think >= 0 else 0
    if text.rfind("<think>") > think:
        return None  # still thinking
    found: list[Choice] = []
    for m in _BOXED.finditer(text, start):
        body = m.group("body").strip().strip("$").strip()
        letter = body.rstrip(".").strip("()") if re.fullmatch(r"\(?[A-H]\)?\.?", body) else None
        if letter is None:
            head = re.match(r"([A-H])[.)]\s+(.+)", body)
            if head is not None and head.group(1) in choices:
                letter = head.group(1)
        value = choices.get(letter, body) if letter else body
        found.append(Choice(letter, value, m.start("body"), m.end("body")))
    if not found:
        for m in _SAID.finditer(text, start):
            letter = m.group("letter")
            if letter in choices:
                found.append(Choice(letter, choices[letter], m.start("letter"), m.end("letter")))
    return found[-1] if found else None
