"""A logic-grid puzzle read from its prompt: houses, features with their values, and clues as relations.

Three ways of writing the same puzzle are read (all descend from one generator, so their clue templates agree):

- **ZebraLogic** (WildEval/ZebraLogic as ZeroEval prompts it): "There are 5 houses, numbered 1 to 5 from left to
  right, ...", one line per feature with backticked values (`` - Each person has a unique name: `Peter`, `Eric` ``),
  ``## Clues:`` and numbered clues, then a JSON template (``"House 1": {"Name": "___", ...}``) whose keys name the
  features. An "Example Puzzle" before "# Puzzle to Solve" is skipped.
- **interwhen's cleaned ZebraLogic** (lower case, ``- 'name': 'alice', 'bob'``, ``## clues:``).
- **reasoning-gym** ``zebra_puzzles``: "There are 4 houses (numbered 1 on the left, 4 on the right)", values
  without quotes, numbered clues without a heading, and a question "What is Name of the person who lives in
  House 1?" (answered with one value, not a grid).

Clue templates: "X is in the Nth house", "X is not in the Nth house", "X is Y", "X is not Y", "X is directly
left/right of Y", "X is somewhere to the left/right of Y" (and "to the left of"), "X and Y are next to each
other", "There is one house / There are two houses between X and Y", plus "X lives in house N" and "X is next
to Y". X and Y are describing phrases resolved by :class:`~interlock.verifiers.zebra.lexicon.Lexicon`. A clue
that fits no template, or whose phrases do not resolve, is kept with ``kind="unread"`` and its reason.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from interlock.verifiers.errors import VerifierConfigError
from interlock.verifiers.zebra.lexicon import Entity, Lexicon, normalize

__all__ = ["RELATIONS", "Clue", "Feature", "Question", "ZebraPuzzle", "holds", "read_puzzle"]

# relation -> what it means for the positions p(a), p(b) (and house h)
RELATIONS = ("at", "not_at", "same", "not_same", "left_of", "right_of", "directly_left", "directly_right",
             "next_to", "gap")

_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
          "ten": 10}
_ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
             "eighth": 8, "ninth": 9, "tenth": 10}
_COUNT = r"(?P<count>\d+|" + "|".join(_WORDS) + ")"
_HOUSE_N = (r"(?:the\s+(?P<ord>" + "|".join(_ORDINALS) + r"|\d+(?:st|nd|rd|th))\s+house|house\s+(?:number\s+)?"
            r"(?P<num>\d+)|the\s+(?P<end>leftmost|rightmost|first|last)\s+house)")
_END = r"\s*\.?\s*$"
# (the words joining X and Y, what may follow Y, relation). X and Y are describing phrases that may hold the
# joining words themselves ("the person whose favorite color is green is Peter"), so every place the joining
# words occur is tried, and a clue reads only if exactly one relation comes out of the splits that resolve.
_GAP = re.compile(r"^there\s+(?:is|are)\s+" + _COUNT + r"\s+houses?\s+between\s+", re.IGNORECASE)
_JOINS: tuple[tuple[re.Pattern[str], str], ...] = tuple((re.compile(p, re.IGNORECASE), r) for p, r in (
    (r"\s+(?:is|lives)\s+(?:directly|immediately)\s+(?:to\s+the\s+)?left\s+of\s+", "directly_left"),
    (r"\s+(?:is|lives)\s+(?:directly|immediately)\s+(?:to\s+the\s+)?right\s+of\s+", "directly_right"),
    (r"\s+(?:is|lives)\s+(?:somewhere\s+)?(?:to\s+the\s+)?left\s+of\s+", "left_of"),
    (r"\s+(?:is|lives)\s+(?:somewhere\s+)?(?:to\s+the\s+)?right\s+of\s+", "right_of"),
    (r"\s+(?:is|lives)\s+(?:next\s+to|beside|adjacent\s+to)\s+", "next_to"),
    (r"\s+(?:is\s+not|isn't|does\s+not\s+live|doesn't\s+live)\s+in\s+", "not_at"),
    (r"\s+(?:is|lives)\s+in\s+", "at"),
    (r"\s+(?:is\s+not|isn't)\s+", "not_same"),
    (r"\s+is\s+", "same"),
))
_EACH_OTHER = re.compile(r"^(?P<a>.+?)\s+and\s+(?P<b>.+?)\s+are\s+(?:next\s+to|beside|adjacent\s+to)\s+each\s+"
                         r"other" + _END, re.IGNORECASE)
_HOUSE_ONLY = re.compile(r"^" + _HOUSE_N + _END, re.IGNORECASE)
_HOUSES = re.compile(r"there\s+are\s+(?P<n>\d+|" + "|".join(_WORDS) + r")\s+houses\b(?!\s+between)", re.IGNORECASE)
_FEATURE_LINE = re.compile(r"^[ \t]*[-*•][ \t]*(?P<label>[^:\n]+?)[ \t]*:[ \t]*(?P<values>[^\n]+?)[ \t]*$",
                           re.MULTILINE)
_CLUE_LINE = re.compile(r"^[ \t]*(?P<n>\d+)[.)][ \t]+(?P<text>[^\n]+?)[ \t]*$")
_TEMPLATE_HOUSE = re.compile(r'"House\s*1"\s*:\s*\{(?P<body>[^{}]*)\}', re.IGNORECASE)
_KEY = re.compile(r'"(?P<k>[^"\n]+)"\s*:')
_QUESTION = re.compile(r"what\s+is\s+(?P<feature>[\w ]+?)\s+of\s+the\s+person\s+who\s+lives\s+in\s+house\s+"
                       r"(?P<house>\d+)\s*\?", re.IGNORECASE)


@dataclass(frozen=True)
class Feature:
    """One feature (a column of the grid): its key (the JSON template's, or one made from its line), its
    description line, and its values as the prompt writes them."""

    key: str
    label: str
    values: tuple[str, ...]

    @property
    def cue(self) -> str:
        return f"{self.label} {self.key}"


@dataclass(frozen=True)
class Clue:
    """One numbered clue: its relation between entities ``a`` and ``b`` (and ``house``, ``gap``), or
    ``kind="unread"`` with the reason in ``problem``."""

    number: int
    text: str
    kind: str
    a: Entity | None = None
    b: Entity | None = None
    house: int | None = None
    gap: int | None = None  # houses between a and b ("gap" clues)
    problem: str = ""
    phrases: tuple[tuple[str, Entity], ...] = field(default=(), compare=False)  # how the clue names a and b

    @property
    def read(self) -> bool:
        return self.kind != "unread"


@dataclass(frozen=True)
class Question:
    """reasoning-gym's question: which value of ``feature`` is in ``house``."""

    feature: int
    house: int
    text: str


@dataclass(frozen=True)
class ZebraPuzzle:
    """A puzzle: ``houses`` numbered 1..n left to right, ``features``, ``clues`` (read or not), the format it was
    written in (``"zebralogic"``, ``"interwhen"``, ``"reasoning-gym"``), and reasoning-gym's ``question``."""

    houses: int
    features: tuple[Feature, ...]
    clues: tuple[Clue, ...]
    source: str = "zebralogic"
    question: Question | None = None
    lexicon: Lexicon = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "lexicon", Lexicon([(f.cue, f.values) for f in self.features]))

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state.pop("lexicon", None)
        state.pop("_keys", None)
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        object.__setattr__(self, "lexicon", Lexicon([(f.cue, f.values) for f in self.features]))

    @property
    def unread(self) -> tuple[Clue, ...]:
        return tuple(c for c in self.clues if not c.read)

    def entities(self) -> list[Entity]:
        return [Entity(i, v) for i, f in enumerate(self.features) for v in f.values]

    def shown(self, entity: Entity) -> str:
        """How messages name an entity: its value, with its feature where another feature shares the value."""
        shared = sum(1 for f in self.features if any(v.lower() == entity.value.lower() for v in f.values))
        return entity.value if shared == 1 else f"{entity.value} ({self.features[entity.feature].key})"

    def feature_by_key(self, key: str) -> int | None:
        """The feature a JSON key or table header names ("Name", "BookGenre", "book genre", "Nationality")."""
        cache: dict[str, int | None] = self.__dict__.setdefault("_keys", {})
        if key not in cache:
            if len(cache) > 1000:
                cache.clear()
            cache[key] = self._feature_by_key(key)
        return cache[key]

    def _feature_by_key(self, key: str) -> int | None:
        want = _squash(key)
        if not want:
            return None
        exact = [i for i, f in enumerate(self.features) if _squash(f.key) == want]
        if len(exact) == 1:
            return exact[0]
        loose = [i for i, f in enumerate(self.features)
                 if want in _squash(f.label) or (len(want) > 3 and _squash(f.key).startswith(want))]
        return loose[0] if len(loose) == 1 else None


