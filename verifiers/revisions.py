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
- A claim is **taken back** when a retraction ("no,", "that's wrong", "contradiction", "doesn't work", ...) or a
  doubt that nothing confirms ("wait", "actually", "let me reconsider", but not "wait, let me double-check: yes")
  follows it within the next few steps, before the text states anything else (a retraction is about what was
  said last): verifiers judge a claim only once those steps have been written (see
  :func:`interlock.verifiers.stepwise.settled_range`), so the text gets its chance first.
- Quoted sentences ('the Norwegian lives in house 2', “...”) and ``~~struck~~`` text are mentioned, not
  asserted; the verifiers' own feedback quotes the claim it rejects, so that injected feedback is never read
  back as a claim.
"""

from __future__ import annotations

import re

from interlock.verifiers.constraints.claims import DEFAULT_HEDGES, LOCAL, NONE, SUPPOSITION, ClaimReader
from interlock.verifiers.constraints.spec import ConstraintSpec

__all__ = ["DOUBT", "LOCAL", "NONE", "RETRACTION", "SUPPOSITION", "Stance", "mask_mentions", "retraction",
           "retraction_points", "retracts", "unescape"]

# a retraction: what was just said is wrong
RETRACTION = re.compile(
    r"\b(?:oops|scratch\s+that|nope|mistakes?|mistaken(?:ly)?|wrong|incorrect(?:ly)?|errors?|erroneous|"
    r"contradict\w*|impossible|inconsistent|invalid|violat\w*|conflict\w*|fails?|failed|"
    r"(?:does\s*n[o']t|do\s*n[o']t|won't|will\s+not|wouldn't|would\s+not|can't|cannot)\s+(?:work|be\s+right|hold)|"
    r"not\s+(?:right|correct|possible|valid|work)|back\s*track\w*|start\s+over|"
    r"no(?=\s*[,.;:!—–-]))(?!\w)|[✗❌]",
    re.IGNORECASE)
# a doubt: the text is about to look again ("wait", "actually", "let me re-check"); it takes back what came before
# unless what follows confirms it ("Wait, let me double-check: yes, that holds.")
DOUBT = re.compile(
    r"\b(?:wait|hold\s+on|actually|re-?(?:check|consider|examine|evaluate|think|visit|do)\w*|"
    r"go(?:ing)?\s+back|let\s+me\s+(?:re|double)\w*|double[\s-]?check\w*)(?!\w)",
    re.IGNORECASE)
_CONFIRMED = re.compile(r"\b(?:yes|correct|confirmed|checks\s+out|holds|is\s+fine|that'?s\s+right|is\s+right|"
                        r"consistent|that\s+works|it\s+works|good)\b", re.IGNORECASE)
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


def retraction(text: str, after: str = "") -> int | None:
    """Where ``text`` takes back what came just before it (the offset of the first retraction, or of a doubt
    that nothing after it confirms, in ``text`` or in the text ``after`` it), or None."""
    strong = RETRACTION.search(text)
    doubt = DOUBT.search(text)
    if doubt is not None and (strong is None or doubt.start() < strong.start()) and (
            strong is not None or not (_CONFIRMED.search(text, doubt.end()) or _CONFIRMED.search(after))):
        return doubt.start()
    return strong.start() if strong is not None else None


def retraction_points(text: str, after: str = "") -> list[int]:
    """Every offset in ``text`` where it takes back what came before it: each retraction, and each doubt that is
    not confirmed (in ``text`` after it, or in ``after``) or that a retraction follows; sorted."""
    strong = [m.start() for m in RETRACTION.finditer(text)]
    points = list(strong)
    for m in DOUBT.finditer(text):
        confirmed = _CONFIRMED.search(text, m.end()) is not None or _CONFIRMED.search(after) is not None
        if not confirmed or any(p > m.start() for p in strong):
            points.append(m.start())
    return sorted(points)


def retracts(text: str) -> bool:
    """Whether ``text`` takes back what came just before it."""
    return retraction(text) is not None


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
