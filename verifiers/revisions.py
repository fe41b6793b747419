"""What a reasoning trace does not assert: suppositions, hedges, questions, quotations, and what it takes back.

Models that think at length explore: "Suppose the Brit is in house 2. Then the Dane is in house 3, which breaks
clue 5: a contradiction." Nothing there is a claim of fact, and a verifier that flagged it would punish correct
reasoning. They also revise: "So Peter is in house 3. Wait, no: clue 4 puts Eric there, so Peter is in house 4."
The first sentence was wrong, and the text itself took it back. This module is how the structured-reasoning
verifiers (``zebra``, ``maze``, ``spatialmap``) tell the two apart, with the same rules for all three:

- A sentence **hedged** by the ``constraints`` verifier's rules asserts nothing: a supposition ("suppose",
  "assume", "let's try", "case 1", a leading "if") covers the sentences after it until one gives it up
  ("contradiction", "doesn't work") or the paragraph ends; other hedges ("maybe", "or", "could", a question)
  cover their sentence and a consequence right after it ("So ...").
- A claim is **taken back** when a retraction ("wait", "no,", "actually", "that's wrong", "contradiction",
  "let me reconsider", ...) follows it within the next few steps: verifiers judge a claim only once those steps
  have been written (see :func:`interlock.verifiers.stepwise.settled_range`), so the text gets its chance first.
- Quoted sentences ('the Norwegian lives in house 2', “...”) and ``~~struck~~`` text are mentioned, not
  asserted; the verifiers' own feedback quotes the claim it rejects, so that injected feedback is never read
  back as a claim.
"""

from __future__ import annotations

import re

from interlock.verifiers.constraints.claims import DEFAULT_HEDGES, LOCAL, NONE, SUPPOSITION, ClaimReader
from interlock.verifiers.constraints.spec import ConstraintSpec

__all__ = ["LOCAL", "NONE", "RETRACTION", "SUPPOSITION", "Stance", "mask_mentions", "retracts", "unescape"]

RETRACTION = re.compile(
    r"\b(?:wait|hold\s+on|oops|scratch\s+that|nope|actually|mistakes?|mistaken(?:ly)?|wrong|incorrect(?:ly)?|"
    r"errors?|erroneous|contradict\w*|impossible|inconsistent|invalid|violat\w*|conflict\w*|fails?|failed|"
    r"(?:does\s*n[o']t|do\s*n[o']t|won't|will\s+not|wouldn't|would\s+not|can't|cannot)\s+(?:work|be\s+right|hold)|"
    r"not\s+(?:right|correct|possible|valid|work)|re-?(?:check|consider|examine|evaluate|think|visit|do)\w*|"
    r"back\s*track\w*|go(?:ing)?\s+back|start\s+over|let\s+me\s+(?:re|double)\w*|no(?=\s*[,.;:!—–-]))(?!\w)|[✗❌]",
    re.IGNORECASE)
_QUOTED = re.compile(r"(?<![\w'’])['‘][^'‘’\n]*\s[^'‘’\n]*['’](?![\w'’])|“[^”\n]*”|~~[^~\n]+~~")


def unescape(text: str) -> str:
    """Literal ``\\n`` and ``\\t`` escapes (a model's reasoning written inside a JSON string) as line breaks and
    spaces, keeping every offset: ``\\n`` (two characters) becomes a space and a newline."""
    if "\\" not in text:
        return text
    return re.sub(r"\\n", " \n", re.sub(r"\\t", "  ", text))


def mask_mentions(text: str) -> str:
    """``text`` with quoted sentences and struck-through text blanked out (same length), so nothing in them is
    read as a claim. A quoted single word ('Peter') is kept: it names, it does not state."""
    return _QUOTED.sub(lambda m: " " * len(m.group()), text)


def retracts(text: str) -> bool:
    """Whether ``text`` takes back what came just before it."""
    return RETRACTION.search(text) is not None


class Stance:
    """Whether a step asserts what it says, given what the step before it left open (``NONE``, ``LOCAL`` or
    ``SUPPOSITION``); the rules are the ``constraints`` verifier's (:meth:`ClaimReader.opens`)."""

    def __init__(self, hedges: tuple[str, ...] = DEFAULT_HEDGES) -> None:
        self._reader = ClaimReader(ConstraintSpec(), (), symbolic=False, hedges=hedges)

    def __call__(self, text: str, carry: int) -> tuple[bool, int]:
        """``(asserts, left_open)``: whether the step states facts, and what it leaves open for the next."""
        if not text.strip():
            return False, NONE if "\n" in text else carry
        if carry and self._reader.gives_up(text):
            return False, NONE
        level = self._reader.opens(text, after_hedge=carry)
        return level == NONE, level