def _squash(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def holds(clue: Clue, position: Mapping[Entity, int]) -> bool | None:
    """Whether a read clue holds where each entity is at ``position[entity]`` (None: an entity is not placed)."""
    if not clue.read or clue.a is None:
        return None
    pa = position.get(clue.a)
    if pa is None:
        return None
    if clue.kind in ("at", "not_at"):
        return (pa == clue.house) == (clue.kind == "at")
    if clue.b is None or (pb := position.get(clue.b)) is None:
        return None
    return {
        "same": pa == pb, "not_same": pa != pb, "left_of": pa < pb, "right_of": pa > pb,
        "directly_left": pa + 1 == pb, "directly_right": pa == pb + 1, "next_to": abs(pa - pb) == 1,
        "gap": abs(pa - pb) == (clue.gap or 0) + 1,
    }[clue.kind]


def _number(word: str) -> int | None:
    word = word.lower()
    if word.isdigit():
        return int(word)
    return _WORDS.get(word)


def _values(raw: str) -> tuple[str, ...]:
    raw = raw.strip().rstrip(".")
    if "`" in raw:
        found = re.findall(r"`([^`]+)`", raw)
    elif re.search(r"'[^']+'", raw):
        found = re.findall(r"'([^']+)'", raw)
    else:
        found = [v for v in re.split(r"\s*,\s*(?:and\s+|or\s+)?|\s+and\s+", raw)]
    return tuple(v.strip() for v in found if v.strip())


def _key_from_label(label: str) -> str:
    label = label.strip().strip("'\"`")
    if re.fullmatch(r"[\w ]+", label) and len(label.split()) <= 2:
        return label  # interwhen writes the key itself: 'name', 'bookgenre'
    m = re.search(r"(?:unique|different|favorite|favourite)\s+(?:type\s+of\s+|level\s+of\s+|style\s+of\s+)?"
                  r"(?P<k>[\w ]+?)(?:\s+in\s+different.*)?$", label, re.IGNORECASE)
    if m:
        return m.group("k").strip()
    words = re.findall(r"[A-Za-z]+", label)
    return words[-1] if words else label


def _house_of(m: re.Match[str], houses: int) -> int | None:
    if m.group("num"):
        return int(m.group("num"))
    if m.group("ord"):
        word = m.group("ord").lower()
        return _ORDINALS.get(word) or int(re.sub(r"\D", "", word))
    end = (m.group("end") or "").lower()
    return 1 if end in ("leftmost", "first") else houses if end in ("rightmost", "last") else None


def read_clue(number: int, text: str, lexicon: Lexicon, houses: int) -> Clue:
    """One clue's relation, or an unread clue saying why."""
    sentence = text.strip()
    readings: set[Clue] = set()
    problems: list[str] = []
    splits = _splits(sentence)
    plausible = [(k, a, b) for k, a, b in splits
                 if _phrase_start(a, lexicon) and (k in ("at", "not_at") or _phrase_start(b, lexicon))]
    for kind, a, b in plausible or splits:
        ra = lexicon.resolve(a)
        if ra.entity is None:
            problems.append(ra.problem)
            continue
        if kind in ("at", "not_at"):
            m = _HOUSE_ONLY.match(b)
            house = _house_of(m, houses) if m else None
            if house is None or not 1 <= house <= houses:
                problems.append(f"cannot read the house in {b!r}")
                continue
            readings.add(Clue(number, sentence, kind, a=ra.entity, house=house, phrases=((a, ra.entity),)))
            continue
        rb = lexicon.resolve(re.sub(r"\s*\.\s*$", "", b))
        if rb.entity is None:
            problems.append(rb.problem)
            continue
        if rb.entity == ra.entity:
            problems.append(f"both sides of {sentence!r} name {ra.entity.value}")
            continue
        if kind in ("same", "not_same") and rb.entity.feature == ra.entity.feature:
            # two values of one feature are never in one house: "same" would contradict, "not_same" says nothing
            problems.append(f"{sentence!r} relates two values of one feature")
            continue
        gap = None
        if kind.startswith("gap:"):
            kind, gap = "gap", int(kind[4:])
        readings.add(Clue(number, sentence, kind, a=ra.entity, b=rb.entity, gap=gap,
                          phrases=((a, ra.entity), (b, rb.entity))))
    if len(readings) == 1:
        return next(iter(readings))
    if len(readings) > 1:
        return Clue(number, sentence, "unread", problem=f"{sentence!r} reads more than one way")
    if problems:
        return Clue(number, sentence, "unread", problem=problems[0])
    return Clue(number, sentence, "unread", problem=f"no clue template fits {sentence!r}")


def _phrase_start(phrase: str, lexicon: Lexicon) -> bool:
    """Whether a phrase can start a describing phrase: with an article, or with a value ("Bob", "bob is ..."),
    not with the tail of another phrase ("named Alice" out of "the person's child is named Alice")."""
    text = normalize(phrase)
    if re.match(r"(?:the|a|an)\b", text):
        return True
    return any(start == 0 for start, _, _ in lexicon.mentions(text))


def _splits(sentence: str) -> list[tuple[str, str, str]]:
    """Every way the clue fits a template: ``(relation, phrase a, phrase b or the house words)``, most specific
    template first; only the first template that fits at all is used."""
    body = re.sub(r"\s*\.\s*$", "", sentence)
    gap = _GAP.match(body)
    if gap is not None:
        count = _number(gap.group("count"))
        rest = body[gap.end():]
        out = [(f"gap:{count}", rest[:m.start()], rest[m.end():])
               for m in re.finditer(r"\s+and\s+", rest)] if count is not None else []
        return out
    each = _EACH_OTHER.match(sentence)
    if each is not None:
        rest = body[:body.lower().rfind(" are ")]
        return [("next_to", rest[:m.start()], rest[m.end():]) for m in re.finditer(r"\s+and\s+", rest)]
    for pattern, kind in _JOINS:
        found = [(kind, body[:m.start()], body[m.end():]) for m in _overlapping(pattern, body)]
        if kind in ("at", "not_at"):
            found = [f for f in found if _HOUSE_ONLY.match(f[2])]
        if found:
            return found
    return []


def _overlapping(pattern: re.Pattern[str], text: str) -> list[re.Match[str]]:
    out: list[re.Match[str]] = []
    pos = 0
    while (m := pattern.search(text, pos)) is not None:
        out.append(m)
        pos = m.start() + 1
    return out


def read_puzzle(prompt: str) -> ZebraPuzzle | None:
    """The puzzle a prompt states, or None when the prompt holds no logic-grid puzzle.

    Raises :class:`VerifierConfigError` for a puzzle that cannot be used (a feature with the wrong number of
    values, no clues)."""
    text = prompt
    marker = re.search(r"#\s*Puzzle\s+to\s+Solve", text, re.IGNORECASE)
    if marker:
        text = text[marker.end():]
    starts = list(_HOUSES.finditer(text))
    if not starts:
        return None
    head = starts[-1]
    houses = _number(head.group("n")) or 0
    body = text[head.start():]
    if not 2 <= houses <= 10:
        raise VerifierConfigError(f"a logic-grid puzzle needs 2 to 10 houses, the prompt has {houses}")
    source = ("reasoning-gym" if re.search(r"numbered\s+1\s+on\s+the\s+left", body, re.IGNORECASE)
              else "interwhen" if re.search(r"^\s*-\s*'[^']+'\s*:", body, re.MULTILINE) else "zebralogic")
    clue_start = re.search(r"^[ \t]*#+[ \t]*clues[^\n]*$|^[ \t]*1[.)][ \t]+\S", body, re.MULTILINE | re.IGNORECASE)
    if clue_start is None:
        return None
    feature_part, clue_part = body[:clue_start.start()], body[clue_start.start():]
    labels: list[tuple[str, tuple[str, ...]]] = []
    for m in _FEATURE_LINE.finditer(feature_part):
        values = _values(m.group("values"))
        if len(values) != houses:
            raise VerifierConfigError(f"feature {m.group('label').strip()!r} has {len(values)} values for "
                                      f"{houses} houses")
        labels.append((m.group("label").strip(), values))
    if not labels:
        return None
    keys = _template_keys(body)
    if keys is None or len(keys) != len(labels):
        keys = [_key_from_label(label) for label, _ in labels]
    features = tuple(Feature(k, label.strip("'\"` "), v) for k, (label, v) in zip(keys, labels, strict=True))
    lexicon = Lexicon([(f.cue, f.values) for f in features])
    clues: list[Clue] = []
    started = False
    for line in clue_part.splitlines():
        if re.match(r"^[ \t]*#+[ \t]*clues", line, re.IGNORECASE):
            continue
        numbered = _CLUE_LINE.match(line)
        if numbered is None:
            if started and line.strip():
                break
            continue
        started = True
        clues.append(read_clue(int(numbered.group("n")), numbered.group("text"), lexicon, houses))
    if not clues:
        raise VerifierConfigError("the puzzle has no numbered clues")
    question = None
    q = _QUESTION.search(clue_part)
    if q is not None:
        puzzle = ZebraPuzzle(houses, features, tuple(clues), source)
        feature = puzzle.feature_by_key(q.group("feature"))
        if feature is not None and 1 <= int(q.group("house")) <= houses:
            question = Question(feature, int(q.group("house")), q.group().strip())
    return ZebraPuzzle(houses, features, tuple(clues), source, question)


def _template_keys(body: str) -> list[str] | None:
    """The feature keys of the answer template (``"House 1": {"Name": "___", ...}``), in order."""
    m = _TEMPLATE_HOUSE.search(body)
    if m is None:
        return None
    keys = [k.group("k").strip() for k in _KEY.finditer(m.group("body"))]
    return keys or None


def puzzle_from_json(data: Mapping[str, object]) -> ZebraPuzzle:
    """A puzzle given as data: ``{"houses": 3, "features": {"Name": [...], ...}, "clues": ["...", ...]}``."""
    try:
        houses = int(str(data["houses"]))
        raw = data["features"]
        clue_texts = data["clues"]
    except (KeyError, ValueError) as exc:
        raise VerifierConfigError(f"a zebra puzzle needs houses, features and clues: {exc}") from None
    if not isinstance(raw, Mapping) or not isinstance(clue_texts, Sequence) or isinstance(clue_texts, str):
        raise VerifierConfigError("features must map a key to its values and clues must be a list of sentences")
    features = tuple(Feature(str(k), str(k), tuple(str(v) for v in vs)) for k, vs in raw.items())
    for f in features:
        if len(f.values) != houses:
            raise VerifierConfigError(f"feature {f.key!r} has {len(f.values)} values for {houses} houses")
    lexicon = Lexicon([(f.cue, f.values) for f in features])
    clues = tuple(read_clue(i + 1, str(t), lexicon, houses) for i, t in enumerate(clue_texts))
    return ZebraPuzzle(houses, features, clues, "data")


def describe(puzzle: ZebraPuzzle) -> str:
    """The puzzle as JSON (for ``interlock`` users checking what was read)."""
    return json.dumps({
        "houses": puzzle.houses, "source": puzzle.source,
        "features": {f.key: list(f.values) for f in puzzle.features},
        "clues": [{"n": c.number, "kind": c.kind, "a": c.a.value if c.a else None, "b": c.b.value if c.b else None,
                   "house": c.house, "gap": c.gap, "problem": c.problem} for c in puzzle.clues],
    }, indent=1)
